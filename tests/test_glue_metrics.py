"""GLUE metrics against sklearn/scipy, the paper's per-task score and average, the package's `evaluate` module (and
fine-tuning's dev scores through it, one and two processes); the GLUE outputs: submission files, the paper-ordered
results table and the model card's model-index."""

import json
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import evaluate
import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from magic_bert.errors import InputError
from magic_bert.glue.metrics import (
    GLUE_METRIC_MODULE,
    METRICS,
    PAPER_METRIC,
    GlueMetric,
    compute_glue,
    f1_binary,
    f1_macro,
    glue_average,
    load_glue_metric,
    matthews_correlation,
    task_score,
)
from magic_bert.glue.report import results_table, submission_rows, update_model_card, write_submission
from magic_bert.glue.tasks import PAPER_ORDER, TASKS, GlueTask, get_task

from .conftest import run_two_processes

REPO = Path(__file__).resolve().parent.parent

TOL = 1e-12
SIZES = (1, 2, 7, 64, 1001)

# sklearn warns on one-class inputs (the degenerate cases compared on purpose).
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
CLASSIFICATION = ("cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte")


def random_binary(n: int, seed: int, p_pred: float = 0.5, p_ref: float = 0.5):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < p_pred).astype(int), (rng.random(n) < p_ref).astype(int)


# ----------------------------------------------------------------------------------------------- against sklearn


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed, p_pred, p_ref", [(0, 0.5, 0.5), (1, 0.2, 0.7), (2, 0.9, 0.1), (3, 0.5, 0.95)])
def test_cola_mcc_equals_sklearn(n, seed, p_pred, p_ref):
    p, r = random_binary(n, seed, p_pred, p_ref)
    got = compute_glue("cola", p, r)
    assert list(got) == ["matthews_correlation"]
    assert got["matthews_correlation"] == pytest.approx(matthews_corrcoef(r, p), abs=TOL)
    assert matthews_correlation(p.tolist(), r.tolist()) == got["matthews_correlation"]


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed, p_pred, p_ref", [(0, 0.5, 0.5), (4, 0.1, 0.6), (5, 0.8, 0.3)])
def test_f1_and_accuracy_equal_sklearn(task, n, seed, p_pred, p_ref):
    p, r = random_binary(n, seed, p_pred, p_ref)
    got = compute_glue(task, p, r)
    assert set(got) == {"f1", "accuracy"}
    assert got["f1"] == pytest.approx(f1_score(r, p, zero_division=0), abs=TOL)
    assert got["accuracy"] == pytest.approx(accuracy_score(r, p), abs=TOL)


@pytest.mark.parametrize("task, classes", [("sst2", 2), ("qnli", 2), ("rte", 2), ("mnli", 3)])
@pytest.mark.parametrize("n", SIZES)
def test_accuracy_equals_sklearn(task, classes, n):
    rng = np.random.default_rng(n)
    p, r = rng.integers(0, classes, n), rng.integers(0, classes, n)
    got = compute_glue(task, p, r)
    assert list(got) == ["accuracy"]
    assert got["accuracy"] == pytest.approx(accuracy_score(r, p), abs=TOL)
    assert got["accuracy"] == pytest.approx(float(np.mean(p == r)), abs=TOL)


@pytest.mark.parametrize("n", (3, 10, 64, 1001))
@pytest.mark.parametrize("seed", (0, 1, 2))
def test_stsb_pearson_and_spearman(n, seed):
    rng = np.random.default_rng(seed)
    r = np.round(rng.uniform(0, 5, n), 1)  # rounded: ties in the references
    p = r + rng.normal(0, 1.5, n)
    got = compute_glue("stsb", p.tolist(), r.tolist())
    assert set(got) == {"pearson", "spearmanr"}
    assert got["pearson"] == pytest.approx(stats.pearsonr(p, r)[0], abs=TOL)
    assert got["spearmanr"] == pytest.approx(stats.spearmanr(p, r)[0], abs=TOL)
    # ... and independently of scipy: Pearson by definition; Spearman as the Pearson of average ranks.
    assert got["pearson"] == pytest.approx(np.corrcoef(p, r)[0, 1], abs=1e-10)
    assert got["spearmanr"] == pytest.approx(np.corrcoef(stats.rankdata(p), stats.rankdata(r))[0, 1], abs=1e-10)


def test_stsb_known_values():
    got = compute_glue("stsb", [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 9.0])
    assert got["spearmanr"] == pytest.approx(1.0, abs=TOL)
    assert got["pearson"] < 1.0 - 1e-3
    assert compute_glue("stsb", [3, 2, 1], [1, 2, 3]) == pytest.approx({"pearson": -1.0, "spearmanr": -1.0}, abs=TOL)


@pytest.mark.parametrize("classes", (2, 3, 5))
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", (0, 1))
def test_macro_f1_equals_sklearn(classes, n, seed):
    rng = np.random.default_rng(seed)
    p, r = rng.integers(0, classes, n), rng.integers(0, classes, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = f1_score(r, p, average="macro")
    assert f1_macro(p, r) == pytest.approx(expected, abs=TOL)
    assert f1_macro(p.tolist(), r.tolist()) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("p, r", [
    ([0, 0, 0], [0, 0, 0]),  # one class, all right
    ([1, 1, 1], [0, 0, 0]),  # one class each, all wrong
    ([2, 2, 0], [0, 1, 1]),  # a class only predicted, another only true
    (["neg", "pos", "pos"], ["pos", "pos", "neg"]),  # label names work too
])
def test_macro_f1_degenerate_like_sklearn(p, r):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f1_macro(p, r) == pytest.approx(f1_score(r, p, average="macro"), abs=TOL)


def test_every_record_names_known_metrics():
    for task in TASKS.values():
        assert set(task.metrics) <= set(METRICS) and task.main_metric in task.metrics


# --------------------------------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize("p, r", [
    ([0, 0, 0, 0], [0, 1, 1, 0]),  # all predictions one class
    ([1, 1, 1, 1], [0, 1, 1, 0]),
    ([0, 1, 1, 0], [1, 1, 1, 1]),  # all references one class
    ([0, 0, 0], [0, 0, 0]),  # both one class
    ([1], [1]),
])
def test_mcc_degenerate_is_zero_like_sklearn(p, r):
    assert compute_glue("cola", p, r) == {"matthews_correlation": 0.0}
    assert matthews_corrcoef(r, p) == 0.0


def test_mcc_perfect_and_inverted():
    assert compute_glue("cola", [0, 1, 1, 0], [0, 1, 1, 0]) == {"matthews_correlation": 1.0}
    assert compute_glue("cola", [1, 0, 0, 1], [0, 1, 1, 0]) == {"matthews_correlation": -1.0}
    # tp=2 tn=1 fp=1 fn=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    assert compute_glue("cola", [1, 1, 1, 0, 0], [1, 1, 0, 1, 0])["matthews_correlation"] == pytest.approx(1 / 6,
                                                                                                           abs=TOL)


@pytest.mark.parametrize("p, r, f1", [
    ([0, 0, 0, 0], [0, 1, 1, 0], 0.0),  # no positive predictions
    ([0, 0, 0], [0, 0, 0], 0.0),  # no positives at all
    ([1, 1, 0], [0, 0, 0], 0.0),  # no positive references
    ([1, 1, 1, 1], [0, 1, 1, 0], 2 / 3),  # all positive: precision 1/2, recall 1
    ([1, 0, 1, 0], [1, 1, 0, 0], 0.5),
])
def test_f1_degenerate_like_sklearn_zero_division_0(p, r, f1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f1_score(r, p, zero_division=0) == pytest.approx(f1, abs=TOL)
    assert compute_glue("mrpc", p, r)["f1"] == pytest.approx(f1, abs=TOL)
    assert f1_binary(p, r) == pytest.approx(f1, abs=TOL)


def test_f1_is_of_the_positive_class():
    # Swapping the roles of predictions and references leaves F1 unchanged; flipping the classes does not.
    p, r = [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 1]
    assert compute_glue("qqp", p, r)["f1"] == pytest.approx(0.4, abs=TOL)  # tp=1 fp=2 fn=1: 2/5
    flipped = compute_glue("qqp", [1 - x for x in p], [1 - x for x in r])["f1"]
    assert flipped == pytest.approx(f1_score([1 - x for x in r], [1 - x for x in p]), abs=TOL)
    assert flipped == pytest.approx(4 / 7, abs=TOL)  # tp=2 fp=1 fn=2


# --------------------------------------------------------------------------------------- task_score, average


def test_task_score_picks_the_papers_metric():
    assert PAPER_METRIC == {"cola": "matthews_correlation", "stsb": "spearmanr", "mrpc": "f1", "qqp": "f1"}
    assert task_score("cola", {"matthews_correlation": 0.51}) == 0.51
    assert task_score("stsb", {"pearson": 0.88, "spearmanr": 0.87}) == 0.87
    assert task_score("mrpc", {"f1": 0.89, "accuracy": 0.84}) == 0.89
    assert task_score("qqp", {"accuracy": 0.91, "f1": 0.71}) == 0.71
    for task in ("sst2", "qnli", "rte"):
        assert task_score(task, {"accuracy": 0.66}) == 0.66
    assert task_score("mnli", {"matched_accuracy": 0.84, "mismatched_accuracy": 0.83}) == 0.84
    assert task_score("mnli", {"accuracy": 0.82}) == 0.82


def test_task_score_on_compute_glue_output():
    p, r = random_binary(50, 7)
    assert task_score("cola", compute_glue("cola", p, r)) == pytest.approx(matthews_corrcoef(r, p), abs=TOL)
    assert task_score("mrpc", compute_glue("mrpc", p, r)) == pytest.approx(f1_score(r, p), abs=TOL)
    assert task_score("rte", compute_glue("rte", p, r)) == pytest.approx(accuracy_score(r, p), abs=TOL)


def test_glue_average():
    assert glue_average({}) is None
    assert glue_average({"rte": 0.6}) == pytest.approx(0.6, abs=TOL)
    assert glue_average({"rte": 0.6, "cola": 0.3, "mrpc": 0.9}) == pytest.approx(0.6, abs=TOL)
    scores = {t: (i + 1) / 10 for i, t in enumerate(PAPER_ORDER)}
    assert glue_average(scores) == pytest.approx(0.45, abs=TOL)
    assert glue_average({**scores, "ax": 100.0}) == pytest.approx(0.45, abs=TOL)  # not a paper column


# ------------------------------------------------------------------------------------------ the evaluate module


@pytest.fixture(autouse=True, scope="module")
def evaluate_cache(tmp_path_factory):
    """evaluate copies the module script into its modules cache and makes a folder per config: both in tmp here."""
    root = tmp_path_factory.mktemp("evaluate_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate.config, "HF_MODULES_CACHE", root / "modules")
        patch.setattr(evaluate.config, "HF_METRICS_CACHE", root / "metrics")
        yield root


def random_task_data(task, n: int, seed: int):
    rng = np.random.default_rng(seed)
    if task.is_regression:
        r = np.round(rng.uniform(0, 5, n), 1).astype(np.float32)
        return (r + rng.normal(0, 1.5, n)).astype(np.float32), r
    return rng.integers(0, task.num_labels, n), rng.integers(0, task.num_labels, n)


def sklearn_metrics(names, p, r) -> dict[str, float]:
    p64, r64 = np.asarray(p, dtype=float), np.asarray(r, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every = {"accuracy": lambda: accuracy_score(r, p), "f1": lambda: f1_score(r, p, zero_division=0),
                 "matthews_correlation": lambda: matthews_corrcoef(r, p),
                 "macro_f1": lambda: f1_score(r, p, average="macro"),
                 "pearson": lambda: stats.pearsonr(p64, r64)[0], "spearmanr": lambda: stats.spearmanr(p64, r64)[0]}
        return {name: every[name]() for name in names}


def test_the_metric_is_an_evaluate_module_loaded_by_path(evaluate_cache):
    metric = load_glue_metric("mrpc")
    assert isinstance(metric, evaluate.Metric) and (metric.name, metric.config_name) == ("glue", "mrpc")
    assert metric.compute(predictions=[1, 0, 1], references=[1, 1, 1]) == {"f1": 0.8, "accuracy": 2 / 3}
    assert GlueMetric is load_glue_metric
    # evaluate ran its copy of the script (in the tmp cache); kept in memory, the metric wrote no data files.
    [copy] = (evaluate_cache / "modules").rglob("glue/*/glue.py")
    assert copy.read_text() == (GLUE_METRIC_MODULE / "glue.py").read_text()
    assert not [p for p in (evaluate_cache / "metrics").rglob("*") if p.is_file()]
    # Plain evaluate.load on the package's folder, as users load the Hub's glue metric, gives the same.
    same = evaluate.load(str(GLUE_METRIC_MODULE), "mrpc")
    assert same.compute(predictions=[1, 0, 1], references=[1, 1, 1]) == {"f1": 0.8, "accuracy": 2 / 3}


@pytest.mark.parametrize("task", PAPER_ORDER)
@pytest.mark.parametrize("n", (2, 7, 301))
def test_evaluate_metric_equals_sklearn_and_scipy(task, n):
    task = get_task(task)
    p, r = random_task_data(task, n, seed=n)
    metric = load_glue_metric(task.name)
    cuts = [0, n // 3, n // 3 + 1, n]
    for i, (start, stop) in enumerate(zip(cuts, cuts[1:], strict=False)):
        batch_p, batch_r = p[start:stop], r[start:stop]
        metric.add_batch(predictions=batch_p.tolist() if i == 1 else batch_p,  # lists work as well as arrays
                         references=batch_r.tolist() if i == 1 else batch_r)
    got = metric.compute()
    assert list(got) == list(task.metrics)
    assert got == compute_glue(task, p, r)  # exactly: the same functions on the same (float32) values
    assert got == pytest.approx(sklearn_metrics(task.metrics, p, r), abs=TOL)
    # compute() resets: the next result is of the new data only.
    assert metric.compute(predictions=p[:2], references=r[:2]) == compute_glue(task, p[:2], r[:2])


def test_a_users_records_pass_their_metrics():
    classes = GlueTask("reviews", ("text",), ("neg", "pos"), "reviews", ("reviews.tsv",), "reviews",
                       metrics=("accuracy", "macro_f1"), dataset="reviews.csv")
    scores = GlueTask("ratings", ("text",), (), "ratings", ("ratings.tsv",), "ratings",
                      metrics=("pearson", "spearmanr"), main_metric="spearmanr", dataset="ratings.csv")
    p, r = [1, 0, 1, 1], [1, 0, 0, 1]
    assert load_glue_metric(classes).compute(predictions=p, references=r) == pytest.approx(
        {"accuracy": 0.75, "macro_f1": 11 / 15}, abs=TOL)
    metric = load_glue_metric(scores)
    assert metric.config_name == "ratings" and metric.features["predictions"].dtype == "float32"
    assert metric.compute(predictions=[1.0, 2.5, 2.0], references=[1.0, 2.0, 3.0]) == pytest.approx(
        sklearn_metrics(scores.metrics, [1.0, 2.5, 2.0], [1.0, 2.0, 3.0]), abs=1e-7)


@pytest.mark.parametrize("config, kwargs, message", [
    ("wnli", {}, "`config_name`"),
    ("ax", {}, "`config_name`"),
    ("mine", {"metrics": ["bleu"]}, "`metrics`"),
    ("mine", {"metrics": []}, "`metrics`"),
    ("mine", {"metrics": ["accuracy", "pearson"]}, "mixes regression"),
])
def test_bad_configs_raise_input_errors(config, kwargs, message):
    with pytest.raises(InputError, match=message):
        evaluate.load(str(GLUE_METRIC_MODULE), config, **kwargs)


@pytest.mark.parametrize("task", ["wnli", "SST-2", "all"])
def test_unknown_task_raises(task):
    with pytest.raises(ValueError, match="Unknown GLUE task"):
        compute_glue(task, [0, 1], [0, 1])
    with pytest.raises(ValueError, match="Unknown GLUE task"):
        load_glue_metric(task)


# ----------------------------------------------------------------------------- fine-tuning's dev scores through it


class ScoresAsLogits(torch.nn.Module):
    """A stand-in classifier whose logits are the batch's ``input_ids`` (float scores): predictions are known."""

    def forward(self, input_ids, **kwargs):
        return SimpleNamespace(logits=input_ids)


def score_loaders(task, n: int, batch_size: int):
    """Dev loaders of random scores and labels for every dev split of ``task``, and the metrics they must give."""
    from torch.utils.data import DataLoader

    loaders, expected = {}, {}
    for i, split in enumerate(task.dev_splits):
        rng = np.random.default_rng(i)
        scores = rng.normal(size=(n, task.num_labels)).astype(np.float32)
        labels = random_task_data(task, n, seed=i)[1]
        rows = [{"input_ids": torch.from_numpy(s), "labels": torch.tensor(y)} for s, y in zip(scores, labels,
                                                                                              strict=True)]
        loaders[split] = DataLoader(rows, batch_size=batch_size)
        predictions = scores[:, 0] if task.is_regression else scores.argmax(1)
        expected |= {task.metric_prefix(split) + k: v for k, v in compute_glue(task, predictions, labels).items()}
    return loaders, expected


@pytest.mark.parametrize("task", ["mrpc", "stsb", "mnli", "cola"])
def test_dev_metrics_are_exactly_the_local_functions(task):
    from accelerate import Accelerator

    from magic_bert.glue.finetuning import dev_metrics

    task = get_task(task)
    accelerator = Accelerator(cpu=True)
    loaders, expected = score_loaders(task, 13, 4)
    loaders = {split: accelerator.prepare(loader) for split, loader in loaders.items()}
    got = dev_metrics(ScoresAsLogits(), loaders, accelerator, task)
    assert list(got) == list(expected) and got == expected


WORKER = textwrap.dedent("""
    import json, os, sys
    from accelerate import Accelerator
    from magic_bert.glue.finetuning import dev_metrics
    from magic_bert.glue.tasks import get_task
    from tests.test_glue_metrics import ScoresAsLogits, score_loaders

    accelerator = Accelerator()
    report = {}
    for name in sys.argv[2:]:
        task = get_task(name)
        loaders, expected = score_loaders(task, 13, 2)  # 13 rows: the second rank's last batch is padding
        loaders = {split: accelerator.prepare(loader) for split, loader in loaders.items()}
        report[name] = {"got": dev_metrics(ScoresAsLogits(), loaders, accelerator, task), "expected": expected,
                        "processes": accelerator.num_processes}
    with open(f"{sys.argv[1]}/rank{os.environ['RANK']}.json", "w") as f:
        json.dump(report, f)
""")


@pytest.mark.slow
def test_two_processes_score_the_dev_set_like_one(tmp_path, evaluate_cache):
    tasks = ["mrpc", "stsb", "mnli"]
    run_two_processes(WORKER, tmp_path / "worker.py", tmp_path, *tasks, port=29561,
                      env={"HF_MODULES_CACHE": str(evaluate_cache / "modules"),
                           "HF_METRICS_CACHE": str(evaluate_cache / "metrics")})
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0 == rank1 and set(rank0) == set(tasks)
    for name in tasks:
        assert rank0[name]["processes"] == 2
        assert rank0[name]["got"] == rank0[name]["expected"], name  # every row once, none twice: exact


# ---------------------------------------------------------------------------------------------- glue_report


def test_submission_rows_label_names():
    assert submission_rows(get_task("mnli"), [0, 2, 1, np.int64(2)]) == [
        "index\tprediction", "0\tentailment", "1\tcontradiction", "2\tneutral", "3\tcontradiction"]
    for task in ("qnli", "rte"):
        assert submission_rows(get_task(task), np.array([1, 0, 0])) == [
            "index\tprediction", "0\tnot_entailment", "1\tentailment", "2\tentailment"]


@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "qqp"])
def test_submission_rows_ids(task):
    assert submission_rows(get_task(task), [1, 0, np.int64(1), 0]) == [
        "index\tprediction", "0\t1", "1\t0", "2\t1", "3\t0"]


def test_submission_rows_stsb_clipped_three_decimals():
    rows = submission_rows(get_task("stsb"), [-0.7, 0.0, 2.34567, 4.9996, 5.2, np.float32(3.5)])
    assert rows == ["index\tprediction", "0\t0.000", "1\t0.000", "2\t2.346", "3\t5.000", "4\t5.000", "5\t3.500"]


def test_submission_rows_empty():
    assert submission_rows(get_task("rte"), []) == ["index\tprediction"]


def test_write_submission_mnli_two_files(tmp_path):
    out = tmp_path / "submission"
    written = write_submission(out, get_task("mnli"), {"test_matched": [0, 1], "test_mismatched": [2]})
    assert written == [out / "MNLI-m.tsv", out / "MNLI-mm.tsv"]
    assert (out / "MNLI-m.tsv").read_text() == "index\tprediction\n0\tentailment\n1\tneutral\n"
    assert (out / "MNLI-mm.tsv").read_text() == "index\tprediction\n0\tcontradiction\n"
    assert sorted(p.name for p in out.iterdir()) == ["MNLI-m.tsv", "MNLI-mm.tsv"]  # no temporary files left


@pytest.mark.parametrize("task, name, text", [
    ("rte", "RTE.tsv", "index\tprediction\n0\tnot_entailment\n1\tentailment\n"),
    ("cola", "CoLA.tsv", "index\tprediction\n0\t1\n1\t0\n"),
    ("sst2", "SST-2.tsv", "index\tprediction\n0\t1\n1\t0\n"),
    ("stsb", "STS-B.tsv", "index\tprediction\n0\t1.000\n1\t0.000\n"),
    ("qqp", "QQP.tsv", "index\tprediction\n0\t1\n1\t0\n"),
    ("qnli", "QNLI.tsv", "index\tprediction\n0\tnot_entailment\n1\tentailment\n"),
    ("mrpc", "MRPC.tsv", "index\tprediction\n0\t1\n1\t0\n"),
])
def test_write_submission_one_file(tmp_path, task, name, text):
    assert write_submission(tmp_path, get_task(task), {"test": [1, 0]}) == [tmp_path / name]
    assert (tmp_path / name).read_text() == text


def test_write_submission_skips_missing_splits(tmp_path):
    assert write_submission(tmp_path / "a", get_task("rte"), {}) == []
    assert write_submission(tmp_path / "b", get_task("mnli"), {"test_mismatched": [1]}) == [tmp_path / "b/MNLI-mm.tsv"]
    assert not (tmp_path / "b" / "MNLI-m.tsv").exists()


def test_results_table_all_tasks():
    scores = {"cola": 0.521, "sst2": 0.93, "mrpc": 0.8849, "stsb": 0.8711, "qqp": 0.7123, "mnli": 0.8456,
              "qnli": 0.9049, "rte": 0.662}
    assert results_table(scores) == (
        "| MNLI | QQP | QNLI | CoLA | SST-2 | STS-B | RTE | MRPC | AVG |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| 84.6 | 71.2 | 90.5 | 52.1 | 93.0 | 87.1 | 66.2 | 88.5 | 79.1 |")
    assert glue_average(scores) == pytest.approx(6.3318 / 8, abs=TOL)


def test_results_table_missing_tasks():
    lines = results_table({"rte": 0.6, "cola": 0.4}).splitlines()
    assert lines[0] == "| MNLI | QQP | QNLI | CoLA | SST-2 | STS-B | RTE | MRPC | AVG |"
    assert lines[2] == "| – | – | – | 40.0 | – | – | 60.0 | – | 50.0 |"
    assert results_table({}).splitlines()[2] == "| – | – | – | – | – | – | – | – | – |"


def test_model_card_round_trip(tmp_path):
    from huggingface_hub import ModelCard

    path = tmp_path / "README.md"
    path.write_text("---\nlicense: apache-2.0\ntags:\n- magic-bert\n---\n\n# My model\n\nSome text.\n")
    results = {"mrpc": {"f1": 0.8849, "accuracy": 0.84}, "stsb": {"pearson": 0.88, "spearmanr": 0.871}}
    update_model_card(path, results, "magic-bert-small")
    card = ModelCard.load(path)
    assert card.data.license == "apache-2.0" and card.data.tags == ["magic-bert"]
    assert card.text.strip() == "# My model\n\nSome text."
    assert card.data.model_name == "magic-bert-small"
    got = {(e.dataset_config, e.metric_type): e.metric_value for e in card.data.eval_results}
    assert got == {("mrpc", "f1"): 0.8849, ("mrpc", "accuracy"): 0.84, ("stsb", "pearson"): 0.88,
                   ("stsb", "spearmanr"): 0.871}
    assert {(e.task_type, e.dataset_type, e.dataset_split) for e in card.data.eval_results} == {
        ("text-classification", "nyu-mll/glue", "validation")}
    assert {e.dataset_name for e in card.data.eval_results} == {"GLUE MRPC", "GLUE STSB"}
    # A second update replaces the model-index (no duplicates) and keeps the rest.
    update_model_card(path, {"rte": {"accuracy": 0.66}}, "other-name")
    card = ModelCard.load(path)
    assert [(e.dataset_config, e.metric_type, e.metric_value) for e in card.data.eval_results] == [
        ("rte", "accuracy", 0.66)]
    assert card.data.license == "apache-2.0" and card.text.strip() == "# My model\n\nSome text."
    assert path.read_text().count("model-index:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_model_card_created_when_missing(tmp_path):
    from huggingface_hub import ModelCard

    path = tmp_path / "README.md"
    update_model_card(path, {"cola": {"matthews_correlation": 0.5}}, "m")
    card = ModelCard.load(path)
    assert card.data.model_name == "m"
    assert [(e.dataset_config, e.metric_type, e.metric_value) for e in card.data.eval_results] == [
        ("cola", "matthews_correlation", 0.5)]


def test_new_model_card_has_no_stray_body(tmp_path):
    from huggingface_hub import ModelCard

    path = tmp_path / "README.md"
    update_model_card(path, {"rte": {"accuracy": 0.7}}, "m")
    assert "---" not in ModelCard.load(path).text
