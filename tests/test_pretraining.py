"""The pre-training recipe: samplers' rules in the loop, fixed-arch mode, KD, resume == straight, outputs, bad input."""

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

import magic_bert.training.recipe as pretraining
import magic_bert.training.setup as pretraining_inputs
from magic_bert import MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from magic_bert.errors import InputError
from magic_bert.search_space import SearchSpace
from magic_bert.training.arguments import ModelArguments, parse_pretrain_args
from magic_bert.training.checkpointing import list_checkpoints
from magic_bert.training.losses import resolve_anchor_precision
from magic_bert.training.strategies import default_anchor_arch

from .conftest import TOLERANCE, make_batch, max_diff, run_until_first_checkpoint

REPO = Path(__file__).resolve().parent.parent
FIXED_ARCH = ["mha:2", "ffn:256", "conv:3", "identity"]


@pytest.fixture
def small(word_tokenizer_dir):
    """Tiny, fast settings shared by the runs (own tokenizer, a small synthetic corpus, few held-out blocks)."""
    return ["--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "200", "--per_device_train_batch_size",
            "4", "--anchor_eval_samples", "16", "--max_eval_samples", "16", "--max_seq_length", "64"]


def run(*argv):
    return pretraining.pretrain(parse_pretrain_args([str(a) for a in argv]))


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_fixed_arch_mode_saves_an_auto_loadable_model(tmp_path, small):
    out = tmp_path / "child"
    result = run(*small, "--arch", " ".join(FIXED_ARCH), "--max_train_steps", 4, "--output_dir", out)
    assert isinstance(result.model, MagicBertForMaskedLM) and result.model.config.arch == FIXED_ARCH
    log = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(r["arch"] == FIXED_ARCH for r in log)
    assert log[-1]["lr"] < log[0]["lr"]  # linear decay
    reloaded = AutoModelForMaskedLM.from_pretrained(out).eval()
    assert type(reloaded) is MagicBertForMaskedLM
    input_ids, mask = make_batch(len(AutoTokenizer.from_pretrained(out)))
    expected = result.model.eval()(input_ids, attention_mask=mask).logits
    assert max_diff(reloaded(input_ids, attention_mask=mask).logits, expected, mask) < TOLERANCE
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_arch"] == FIXED_ARCH and results["train_steps"] == 4 and results["sampler"] is None
    assert results["eval_perplexity"] == pytest.approx(torch.tensor(results["eval_loss"]).exp().item())
    assert results["train_tokens"] == 4 * 4 * 64 and results["train_tokens_per_second"] > 0
    assert not list(out.glob(".tmp*"))


def test_spos_follows_the_sampler_inside_the_budget(tmp_path, small):
    space = MagicBertSupernetForMaskedLM.config_class.from_preset("tiny").search_space
    budget = (space.min_params + space.max_params) // 2
    result = run(*small, "--max_train_steps", 6, "--max_params", budget, "--output_dir", tmp_path / "spos")
    # Vocabulary size changes the base parameters, not the per-layer budget check, so count in the run's space.
    run_space = SearchSpace(result.model.config)
    assert all(run_space.num_params(arch) <= budget for arch in result.archs)
    assert len({tuple(a) for a in result.archs}) > 1
    assert [r["arch"] for r in read_jsonl(tmp_path / "spos" / "train_log.jsonl")] == result.archs
    reloaded = MagicBertSupernetForMaskedLM.from_pretrained(tmp_path / "spos").eval()
    input_ids, mask = make_batch(result.model.config.vocab_size)
    arch = result.archs[-1]
    expected = result.model.eval()(input_ids, attention_mask=mask, arch=arch).logits
    assert max_diff(reloaded(input_ids, attention_mask=mask, arch=arch).logits, expected, mask) < TOLERANCE


def test_magic_t_changes_exactly_one_layer_per_step(tmp_path, small):
    result = run(*small, "--sampler", "magic-t", "--max_train_steps", 8, "--output_dir", tmp_path / "t")
    assert len(result.archs) == 8
    for previous, current in zip(result.archs, result.archs[1:], strict=False):
        assert SearchSpace.distance(previous, current) == 1


def test_magic_a_swaps_only_on_a_loss_lower_by_the_margin_and_aligns(tmp_path, small):
    out = tmp_path / "a"
    # Margin 0.5 paired standard errors: low enough that this short run swaps, so the rule is exercised.
    result = run(*small, "--sampler", "magic-a", "--max_train_steps", 12, "--anchor_eval_steps", 2,
                 "--anchor_swap_margin", 0.5, "--learning_rate", 2e-3, "--output_dir", out)
    log = read_jsonl(out / "train_log.jsonl")
    checks = [r for r in log if "anchor_swapped" in r]
    assert [r["step"] for r in checks] == [2, 4, 6, 8, 10, 12]
    anchor = default_anchor_arch(SearchSpace(result.model.config))
    swaps = iter(result.anchor_history)
    for record in log:
        # Alignment is zero exactly when the child is the anchor, and positive otherwise; each term is logged.
        align = record["align_hidden_loss"] + record["align_logits_loss"]  # both weighted 0.1 by default
        assert (align == 0) == (record["arch"] == anchor)
        assert record["loss"] == pytest.approx(record["mlm_loss"] + 0.1 * align, abs=1e-5)
        if "anchor_swapped" in record:
            assert record["anchor_swap_margin"] == 0.5
            threshold = record["anchor_eval_loss"] - 0.5 * record["anchor_paired_se"]
            assert record["anchor_swap_threshold"] == pytest.approx(threshold, abs=1e-12)
            assert (record["anchor_paired_se"] == 0) == (record["arch"] == anchor)
            better = record["child_eval_loss"] < record["anchor_swap_threshold"]
            assert record["anchor_swapped"] == (better and record["arch"] != anchor)
            if record["anchor_swapped"]:
                event = next(swaps)
                assert (event["step"], event["old_arch"], event["new_arch"]) == (record["step"], anchor, record["arch"])
                assert (event["paired_se"], event["margin"]) == (record["anchor_paired_se"], 0.5)
                anchor = record["arch"]
    assert next(swaps, None) is None
    # The default --anchor_precision auto, resolved for this machine, is what the run used and records.
    assert result.results["anchor_precision"] == resolve_anchor_precision("auto", "cpu")
    assert result.anchor_history, "this seed is expected to swap at least once (so the rule is exercised)"
    assert read_jsonl(out / "anchor_history.jsonl") == json.loads(json.dumps(result.anchor_history))
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_arch"] == anchor
    assert results["anchor_checks"] == 6 and results["anchor_swap_rate"] == len(result.anchor_history) / 6


def test_kd_with_a_tiny_teacher(tmp_path, small, word_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    teacher_dir = tmp_path / "teacher"
    teacher = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    teacher.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    out = tmp_path / "kd"
    run(*small, "--teacher_name_or_path", teacher_dir, "--kd_weight", 0.25, "--max_train_steps", 3,
        "--output_dir", out)
    for record in read_jsonl(out / "train_log.jsonl"):
        assert record["kd_loss"] > 0
        assert record["loss"] == pytest.approx(0.75 * record["mlm_loss"] + 0.25 * record["kd_loss"], abs=1e-5)


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tmp_path, small, monkeypatch):
    """2N steps straight == N steps, crash right after the checkpoint, resume, N more (MAGIC-AT, accumulation 2)."""
    args = [*small, "--sampler", "magic-at", "--max_train_steps", 12, "--anchor_eval_steps", 3,
            "--gradient_accumulation_steps", 2, "--learning_rate", 2e-3, "--checkpointing_steps", 6]
    straight = run(*args, "--output_dir", tmp_path / "straight")

    run_until_first_checkpoint(lambda: run(*args, "--output_dir", tmp_path / "resumed"), monkeypatch)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["step_6"]
    resumed = run(*args, "--output_dir", tmp_path / "resumed", "--resume_from_checkpoint", "latest")

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert resumed.archs == straight.archs[6:]
    assert resumed.anchor_history == straight.anchor_history
    log_a, log_b = (read_jsonl(tmp_path / d / "train_log.jsonl") for d in ("straight", "resumed"))
    assert [r["step"] for r in log_b] == list(range(1, 13))
    assert [r["arch"] for r in log_a] == [r["arch"] for r in log_b]
    assert [r["loss"] for r in log_a] == pytest.approx([r["loss"] for r in log_b], abs=1e-6)
    assert resumed.results["eval_loss"] == pytest.approx(straight.results["eval_loss"], abs=1e-6)


def test_config_file_with_command_line_override(tmp_path):
    config = tmp_path / "pretrain.yaml"
    config.write_text("sampler: magic-t\nmax_train_steps: 7\nlearning_rate: 0.001\n")
    args = parse_pretrain_args(["--config", str(config), "--max_train_steps", "9", "--output_dir", "x"])
    assert (args.sampler, args.max_train_steps, args.learning_rate) == ("magic-t", 9, 0.001)
    config.write_text("sampler: magic-t\nmax_steps: 7\n")
    with pytest.raises(SystemExit):
        parse_pretrain_args(["--config", str(config)])


def test_unknown_sampler_is_rejected_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        parse_pretrain_args(["--sampler", "magic-x", "--output_dir", "x"])
    err = capsys.readouterr().err
    assert "magic-x" in err and "magic-at" in err


def _bad_teacher(tmp_path, tokenizer_dir):
    teacher = BertForMaskedLM(BertConfig(vocab_size=len(AutoTokenizer.from_pretrained(tokenizer_dir)) + 7,
                                         hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64))
    teacher.save_pretrained(tmp_path / "teacher")
    return ["--teacher_name_or_path", tmp_path / "teacher"]


@pytest.mark.parametrize("case, message", [
    ("arch", "not in candidate_ops"),
    ("arch_layers", "num_hidden_layers=4"),
    ("budget", "Infeasible parameter budget"),
    ("teacher", "has a vocabulary of"),
    ("init_from_bert", "`init_from_bert` .* has a vocabulary of"),
    ("missing_tokenizer", "`tokenizer_name`"),
    ("anchor_with_spos", "`anchor_arch` needs `sampler` magic-a"),
    ("no_eval_samples", "`max_eval_samples` must be at least 1"),
    ("checkpoint_limit", "`checkpoints_total_limit` must be at least 1"),
    ("seq_len", "`max_seq_length` 512 exceeds"),
    ("empty_file", "is empty"),
    ("missing_file", "does not exist"),
    ("resume_nothing", "is not a checkpoint folder"),
    ("resume_latest_none", "no complete checkpoint"),
    ("arch_and_sampler", "supernets only"),
    ("anchor_arch", "not in candidate_ops"),
])
def test_bad_input_fails_before_writing_anything(tmp_path, small, word_tokenizer_dir, case, message):
    out = tmp_path / "out"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    extra = {
        "arch": ["--arch", "mha:3 ffn:256 mha:2 ffn:256"],
        "arch_layers": ["--arch", "mha:2 ffn:256"],
        "budget": ["--max_params", 10],
        "teacher": _bad_teacher(tmp_path, word_tokenizer_dir) if case == "teacher" else [],
        "empty_file": ["--train_file", empty],
        "missing_file": ["--train_file", tmp_path / "nope.txt"],
        "resume_nothing": ["--resume_from_checkpoint", tmp_path / "nowhere"],
        "resume_latest_none": ["--resume_from_checkpoint", "latest"],
        "arch_and_sampler": ["--arch", " ".join(FIXED_ARCH), "--sampler", "magic-a"],
        "anchor_arch": ["--sampler", "magic-a", "--anchor_arch", "mha:9 mha:9 mha:9 mha:9"],
        "init_from_bert": ["--init_from_bert", _bad_teacher(tmp_path, word_tokenizer_dir)[1]]
        if case == "init_from_bert" else [],
        "missing_tokenizer": ["--tokenizer_name", tmp_path / "no_tokenizer"],
        "anchor_with_spos": ["--anchor_arch", " ".join(FIXED_ARCH)],
        "no_eval_samples": ["--max_eval_samples", 0],
        "checkpoint_limit": ["--checkpoints_total_limit", 0],
        "seq_len": ["--max_seq_length", 512],
    }[case]
    with pytest.raises(InputError, match=message):
        run(*small, *extra, "--max_train_steps", 2, "--output_dir", out)
    assert not out.exists()


def test_non_empty_output_dir_needs_overwrite(tmp_path, small):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="`overwrite_output_dir`"):
        run(*small, "--max_train_steps", 2, "--output_dir", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_local_csv_files_with_a_text_column(tmp_path, word_tokenizer_dir):
    import pandas as pd

    from magic_bert.synthetic_corpus import generate_corpus

    for split, seed in (("train", 0), ("validation", 1)):
        pd.DataFrame({"id": range(60), "sentence": generate_corpus(60, seed=seed)}).to_csv(tmp_path / f"{split}.csv")
    out = tmp_path / "out"
    result = run("--train_file", tmp_path / "train.csv", "--validation_file", tmp_path / "validation.csv",
                 "--text_column_name", "sentence", "--tokenizer_name", word_tokenizer_dir, "--max_seq_length", 64,
                 "--per_device_train_batch_size", 4, "--max_train_steps", 2, "--output_dir", out)
    assert result.results["train_steps"] == 2 and result.results["eval_num_tokens"] > 0


@pytest.mark.slow
def test_embedded_default_end_to_end(tmp_path):
    """The README's command at tiny size: no data arguments, its own tokenizer; the model learns something."""
    import subprocess

    out = tmp_path / "tiny"
    completed = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "pretrain.py"), "--output_dir", str(out), "--max_train_steps", "60",
         "--synthetic_documents", "400"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((out / "all_results.json").read_text())
    log = read_jsonl(out / "train_log.jsonl")
    assert len(log) == 60 and results["train_steps"] == 60
    # Chance over a vocabulary of hundreds is ~6.4 nats; the run must get well below it.
    assert log[0]["mlm_loss"] > 6.0 and results["eval_loss"] < 5.8
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(out)
    assert supernet.config.vocab_size == len(tokenizer)
    assert "held-out MLM loss" in completed.stdout
    # The first screen reads the score against what knowing only token frequencies gives, and a random child.
    assert "unigram baseline" in completed.stdout and "a random child" in completed.stdout
    assert 0 < results["unigram_accuracy"] < 1 and results["random_child_arch"] and results["random_child_loss"] > 0


def test_bad_input_from_the_command_line_is_one_line(tmp_path):
    import subprocess

    completed = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "pretrain.py"), "--output_dir", str(tmp_path / "o"),
         "--train_file", str(tmp_path / "missing.txt")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr and "missing.txt" in completed.stderr
    assert not (tmp_path / "o").exists()


def test_dataset_name_path_and_tracking(tmp_path, word_tokenizer_dir):
    """The --dataset_name code path (a Hub id for users; a local folder here) and --with_tracking (TensorBoard)."""
    pytest.importorskip("tensorboard")
    from magic_bert.synthetic_corpus import generate_corpus

    data = tmp_path / "my_dataset"
    data.mkdir()
    (data / "train.txt").write_text("\n".join(generate_corpus(80)))
    out = tmp_path / "out"
    result = run("--dataset_name", data, "--tokenizer_name", word_tokenizer_dir, "--max_seq_length", 64,
                 "--per_device_train_batch_size", 4, "--max_train_steps", 4, "--logging_steps", 2,
                 "--with_tracking", "--report_to", "tensorboard", "--output_dir", out)
    assert result.results["train_steps"] == 4
    assert list(out.rglob("events.out.tfevents.*")), "TensorBoard wrote no event file"


def test_init_from_bert_puts_bert_in_its_own_arch(tmp_path, word_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    bert = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=256, max_position_embeddings=128,
                                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    bert.save_pretrained(tmp_path / "bert")
    args = parse_pretrain_args(["--init_from_bert", str(tmp_path / "bert"), "--inherit", "magnitude", "--output_dir",
                                str(tmp_path / "o")])
    config = pretraining_inputs.build_config(args.group(ModelArguments), tokenizer)
    supernet = pretraining_inputs.build_model(args.group(ModelArguments), config, None).eval()
    input_ids, mask = make_batch(len(tokenizer))
    expected = bert(input_ids, attention_mask=mask).logits
    got = supernet(input_ids, attention_mask=mask, arch=["mha:2", "ffn:256"] * 2).logits
    assert max_diff(got, expected, mask) < TOLERANCE
    child = pretraining_inputs.build_model(args.group(ModelArguments), config, ["mha:2", "ffn:256"] * 2).eval()
    assert max_diff(child(input_ids, attention_mask=mask).logits, expected, mask) < TOLERANCE


@pytest.mark.parametrize("change, message", [
    (["--sampler", "magic-t"], "sampler: checkpoint 'spos', now 'magic-t'"),
    (["--per_device_train_batch_size", 8], "per_device_train_batch_size: checkpoint 4, now 8"),
    (["--arch", " ".join(FIXED_ARCH)], "arch: checkpoint None"),
    (["--objective", "electra"], "objective: checkpoint 'mlm', now 'electra'"),
])
def test_resume_with_other_settings_is_refused_before_writing(tmp_path, small, change, message):
    out = tmp_path / "out"
    run(*small, "--max_train_steps", 2, "--checkpointing_steps", 2, "--output_dir", out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(InputError, match=message):
        run(*small, *change, "--max_train_steps", 4, "--output_dir", out, "--resume_from_checkpoint", "latest")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_config_file_values_are_typed_and_checked(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("checkpointing_steps: 2\nper_device_train_batch_size: 4\nwith_tracking: true\n")
    args = parse_pretrain_args(["--config", str(config), "--output_dir", "x"])
    assert (args.checkpointing_steps, args.per_device_train_batch_size, args.with_tracking) == ("2", 4, True)
    config.write_text("per_device_train_batch_size: 4.5\n")
    with pytest.raises(SystemExit):
        parse_pretrain_args(["--config", str(config)])
    config.write_text("sampler: magic-x\n")
    with pytest.raises(SystemExit):
        parse_pretrain_args(["--config", str(config)])


def test_epoch_checkpoint_at_the_end_of_training(tmp_path, small):
    out = tmp_path / "out"
    run(*small, "--num_train_epochs", 1, "--checkpointing_steps", "epoch", "--output_dir", out)
    assert [p.name for p in list_checkpoints(out)] == ["epoch_1"]
