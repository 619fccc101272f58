"""GLUE metrics computed locally (``evaluate.load("glue", ...)`` needs the Hub), with ``evaluate``'s interface:
``GlueMetric(task).add_batch(predictions=..., references=...)`` then ``.compute()``, or ``.compute(predictions=...,
references=...)`` at once. Which metrics a task reports, and which one is its score, come from its record
(:class:`~magic_bert.glue.tasks.GlueTask`); the keys match ``evaluate``'s glue module: ``matthews_correlation``
(CoLA), ``pearson`` and ``spearmanr`` (STS-B), ``f1`` and ``accuracy`` (MRPC, QQP), ``accuracy`` (the rest), plus
``macro_f1`` for a user's classes. ``task_score`` reduces them to the one number per task of the paper's table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from scipy import stats

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


def compute_glue(task: str | GlueTask, predictions, references) -> dict[str, float]:
    """The task's metrics (its record's ``metrics``, in that order)."""
    return {name: METRICS[name](predictions, references) for name in _task(task).metrics}


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


class GlueMetric:
    """An ``evaluate``-style metric object for one GLUE task or a user's task record (local; nothing downloaded)."""

    def __init__(self, task: str | GlueTask):
        self.task = _task(task)
        self._predictions: list = []
        self._references: list = []

    def add_batch(self, *, predictions, references) -> None:
        self._predictions.extend(np.asarray(predictions).tolist())
        self._references.extend(np.asarray(references).tolist())

    def compute(self, *, predictions=None, references=None) -> dict[str, float]:
        if predictions is not None:
            self.add_batch(predictions=predictions, references=references)
        result = compute_glue(self.task, self._predictions, self._references)
        self._predictions, self._references = [], []
        return result


__all__ = ["METRICS", "PAPER_METRIC", "GlueMetric", "compute_glue", "f1_binary", "f1_macro", "glue_average",
           "matthews_correlation", "mean_score", "pearson", "score_note", "spearman", "task_score"]
