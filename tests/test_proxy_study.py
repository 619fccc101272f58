"""bench/proxy_study.py --quick: the archs (hand-designed, random per attention count, searched without seeds), every
proxy on both supernets, one reference per arch scored on held-out slices with the dev files gone, a rerun that
skips what is done, and the report's taus from the stage JSONs alone."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from .conftest import run_quick_study

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import proxy_study as study  # noqa: E402
import proxy_study_report as report  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return out, *run_quick_study(study, study.StudyArguments, out)


def _result(out: Path, stage: str) -> dict:
    return json.loads((out / "results" / f"{stage}.json").read_text())


@pytest.mark.slow
def test_every_stage_runs_once_and_a_rerun_only_reports(quick):
    out, first, second = quick
    archs = _result(out, "archs")["archs"]
    assert list(second) == ["report"]
    assert {f"reference_{i:02d}" for i in range(len(archs))} <= set(first)
    assert [name for name in archs][:3] == ["every_other_layer", "first_half", "width_half"]
    searched = [name for name in archs if name.startswith("searched_")]
    assert searched and all(name.removeprefix("searched_") in study.SEARCHES for name in searched)
    assert len({tuple(arch) for arch in archs.values()}) == len(archs)  # no arch twice


@pytest.mark.slow
def test_random_archs_have_their_attention_count_and_fit_the_budget(quick):
    out, _, _ = quick
    record = _result(out, "archs")
    plan = study.make_plan(study.StudyArguments(quick=True, output_dir=str(out)))
    from magic_bert import MagicBertSupernetForMaskedLM

    space = MagicBertSupernetForMaskedLM.config_class.from_pretrained(plan.supernet("magic")).search_space
    for name, arch in record["archs"].items():
        if name.startswith("random_a"):
            count = int(name.removeprefix("random_a").split("_")[0])
            assert sum(op.startswith(("mha:", "heads:")) for op in arch) == count
        # the uniform width cut is in the budget at MiniLM's sizes (0.13 % over half), not at the quick teacher's
        assert space.encoder_params(arch) <= record["budget"] or name == "width_half", name


@pytest.mark.slow
def test_searches_were_not_seeded_and_probes_read_training_parts_only(quick):
    out, _, _ = quick
    for name in study.SEARCHES:
        best = json.loads((out / "searches" / name / "arch.json").read_text())
        assert best["seed_archs"] == {}
    held_out = {json.dumps(row, sort_keys=True) for row in map(json.loads, (out / "data" / "stsb" /
                                                                            "held_out.jsonl").read_text().splitlines())}
    train = {json.dumps(row, sort_keys=True) for row in map(json.loads, (out / "data" / "stsb" /
                                                                         "train.jsonl").read_text().splitlines())}
    assert held_out and not held_out & train


@pytest.mark.slow
def test_every_arch_has_every_proxy_and_a_reference_from_its_held_out_slices(quick):
    out, _, _ = quick
    archs = _result(out, "archs")["archs"]
    for supernet in study.SUPERNETS:
        scores = _result(out, f"proxies_{supernet}")["scores"]
        assert set(scores) == set(archs)
        assert all(set(values) == {*study.PROXIES, "task"} for values in scores.values())
    for index, name in enumerate(archs):
        record = _result(out, f"reference_{index:02d}")
        assert record["arch_name"] == name and record["arch"] == archs[name]
        assert record["reference"] == pytest.approx(np.mean([record["tasks"][t]["score"] for t in study.TASKS]))


@pytest.mark.slow
def test_the_report_taus_are_scipys_and_it_needs_only_the_results(quick, tmp_path):
    out, _, _ = quick
    results = tmp_path / "results"
    shutil.copytree(out / "results", results)
    report.write_report(results, tmp_path / "docs")
    summary = json.loads((tmp_path / "docs" / "results" / "search_study" / "summary.json").read_text())
    archs = _result(out, "archs")["archs"]
    references = [_result(out, f"reference_{i:02d}")["reference"] for i in range(len(archs))]
    scores = _result(out, "proxies_magic")["scores"]
    for proxy in ("loss", "distill", "embedding"):
        values = [scores[name][proxy] for name in archs]
        expected = kendalltau(report.oriented(proxy, values), references).statistic
        assert summary["taus"]["magic"][proxy]["tau"] == pytest.approx(expected, nan_ok=True)
    assert summary["primary"]["magic"]["difference"] == pytest.approx(
        summary["taus"]["magic"]["distill"]["tau"] - summary["taus"]["magic"]["loss"]["tau"])
    page = (tmp_path / "docs" / "search_study.md").read_text()
    assert "Primary contrast on magic" in page
    # E-MAGIC-AT (issue 32, exploratory): ranked against the same reference, paired with MAGIC-AT's taus
    for proxy, gap in summary["emagic_minus_magic"].items():
        assert gap["difference"] == pytest.approx(summary["taus"]["emagic"][proxy]["tau"] -
                                                  summary["taus"]["magic"][proxy]["tau"], nan_ok=True)
        assert f"`{proxy}`: τ on E-MAGIC-AT minus MAGIC-AT" in page


@pytest.mark.slow
def test_the_emagic_supernet_is_magic_at_trained_with_electra(quick):
    out, _, _ = quick
    magic, emagic = _result(out, "supernet_magic"), _result(out, "supernet_emagic")
    assert (magic["sampler"], magic["objective"]) == ("magic-at", "mlm")
    assert (emagic["sampler"], emagic["objective"]) == ("magic-at", "electra")
    assert (out / "supernet_emagic" / "electra_generator").is_dir()
    assert not (out / "supernet_magic" / "electra_generator").exists()
    # its loss proxy is the detection loss: a binary cross-entropy, far below a masked-LM loss over the vocabulary
    loss = [values["loss"] for values in _result(out, "proxies_emagic")["scores"].values()]
    mlm = [values["loss"] for values in _result(out, "proxies_magic")["scores"].values()]
    assert max(loss) < 1.0 < min(mlm)


@pytest.mark.slow
def test_the_pair_search_takes_the_studys_metric_seeds_the_hand_designs_and_caps_latency(quick):
    """docs/search_study/pair_design.md: the MAGIC-AT supernet searched by the metric the decision rule chose, the
    hand-designed students in its first generation, at most 1.03 × the cut's estimated latency."""
    from magic_bert.compression import bert_layers_arch
    from magic_bert.search.algorithms import LatencyTable

    out, first, _ = quick
    record = _result(out, "pair_search")
    assert "pair_search" in first
    decision = report.analyse(*report.load_results(out / "results"))["decision"]
    assert record["decision"] == decision and record["metric"] == decision["default"].partition("_")[0]
    best = json.loads((out / "searches" / "pair" / "arch.json").read_text())
    assert record["arch"] == best["arch"] and best["metric"] == record["metric"]
    assert best["seed_archs"] and set(best["seed_archs"]) <= {"every_other_layer", "first_half", "width_half"}
    table = LatencyTable(**json.loads((out / "pair_latency_table.json").read_text()))
    cut = bert_layers_arch(out / "quick_inputs" / "teacher", [0, 2])
    assert record["max_latency"] == pytest.approx(study.PAIR_LATENCY * table.latency(cut))
    assert table.latency(best["arch"]) <= record["max_latency"]


@pytest.mark.slow
def test_the_exploratory_pair_search_differs_from_the_pair_search_only_by_its_metric(quick):
    """pair_design.md amendment 1: the task probe's search on pair_search's latency table and cap, seeds included."""
    from magic_bert.search.algorithms import LatencyTable

    out, first, _ = quick
    primary, record = _result(out, "pair_search"), _result(out, "pair_search_task")
    assert list(first).index("pair_search") < list(first).index("pair_search_task")
    assert record["metric"] == "task" and record["max_latency"] == primary["max_latency"]
    best = json.loads((out / "searches" / "pair_task" / "arch.json").read_text())
    assert record["arch"] == best["arch"] and best["metric"] == "task" and best["seed_archs"]
    assert best["constraints"] == primary["search"]["constraints"]
    table = LatencyTable(**json.loads((out / "pair_latency_table.json").read_text()))
    assert table.latency(best["arch"]) <= record["max_latency"]


def test_restored_results_without_the_slices_or_a_supernet_are_not_done(tmp_path):
    """Results committed from another machine come without outputs/: the stages whose files later stages read run
    again, and a reference or the pair search asks for them by name before anything runs."""
    plan = study.Plan(study.StudyArguments(output_dir=str(tmp_path)), tmp_path, "teacher", tmp_path, tmp_path)
    plan.results.mkdir(parents=True)
    for stage in ("splits", "supernet_magic", "archs"):
        (plan.results / f"{stage}.json").write_text(json.dumps({"stage": stage, "archs": {"a": ["identity"]}}))
    assert [plan.done(s) for s in ("splits", "supernet_magic", "archs")] == [False, False, True]
    for task in study.TASKS:
        plan.data(task).mkdir(parents=True)
        (plan.data(task) / "train.jsonl").write_text("{}\n")
    assert not plan.done("splits")  # a held-out slice still missing
    for task in study.TASKS:
        (plan.data(task) / "held_out.jsonl").write_text("{}\n")
    (plan.supernet("magic")).mkdir()
    (plan.supernet("magic") / "config.json").write_text("{}")
    assert plan.done("splits") and plan.done("supernet_magic") and not plan.done("supernet_spos")
    (plan.results / "pair_search.json").write_text(json.dumps({"stage": "pair_search"}))
    assert not plan.done("pair_search")  # its latency table, which pair_search_task reads, is not committed
    (tmp_path / "pair_latency_table.json").write_text("{}")
    assert plan.done("pair_search")
    (plan.results / "pair_search.json").unlink()
    shutil.rmtree(plan.supernet("magic"))
    with pytest.raises(study.InputError, match=r"pair_search needs \['supernet_magic', 'proxies_magic'"):
        study.run_study(study.StudyArguments(output_dir=str(tmp_path), teacher=str(tmp_path), stages="pair_search"))
