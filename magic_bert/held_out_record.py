"""What text a pre-training run held out, recorded in its all_results.json (``held_out_text``), so that the commands
that score the supernet's children (search, interference, rank correlation) score on that same text by default, and
the validation blocks its anchor checks used are the ones they skip.

    "held_out_text": {"dataset_name": null, "train_file": null, "validation_file": null, ...,
                      "synthetic_documents": 16000, "seed": 42, "max_seq_length": 128,
                      "description": "the embedded synthetic text (800 held-out documents of ...)"}

The fields are the run's data options (local paths made absolute), its seed and block length: enough to build the
held-out text again exactly as pre-training built it (the embedded corpus, a validation file, the first percent of a
training file or dataset, the first documents of a stream).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import datasets

from .data import describe_synthetic, load_held_out_text, load_text_datasets, synthetic_validation
from .errors import InputError

RESULTS_KEY = "held_out_text"
# In a checkpoint (no all_results.json yet): the record and the anchor's skipped blocks, so `--supernet step_N` works.
CHECKPOINT_SCORING = "held_out.json"
# The data options (DataArguments) that decide the held-out text.
DATA_FIELDS = ("dataset_name", "dataset_config_name", "train_file", "validation_file", "validation_split_percentage",
               "streaming", "held_out_documents", "text_column_name")
# The type of each field (None allowed but for the seed and the block length).
_TYPES = {"dataset_name": str, "dataset_config_name": str, "train_file": str, "validation_file": str,
          "text_column_name": str, "validation_split_percentage": int, "held_out_documents": int,
          "synthetic_documents": int, "streaming": bool, "seed": int, "max_seq_length": int}


def record_held_out(data, seed: int, max_seq_length: int) -> dict:
    """The record of a run's held-out text; ``data`` is its DataArguments, ``seed`` the run's (the embedded corpus is
    drawn with it), ``max_seq_length`` its block length."""
    record = {name: getattr(data, name) for name in DATA_FIELDS}
    for name in ("train_file", "validation_file"):
        if record[name] is not None:
            record[name] = str(Path(record[name]).resolve())
    if data.dataset_name is None and data.train_file is None:
        record["synthetic_documents"] = data.synthetic_documents
    record |= {"seed": seed, "max_seq_length": max_seq_length}
    return record | {"description": describe(record)}


def is_record(record: object) -> bool:
    """``record`` is what :func:`record_held_out` writes (a hand-edited one may not be)."""
    if not isinstance(record, dict) or record.get("seed") is None or record.get("max_seq_length") is None:
        return False
    return all(record.get(name) is None or isinstance(record[name], kind) for name, kind in _TYPES.items())


def describe(record: dict) -> str:
    """The recorded held-out text, in words (for messages)."""
    if record.get("validation_file") is not None:
        return f"`validation_file` {record['validation_file']!r}"
    if record.get("synthetic_documents") is not None:
        return describe_synthetic(record["synthetic_documents"], record["seed"])
    if record.get("train_file") is not None:
        source = f"`train_file` {record['train_file']!r}"
    else:
        config = record.get("dataset_config_name")
        source = f"`dataset_name` {record.get('dataset_name')!r}" + (f" ({config})" if config else "")
    if record.get("streaming"):
        count = record.get("held_out_documents")
        return f"the first {count:,} documents of {source}" if count else f"the validation split of {source}"
    percent = record.get("validation_split_percentage")
    if record.get("train_file") is not None:
        return f"the first {percent}% of {source}"
    return f"{source}: its validation split, else the first {percent}% of its train split"


def load_recorded(record: dict, what: str) -> datasets.Dataset:
    """The held-out text of ``record``, built again as pre-training built it; ``what`` names the run in messages
    (e.g. "`supernet` 'outputs/tiny'"). A recorded file that is gone is refused by name."""
    needed = record.get("validation_file") or record.get("train_file")
    if needed is not None and not Path(needed).is_file():
        raise InputError(f"{what} was validated on {describe(record)}, and {needed!r} is no longer there; pass "
                         "`validation_file` (or `dataset_name`) to score on other text.")
    if record.get("validation_file") is not None:
        return load_held_out_text(validation_file=record["validation_file"])
    if record.get("synthetic_documents") is not None:
        return synthetic_validation(record["synthetic_documents"], record["seed"])
    if record.get("streaming"):
        from .streaming import load_streaming_text

        return load_streaming_text(SimpleNamespace(**{name: record.get(name) for name in DATA_FIELDS}))["validation"]
    return load_text_datasets(record.get("dataset_name"), record.get("dataset_config_name"), record.get("train_file"),
                              None, record.get("validation_split_percentage", 5), seed=record["seed"])["validation"]


__all__ = ["CHECKPOINT_SCORING", "DATA_FIELDS", "RESULTS_KEY", "describe", "is_record", "load_recorded",
           "record_held_out"]
