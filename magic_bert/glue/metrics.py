"""GLUE metrics computed locally, and the package's ``evaluate`` module that reports them.

``load_glue_metric(task)`` is ``evaluate.load`` on the module shipped in ``glue/evaluate_metrics/glue/`` (loaded by
path, so nothing is downloaded; no scikit-learn): ``add_batch(predictions=..., references=...)`` then ``compute()``,
as transformers' ``run_glue_no_trainer.py`` does with ``evaluate.load("glue", task)``. Which metrics a task reports,
and which one is its score, come from its record (:class:`~magic_bert.glue.tasks.GlueTask`); the keys match
``evaluate``'s glue module: ``matthews_correlation`` (CoLA), ``pearson`` and ``spearmanr`` (STS-B), ``f1`` and
``accuracy`` (MRPC, QQP), ``accuracy`` (the rest), plus ``macro_f1`` for a user's classes. ``task_score`` reduces them
to the one number per task of the paper's table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import InputError
from .tasks import PAPER_ORDER, TASKS, GlueTask, get_task

# The paper's metric of each task whose score is not accuracy (derived from the task records).
PAPER_METRIC = {t.name: t.main_metric for t in TASKS.values() if t.main_metric != "accuracy"}


def accuracy(predictions, references) -> float:
    return float((np.asarray(predictions) == np.asarray(references)).mean())


def _f1(p: np.ndarray, r: np.ndarray, positive) -> float:
    tp = int(((p == positive) & (r == positive)).sum())
    fp = int(((p == positive) & (r != positive)).sum())
    fn = int(((p != positive) & (r == positive)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def f1_binary(predictions, references) -> float:
    """F1 of the positive class (label 1), 0 when there are no positive predictions and labels."""
    return _f1(np.asarray(predictions), np.asarray(references), 1)


def f1_macro(predictions, references) -> float:
    """Unweighted mean of the per-class F1 over the classes that occur in the predictions or the references (as
    scikit-learn's ``f1_score(average="macro")``); a class never predicted correctly counts 0."""
    p, r = np.asarray(predictions), np.asarray(references)
    classes = np.union1d(p, r)
    return float(np.mean([_f1(p, r, c) for c in classes])) if len(classes) else 0.0


def matthews_correlation(predictions, references) -> float:
    """Binary MCC; 0 when a row or column of the confusion matrix is empty (as sklearn returns)."""
    p, r = np.asarray(predictions), np.asarray(references)
    tp = float(((p == 1) & (r == 1)).sum())
    tn = float(((p == 0) & (r == 0)).sum())
    fp = float(((p == 1) & (r == 0)).sum())
    fn = float(((p == 0) & (r == 1)).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else float((tp * tn - fp * fn) / denominator)


def pearson(predictions, references) -> float:
    return float(stats.pearsonr(np.asarray(predictions, dtype=float), np.asarray(references, dtype=float))[0])


def spearman(predictions, references) -> float:
    return float(stats.spearmanr(np.asarray(predictions, dtype=float), np.asarray(references, dtype=float))[0])


# What a task record's `metrics` may name.
METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy, "f1": f1_binary, "macro_f1": f1_macro, "matthews_correlation": matthews_correlation,
    "pearson": pearson, "spearmanr": spearman}
# How results tables describe each task's score.
METRIC_TITLES = {"accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1", "matthews_correlation":
                 "Matthews corr.", "pearson": "Pearson", "spearmanr": "Spearman"}


def _task(task: str | GlueTask) -> GlueTask:
    return task if isinstance(task, GlueTask) else get_task(task)


def compute_metrics(names: Sequence[str], predictions, references) -> dict[str, float]:
    """The metrics ``names`` (keys of ``METRICS``), in that order."""
    return {name: METRICS[name](predictions, references) for name in names}


def compute_glue(task: str | GlueTask, predictions, references) -> dict[str, float]:
    """The task's metrics (its record's ``metrics``, in that order)."""
    return compute_metrics(_task(task).metrics, predictions, references)


def task_score(task: str | GlueTask, metrics: dict[str, float]) -> float:
    """The paper's one number for ``task``: its main metric (MNLI: of the matched dev set when both are given)."""
    task = _task(task)
    if task.main_metric in metrics:
        return metrics[task.main_metric]
    return metrics[task.metric_prefix(task.dev_splits[0]) + task.main_metric]


def mean_score(scores: dict[str, float], names: Iterable[str]) -> float | None:
    """Mean of the scores of ``names`` that are present; None when none is."""
    present = [scores[name] for name in names if name in scores]
    return float(np.mean(present)) if present else None


def glue_average(scores: dict[str, float]) -> float | None:
    """Mean of the GLUE task scores given (the paper's AVG when all eight are there); other keys are ignored."""
    return mean_score(scores, PAPER_ORDER)


def score_note(tasks: Iterable[GlueTask]) -> str:
    """What each column's number is, e.g. ``MNLI matched accuracy, QQP F1, ...``."""
    return ", ".join(f"{t.column} {t.metric_prefix(t.dev_splits[0]).replace('_', ' ')}"
                     f"{METRIC_TITLES.get(t.main_metric, t.main_metric)}" for t in tasks)


# The package's `evaluate` module (folder and script share the name, as `evaluate.load(<folder>)` requires).
GLUE_METRIC_MODULE = Path(__file__).parent / "evaluate_metrics" / "glue"
# Metrics of real-valued predictions (the module stores those as float32, the rest as int64).
REGRESSION_METRICS = ("pearson", "spearmanr")


def glue_metric_names(config_name: str, metrics: Sequence[str] | None = None) -> tuple[str, ...]:
    """What the ``evaluate`` module computes: ``metrics`` when given (any task record's), else the GLUE task
    ``config_name``'s."""
    if metrics is None:
        if config_name not in TASKS:
            raise InputError(f"Unknown GLUE metric config {config_name!r} (`config_name`); allowed: "
                             f"{list(PAPER_ORDER)}, or any name with `metrics` from {sorted(METRICS)}.")
        return TASKS[config_name].metrics
    unknown = [name for name in metrics if name not in METRICS]
    if unknown or not metrics:
        raise InputError(f"`metrics` {list(metrics)} must name one or more of {sorted(METRICS)}.")
    if len({name in REGRESSION_METRICS for name in metrics}) > 1:
        raise InputError(f"`metrics` {list(metrics)} mixes regression {list(REGRESSION_METRICS)} and classification "
                         "metrics.")
    return tuple(metrics)


def load_glue_metric(task: str | GlueTask):
    """The ``evaluate`` metric of ``task`` (a GLUE task name or any record), loaded from the package by path and kept in
    memory: ``add_batch`` gathered predictions, then ``compute``. A GLUE task loads as ``evaluate.load(<module>,
    "mrpc")``; another record passes its ``metrics`` too."""
    import evaluate  # here: importing evaluate costs a second, and only scoring needs it

    task = _task(task)
    extra = {} if TASKS.get(task.name) == task else {"metrics": task.metrics}
    return evaluate.load(str(GLUE_METRIC_MODULE), task.name, keep_in_memory=True, **extra)


# The evaluate-style object of earlier versions: now the real `evaluate` metric.
GlueMetric = load_glue_metric


__all__ = ["GLUE_METRIC_MODULE", "METRICS", "PAPER_METRIC", "REGRESSION_METRICS", "GlueMetric", "compute_glue",
           "compute_metrics", "f1_binary", "f1_macro", "glue_average", "glue_metric_names", "load_glue_metric",
           "matthews_correlation", "mean_score", "pearson", "score_note", "spearman", "task_score"]
