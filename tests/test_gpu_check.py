"""bench/gpu_check.py on CPU with its --quick setting (the GPU run itself needs a device): it trains, times and
compiles, writes its JSON, counts FLOPs by the search space's formulas, and refuses bad settings."""

import json
import sys
from pathlib import Path

import pytest

from magic_bert import MagicBertConfig
from magic_bert.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gpu_check  # noqa: E402


def test_flops_per_token_by_hand():
    config = MagicBertConfig.from_preset("tiny")  # hidden 64, vocab 1000
    s, h = 32, 64
    encoder = (2 * 4 * s * h * h + 2 * 2 * s * s * h) + 2 * 2 * s * h * 256 + (2 * s * h * 3 + 2 * s * h * h)
    head = 2 * (h * h + h * 1000)
    got = gpu_check.train_flops_per_token(config, ["mha:2", "ffn:256", "conv:3", "identity"], s)
    assert got == 3 * (encoder / s + head) == 753792


def test_bert_shaped_arch_of_the_presets():
    assert gpu_check.bert_shaped_arch(MagicBertConfig.from_preset("60m")) == ["mha:8", "ffn:2048"] * 12
    assert gpu_check.bert_shaped_arch(MagicBertConfig.from_preset("tiny")) == ["mha:2", "ffn:256"] * 2


def test_quick_replaces_the_sizes():
    args = gpu_check.parse_one(gpu_check.GpuCheckArguments, ["--quick", "--seq", "4096", "--device", "cpu"])
    args.check()
    assert (args.preset, args.batch, args.seq, args.train_steps) == ("tiny", 8, 32, 3)


@pytest.mark.parametrize("argv, message", [
    (["--preset", "tiny", "--seq", "4096"], "`seq`"),
    (["--batch", "0"], "`batch`"),
    (["--warmup_steps", "-1"], "`warmup_steps`"),
    (["--device", "tpu"], "`device`"),
])
def test_bad_settings_are_refused_before_any_work(argv, message, tmp_path):
    args = gpu_check.parse_one(gpu_check.GpuCheckArguments, [*argv, "--output", str(tmp_path / "out.json")])
    with pytest.raises(InputError, match=message):
        gpu_check.gpu_check(args)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.slow
def test_quick_run_on_cpu_writes_its_figures(tmp_path, capsys):
    out = tmp_path / "check.json"
    result = gpu_check.main(["--quick", "--device", "cpu", "--compile_backend", "aot_eager", "--output", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["device"] == "cpu" and result["settings"]["preset"] == "tiny" and result["settings"]["quick"]
    train = result["train"]
    assert train["steps"] == 3 and train["tokens"] == 3 * 8 * 32 and train["finite_losses"]
    assert train["tokens_per_second"] > 0 and 0 < train["mfu"] < 1
    assert train["achieved_tflops"] == pytest.approx(train["train_flops_per_token"] * train["tokens_per_second"] / 1e12)
    inference = result["inference"]
    assert inference["arch"] == ["mha:2", "ffn:256"] * 2 and inference["attn_implementation"] == ["sdpa", "sdpa"]
    assert inference["max_abs_diff"] < 1e-5  # fp32 on CPU: the same weights give the same states
    assert result["compile"]["max_abs_diff"] < 1e-5 and result["compile"]["backend"] == "aot_eager"
    printed = capsys.readouterr().out
    assert "tokens/s" in printed and "MFU" in printed and "compile (aot_eager)" in printed
