"""A user's own data as a task record, as transformers' ``run_glue_no_trainer.py`` does without ``--task_name``: the
training file decides the text columns, the classes (or regression) and the metrics, and the resulting
:class:`~magic_bert.glue.tasks.GlueTask` goes through the same readers, loop, metrics and reports as GLUE's.

* text columns: ``text_columns``, or every column but the label and ``idx`` when that is one or two;
* labels: strings or integers are classes (their sorted set, saved as the model's ``id2label``), floats regression;
* metrics: accuracy (the score) and macro-F1 for classes, Pearson and Spearman (the score) for regression.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .tasks import GlueTask, parse_number, table_records

_INTEGER = re.compile(r"[+-]?\d+")


def _kind(value) -> str:
    """``"int"``, ``"float"`` or ``"str"`` for one label as the file holds it (JSON typed, csv/tsv text)."""
    if isinstance(value, bool):
        return "str"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    text = str(value).strip()
    if _INTEGER.fullmatch(text):
        return "int"
    return "str" if parse_number(text) is None else "float"


# Example ids, never text: the Hub's GLUE column and the original GLUE .tsv layout's (the loader reads both as idx).
ID_COLUMNS = ("idx", "index")


def _text_columns(columns: list[str], text_columns: list[str] | None, label_column: str, what: str) -> tuple:
    if text_columns:
        unknown = [c for c in text_columns if c not in columns]
        if unknown:
            raise InputError(f"`text_columns` {unknown} are not columns of {what}; its columns are {columns}.")
        if label_column in text_columns or set(ID_COLUMNS) & set(text_columns):
            raise InputError(f"`text_columns` {text_columns} must not hold the label column ({label_column!r}) or "
                             f"an id column {list(ID_COLUMNS)}.")
        return tuple(text_columns)
    candidates = [c for c in columns if c != label_column and c not in ID_COLUMNS]
    if not 1 <= len(candidates) <= 2:
        raise InputError(f"{what} has {len(candidates)} text columns {candidates} besides the label "
                         f"{label_column!r}; a task reads one or two: name them with `text_columns`.")
    return tuple(candidates)


def _labels(values: list, what: str, label_column: str) -> tuple[str, ...]:
    """The classes (sorted; integers by value), or ``()`` for float labels (regression)."""
    kinds = {_kind(v) for v in values}
    if kinds <= {"int", "float"} and "float" in kinds:
        return ()
    names = {str(v).strip() for v in values}
    labels = tuple(sorted(names, key=int) if kinds == {"int"} else sorted(names))
    if len(labels) < 2:
        raise InputError(f"{what}: the label column {label_column!r} holds one class {list(labels)}; classification "
                         "needs two or more (float labels mean regression).")
    return labels


def task_from_files(train_file: str | Path, text_columns: list[str] | None = None,
                    label_column: str = "label") -> GlueTask:
    """The task record of a user's training file (csv, a .tsv with a header, json or jsonl), named by its stem."""
    path = Path(train_file)
    what = f"`train_file` {str(path)!r}"
    records = table_records(path, what)
    columns = list(records[0])
    if label_column not in columns:
        raise InputError(f"{what} has no label column {label_column!r} (`label_column`); its columns are {columns}.")
    keys = _text_columns(columns, text_columns, label_column, what)
    values = [r.get(label_column) for r in records]
    empty = [i + 1 for i, v in enumerate(values) if v is None or str(v).strip() == ""]
    if empty:
        raise InputError(f"{what} has rows without a label (rows {empty[:5]}).")
    labels = _labels(values, what, label_column)
    regression = not labels
    return GlueTask(
        path.stem, keys, labels, folder=path.stem, submission=(f"{path.stem}.tsv",), column=path.stem,
        metrics=("pearson", "spearmanr") if regression else ("accuracy", "macro_f1"),
        main_metric="spearmanr" if regression else "accuracy", tsv_keys=keys, tsv_label=label_column,
        label_column=label_column, label_ids=False, submit_label_names=True, dataset=path.name)


__all__ = ["task_from_files"]
