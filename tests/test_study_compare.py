"""One sampler in two studies that differ by one setting (the anchor's precision): per-seed τ, the paired Δτ, the
largest inherited-loss change and the anchors, from two study reports; the anchor-precision design's settings; and a
supernet recorded before the option existed, reused only for the precision it was trained with."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import magic_bert.training.recipe as recipe
from magic_bert.analysis.rank_bootstrap import paired_tau_difference
from magic_bert.analysis.ranking import rank_correlation
from magic_bert.analysis.study_compare import compare_setting, comparison_text
from magic_bert.analysis.study_runs import RUN_MARKER, train_or_reuse_supernet
from magic_bert.training.arguments import PretrainArguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import magic_study  # noqa: E402

CHILDREN = [[f"op{i}"] for i in range(6)]
REFERENCE = [5.0, 5.1, 5.3, 5.2, 5.6, 5.5]


def _report(losses_by_seed: dict[int, list[float]], swaps: int = 3, arch=("a",)) -> dict:
    runs = [{"sampler": "magic-at", "seed": seed, "inherited_losses": losses,
             "kendall_tau": rank_correlation(losses, REFERENCE)["kendall_tau"],
             "train_results": {"anchor_swaps": swaps, "eval_arch": list(arch)}}
            for seed, losses in losses_by_seed.items()]
    runs.append({"sampler": "spos", "seed": 0, "inherited_losses": REFERENCE, "kendall_tau": 1.0,
                 "train_results": {"anchor_swaps": None, "eval_arch": ["x"]}})  # another sampler: ignored
    return {"children": CHILDREN, "standalone": [{"eval_loss": x} for x in REFERENCE], "runs": runs}


def test_the_comparison_pairs_seeds_and_reports_the_changes():
    rng = np.random.default_rng(0)
    base = {seed: list(np.asarray(REFERENCE) + rng.normal(0, 0.1, 6)) for seed in (0, 1, 2)}
    variant = {seed: list(np.asarray(losses) + rng.normal(0, 1e-4, 6)) for seed, losses in base.items()}
    variant[3] = REFERENCE  # a seed only the variant ran: left out
    result = compare_setting(_report(base), _report(variant, arch=("b",)), "magic-at", samples=200)
    assert result["seeds"] == [0, 1, 2] and result["children"] == 6
    expected = paired_tau_difference([variant[s] for s in (0, 1, 2)], [base[s] for s in (0, 1, 2)], REFERENCE, 200)
    assert result["tau"] == expected
    taus = {row["seed"]: (row["tau_base"], row["tau_variant"]) for row in result["per_seed"]}
    assert result["tau"]["difference"] == pytest.approx(np.mean([b - a for a, b in taus.values()]))
    gaps = np.abs(np.asarray([variant[s] for s in (0, 1, 2)]) - np.asarray([base[s] for s in (0, 1, 2)]))
    assert result["inherited_loss_change"] == {"max": gaps.max(), "mean": gaps.mean()}
    assert all(row["anchor_swaps"] == [3, 3] and not row["same_final_arch"] for row in result["per_seed"])
    text = comparison_text(result, "fp32", "bf16")
    assert f"Δτ = {result['tau']['difference']:+.4f}" in text and "| 2 |" in text and "| 3 |" not in text


def test_studies_of_other_children_or_one_shared_seed_are_refused():
    base = _report({0: REFERENCE, 1: REFERENCE})
    with pytest.raises(ValueError, match="different children"):
        compare_setting(base, {**base, "children": CHILDREN[::-1]}, "magic-at")
    with pytest.raises(ValueError, match="share 1 seed"):
        compare_setting(base, _report({1: REFERENCE, 5: REFERENCE}), "magic-at")


def test_the_anchor_precision_design_is_v2_then_its_magic_at_seeds_with_a_bf16_anchor(tmp_path):
    out = str(tmp_path / "v2")
    command, settings = magic_study.parse_command(["--design", "anchor-precision", "--output_dir", out])
    assert command.design == "anchor-precision"
    assert settings == magic_study.parse_args(["--design", "v2", "--output_dir", out])
    assert settings.anchor_precision == "training"  # the studies keep the anchor as they were run
    variant = magic_study.bf16_anchor_settings(settings)
    assert (variant.samplers, variant.seeds, variant.primary, variant.exploratory_samplers) == (
        ["magic-at"], settings.seeds, [], [])
    assert variant.anchor_precision == "bf16" and variant.shared_dir == out
    assert variant.output_dir == out + "_bf16_anchor"
    assert variant.reference_file == settings.reference_file  # the same committed reference and children


def test_a_run_recorded_before_anchor_precision_existed_is_reused_only_for_the_precision_it_had(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    args = PretrainArguments(sampler="magic-at", anchor_precision="training", output_dir=str(folder))
    recorded = json.loads(json.dumps(dataclasses.asdict(args), default=str))
    del recorded["anchor_precision"]  # a marker written before the option existed
    (folder / RUN_MARKER).write_text(json.dumps({"args": recorded, "vocab": "v"}))
    (folder / "all_results.json").write_text("{}")
    trained = []
    monkeypatch.setattr(recipe, "pretrain", trained.append)
    logged = []
    assert train_or_reuse_supernet(args, "v", logged.append) == folder and not trained
    assert logged == [f"reusing {folder}"]
    bf16 = dataclasses.replace(args, anchor_precision="bf16")
    train_or_reuse_supernet(bf16, "v", logged.append)
    assert trained == [bf16]  # the old run had the anchor in the training precision: a bf16 run is trained
    assert json.loads((folder / RUN_MARKER).read_text())["args"]["anchor_precision"] == "bf16"
