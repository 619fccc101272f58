"""The training run's seams: a strategy registered from outside, loss terms that compose, one error contract."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from magic_bert.errors import InputError
from magic_bert.training import command
from magic_bert.training.strategies import STRATEGIES, ArchSampler, register_strategy

FIXED_ARCH = ["mha:2", "ffn:256", "conv:3", "identity"]
CYCLE = [["mha:2", "ffn:256"] * 2, ["conv:3", "identity", "mha:1", "ffn:128"], ["identity"] * 4]


@pytest.fixture
def small(word_tokenizer_dir):
    return ["--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "120", "--per_device_train_batch_size",
            "4", "--anchor_eval_samples", "8", "--max_eval_samples", "8", "--max_seq_length", "32"]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture
def cycle_strategy():
    """A toy strategy added the way a user would: one class plus its registration."""

    @register_strategy
    class Cycle(ArchSampler):
        name = "toy-cycle"

        def _draw(self, step: int) -> list[str]:
            return CYCLE[step % len(CYCLE)]

        def after_step(self, step, arch, score):
            return {"toy_checked": step % 2 == 0}

        def eval_arch(self) -> list[str]:
            return CYCLE[-1]

    yield Cycle
    del STRATEGIES["toy-cycle"]


def test_a_registered_strategy_trains_from_the_command_line(tmp_path, small, cycle_strategy):
    out = tmp_path / "toy"
    result = command.main([*small, "--sampler", "toy-cycle", "--max_train_steps", "5", "--output_dir", str(out)])
    expected = [CYCLE[step % 3] for step in range(5)]
    assert result.archs == expected
    log = read_jsonl(out / "train_log.jsonl")
    assert [r["arch"] for r in log] == expected
    assert [r["toy_checked"] for r in log] == [False, True, False, True, False]
    results = json.loads((out / "all_results.json").read_text())
    assert results["sampler"] == "toy-cycle" and results["eval_arch"] == CYCLE[-1]
    assert results["anchor_swaps"] is None  # no anchor, no alignment term
    assert "align_hidden_loss" not in log[0]


def test_unregistered_strategy_is_refused_with_the_allowed_names(tmp_path, capsys):
    with pytest.raises(SystemExit):
        command.main(["--sampler", "toy-cycle", "--output_dir", str(tmp_path / "o")])
    assert "toy-cycle" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_paper_mode_alignment_logs_hidden_only(tmp_path, small):
    out = tmp_path / "paper"
    command.main([*small, "--sampler", "magic-at", "--align_logits_weight", "0", "--align_hidden_weight", "2",
                  "--max_train_steps", "4", "--anchor_eval_steps", "2", "--output_dir", str(out)])
    for record in read_jsonl(out / "train_log.jsonl"):
        assert "align_logits_loss" not in record
        assert record["loss"] == pytest.approx(record["mlm_loss"] + 2 * record["align_hidden_loss"], abs=1e-5)


def test_a_fixed_arch_run_distils_too(tmp_path, small, word_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    teacher = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    teacher.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    out = tmp_path / "fixed-kd"
    command.main([*small, "--arch", " ".join(FIXED_ARCH), "--teacher_name_or_path", str(tmp_path / "teacher"),
                  "--kd_weight", "0.4", "--max_train_steps", "3", "--output_dir", str(out)])
    for record in read_jsonl(out / "train_log.jsonl"):
        assert record["kd_loss"] > 0 and record["arch"] == FIXED_ARCH
        assert record["loss"] == pytest.approx(0.6 * record["mlm_loss"] + 0.4 * record["kd_loss"], abs=1e-5)


def test_bad_input_is_one_line_naming_the_flag(tmp_path, small):
    with pytest.raises(SystemExit) as exit_info:
        command.main([*small, "--max_eval_samples", "0", "--output_dir", str(tmp_path / "o")])
    assert str(exit_info.value.code) == "error: --max_eval_samples must be at least 1, got 0."
    assert not (tmp_path / "o").exists()


def test_a_bug_inside_the_loop_keeps_its_traceback(tmp_path, small, cycle_strategy, monkeypatch):
    """A ValueError from a bug is not bad input: it is neither caught nor shortened at the command line."""

    def broken_draw(self, step):
        if step == 2:
            raise ValueError("a bug in the strategy")
        return CYCLE[0]

    monkeypatch.setattr(cycle_strategy, "_draw", broken_draw)
    with pytest.raises(ValueError, match="a bug in the strategy") as info:
        command.main([*small, "--sampler", "toy-cycle", "--max_train_steps", "4", "--output_dir", str(tmp_path / "o")])
    assert not isinstance(info.value, InputError)
    frames = [entry.name for entry in info.traceback]
    assert "train" in frames and "broken_draw" in frames
