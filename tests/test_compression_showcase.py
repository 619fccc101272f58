"""bench/compression_showcase.py --quick: every stage on a tiny BERT, the embedded corpus and generated task files
(never ../shared), a rerun that skips them, the report from the stage JSONs alone, and the paired bootstrap."""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from magic_bert.compression import bert_layers_arch
from magic_bert.errors import InputError

from .conftest import BLOCK_MAGIC_BERT

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import compression_showcase as showcase  # noqa: E402
from showcase_report import TASKS, build_report, paired_bootstrap, reading, task_score_of  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("showcase")
    argv = ["--quick", "--output_dir", str(root / "out"), "--docs_dir", str(root / "docs")]
    first = showcase.main(argv)
    second = showcase.main(argv)  # everything done: only the report is rebuilt
    return root, argv, first, second


def result(root: Path, stage: str) -> dict:
    return json.loads((root / "out" / "results" / f"{stage}.json").read_text())


@pytest.mark.slow
def test_quick_runs_every_stage_once(quick_run):
    root, argv, first, second = quick_run
    names = [s.name for s in showcase.all_stages(showcase.make_plan(showcase.ShowcaseArguments(
        quick=True, primary_seeds="1,2", secondary_seeds="1")))]
    assert list(first) == names
    assert list(second) == ["report"]
    assert {"distil_spos", "distil_magic", "kd_distil", "glue_magic_s2", "glue_magic_nokd_s1", "card"} <= set(first)
    # The report is rebuilt by every run: its JSON is the second run's.
    assert all(result(root, name)["seconds"] == first[name] for name in names if name != "report")
    assert result(root, "report")["seconds"] == second["report"]


@pytest.mark.slow
def test_students_are_the_teacher_layers_and_searched_archs_in_the_budget(quick_run):
    root = quick_run[0]
    teacher, students = result(root, "teacher"), result(root, "students")["students"]
    assert students["distil"]["arch"] == bert_layers_arch(teacher["teacher"], [0, 2])
    assert students["first_half"]["arch"] == bert_layers_arch(teacher["teacher"], [0, 1])
    assert students["distil"]["encoder_params"] == teacher["max_encoder_params"] == teacher["encoder_params"] // 2
    for name in ("magic", "spos", "random"):
        assert teacher["min_encoder_params"] <= students[name]["encoder_params"] <= teacher["max_encoder_params"]
    assert students["magic"]["arch"] == result(root, "search_magic")["arch"]
    # Search and the random student stay under the latency cap: the DistilBERT-style arch's lookup-table estimate.
    budget = result(root, "latency_budget")
    assert budget["max_latency"] == pytest.approx(budget["distil_latency"]) == students["distil"]["estimated_latency"]
    for name in ("magic", "spos", "random"):
        assert students[name]["estimated_latency"] <= budget["max_latency"]
    assert result(root, "kd_magic")["results"]["train_steps"] == result(root, "kd_distil")["results"]["train_steps"]


@pytest.mark.slow
def test_kept_dev_predictions_give_the_reported_scores(quick_run):
    root = quick_run[0]
    for path in sorted((root / "out" / "results").glob("glue_*.json")):
        for task, record in json.loads(path.read_text())["tasks"].items():
            # A constant prediction has no correlation: NaN in both, which the report counts as 0.
            assert record["score"] == pytest.approx(record["reported_score"], abs=1e-9, nan_ok=True), (path.name, task)
            expected = 0.0 if math.isnan(record["score"]) else record["score"]
            assert task_score_of(task, record["predictions"], record["labels"]) == pytest.approx(expected)
    majority = result(root, "majority")["tasks"]["sst2"]
    labels = np.asarray(result(root, "glue_teacher_s1")["tasks"]["sst2"]["labels"])
    assert majority["score"] == pytest.approx(float(np.mean(labels == majority["prediction"])))


@pytest.mark.slow
def test_the_card_is_hub_ready_and_loads_without_magic_bert(quick_run, tmp_path):
    root = quick_run[0]
    card = result(root, "card")
    assert card["max_abs_logit_diff_vs_student"] < 1e-5
    text = (Path(card["folder"]) / "README.md").read_text()
    for expected in ("base_model: tiny-bert-built-on-the-fly", "license: apache-2.0", "Salesforce/wikitext",
                     "model-index", "CC BY-SA", "GLUE MRPC"):
        assert expected in text
    script = BLOCK_MAGIC_BERT + (
        "from transformers import AutoModelForMaskedLM\n"
        f"model = AutoModelForMaskedLM.from_pretrained({card['folder']!r}, trust_remote_code=True)\n"
        "print(type(model).__name__, model.config.arch)\n")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": "",
           "PYTHONNOUSERSITE": "1"}
    completed = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == f"MagicBertForMaskedLM {card['arch']}"


@pytest.mark.slow
def test_the_report_comes_from_the_stage_jsons_alone(quick_run, tmp_path):
    root, _, _, _ = quick_run
    docs = root / "docs"
    text = (docs / "compression.md").read_text()
    assert "95 % interval" in text and "| majority class / mean score |" in text and "pending" not in text
    assert (docs / "compression" / "latency_vs_glue.png").stat().st_size > 0
    copies = docs / "results" / "compression"
    assert json.loads((copies / "glue_magic_s1.json").read_text()) == result(root, "glue_magic_s1")
    summary = json.loads((copies / "summary.json").read_text())
    assert summary["primary_difference"]["seeds"] == 2
    # Only the JSONs, somewhere else: the same document.
    results = tmp_path / "results"
    results.mkdir()
    for path in (root / "out" / "results").glob("*.json"):
        (results / path.name).write_text(path.read_text())
    plan = showcase.make_plan(showcase.ShowcaseArguments(quick=True, primary_seeds="1,2", secondary_seeds="1"))
    build_report(results, tmp_path / "docs", [s.name for s in showcase.all_stages(plan)], showcase.COMMANDS,
                 quick=True)
    assert (tmp_path / "docs" / "compression.md").read_text() == text
    # A hand-written interpretation survives rebuilds, as its own section after the generated reading.
    (tmp_path / "docs" / "compression" / "interpretation.md").write_text("The search favours FFN layers.\n")
    build_report(results, tmp_path / "docs", [s.name for s in showcase.all_stages(plan)], showcase.COMMANDS,
                 quick=True)
    rebuilt = (tmp_path / "docs" / "compression.md").read_text()
    section = ("## What the data suggest\n\nHand-written in `compression/interpretation.md` (the rest of this page is "
               "generated).\n\nThe search favours FFN layers.\n\n")
    assert rebuilt == text.replace("## Wall time", section + "## Wall time")


def test_paired_bootstrap_is_zero_for_equal_sides_and_positive_for_a_better_one():
    rng = np.random.default_rng(0)
    labels = {"sst2": rng.integers(0, 2, 60), "stsb": rng.uniform(0, 5, 60)}
    noisy = {"sst2": np.where(rng.uniform(size=60) < 0.3, 1 - labels["sst2"], labels["sst2"]),
             "stsb": labels["stsb"] + rng.normal(0, 2, 60)}
    good = [{t: (labels[t] if t == "sst2" else labels[t] + 0.1 * s, labels[t]) for t in labels} for s in range(3)]
    bad = [{t: (noisy[t], labels[t]) for t in labels} for _ in range(3)]
    same = paired_bootstrap(bad, bad, samples=50, seed=1)
    assert same["difference"] == same["low"] == same["high"] == 0.0
    better = paired_bootstrap(good, bad, samples=200, seed=1)
    assert better["low"] > 0 and better["difference"] > better["low"]
    assert paired_bootstrap(good, bad, samples=200, seed=1) == better  # same seed, same bits
    expected = np.mean([1.0 - np.mean(noisy["sst2"] == labels["sst2"]),
                        1.0 - task_score_of("stsb", noisy["stsb"], labels["stsb"])])
    assert better["difference"] == pytest.approx(expected)


@pytest.mark.parametrize("quick, docs_dir, expected", [
    (True, None, "{out}/docs"),  # a smoke test never rewrites the committed pages
    (True, "{tmp}/mine", "{tmp}/mine"),
    (False, None, "docs"),
])
def test_the_report_writes_the_committed_docs_only_when_not_quick(tmp_path, monkeypatch, quick, docs_dir, expected):
    import showcase_report

    written = []
    monkeypatch.setattr(showcase_report, "build_report", lambda results, docs, *a, **k: written.append(docs) or {})
    out = tmp_path / "out"
    # A named teacher: the full run would otherwise look for the installed all-MiniLM-L6-v2, which CI lacks.
    args = showcase.ShowcaseArguments(quick=quick, output_dir=str(out), teacher=str(tmp_path / "teacher"),
                                      docs_dir=None if docs_dir is None else docs_dir.format(tmp=tmp_path))
    showcase.report_stage(showcase.make_plan(args))
    assert written == [Path(expected.format(out=out, tmp=tmp_path))]


def test_bad_stages_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="`stages` 'bogus': unknown"):
        showcase.run_showcase(showcase.ShowcaseArguments(quick=True, stages="bogus", output_dir=str(out)))
    with pytest.raises(InputError, match=r"`stages`: kd_magic needs \['students', 'distil_magic'\] first"):
        showcase.run_showcase(showcase.ShowcaseArguments(quick=True, stages="kd_magic", output_dir=str(out)))
    with pytest.raises(InputError, match="`min_budget_fraction` must be in"):
        showcase.run_showcase(showcase.ShowcaseArguments(quick=True, min_budget_fraction=1.5, output_dir=str(out)))
    assert not out.exists()


@pytest.mark.slow
def test_a_new_machine_takes_the_committed_results_and_redoes_only_what_a_stage_needs(quick_run, tmp_path):
    root = quick_run[0]
    committed, out = root / "docs" / "results" / "compression", tmp_path / "out"
    shutil.copytree(root / "out" / "quick_inputs", out / "quick_inputs")  # the inputs; no model, no result

    def args(stages: str) -> showcase.ShowcaseArguments:
        return showcase.ShowcaseArguments(quick=True, stages=stages, output_dir=str(out),
                                          docs_dir=str(tmp_path / "docs"), results_from=str(committed))

    # kd_magic starts from the MAGIC-AT supernet, whose folder this machine lacks: refused before anything is written.
    with pytest.raises(InputError, match=r"`stages`: kd_magic needs \['distil_magic'\] first"):
        showcase.run_showcase(args("kd_magic"))
    assert not (out / "results").exists()
    ran = showcase.run_showcase(args("distil_magic,kd_magic"))
    assert list(ran) == ["distil_magic", "kd_magic"]
    taken = {p.stem for p in (out / "results").glob("*.json")} - set(ran)
    assert {"teacher", "students", "search_magic", "glue_magic_s1", "card"} <= taken
    assert not {"distil_spos", "kd_distil", "report"} & taken  # their models are not here; the report is rebuilt
    # Same seed, same inputs: the redone supernet and student equal the first run's (the student's start was
    # exported again from the redone supernet).
    for stage in ("distil_magic", "kd_magic"):
        new, old = (json.loads((folder / f"{stage}.json").read_text())["results"] for folder in
                    (out / "results", root / "out" / "results"))
        assert new["eval_loss"] == old["eval_loss"] and new["eval_accuracy"] == old["eval_accuracy"]
    assert (out / "start_magic" / "config.json").is_file() and not (out / "start_spos").exists()
    # The card needs the student, its supernet and the search's result, not the search's folder.
    (out / "results" / "card.json").unlink()
    assert list(showcase.run_showcase(dataclasses.replace(args("card"), results_from=None))) == ["card"]
    assert json.loads((out / "results" / "card.json").read_text())["max_abs_logit_diff_vs_student"] < 1e-5
    assert not (out / "search_magic").exists()


@pytest.mark.slow
def test_a_students_result_from_before_a_new_student_is_redone_with_the_other_archs_unchanged(quick_run, tmp_path):
    root = quick_run[0]
    old, out = tmp_path / "old", tmp_path / "out"
    shutil.copytree(root / "out" / "results", old)
    shutil.copytree(root / "out" / "quick_inputs", out / "quick_inputs")
    students = json.loads((old / "students.json").read_text())
    del students["students"]["magic_attn"]
    (old / "students.json").write_text(json.dumps(students))
    args = showcase.ShowcaseArguments(quick=True, stages="students", output_dir=str(out),
                                      docs_dir=str(tmp_path / "docs"), results_from=str(old))
    assert list(showcase.run_showcase(args)) == ["students"]  # not taken from --results_from: redone
    redone = json.loads((out / "results" / "students.json").read_text())

    def archs(students: dict) -> dict:  # without the start folder, which names this machine's --output_dir
        return {name: {k: v for k, v in student.items() if k != "start"} for name, student in students.items()}

    assert archs(redone["students"]) == archs(result(root, "students")["students"])
    floor = result(root, "search_magic_attn")
    assert floor["constraints"]["min_attention_layers"] == 2  # half the quick teacher's 4 layers
    assert sum(op.startswith(("mha:", "heads:")) for op in redone["students"]["magic_attn"]["arch"]) >= 2
    latency = result(root, "latency")
    del latency["ratio_to_teacher"]["magic_attn"]
    assert showcase.outdated("latency", latency) and not showcase.outdated("latency", result(root, "latency"))


def test_the_reading_names_each_task_a_row_scores_at_the_majority_answer():
    majority = {"mrpc": (81.2, None), "stsb": (0.0, None), "cola": (0.0, None), "sst2": (50.9, None)}
    magic = {"mrpc": (81.2, 0.0), "stsb": (9.4, 1.0), "cola": (0.99, None), "sst2": (51.9, None)}
    rows = [{"row": "majority", "tasks": majority}, {"row": "magic", "tasks": magic},
            {"row": "distil", "tasks": dict.fromkeys(majority)}]  # not fine-tuned yet: nothing to say
    assert reading(rows, None) == [
        "The primary pair has no fine-tuned seed on both sides yet: no comparison to read.",
        "MAGIC-AT searched + KD (primary): within 1 point of the majority (or mean) answer on MRPC F1, CoLA MCC."]


def test_the_reading_puts_each_students_mlm_loss_beside_its_glue_average():
    def row(name, loss, average):
        return {"row": name, "tasks": dict.fromkeys(TASKS), "mlm_loss": loss,
                "average": None if average is None else (average, None)}

    rows = [row("majority", None, 33.0), row("magic", 4.287, 41.1), row("distil", 4.150, 57.7),
            row("first_half", None, 50.0)]  # no KD result: not listed
    assert reading(rows, None)[-1] == ("Students by held-out masked-LM loss after KD (lower first), with their GLUE "
                                       "average: distil 4.150 / 57.7, magic 4.287 / 41.1: the same order.")
    rows[1]["average"] = (60.0, None)
    assert reading(rows, None)[-1].endswith("magic 4.287 / 60.0: not the same order.")
    assert not any("masked-LM" in line for line in reading(rows[:2], None))
