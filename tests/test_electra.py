"""ELECTRA's replaced-token detection (--objective electra, issue 32): the detection loss and the corruption against
hand computations, the generator sharing the discriminator's embeddings, the composed loss, E-MAGIC-AT's anchor
checks on detection, resume == uninterrupted with the generator in the checkpoint, two runs == the same bits, and
bad input refused before anything is written."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import magic_bert.training.recipe as pretraining
from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
from magic_bert.errors import InputError
from magic_bert.training.arguments import parse_pretrain_args
from magic_bert.training.checkpointing import list_checkpoints
from magic_bert.training.electra import (
    GENERATOR_FOLDER,
    DiscriminatorHead,
    ElectraGenerator,
    ElectraObjective,
    base_rate_loss,
    default_generator_arch,
    detection_loss,
    generator_config,
    replace_masked,
)

from .conftest import run_until_first_checkpoint


@pytest.fixture
def small(word_tokenizer_dir):
    return ["--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "200", "--per_device_train_batch_size",
            "4", "--anchor_eval_samples", "16", "--max_eval_samples", "16", "--max_seq_length", "64",
            "--objective", "electra"]


def run(*argv):
    return pretraining.pretrain(parse_pretrain_args([str(a) for a in argv]))


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _tiny():
    config = MagicBertConfig.from_preset("tiny")
    torch.manual_seed(0)
    return config, MagicBertSupernetForMaskedLM(config.with_arch(None))


def test_detection_loss_is_the_bce_over_real_tokens_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 4.0, -2.0]])
    replaced = torch.tensor([[True, False, False], [False, True, True]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the last token of the second row is padding
    terms = [(2.0, 1), (-1.0, 0), (0.5, 0), (0.3, 0), (4.0, 1)]
    by_hand = -sum(math.log(1 / (1 + math.exp(-z))) if y else math.log(1 - 1 / (1 + math.exp(-z)))
                   for z, y in terms) / len(terms)
    assert detection_loss(logits, replaced, mask).item() == pytest.approx(by_hand, rel=1e-6)


def test_only_masked_positions_are_replaced_and_a_sample_equal_to_the_original_is_not_a_replacement():
    input_ids = torch.tensor([[7, 4, 9, 4], [5, 6, 4, 8]])  # 4 = [MASK]
    labels = torch.tensor([[-100, 11, -100, 12], [-100, -100, 13, -100]])
    logits = torch.full((3, 20), -1e9)
    logits[0, 11], logits[1, 3], logits[2, 17] = 0.0, 0.0, 0.0  # certain samples: 11 (the original), 3, 17
    corrupted, replaced = replace_masked(input_ids, labels, logits, torch.Generator().manual_seed(0))
    assert corrupted.tolist() == [[7, 11, 9, 3], [5, 6, 17, 8]]
    assert replaced.tolist() == [[False, False, False, True], [False, False, True, False]]


def test_the_generator_is_narrower_and_decodes_with_the_discriminators_embeddings():
    config, supernet = _tiny()
    arch = default_generator_arch(config)
    assert arch == ["heads:1", "ffn:64"] * 2  # a quarter of mha:2's heads and of ffn:256, the supernet's depth
    generator = ElectraGenerator(generator_config(config, arch))
    assert not any("embeddings" in name for name, _ in generator.named_parameters())  # none of its own
    ids = torch.randint(5, config.vocab_size, (2, 12))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    embeddings = supernet.bert.embeddings
    logits, loss = generator(embeddings(input_ids=ids), torch.ones_like(ids), labels,
                             embeddings.word_embeddings.weight)
    assert logits.shape == (2, config.vocab_size)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels[:, 2]).item(), rel=1e-6)
    loss.backward()  # the generator's masked-LM loss trains the shared token (and position) embeddings
    assert embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert embeddings.position_embeddings.weight.grad.abs().sum() > 0
    assert DiscriminatorHead(config)(torch.zeros(2, 12, config.hidden_size)).shape == (2, 12)


def test_the_base_rate_is_the_constant_answer_kept_on_the_same_corrupted_tokens():
    assert base_rate_loss(0.2) == pytest.approx(-(0.2 * math.log(0.2) + 0.8 * math.log(0.8)), rel=1e-12)
    assert base_rate_loss(0.0) == 0.0 and base_rate_loss(1.0) == 0.0
    config, supernet = _tiny()
    head = DiscriminatorHead(config)
    torch.nn.init.zeros_(head.predictions.dense_prediction.weight)
    torch.nn.init.constant_(head.predictions.dense_prediction.bias, -3.0)  # "kept" everywhere, logit -3
    electra = ElectraObjective(ElectraGenerator(generator_config(config, default_generator_arch(config))), head, 50.0)
    torch.manual_seed(1)
    ids = torch.randint(5, config.vocab_size, (3, 16))
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 12:] = 0  # padding is never scored
    labels = torch.where(torch.rand(ids.shape) < 0.4, ids, -100)
    batch = {"input_ids": torch.where(labels != -100, 4, ids), "attention_mask": attention_mask, "labels": labels}
    extra = {"arch": ["mha:2", "ffn:256"] * 2}
    scored = electra.example_sums(supernet, batch, 7, extra)
    base = electra.base_rate_sums(supernet, batch, 7, extra)
    assert base[:, 0].sum() > 0  # some tokens were replaced
    assert base[:, 2].tolist() == scored[:, 2].tolist() == [16.0, 12.0, 16.0]
    assert base[:, 1].tolist() == scored[:, 1].tolist()  # the same corruption: its correct answers are the kept ones
    softplus = torch.nn.functional.softplus
    by_hand = base[:, 0] * softplus(torch.tensor(3.0)) + base[:, 1] * softplus(torch.tensor(-3.0))
    assert torch.allclose(scored[:, 0].double(), by_hand.double(), rtol=1e-5)


def test_the_loss_is_the_generators_plus_lambda_times_the_detection_loss(tmp_path, small):
    out = tmp_path / "run"
    result = run(*small, "--max_train_steps", 3, "--rtd_weight", 20, "--output_dir", out)
    log = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3]
    for record in log:
        assert "mlm_loss" not in record and record["generator_loss"] > 0 and 0 < record["rtd_loss"] < 2
        assert record["loss"] == pytest.approx(record["generator_loss"] + 20 * record["rtd_loss"], rel=1e-6)
    results = json.loads((out / "all_results.json").read_text())
    assert results["objective"] == "electra" and "unigram_loss" not in results
    assert 0 < results["eval_loss"] < 2 and 0.5 < results["eval_accuracy"] <= 1  # detection, per real token
    share = results["replaced_share"]  # the base rate on the same held-out corruption: "kept" everywhere
    assert 0 < share < 0.2 and results["base_rate_accuracy"] == pytest.approx(1 - share, rel=1e-12)
    assert results["base_rate_loss"] == pytest.approx(base_rate_loss(share), rel=1e-12)
    assert "base rate" in pretraining.results_table(results) and f"{share:.1%} replaced" in \
        pretraining.results_table(results)
    saved = out / GENERATOR_FOLDER
    generator = ElectraGenerator(MagicBertConfig.from_pretrained(saved))
    generator.load_state_dict(load_file(saved / "generator.safetensors"))
    assert generator.config.arch == default_generator_arch(result.model.config)
    assert set(load_file(saved / "discriminator_head.safetensors")) == {
        "predictions.dense.weight", "predictions.dense.bias", "predictions.dense_prediction.weight",
        "predictions.dense_prediction.bias"}


def test_e_magic_at_checks_its_anchor_on_detection(tmp_path, small):
    out = tmp_path / "emagic"
    run(*small, "--sampler", "magic-at", "--max_train_steps", 4, "--anchor_eval_steps", 2, "--output_dir", out)
    events = read_jsonl(out / "anchor_history.jsonl")
    assert events and all(0 < e["new_loss"] < 2 and 0 < e["old_loss"] < 2 for e in events)  # BCE, not MLM
    log = read_jsonl(out / "train_log.jsonl")
    assert all("align_hidden_loss" in r and "align_logits_loss" not in r for r in log)  # the paper's alignment


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run_with_the_generator_in_the_checkpoint(tmp_path, small, monkeypatch):
    args = [*small, "--sampler", "magic-at", "--max_train_steps", 6, "--anchor_eval_steps", 2,
            "--checkpointing_steps", 3]
    straight = run(*args, "--output_dir", tmp_path / "straight")
    run_until_first_checkpoint(lambda: run(*args, "--output_dir", tmp_path / "resumed"), monkeypatch)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["step_3"]
    resumed = run(*args, "--output_dir", tmp_path / "resumed", "--resume_from_checkpoint", "latest")
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    generators = [load_file(tmp_path / d / GENERATOR_FOLDER / "generator.safetensors") for d in ("straight",
                                                                                                 "resumed")]
    assert max((generators[0][k] - generators[1][k]).abs().max().item() for k in generators[0]) <= 1e-6
    log_a, log_b = (read_jsonl(tmp_path / d / "train_log.jsonl") for d in ("straight", "resumed"))
    assert [r["generator_loss"] for r in log_a] == pytest.approx([r["generator_loss"] for r in log_b], abs=1e-6)
    assert resumed.anchor_history == straight.anchor_history


def test_two_fresh_runs_with_one_seed_give_the_same_bits(tmp_path, small):
    for name in ("a", "b"):
        run(*small, "--max_train_steps", 2, "--output_dir", tmp_path / name)
    for file in ("model.safetensors", f"{GENERATOR_FOLDER}/generator.safetensors"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


@pytest.mark.parametrize(("extra", "message"), [
    (["--mlm_weight", "1"], "no masked-LM predictions for `mlm_weight` 1"),
    (["--alignment", "full", "--sampler", "magic-at"], "`alignment` full"),
    (["--align_logits_weight", "0.5", "--sampler", "magic-at"], "`align_logits_weight` 0.5"),
    (["--rtd_weight", "0"], "`rtd_weight` must be positive"),
    (["--generator_arch", "lstm:3 ffn:64"], "`generator_arch` 'lstm:3 ffn:64'"),
])
def test_bad_electra_settings_are_refused_before_anything_is_written(tmp_path, small, extra, message):
    with pytest.raises(InputError, match=message):
        run(*small, *extra, "--max_train_steps", 2, "--output_dir", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra", [["--rtd_weight", "10"], ["--generator_arch", "ffn:64"]])
def test_electra_options_without_electra_are_refused(tmp_path, word_tokenizer_dir, extra):
    with pytest.raises(InputError, match="apply with `objective` electra only"):
        run("--tokenizer_name", word_tokenizer_dir, *extra, "--output_dir", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_search_scores_an_electra_supernets_children_by_detection(tmp_path, small, word_tokenizer_dir):
    """The search's recorded score of its best child is that child's held-out detection loss (the generator saved
    with the supernet corrupting the same blocks), not the untrained masked-LM head's loss."""
    import sys

    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer, default_data_collator

    from magic_bert.data import held_out_blocks, load_held_out_text
    from magic_bert.evaluation import evaluate_mlm
    from magic_bert.training.electra import load_electra

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
    import search as search_recipe

    supernet_dir = tmp_path / "supernet"
    run(*small, "--max_train_steps", 3, "--output_dir", supernet_dir)
    out = tmp_path / "search"
    search_recipe.search(search_recipe.parse_args([
        "--supernet", str(supernet_dir), "--output_dir", str(out), "--population_size", "4", "--generations", "2",
        "--num_eval_batches", "1", "--max_seq_length", "64"]))
    best = json.loads((out / "arch.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(supernet_dir)
    blocks = held_out_blocks(load_held_out_text(synthetic_documents=200, seed=42), tokenizer, 64, 0.15, seed=42)
    loader = DataLoader(blocks.select(range(min(len(blocks), 32))), batch_size=32, collate_fn=default_data_collator)
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir)
    detection = evaluate_mlm(supernet, loader, arch=best["arch"],
                             example_sums=load_electra(supernet_dir).example_sums)
    assert best["eval_loss"] == pytest.approx(detection.loss, abs=1e-6)
    assert best["eval_accuracy"] == pytest.approx(detection.accuracy, abs=1e-9)
    assert evaluate_mlm(supernet, loader, arch=best["arch"]).loss > 2 * detection.loss  # the MLM head: untrained


def test_an_electra_trained_child_exports_for_fine_tuning_and_its_card_says_how_it_was_trained(tmp_path, small):
    from transformers import AutoModelForSequenceClassification

    from magic_bert.search.export import export_checkpoint

    supernet_dir = tmp_path / "supernet"
    result = run(*small, "--sampler", "magic-at", "--max_train_steps", 2, "--output_dir", supernet_dir)
    child = export_checkpoint(supernet_dir, result.results["eval_arch"], tmp_path / "child")
    card = (child / "README.md").read_text()
    assert "E-MAGIC-AT" in card and "replaced-token detection" in card
    model = AutoModelForSequenceClassification.from_pretrained(child, trust_remote_code=True, num_labels=3)
    assert model(torch.tensor([[2, 10, 11, 3]])).logits.shape == (1, 3)


def test_rank_correlation_scores_an_electra_supernet_by_detection_against_the_masked_lm_reference(tmp_path, small):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
    import rank_correlation as rank_recipe

    from magic_bert.evaluation import evaluate_mlm
    from magic_bert.training.electra import load_electra

    supernet_dir = tmp_path / "supernet"
    run(*small, "--max_train_steps", 2, "--output_dir", supernet_dir)
    report = rank_recipe.correlate(rank_recipe.parse_args([
        "--supernet", str(supernet_dir), "--output_dir", str(tmp_path / "rank"), "--num_children", "3",
        "--standalone_steps", "2", "--num_warmup_steps", "0", "--per_device_train_batch_size", "4",
        "--max_seq_length", "64", "--synthetic_documents", "200", "--num_eval_batches", "1",
        "--per_device_eval_batch_size", "8", "--cache_dir", str(tmp_path / "cache")]))
    (scored,) = report["supernets"]
    assert scored["inherited_score"] == "replaced-token detection"
    assert all(entry["eval_loss"] > 2 for entry in report["standalone"])  # the masked-LM reference, ~log(vocab)
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer, default_data_collator

    from magic_bert.data import held_out_blocks, load_held_out_text

    tokenizer = AutoTokenizer.from_pretrained(supernet_dir)
    blocks = held_out_blocks(load_held_out_text(synthetic_documents=200, seed=42), tokenizer, 64, 0.15, seed=42)
    loader = DataLoader(blocks.select(range(8)), batch_size=8, collate_fn=default_data_collator)
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir)
    by_hand = [evaluate_mlm(supernet, loader, arch=arch, example_sums=load_electra(supernet_dir).example_sums).loss
               for arch in report["children"]]
    assert scored["inherited_losses"] == pytest.approx(by_hand, abs=1e-6)


def test_interference_differentiates_an_electra_supernets_detection_loss(tmp_path, small):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
    import analyze_interference

    from magic_bert.analysis.interference import probe_child, shared_op
    from magic_bert.training.electra import load_electra

    supernet_dir = tmp_path / "supernet"
    run(*small, "--max_train_steps", 2, "--output_dir", supernet_dir)
    out = tmp_path / "interference"
    analyze_interference.main(["--supernet", str(supernet_dir), "--output_dir", str(out), "--layer", "2", "--op",
                               "mha:2", "--num_children", "3", "--pairs_per_m", "1", "--num_batches", "1",
                               "--per_device_batch_size", "4", "--max_seq_length", "64"])
    matrix = json.loads((out / "similarity_matrix.json").read_text())
    assert matrix["loss"] == "replaced-token detection"
    assert [row[i] for i, row in enumerate(matrix["gradient"])] == pytest.approx([1.0] * 3, abs=1e-9)
    # The probe's gradient is the detection loss's (by hand with autograd), not the masked-LM loss's
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir)
    electra = load_electra(supernet_dir)
    ids = torch.randint(5, supernet.config.vocab_size, (2, 16))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    arch = matrix["children"][0]
    probe = probe_child(supernet, arch, [batch], 2, "mha:2", electra)
    params = list(shared_op(supernet, 2, "mha:2").parameters())
    supernet.eval()
    by_hand = torch.autograd.grad(electra.held_out_loss(supernet, batch, 0, {"arch": arch}), params)
    assert torch.allclose(probe.gradients[0], torch.cat([g.reshape(-1) for g in by_hand]).double(), atol=1e-9)
    mlm = torch.autograd.grad(supernet(**batch, arch=arch, masked_logits_only=True).loss, params)
    assert not torch.allclose(probe.gradients[0], torch.cat([g.reshape(-1) for g in mlm]).double(), atol=1e-6)
