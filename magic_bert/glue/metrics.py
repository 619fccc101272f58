"""GLUE metrics computed locally (``evaluate.load("glue", ...)`` needs the Hub), with ``evaluate``'s interface:
``GlueMetric(task).add_batch(predictions=..., references=...)`` then ``.compute()``, or ``.compute(predictions=...,
references=...)`` at once. Keys match ``evaluate``'s glue module: ``matthews_correlation`` (CoLA), ``pearson`` and
``spearmanr`` (STS-B), ``f1`` and ``accuracy`` (MRPC, QQP), ``accuracy`` (the rest). ``task_score`` reduces them to
the one number per task of the paper's table (CoLA MCC, STS-B Spearman, MRPC/QQP F1, else accuracy), as fractions.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .tasks import PAPER_ORDER, get_task

PAPER_METRIC = {"cola": "matthews_correlation", "stsb": "spearmanr", "mrpc": "f1", "qqp": "f1"}


def accuracy(predictions, references) -> float:
    return float((np.asarray(predictions) == np.asarray(references)).mean())


def f1_binary(predictions, references) -> float:
    """F1 of the positive class (label 1), 0 when there are no positive predictions and labels."""
    p, r = np.asarray(predictions), np.asarray(references)
    tp = int(((p == 1) & (r == 1)).sum())
    fp = int(((p == 1) & (r == 0)).sum())
    fn = int(((p == 0) & (r == 1)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def matthews_correlation(predictions, references) -> float:
    """Binary MCC; 0 when a row or column of the confusion matrix is empty (as sklearn returns)."""
    p, r = np.asarray(predictions), np.asarray(references)
    tp = float(((p == 1) & (r == 1)).sum())
    tn = float(((p == 0) & (r == 0)).sum())
    fp = float(((p == 1) & (r == 0)).sum())
    fn = float(((p == 0) & (r == 1)).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else float((tp * tn - fp * fn) / denominator)


def compute_glue(task: str, predictions, references) -> dict[str, float]:
    get_task(task)
    if task == "cola":
        return {"matthews_correlation": matthews_correlation(predictions, references)}
    if task == "stsb":
        p, r = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
        return {"pearson": float(stats.pearsonr(p, r)[0]), "spearmanr": float(stats.spearmanr(p, r)[0])}
    if task in ("mrpc", "qqp"):
        return {"f1": f1_binary(predictions, references), "accuracy": accuracy(predictions, references)}
    return {"accuracy": accuracy(predictions, references)}


def task_score(task: str, metrics: dict[str, float]) -> float:
    """The paper's one number for ``task`` (MNLI: the matched accuracy when both are given)."""
    if task == "mnli" and "accuracy" not in metrics:
        return metrics["matched_accuracy"]
    return metrics[PAPER_METRIC.get(task, "accuracy")]


def glue_average(scores: dict[str, float]) -> float | None:
    """Mean of the task scores given (the paper's AVG when all eight are there)."""
    return float(np.mean([scores[t] for t in PAPER_ORDER if t in scores])) if scores else None


class GlueMetric:
    """An ``evaluate``-style metric object for one GLUE task (local; nothing downloaded)."""

    def __init__(self, task: str):
        get_task(task)
        self.task = task
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


__all__ = ["PAPER_METRIC", "GlueMetric", "compute_glue", "f1_binary", "glue_average", "matthews_correlation",
           "task_score"]
