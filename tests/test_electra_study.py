"""bench/electra_study.py --quick: both objectives pre-trained for the same training FLOPs (ELECTRA's steps from the
FLOPs ratio), fine-tuned and scored on held-out slices with the dev files gone, a rerun that only reports."""

import json
import sys
from pathlib import Path

import pytest

from .conftest import run_quick_study

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import electra_study as study  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("electra_study")
    return out, *run_quick_study(study, study.ElectraStudyArguments, out)


def _result(out: Path, stage: str) -> dict:
    return json.loads((out / "results" / f"{stage}.json").read_text())


@pytest.mark.slow
def test_each_objective_gets_the_same_training_flops(quick):
    out, first, second = quick
    assert list(second) == ["report"] and "pretrain_electra_s2" in first
    model = study.QUICK_MODEL
    ratio = study.training_flops(model, "mlm") / study.training_flops(model, "electra")
    assert ratio < 1  # ELECTRA's step also runs the generator and the detection head
    for seed in (1, 2):
        mlm, electra = (_result(out, f"pretrain_{o}_s{seed}") for o in study.OBJECTIVES)
        assert mlm["steps"] == 4 and electra["steps"] == round(4 * ratio)
        assert mlm["results"]["train_steps"] == 4 and electra["results"]["train_steps"] == electra["steps"]
        assert mlm["results"]["objective"] == "mlm" and electra["results"]["objective"] == "electra"
        assert mlm["results"]["eval_arch"] == electra["results"]["eval_arch"] == model.arch


@pytest.mark.slow
def test_fine_tuning_scores_held_out_slices_and_the_report_reads_the_results(quick):
    out, _, _ = quick
    for objective in study.OBJECTIVES:
        record = _result(out, f"finetune_{objective}_s1")
        for task in study.TASKS:
            flags = json.loads((out / "encoders" / f"{objective}_s1-{task}" / "all_results.json").read_text())
            assert set(flags["eval_results"]) == {task}
        assert record["score"] == pytest.approx(sum(record["tasks"][t]["score"] for t in study.TASKS) / 2)
    summary = json.loads((out / "docs" / "results" / "electra_study" / "summary.json").read_text())
    scores = {o: [_result(out, f"finetune_{o}_s{s}")["score"] for s in (1, 2)] for o in study.OBJECTIVES}
    assert summary["electra_minus_mlm"] == pytest.approx(sum(scores["electra"]) / 2 - sum(scores["mlm"]) / 2)
    page = (out / "docs" / "electra_study.md").read_text()
    assert "ELECTRA − masked-LM" in page
    for objective, baseline in (("mlm", "unigram_loss"), ("electra", "base_rate_loss")):
        runs = [_result(out, f"pretrain_{objective}_s{s}")["results"] for s in (1, 2)]
        loss, base = (sum(r[key] for r in runs) / 2 for key in ("eval_loss", baseline))
        assert f"| {objective} | {runs[0]['train_steps']} | " in page and f" | {loss:.3f} ({base:.3f}) | " in page
        minutes = sum(r["train_seconds"] for r in runs) / 60
        assert summary["summary"][objective]["wall_minutes"] == pytest.approx(minutes)


def test_restored_results_without_an_encoder_are_pretrained_again_but_still_reported(tmp_path):
    """Results committed from another machine come without the encoders: pre-training is not done (fine-tuning
    reads the encoder), yet its recorded result is there (``has_result``, what the report reads)."""
    plan = study.make_plan(study.ElectraStudyArguments(output_dir=str(tmp_path), seeds="42"))
    plan.results.mkdir(parents=True)
    (plan.results / "pretrain_electra_s42.json").write_text("{}")
    assert plan.has_result("pretrain_electra_s42") and not plan.done("pretrain_electra_s42")
    plan.encoder("electra", 42).mkdir(parents=True)
    (plan.encoder("electra", 42) / "config.json").write_text("{}")
    assert plan.done("pretrain_electra_s42") and not plan.done("pretrain_mlm_s42")
