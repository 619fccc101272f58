"""GLUE outputs: submission files in the format the GLUE server expects, the results table in the paper's column
order, and the model card's ``model-index``. Columns, file names and label formats come from the task records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..io_utils import write_text_atomic
from .metrics import mean_score
from .tasks import TASKS, GlueTask, get_task


def submission_rows(task: GlueTask, predictions: list) -> list[str]:
    """``index<TAB>prediction`` lines: label names or ids as the task's record says (MNLI/QNLI/RTE and a user's task:
    names; CoLA/SST-2/MRPC/QQP: 0/1), a score for regression (STS-B: clipped to [0, 5], three decimals)."""
    if task.is_regression and task.score_range is not None:
        low, high = task.score_range
        values = [f"{min(high, max(low, float(p))):.3f}" for p in predictions]
    elif task.is_regression:
        values = [f"{float(p):.6g}" for p in predictions]
    elif task.submit_label_names:
        values = [task.labels[int(p)] for p in predictions]
    else:
        values = [str(int(p)) for p in predictions]
    return ["index\tprediction", *(f"{i}\t{v}" for i, v in enumerate(values))]


def write_submission(folder: Path, task: GlueTask, predictions: dict[str, list]) -> list[Path]:
    written = []
    for split, name in zip(task.test_splits, task.submission, strict=True):
        if split in predictions:
            written.append(write_text_atomic(folder / name, "\n".join(submission_rows(task, predictions[split])) +
                                             "\n"))
    return written


def results_table(scores: dict[str, float], tasks: Sequence[GlueTask] | None = None) -> str:
    """Markdown table (× 100) with a column per task (default: the GLUE tasks in the paper's order) and, for more
    than one task, their average over the tasks present."""
    tasks = list(TASKS.values()) if tasks is None else list(tasks)
    cells = [f"{100 * scores[t.name]:.1f}" if t.name in scores else "–" for t in tasks]
    columns = [t.column for t in tasks]
    if len(tasks) > 1:
        average = mean_score(scores, [t.name for t in tasks])
        columns.append("AVG")
        cells.append("–" if average is None else f"{100 * average:.1f}")
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), "| " + " | ".join(cells) + " |"])


def update_model_card(card_path: Path, results: dict[str, dict[str, float]], model_name: str,
                      tasks: dict[str, GlueTask] | None = None) -> None:
    """Add (or replace) the ``model-index`` of a README.md model card: the dev ``results`` per task name (a GLUE
    task, or one of ``tasks``, e.g. a user's)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    records = {name: (tasks or {}).get(name) or get_task(name) for name in results}
    card = ModelCard.load(card_path) if card_path.is_file() else ModelCard("---\n{}\n---\n")
    data = card.data.to_dict() if card.data else {}
    evals = [EvalResult(task_type="text-classification", dataset_type=records[t].dataset,
                        dataset_name=records[t].dataset_name, dataset_config=t, dataset_split="validation",
                        metric_type=metric, metric_value=value)
             for t, metrics in results.items() for metric, value in metrics.items()]
    data.pop("model-index", None)
    data["model_name"] = data.get("model_name") or model_name
    card.data = ModelCardData(**{k: v for k, v in data.items() if k != "eval_results"}, eval_results=evals)
    write_text_atomic(card_path, str(card))


__all__ = ["results_table", "submission_rows", "update_model_card", "write_submission"]
