"""GLUE outputs: submission files in the format the GLUE server expects, the paper-ordered results table, and the
model card's ``model-index``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .metrics import glue_average
from .tasks import PAPER_ORDER, GlueTask

PAPER_COLUMNS = {"mnli": "MNLI", "qqp": "QQP", "qnli": "QNLI", "cola": "CoLA", "sst2": "SST-2", "stsb": "STS-B",
                 "rte": "RTE", "mrpc": "MRPC"}


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def submission_rows(task: GlueTask, predictions: list) -> list[str]:
    """``index<TAB>prediction`` lines: label names for MNLI/QNLI/RTE, 0/1 for CoLA/SST-2/MRPC/QQP, a score in
    [0, 5] with three decimals for STS-B (as the GLUE server reads them)."""
    if task.is_regression:
        values = [f"{min(5.0, max(0.0, float(p))):.3f}" for p in predictions]
    elif task.name in ("mnli", "qnli", "rte"):
        values = [task.labels[int(p)] for p in predictions]
    else:
        values = [str(int(p)) for p in predictions]
    return ["index\tprediction", *(f"{i}\t{v}" for i, v in enumerate(values))]


def write_submission(folder: Path, task: GlueTask, predictions: dict[str, list]) -> list[Path]:
    written = []
    if predictions:
        folder.mkdir(parents=True, exist_ok=True)
    for split, name in zip(task.test_splits, task.submission, strict=True):
        if split in predictions:
            path = folder / name
            write_atomic(path, "\n".join(submission_rows(task, predictions[split])) + "\n")
            written.append(path)
    return written


def results_table(scores: dict[str, float]) -> str:
    """Markdown table in the paper's column order (× 100), AVG over the tasks present."""
    header = "| " + " | ".join(PAPER_COLUMNS[t] for t in PAPER_ORDER) + " | AVG |"
    rule = "|" + "---|" * (len(PAPER_ORDER) + 1)
    cells = [f"{100 * scores[t]:.1f}" if t in scores else "–" for t in PAPER_ORDER]
    average = glue_average(scores)
    return "\n".join([header, rule, "| " + " | ".join(cells) + f" | {100 * average:.1f} |" if average is not None
                      else "| " + " | ".join(cells) + " | – |"])


def update_model_card(card_path: Path, results: dict[str, dict[str, float]], model_name: str) -> None:
    """Add (or replace) the GLUE ``model-index`` of a README.md model card."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card = ModelCard.load(card_path) if card_path.is_file() else ModelCard("---\n{}\n---\n")
    data = card.data.to_dict() if card.data else {}
    evals = [EvalResult(task_type="text-classification", dataset_type="nyu-mll/glue", dataset_name=f"GLUE {t.upper()}",
                        dataset_config=t, dataset_split="validation", metric_type=metric, metric_value=value)
             for t, metrics in results.items() for metric, value in metrics.items()]
    data.pop("model-index", None)
    data["model_name"] = data.get("model_name") or model_name
    card.data = ModelCardData(**{k: v for k, v in data.items() if k != "eval_results"}, eval_results=evals)
    write_atomic(card_path, str(card))


def dump_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2))


__all__ = ["dump_json", "results_table", "submission_rows", "update_model_card", "write_submission"]
