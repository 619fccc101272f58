"""bench/sampler_overhead.py on the tiny preset: --preset and explicit sizes build the right space, --max_params /
--min_params and --anchor_precision reach every variant (one worker process each) as the pre-training flags do (SPOS
draws in the band, the anchor is the default anchor inside it), and the figures it returns are the ones the strategies
imply."""

import statistics
import sys
from pathlib import Path

import pytest

from magic_bert import MagicBertConfig
from magic_bert.errors import InputError
from magic_bert.training.strategies import ArchSampler, TopologySampler, default_anchor_arch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import sampler_overhead  # noqa: E402

MAX, MIN = 150_000, 120_000  # a band of the tiny space whose default anchor is smaller than the unbounded one


def test_preset_and_explicit_sizes():
    tiny = sampler_overhead.SamplerOverheadArguments(preset="tiny").config()
    assert (tiny.hidden_size, tiny.num_hidden_layers, tiny.vocab_size) == (64, 4, 1000)
    assert tiny.candidate_ops == MagicBertConfig.from_preset("tiny").candidate_ops
    wider = sampler_overhead.SamplerOverheadArguments(preset="tiny", layers=2, vocab=500).config()
    assert (wider.hidden_size, wider.num_hidden_layers, wider.vocab_size) == (64, 2, 500)
    default = sampler_overhead.SamplerOverheadArguments().config()  # the small settings of earlier measurements
    assert (default.hidden_size, default.num_hidden_layers, default.vocab_size) == (256, 8, 8000)
    assert default.candidate_ops == MagicBertConfig(hidden_size=256).candidate_ops
    sixty = sampler_overhead.SamplerOverheadArguments(preset="60m").config()
    assert (sixty.hidden_size, sixty.num_hidden_layers, sixty.vocab_size) == (512, 24, 30522)


def test_budget_reaches_every_strategy_and_figures_match(capsys):
    steps = 3  # warmup 1 + rounds 2
    result = sampler_overhead.main(["--preset", "tiny", "--max_params", str(MAX), "--min_params", str(MIN),
                                    "--batch", "2", "--seq", "16", "--rounds", "2", "--warmup", "1",
                                    "--anchor_precision", "bf16", "--with_magic_t"])
    space = MagicBertConfig.from_preset("tiny").search_space
    anchor = default_anchor_arch(space, MAX, MIN)
    assert anchor == ["mha:2", "ffn:128"] * 2  # not the unbounded default ([mha:2, ffn:256] * 2)
    assert result["anchor_params"] == space.num_params(anchor) == 143_552
    spos, walk = ArchSampler(space, 0, max_params=MAX, min_params=MIN), TopologySampler(space, 0, MAX, MIN)
    expected_spos = statistics.mean(space.num_params(spos.next_arch(step)) for step in range(steps))
    expected_walk = statistics.mean(space.num_params(walk.next_arch(step)) for step in range(steps))
    means = result["mean_child_params"]
    assert means["spos"] == means["magic-a"] == pytest.approx(expected_spos, abs=1e-6)
    assert means["magic-at"] == means["magic-t"] == pytest.approx(expected_walk, abs=1e-6)
    assert set(result["times"]) == set(result["figures"]) == {"spos", "magic-a", "magic-at", "magic-t"}
    samples = result["samples"]  # the paired ratios are medians of the per-round ratios of the timed rounds
    assert all(len(values) == 2 for values in samples.values())
    for pair, (a, b) in {"magic-a/spos": ("magic-a", "spos"), "magic-at/magic-t": ("magic-at", "magic-t")}.items():
        assert result["paired_ratios"][pair] == pytest.approx(statistics.median(
            [x / y for x, y in zip(samples[a], samples[b], strict=True)]))
    for name, figures in result["figures"].items():  # each worker ran every step and measured its own process
        assert figures["steps"] == steps and figures["peak_kb"] >= figures["start_kb"] > 0
        assert figures["aligned"] == (steps if name in ("magic-a", "magic-at") else 0)
        assert figures["anchor_precision"] == ("bf16" if name in ("magic-a", "magic-at") else None)
    out = capsys.readouterr().out
    assert "anchor (the default" in out and f"{143_552 / 1e6:.2f}M params, forward in bf16" in out
    assert "max_params=150000.0 min_params=120000.0" in out and "MAGIC-AT / MAGIC-T" in out
    assert "paired (median over rounds" in out and "magic-a/spos = " in out


@pytest.mark.parametrize("argv, message", [
    (["--max_params", "-1"], "`max_params`"),
    (["--max_params", "1e5", "--min_params", "2e5"], "`min_params`"),
    (["--hidden", "0"], "`hidden`"),
    (["--preset", "60m", "--hidden", "100"], "`hidden`"),  # mha:8 does not divide 100
])
def test_bad_settings_fail_before_any_work(argv, message):
    args = sampler_overhead.parse_one(sampler_overhead.SamplerOverheadArguments, argv)
    with pytest.raises(InputError, match=message):
        sampler_overhead.sampler_overhead(args)


def test_infeasible_band_names_the_flags():
    args = sampler_overhead.parse_one(sampler_overhead.SamplerOverheadArguments,
                                      ["--preset", "tiny", "--max_params", "1000"])
    with pytest.raises(InputError, match="`max_params`"):
        sampler_overhead.sampler_overhead(args)


def test_unknown_preset_or_precision_from_a_library_caller():
    with pytest.raises(InputError, match="`preset`"):
        sampler_overhead.SamplerOverheadArguments(preset="huge").check()
    with pytest.raises(InputError, match="`anchor_precision` 'fp8'"):
        sampler_overhead.SamplerOverheadArguments(anchor_precision="fp8").check()
