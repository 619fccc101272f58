"""The study's per-supernet caches: a finished supernet run is reused when its settings and vocabulary match, and its
measurements (inherited losses, interference) when they were taken on that very run with the same measuring settings.
Scoring every child on 1,024 held-out blocks costs minutes per supernet, so a rerun of the whole study (to add a
sampler, or to rebuild the report) repeats none of it."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from ..io_utils import write_json_atomic
from ..training.arguments import ADDED_LOSS_DEFAULTS, PretrainArguments

RUN_MARKER, MEASUREMENT = "study_run.json", "analysis.json"
# Options added after runs were recorded, with the value those runs had: a marker without one still matches.
# A study trains without a teacher, so its precision is moot: markers from before the option still match.
LEGACY_ARGS = {"anchor_precision": "training", "teacher_precision": "auto", **ADDED_LOSS_DEFAULTS}


def train_or_reuse_supernet(args: PretrainArguments, vocab_digest: str, log) -> Path:
    """Train (or reuse a finished run with identical settings and vocabulary) one supernet; returns its folder."""
    from ..training.recipe import pretrain

    folder = Path(args.output_dir)
    marker = folder / RUN_MARKER
    wanted = json.loads(json.dumps({"args": dataclasses.asdict(args), "vocab": vocab_digest}, default=str))
    if marker.is_file() and _recorded(marker) == wanted and (folder / "all_results.json").is_file():
        log(f"reusing {folder}")
        return folder
    (folder / MEASUREMENT).unlink(missing_ok=True)  # measured on the run about to be replaced
    start = time.perf_counter()
    pretrain(args)
    write_json_atomic(marker, wanted)
    log(f"trained {folder.name} in {time.perf_counter() - start:.0f} s")
    return folder


def _recorded(marker: Path) -> dict:
    """A run marker, with the options it predates filled in with the values its run had."""
    recorded = json.loads(marker.read_text())
    recorded["args"] = {**LEGACY_ARGS, **recorded["args"]}
    return recorded


def measure_or_reuse(folder: Path, measured_with: dict, measure: Callable[[], dict], log) -> dict:
    """``measure()`` of the supernet in ``folder``, or the stored result of a measurement with the same
    ``measured_with`` (what the numbers depend on besides the weights) on the same finished run."""
    key = json.loads(json.dumps({"run": json.loads((folder / RUN_MARKER).read_text()), **measured_with}, default=str))
    stored = folder / MEASUREMENT
    if stored.is_file():
        previous = json.loads(stored.read_text())
        if previous.get("measured_with") == key:
            log(f"measurements reused from {stored}")
            return previous["measurement"]
    measurement = measure()
    write_json_atomic(stored, {"measured_with": key, "measurement": measurement})
    return measurement
