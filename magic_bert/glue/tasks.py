"""The GLUE tasks as data: each :class:`GlueTask` record holds its columns, labels, metrics, the paper's column name,
its submission files and how its original ``.tsv`` files are laid out; every table, metric choice and submission
name elsewhere is derived from these records. Readers handle both the Hub's layout (``nyu-mll/glue``:
``sentence1``/``sentence2``/``label`` ...) and the original GLUE ``.tsv`` files (MRPC's ``Quality``/``#1 String``/
``#2 String``, CoLA without a header, MNLI's ``gold_label`` ...).

Adding a GLUE-like task = one record in ``TASKS`` (its reader too only when its file layout is unusual).

Every reader returns a ``datasets.Dataset`` with the task's text columns, ``label`` as integer ids (a float for
regression; ``-1`` where a test file has no label) and ``idx`` (the row number unless the file has an ``idx`` or
``index`` column, for submission files). Bad data raises :class:`~magic_bert.errors.InputError`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..errors import InputError, load_user_file

GLUE_HUB = "nyu-mll/glue"
FILE_TYPES = (".csv", ".tsv", ".json", ".jsonl")


@dataclass(frozen=True)
class GlueTask:
    name: str  # the Hub's config name (a user's task: the training file's stem)
    keys: tuple[str, ...]  # text columns (one or a pair)
    labels: tuple[str, ...]  # label names in id order; empty for regression
    folder: str  # the original GLUE folder name
    submission: tuple[str, ...]  # submission file per test split (MNLI: matched, mismatched)
    column: str  # the paper's column name in results tables
    metrics: tuple[str, ...] = ("accuracy",)  # names of `glue.metrics.METRICS`, in report order
    main_metric: str = "accuracy"  # the paper's one number for the task (of the first dev split)
    dev_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    # Original .tsv layout: column names for text and label (None: no header, use positions in `positions`).
    tsv_keys: tuple[str, ...] = ()
    tsv_label: str | None = "label"
    positions: tuple[int, ...] | None = None  # (label, text) positions of a header-less file (CoLA)
    label_column: str = "label"  # the label's column in Hub-layout (csv/json) files
    # GLUE files may write labels as ids, with -1 or nothing for "no label"; a user's labels are names only.
    label_ids: bool = True
    submit_label_names: bool = False  # submission files hold label names (else ids)
    score_range: tuple[float, float] | None = None  # regression predictions are clipped to it in submissions
    mnli_transfer: bool = False  # `init_from_mnli` starts this task from an MNLI checkpoint (the paper's practice)
    symmetric: bool = False  # a pair task whose label does not depend on the pair's order (`swap_pairs` applies)
    dataset: str = GLUE_HUB  # the model card's dataset

    def __post_init__(self) -> None:
        if self.main_metric not in self.metrics:  # a bug in a record, not bad input
            raise ValueError(f"{self.name}: main_metric {self.main_metric!r} is not among {self.metrics}.")

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    def metric_prefix(self, split: str) -> str:
        """Prefix of a dev split's metrics when the task has several (MNLI: ``matched_``, ``mismatched_``)."""
        return split.removeprefix("validation_") + "_" if len(self.dev_splits) > 1 else ""

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """Every key a dev result of this task may hold."""
        return tuple(dict.fromkeys([*self.metrics, *(self.metric_prefix(s) + m for s in self.dev_splits
                                                     for m in self.metrics)]))

    @property
    def dataset_name(self) -> str:
        return f"GLUE {self.name.upper()}" if self.dataset == GLUE_HUB else self.column


_PAIR = ("sentence1", "sentence2")
# In the paper's column order (the order `--task_name all` runs them in and every table shows them).
TASKS: dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "MNLI",
             ("MNLI-m.tsv", "MNLI-mm.tsv"), "MNLI", dev_splits=("validation_matched", "validation_mismatched"),
             test_splits=("test_matched", "test_mismatched"), tsv_keys=_PAIR, tsv_label="gold_label",
             submit_label_names=True),
    GlueTask("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "QQP", ("QQP.tsv",), "QQP",
             metrics=("f1", "accuracy"), main_metric="f1", tsv_keys=("question1", "question2"),
             tsv_label="is_duplicate", symmetric=True),
    GlueTask("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "QNLI", ("QNLI.tsv",), "QNLI",
             tsv_keys=("question", "sentence"), submit_label_names=True),
    GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"), "CoLA", ("CoLA.tsv",), "CoLA",
             metrics=("matthews_correlation",), main_metric="matthews_correlation", tsv_keys=("sentence",),
             positions=(1, 3)),
    GlueTask("sst2", ("sentence",), ("negative", "positive"), "SST-2", ("SST-2.tsv",), "SST-2",
             tsv_keys=("sentence",)),
    GlueTask("stsb", _PAIR, (), "STS-B", ("STS-B.tsv",), "STS-B", metrics=("pearson", "spearmanr"),
             main_metric="spearmanr", tsv_keys=_PAIR, tsv_label="score", score_range=(0.0, 5.0), mnli_transfer=True,
             symmetric=True),
    GlueTask("rte", _PAIR, ("entailment", "not_entailment"), "RTE", ("RTE.tsv",), "RTE", tsv_keys=_PAIR,
             submit_label_names=True, mnli_transfer=True),
    GlueTask("mrpc", _PAIR, ("not_equivalent", "equivalent"), "MRPC", ("MRPC.tsv",), "MRPC",
             metrics=("f1", "accuracy"), main_metric="f1", tsv_keys=("#1 String", "#2 String"), tsv_label="Quality",
             mnli_transfer=True, symmetric=True),
)}
PAPER_ORDER = tuple(TASKS)
# Original GLUE file names of each split.
ORIGINAL_FILES = {"train": "train.tsv", "validation": "dev.tsv", "validation_matched": "dev_matched.tsv",
                  "validation_mismatched": "dev_mismatched.tsv", "test": "test.tsv",
                  "test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"}


def get_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise InputError(f"Unknown GLUE task {name!r} (`task_name`); allowed: {list(PAPER_ORDER)} or 'all'.")
    return TASKS[name]


def _no_label(task: GlueTask, value) -> bool:
    text = "" if value is None else str(value).strip()
    return text == "" or (task.label_ids and text in ("-1", "-1.0"))


def parse_number(text: str) -> float | None:
    """``text`` as a number, or None when it is not one (the one place a user's text is parsed as a float)."""
    try:
        return float(text)
    except ValueError:  # float() of a string fails only this way
        return None


def _label_id(task: GlueTask, value, where: str) -> float | int:
    if _no_label(task, value):
        return -1.0 if task.is_regression else -1
    text = str(value).strip()
    if task.is_regression:
        score = parse_number(text)
        if score is None:
            raise InputError(f"{where}: {task.column} scores are numbers, got {value!r}.")
        return score
    if text in task.labels:
        return task.labels.index(text)
    if not task.label_ids:
        raise InputError(f"{where}: label {value!r} never occurs in the training file (`train_file`); its labels "
                         f"are {list(task.labels)}.")
    number = parse_number(text)
    if number is not None and number.is_integer() and 0 <= number < task.num_labels:
        return int(number)
    raise InputError(f"{where}: label {value!r} is outside {task.name}'s label set {list(task.labels)} "
                     f"(or ids 0..{task.num_labels - 1}).")


def _read_tsv(path: Path) -> list[list[str]]:
    # GLUE's .tsv files are not CSV-quoted (MRPC has bare quotes): split on tabs only. Some start with a BOM.
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def _parse_rows(path: Path) -> list:
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    return [{"__row__": row} for row in _read_tsv(path)]


def _rows_from_file(path: Path, what: str) -> list[dict]:
    """The file's records (a .tsv's rows as ``{"__row__": fields}``); bad files raise an InputError naming ``what``."""
    if not path.is_file():
        raise InputError(f"{what} does not exist.")
    if path.suffix.lower() not in FILE_TYPES:
        raise InputError(f"{what}: unsupported file type {path.suffix!r}; use .csv, .tsv, .json or .jsonl.")
    rows = load_user_file(what, lambda: _parse_rows(path))
    if not rows:
        raise InputError(f"{what} is empty.")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise InputError(f"{what} must hold records (objects with one value per column), one per example.")
    return rows


def table_records(path: Path, what: str) -> list[dict]:
    """Records of a file whose first row names the columns (csv, a .tsv with a header, json, jsonl)."""
    rows = _rows_from_file(path, what)
    if "__row__" not in rows[0]:
        return rows
    header, *rest = [row["__row__"] for row in rows]
    if not rest:
        raise InputError(f"{what} has a header and no rows.")
    for i, row in enumerate(rest, start=2):
        if len(row) != len(header):
            raise InputError(f"{what}, line {i} has {len(row)} fields, the header {len(header)}.")
    return [dict(zip(header, row, strict=True)) for row in rest]


def read_glue_file(task: GlueTask, path: str | Path, require_labels: bool = True,
                   what: str | None = None) -> datasets.Dataset:
    """One split of ``task`` from a local file in the Hub's column names or the original GLUE layout; ``what`` names
    the file in errors (default ``"<task>: data file '<path>'"``)."""
    path = Path(path)
    what = what or f"{task.name}: data file {str(path)!r}"
    rows = _rows_from_file(path, what)
    if "__row__" in rows[0]:
        rows = _tsv_records(task, [r["__row__"] for r in rows], what)
    columns = set(rows[0])
    if not set(task.keys) <= columns:
        layouts = f" (Hub layout) or {list(task.tsv_keys)} (original GLUE .tsv)" if task.dataset == GLUE_HUB else \
            ", as the training file has"
        raise InputError(f"{what} has columns {sorted(columns)}; it needs the text columns {list(task.keys)}{layouts}.")
    if require_labels and task.label_column not in columns:
        raise InputError(f"{what} has no label column ({task.label_column!r}, or {task.tsv_label!r} in the original "
                         "layout).")
    _check_texts(task, rows, what)
    data = {key: [str(r[key]) for r in rows] for key in task.keys}
    data["label"] = [_label_id(task, r.get(task.label_column), f"{what}, row {i + 1}") for i, r in enumerate(rows)]
    unlabelled = [i + 1 for i, r in enumerate(rows) if _no_label(task, r.get(task.label_column))]
    if require_labels and unlabelled:
        raise InputError(f"{what} has rows without a label (rows {unlabelled[:5]}).")
    data["idx"] = [int(r["idx"]) if str(r.get("idx", "")).strip().lstrip("-").isdigit() else i
                   for i, r in enumerate(rows)]
    features = datasets.Features({**{k: datasets.Value("string") for k in task.keys},
                                  "label": datasets.Value("float32" if task.is_regression else "int64"),
                                  "idx": datasets.Value("int64")})
    return datasets.Dataset.from_dict(data, features=features)


def _check_texts(task: GlueTask, rows: list[dict], what: str) -> None:
    """Every row has each text column; in a user's own file (not GLUE's, whose QQP holds a few empty questions)
    none is blank, which would train on an input of special tokens alone."""
    missing = next(((i + 1, key) for i, r in enumerate(rows) for key in task.keys if r.get(key) is None), None)
    if missing is not None:  # a short csv row or a record without the key: not an empty text
        raise InputError(f"{what}, row {missing[0]} has no {missing[1]!r} (a text column of the task).")
    if task.dataset == GLUE_HUB:
        return
    blank = [(i + 1, key) for i, r in enumerate(rows) for key in task.keys if not str(r[key]).strip()]
    if blank:
        raise InputError(f"{what}, row {blank[0][0]} has an empty {blank[0][1]!r} (a text column; "
                         f"{len(blank)} empty in all): fill or drop such rows.")


def _tsv_records(task: GlueTask, rows: list[list[str]], what: str) -> list[dict]:
    """Original GLUE .tsv rows → records with the Hub's column names (a .tsv in the Hub's layout passes through)."""
    header = rows[0]
    if task.positions is not None and not set(task.tsv_keys) <= set(header):  # CoLA train/dev: no header
        label_at, text_at = task.positions
        short = [i + 1 for i, row in enumerate(rows) if len(row) <= max(label_at, text_at)]
        if short:  # a missing sentence would otherwise become an empty one
            raise InputError(f"{what}, line {short[0]} has {len(rows[short[0] - 1])} fields; the "
                             f"original layout has the label in field {label_at + 1} and the "
                             f"{task.keys[0]!r} in field {text_at + 1}.")
        return [{task.keys[0]: row[text_at], task.label_column: row[label_at]} for row in rows]
    names = dict(zip(task.tsv_keys, task.keys, strict=True))
    records = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise InputError(f"{what}, line {i + 1} has {len(row)} fields, the header {len(header)}.")
        record = dict(zip(header, row, strict=True))
        out = {names.get(k, k): v for k, v in record.items() if k in names or k in task.keys}
        label = record.get(task.tsv_label) if task.tsv_label in record else record.get(task.label_column)
        if label is not None:
            out[task.label_column] = label
        # `idx` (the Hub's layout) or `index` (the original one); never QQP's `id`, a question-pair id.
        index = record.get("idx", record.get("index"))
        if index is not None:
            out["idx"] = index
        records.append(out)
    return records


def load_glue(task: GlueTask, train_file=None, validation_files=None, test_files=None, data_dir=None,
              require_test: bool = False) -> datasets.DatasetDict:
    """Train, dev (one or two for MNLI) and optional test splits: local files, a GLUE-layout folder, or the Hub."""
    files: dict[str, Path | None] = {}
    if data_dir is not None:
        folder = Path(data_dir) / task.folder
        if not folder.is_dir():
            raise InputError(f"{task.name}: `data_dir` {str(data_dir)!r} has no {task.folder}/ folder.")
        for split in ("train", *task.dev_splits, *task.test_splits):
            candidate = folder / ORIGINAL_FILES[split]
            files[split] = candidate if candidate.is_file() else None
    elif train_file is not None:
        files["train"] = Path(train_file)
        for split, path in zip(task.dev_splits, validation_files or [], strict=False):
            files[split] = Path(path)
        for split, path in zip(task.test_splits, test_files or [], strict=False):
            files[split] = Path(path)
    else:
        hub = load_user_file(f"`task_name` {task.name!r} ({task.dataset} on the Hub)",
                             lambda: datasets.load_dataset(task.dataset, task.name))
        return datasets.DatasetDict({k: v for k, v in hub.items()})
    missing = [s for s in ("train", *task.dev_splits) if files.get(s) is None]
    if missing:
        raise InputError(f"{task.name}: no data for the {missing} split(s); give `validation_file` (MNLI: matched "
                         "and mismatched) or a `data_dir` with the original GLUE files.")
    out = {}
    for split, path in files.items():
        if path is not None:
            out[split] = read_glue_file(task, path, not split.startswith("test"),
                                        _file_name(task, split, path, data_dir is not None))
    return datasets.DatasetDict(out)


def _file_name(task: GlueTask, split: str, path: Path, in_data_dir: bool) -> str:
    """A split's file as errors name it: the parameter it came from (a GLUE task's name first)."""
    parameter = "data_dir" if in_data_dir else "train_file" if split == "train" else \
        "test_file" if split.startswith("test") else "validation_file"
    prefix = f"{task.name}: " if task.dataset == GLUE_HUB else ""
    return f"{prefix}`{parameter}` {'file ' if in_data_dir else ''}{str(path)!r}"


__all__ = ["FILE_TYPES", "GLUE_HUB", "ORIGINAL_FILES", "PAPER_ORDER", "TASKS", "GlueTask", "get_task", "load_glue",
           "read_glue_file", "table_records"]
