"""The eight GLUE tasks: their columns, labels, submission files, and readers for both the Hub's layout
(``nyu-mll/glue``: ``sentence1``/``sentence2``/``label`` ...) and the original GLUE ``.tsv`` files
(MRPC's ``Quality``/``#1 String``/``#2 String``, CoLA without a header, MNLI's ``gold_label`` ...).

Every reader returns a ``datasets.Dataset`` with the Hub's column names, ``label`` as the Hub's integer ids (a float
for STS-B; ``-1`` where a test file has no label) and ``idx`` (the row index, for submission files).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import datasets


@dataclass(frozen=True)
class GlueTask:
    name: str  # the Hub's config name
    keys: tuple[str, ...]  # text columns (one or a pair)
    labels: tuple[str, ...]  # label names in id order; empty for regression
    folder: str  # the original GLUE folder name
    submission: tuple[str, ...]  # submission file per dev/test split (MNLI: matched, mismatched)
    dev_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    # Original .tsv layout: column names for text and label (None: no header, use positions in `positions`).
    tsv_keys: tuple[str, ...] = ()
    tsv_label: str | None = "label"
    positions: tuple[int, ...] | None = None  # (label, text) positions of a header-less file (CoLA)

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)


TASKS: dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("cola", ("sentence",), ("unacceptable", "acceptable"), "CoLA", ("CoLA.tsv",),
             tsv_keys=("sentence",), positions=(1, 3)),
    GlueTask("sst2", ("sentence",), ("negative", "positive"), "SST-2", ("SST-2.tsv",), tsv_keys=("sentence",)),
    GlueTask("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "MRPC", ("MRPC.tsv",),
             tsv_keys=("#1 String", "#2 String"), tsv_label="Quality"),
    GlueTask("stsb", ("sentence1", "sentence2"), (), "STS-B", ("STS-B.tsv",),
             tsv_keys=("sentence1", "sentence2"), tsv_label="score"),
    GlueTask("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "QQP", ("QQP.tsv",),
             tsv_keys=("question1", "question2"), tsv_label="is_duplicate"),
    GlueTask("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "MNLI",
             ("MNLI-m.tsv", "MNLI-mm.tsv"), dev_splits=("validation_matched", "validation_mismatched"),
             test_splits=("test_matched", "test_mismatched"), tsv_keys=("sentence1", "sentence2"),
             tsv_label="gold_label"),
    GlueTask("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "QNLI", ("QNLI.tsv",),
             tsv_keys=("question", "sentence")),
    GlueTask("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "RTE", ("RTE.tsv",),
             tsv_keys=("sentence1", "sentence2")),
)}
# The paper's column order (and the order `--task_name all` runs them in).
PAPER_ORDER = ("mnli", "qqp", "qnli", "cola", "sst2", "stsb", "rte", "mrpc")
# Original GLUE file names of each split.
ORIGINAL_FILES = {"train": "train.tsv", "validation": "dev.tsv", "validation_matched": "dev_matched.tsv",
                  "validation_mismatched": "dev_mismatched.tsv", "test": "test.tsv",
                  "test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"}


def get_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise ValueError(f"Unknown GLUE task {name!r}; allowed: {list(PAPER_ORDER)} or 'all'.")
    return TASKS[name]


def _label_id(task: GlueTask, value, where: str) -> float | int:
    if value is None or str(value).strip() in ("", "-1", "-1.0"):
        return -1.0 if task.is_regression else -1
    if task.is_regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: STS-B scores are numbers, got {value!r}.") from None
    text = str(value).strip()
    if text in task.labels:
        return task.labels.index(text)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and number.is_integer() and 0 <= number < task.num_labels:
        return int(number)
    raise ValueError(f"{where}: label {value!r} is outside {task.name}'s label set {list(task.labels)} "
                     f"(or ids 0..{task.num_labels - 1}).")


def _read_tsv(path: Path) -> list[list[str]]:
    # GLUE's .tsv files are not CSV-quoted (MRPC has bare quotes): split on tabs only. Some start with a BOM.
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def _rows_from_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        text = path.read_text()
        if suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    if suffix == ".tsv":
        rows = _read_tsv(path)
        return [{"__row__": row} for row in rows]
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .json or .jsonl.")


def read_glue_file(task: GlueTask, path: str | Path, require_labels: bool = True) -> datasets.Dataset:
    """One split of ``task`` from a local file in the Hub's column names or the original GLUE layout."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{task.name}: data file {str(path)!r} does not exist.")
    rows = _rows_from_file(path)
    if not rows:
        raise ValueError(f"{task.name}: data file {str(path)!r} is empty.")
    if "__row__" in rows[0]:
        rows = _tsv_records(task, [r["__row__"] for r in rows], path)
    columns = set(rows[0])
    hub_keys = set(task.keys)
    if not hub_keys <= columns:
        raise ValueError(f"{task.name}: {path} has columns {sorted(columns)}; it needs the text columns "
                         f"{list(task.keys)} (Hub layout) or {list(task.tsv_keys)} (original GLUE .tsv).")
    has_label = "label" in columns
    if require_labels and not has_label:
        raise ValueError(f"{task.name}: {path} has no label column ('label', or {task.tsv_label!r} in the original "
                         "layout).")
    data = {key: [str(r[key]) for r in rows] for key in task.keys}
    data["label"] = [_label_id(task, r.get("label"), f"{path}, row {i + 1}") for i, r in enumerate(rows)]
    if require_labels and any(x == -1 for x in data["label"]):
        raise ValueError(f"{task.name}: {path} has rows without a label.")
    data["idx"] = [int(r["idx"]) if str(r.get("idx", "")).strip().lstrip("-").isdigit() else i
                   for i, r in enumerate(rows)]
    features = datasets.Features({**{k: datasets.Value("string") for k in task.keys},
                                  "label": datasets.Value("float32" if task.is_regression else "int64"),
                                  "idx": datasets.Value("int64")})
    return datasets.Dataset.from_dict(data, features=features)


def _tsv_records(task: GlueTask, rows: list[list[str]], path: Path) -> list[dict]:
    """Original GLUE .tsv rows → records with the Hub's column names."""
    header = rows[0]
    if task.positions is not None and not set(task.tsv_keys) <= set(header):  # CoLA train/dev: no header
        label_at, text_at = task.positions
        return [{task.keys[0]: row[text_at] if len(row) > text_at else "", "label": row[label_at]} for row in rows]
    names = {tsv: hub for tsv, hub in zip(task.tsv_keys, task.keys, strict=True)}
    records = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise ValueError(f"{task.name}: {path}, line {i + 1} has {len(row)} fields, the header {len(header)}.")
        record = dict(zip(header, row, strict=True))
        out = {names.get(k, k): v for k, v in record.items() if k in names or k in task.keys}
        label = record.get(task.tsv_label) if task.tsv_label in record else record.get("label")
        if label is not None:
            out["label"] = label
        if "index" in record or "id" in record:
            out["idx"] = record.get("index", record.get("id"))
        records.append(out)
    return records


def load_glue(task: GlueTask, train_file=None, validation_files=None, test_files=None, data_dir=None,
              require_test: bool = False) -> datasets.DatasetDict:
    """Train, dev (one or two for MNLI) and optional test splits: local files, a GLUE-layout folder, or the Hub."""
    files: dict[str, Path | None] = {}
    if data_dir is not None:
        folder = Path(data_dir) / task.folder
        if not folder.is_dir():
            raise ValueError(f"{task.name}: --data_dir {data_dir} has no {task.folder}/ folder.")
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
        hub = datasets.load_dataset("nyu-mll/glue", task.name)
        return datasets.DatasetDict({k: v for k, v in hub.items()})
    missing = [s for s in ("train", *task.dev_splits) if files.get(s) is None]
    if missing:
        raise ValueError(f"{task.name}: no data for the {missing} split(s); give --validation_file (MNLI: matched "
                         "and mismatched) or a --data_dir with the original GLUE files.")
    out = {}
    for split, path in files.items():
        if path is not None:
            out[split] = read_glue_file(task, path, require_labels=not split.startswith("test"))
    return datasets.DatasetDict(out)


__all__ = ["ORIGINAL_FILES", "PAPER_ORDER", "TASKS", "GlueTask", "get_task", "load_glue", "read_glue_file"]
