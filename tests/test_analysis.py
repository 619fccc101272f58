"""Interference analysis and rank correlation: known answers, the standalone cache, figures, recipes, bad input."""

import math
import random

import pytest
import torch
from scipy import stats

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
from magic_bert.analysis import (
    StandaloneCache,
    pair_similarity,
    pairs_at_distance,
    plot_rank_scatter,
    plot_similarity_matrix,
    plot_similarity_vs_m,
    probe_child,
    rank_correlation,
    sample_children,
    sample_sharing_children,
    short_arch,
    similarity_matrix,
    similarity_vs_m,
)
from magic_bert.analysis.interference import ChildProbe
from magic_bert.evaluation import evaluate_mlm
from magic_bert.training.arguments import PretrainArguments

from .conftest import make_batch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LAYER, OP = 1, "ffn:256"
A = ["mha:2", "ffn:256", "conv:3", "identity"]
B = ["conv:5", "ffn:256", "mha:1", "ffn:128"]  # shares only ffn:256 at layer 1 with A


@pytest.fixture(scope="module")
def supernet(trained_supernet_dir):
    # Trained a little, so children differ (at init every op is close to identity + LayerNorm and all children nearly
    # agree). Dropout is on in train mode: the probe must turn it off.
    return MagicBertSupernetForMaskedLM.from_pretrained(trained_supernet_dir).train()


def masked_batches(count=2, seed=0, vocab_size=300):
    batches = []
    for i in range(count):
        input_ids, attention_mask = make_batch(vocab_size, batch=4, seq=16, seed=seed + i, pad_from=10)
        labels = torch.full_like(input_ids, -100)
        labels[:, ::3] = input_ids[:, ::3]
        labels[attention_mask == 0] = -100
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return batches


def is_png(path) -> bool:
    import matplotlib.image

    return path.read_bytes()[:8] == PNG_SIGNATURE and matplotlib.image.imread(path).ndim == 3


# --- gradient similarity: known answers ---------------------------------------------------------------------------

def test_pair_similarity_of_hand_made_vectors():
    def probe(gradient, token):
        return ChildProbe([], [torch.tensor(gradient, dtype=torch.float64)],
                          [torch.tensor([token], dtype=torch.float64)], [torch.tensor([token], dtype=torch.float64)])

    assert pair_similarity(probe([1.0, 0.0], [1.0, 0.0]), probe([0.0, 2.0], [3.0, 0.0])) == {
        "gradient": 0.0, "input": 1.0, "output": 1.0}
    result = pair_similarity(probe([1.0, 1.0], [1.0, 0.0]), probe([1.0, 0.0], [-1.0, 0.0]))
    assert result["gradient"] == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    assert result["input"] == pytest.approx(-1.0, abs=1e-12)


def test_identical_children_and_a_child_with_itself_give_one(supernet):
    batches = masked_batches()
    matrices = similarity_matrix(supernet, [A, A, B], batches, LAYER, OP)
    for kind in ("gradient", "input", "output"):
        matrix = torch.tensor(matrices[kind])
        assert torch.allclose(matrix.diagonal(), torch.ones(3, dtype=matrix.dtype), atol=1e-9)  # itself
        assert matrix[0, 1] == pytest.approx(1.0, abs=1e-9)  # two identical children
        assert torch.equal(matrix, matrix.T)
    assert matrices["gradient"][0][2] < 1 - 1e-6  # different children: not trivially 1 (at init they nearly agree)
    assert supernet.training  # the probe restored the mode it changed


def test_only_the_shared_ops_gradient_is_compared(supernet):
    batches = masked_batches(count=1)
    op_params = list(supernet.bert.encoder.layer[LAYER].ops["ffn_256"].parameters())
    probe_a, probe_b = (probe_child(supernet, arch, batches, LAYER, OP) for arch in (A, B))
    assert probe_a.gradients[0].numel() == sum(p.numel() for p in op_params)

    def full_gradient(arch, params):
        supernet.eval()
        supernet.zero_grad()
        supernet(**batches[0], arch=arch).loss.backward()
        supernet.train()
        return torch.cat([p.grad.reshape(-1) for p in params]).double()

    by_hand = torch.nn.functional.cosine_similarity(full_gradient(A, op_params), full_gradient(B, op_params), dim=0)
    assert pair_similarity(probe_a, probe_b)["gradient"] == pytest.approx(by_hand.item(), abs=1e-9)
    # Over all the parameters both children use (embeddings, head) the cosine is different: those are left out.
    shared = [p for _, p in supernet.child_parameters(A) if any(p is q for _, q in supernet.child_parameters(B))]
    everything = torch.nn.functional.cosine_similarity(full_gradient(A, shared), full_gradient(B, shared), dim=0)
    assert abs(everything.item() - by_hand.item()) > 1e-4
    supernet.zero_grad(set_to_none=True)


def test_similarity_vs_m_pairs_differ_in_exactly_m_layers(supernet):
    space = supernet.config.search_space
    rows = similarity_vs_m(supernet, masked_batches(count=1), LAYER, OP, pairs_per_m=2, seed=3)
    assert [r["m"] for r in rows] == list(range(1, space.num_layers))
    for row in rows:
        assert row["num_pairs"] == 2
        for a, b in row["pairs"]:
            assert a[LAYER] == b[LAYER] == OP and space.distance(a, b) == row["m"]
        assert -1 <= row["gradient_mean"] <= 1 and row["gradient_std"] >= 0
    again = similarity_vs_m(supernet, masked_batches(count=1), LAYER, OP, pairs_per_m=2, seed=3)
    assert again == rows  # same seed: same pairs, same numbers (another supernet would be compared on these pairs)


def test_pairs_respect_the_budget():
    space = MagicBertConfig.from_preset("tiny").search_space
    budget = space.min_params + 40_000
    pairs = pairs_at_distance(space, 0, "mha:2", 2, 5, random.Random(0), max_params=budget)
    assert pairs and all(space.num_params(a) <= budget and space.num_params(b) <= budget for a, b in pairs)


# --- bad input --------------------------------------------------------------------------------------------------

def test_an_op_no_child_shares_is_refused(supernet):
    with pytest.raises(ValueError, match=r"not shared by every child: children \[1\] use \['mha:1'\]"):
        similarity_matrix(supernet, [A, ["mha:2", "mha:1", "conv:3", "identity"]], masked_batches(1), LAYER, OP)
    with pytest.raises(ValueError, match="has no parameters"):
        similarity_vs_m(supernet, masked_batches(1), LAYER, "identity")
    with pytest.raises(ValueError, match="not a candidate"):
        similarity_vs_m(supernet, masked_batches(1), LAYER, "ffn:999")
    with pytest.raises(ValueError, match=r"`layer` 7 is out of range: this supernet has layers 0..3"):
        similarity_vs_m(supernet, masked_batches(1), 7, OP)


def test_too_few_children_and_an_empty_budget_are_refused():
    space = MagicBertConfig.from_preset("tiny").search_space
    with pytest.raises(ValueError, match=r"`num_children` must be at least 3 \(a rank correlation needs 3 children\), "
                                         "got 2"):
        sample_children(space, 2)
    with pytest.raises(ValueError, match="Infeasible parameter budget"):
        sample_children(space, 16, max_params=1000)
    with pytest.raises(ValueError, match="at least 3 children"):
        rank_correlation([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="Found only"):
        sample_sharing_children(space, 0, "mha:2", 5, random.Random(0), max_params=space.min_params + 16_000)


# --- rank correlation -----------------------------------------------------------------------------------------

def test_kendall_and_spearman_on_known_rankings():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40])["kendall_tau"] == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])["spearman_rho"] == pytest.approx(-1.0)
    one_swap = rank_correlation([1, 2, 3, 4], [1, 3, 2, 4])  # 5 concordant, 1 discordant pair of 6
    assert one_swap["kendall_tau"] == pytest.approx(4 / 6)
    assert one_swap["spearman_rho"] == pytest.approx(1 - 6 * 2 / (4 * 15))
    x, y = [0.3, 0.1, 0.9, 0.5, 0.7], [2.0, 1.0, 3.0, 5.0, 4.0]
    assert rank_correlation(x, y)["kendall_p"] == pytest.approx(stats.kendalltau(x, y).pvalue)


def test_children_are_distinct_seeded_and_inside_the_budget():
    space = MagicBertConfig.from_preset("tiny").search_space
    budget = (space.min_params + space.max_params) / 2
    children = sample_children(space, 16, seed=5, max_params=budget)
    assert len({tuple(c) for c in children}) == 16
    assert all(space.num_params(c) <= budget for c in children)
    assert sample_children(space, 16, seed=5, max_params=budget) == children


def test_standalone_cache_trains_each_arch_once(tmp_path, word_tokenizer_dir):
    from magic_bert.training.recipe import pretrain

    calls = []

    def counting_pretrain(args):
        calls.append(args.arch)
        return pretrain(args)

    template = PretrainArguments(tokenizer_name=word_tokenizer_dir, synthetic_documents=60, max_seq_length=32,
                                 per_device_train_batch_size=4, max_train_steps=3, seed=7)
    scores = []

    def score(model):  # the trained model's loss on one fixed batch
        result = evaluate_mlm(model, masked_batches(1, seed=9, vocab_size=model.config.vocab_size))
        scores.append(result.loss)
        return result

    children = [["mha:2", "ffn:128", "conv:3", "identity"], ["identity", "ffn:256", "mha:1", "conv:5"]]
    cache = StandaloneCache(tmp_path / "cache", template, score, {"held_out": "one batch"}, counting_pretrain)
    first = cache.scores(children)
    assert len(calls) == 2 and cache.trained == 2
    assert [entry["arch"] for entry in first] == children and [e["eval_loss"] for e in first] == scores
    assert not list((tmp_path / "cache").glob(".run-*"))  # run folders are removed once scored

    def must_not_train(args):
        raise AssertionError("a cached arch was trained again")

    again = StandaloneCache(tmp_path / "cache", template, score, {"held_out": "one batch"}, must_not_train)
    assert again.scores(children) == first and again.trained == 0
    # Another schedule or held-out set is another key: nothing stale is reused.
    longer = PretrainArguments(**{**template.__dict__, "max_train_steps": 4})
    assert StandaloneCache(tmp_path / "cache", longer, score).get(children[0]) is None
    assert StandaloneCache(tmp_path / "cache", template, score, {"held_out": "other"}).get(children[0]) is None


# --- figures ----------------------------------------------------------------------------------------------------

def test_figures_are_valid_pngs(tmp_path):
    labels = [short_arch(A), short_arch(B)]
    assert labels[0] == "M2 F256 C3 I"
    plot_similarity_matrix([[1.0, 0.2], [0.2, 1.0]], labels, tmp_path / "matrix.png", "t")
    rows = [{"m": 1, "gradient_mean": 0.5, "gradient_std": 0.1, "input_mean": 0.9, "input_std": 0.0,
             "output_mean": 0.8, "output_std": 0.0},
            {"m": 2, "gradient_mean": None, "gradient_std": None, "input_mean": None, "input_std": None,
             "output_mean": None, "output_std": None}]
    plot_similarity_vs_m({"spos": rows}, tmp_path / "vs_m.png", "t")
    plot_rank_scatter({"spos": ([1.0, 2.0, 3.0], [1.5, 2.5, 2.0])}, tmp_path / "scatter.png", "t")
    for name in ("matrix.png", "vs_m.png", "scatter.png"):
        assert is_png(tmp_path / name)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
