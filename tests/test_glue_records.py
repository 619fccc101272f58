"""Tasks as data: every GLUE table and name is derived from the task records, so a new record (here a WNLI-like
task, never added to the registry) gets its metrics, score, column, submission file and model-card entry with no
other code; the export's GLUE table reads the same records."""

import json

import pytest

from magic_bert.glue.metrics import GlueMetric, compute_glue, glue_average, score_note, task_score
from magic_bert.glue.report import results_table, submission_rows, update_model_card, write_submission
from magic_bert.glue.tasks import PAPER_ORDER, TASKS, GlueTask, read_glue_file
from magic_bert.search.export import GLUE_TASKS, _glue_table, load_glue_results

WNLI = GlueTask("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "WNLI", ("WNLI.tsv",), "WNLI",
                metrics=("accuracy", "macro_f1"), tsv_keys=("sentence1", "sentence2"), submit_label_names=True)


def test_one_record_serves_every_table(tmp_path):
    assert compute_glue(WNLI, [1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx({"accuracy": 0.75, "macro_f1": 11 / 15})
    assert GlueMetric(WNLI).compute(predictions=[1], references=[1]) == {"accuracy": 1.0, "macro_f1": 1.0}
    assert task_score(WNLI, {"accuracy": 0.6, "macro_f1": 0.5}) == 0.6
    assert results_table({"wnli": 0.6, "rte": 0.8}, [TASKS["rte"], WNLI]) == (
        "| RTE | WNLI | AVG |\n|---|---|---|\n| 80.0 | 60.0 | 70.0 |")
    assert score_note([TASKS["mnli"], TASKS["cola"], WNLI]) == ("MNLI matched accuracy, CoLA Matthews corr., "
                                                               "WNLI accuracy")
    assert submission_rows(WNLI, [1, 0]) == ["index\tprediction", "0\tentailment", "1\tnot_entailment"]
    assert write_submission(tmp_path, WNLI, {"test": [0]}) == [tmp_path / "WNLI.tsv"]
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("index\tsentence1\tsentence2\tlabel\n4\ta\tb\t1\n")
    assert read_glue_file(WNLI, tsv).to_dict() == {"sentence1": ["a"], "sentence2": ["b"], "label": [1], "idx": [4]}
    from huggingface_hub import ModelCard

    card = tmp_path / "README.md"
    update_model_card(card, {"wnli": {"accuracy": 0.6}}, "m", {"wnli": WNLI})
    (entry,) = ModelCard.load(card).data.eval_results
    assert (entry.dataset_type, entry.dataset_name, entry.dataset_config) == ("nyu-mll/glue", "GLUE WNLI", "wnli")


def test_glue_names_come_from_the_records():
    assert tuple(TASKS) == PAPER_ORDER
    assert [t.column for t in TASKS.values()] == ["MNLI", "QQP", "QNLI", "CoLA", "SST-2", "STS-B", "RTE", "MRPC"]
    assert [s for t in TASKS.values() for s in t.submission] == [
        "MNLI-m.tsv", "MNLI-mm.tsv", "QQP.tsv", "QNLI.tsv", "CoLA.tsv", "SST-2.tsv", "STS-B.tsv", "RTE.tsv", "MRPC.tsv"]
    assert [t.name for t in TASKS.values() if t.mnli_transfer] == ["stsb", "rte", "mrpc"]
    assert TASKS["mnli"].metric_keys == ("accuracy", "matched_accuracy", "mismatched_accuracy")
    assert glue_average({"rte": 0.5, "mine": 1.0}) == 0.5 and glue_average({"mine": 1.0}) is None


def test_export_glue_table_reads_the_records(tmp_path):
    assert GLUE_TASKS == {"mnli": "accuracy", "qqp": "f1", "qnli": "accuracy", "cola": "matthews_correlation",
                          "sst2": "accuracy", "stsb": "spearmanr", "rte": "accuracy", "mrpc": "f1"}
    assert list(GLUE_TASKS) == list(PAPER_ORDER)
    # GLUE fine-tuning's own all_results.json: its eval_results, without the run's learning rate and epoch.
    eval_results = {"mnli": {"matched_accuracy": 0.8, "mismatched_accuracy": 0.7, "learning_rate": 2e-5, "epoch": 3},
                    "sst2": {"accuracy": 0.9, "learning_rate": 2e-5, "epoch": 1}}
    path = tmp_path / "all_results.json"
    path.write_text(json.dumps({"scores": {"mnli": 0.8, "sst2": 0.9}, "average": 0.85,
                                "eval_results": eval_results, "runs": []}))
    glue = load_glue_results(path)
    assert glue == {"mnli": {"matched_accuracy": 0.8, "mismatched_accuracy": 0.7}, "sst2": {"accuracy": 0.9}}
    assert _glue_table(glue) == "| MNLI | SST-2 | AVG |\n|---|---|---|\n| 0.8 | 0.9 | 0.85 |"
