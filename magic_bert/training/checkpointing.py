"""Training state and checkpoints that are never half-written.

``accelerator.save_state`` writes model, optimizer, scheduler, per-rank RNG states and every registered object
(here the ``TrainingState``: step, epoch position, the sampler strategy) into ``.tmp-step_N``; the folder is renamed to
``step_N`` only when every rank has finished. A folder named ``step_N`` is therefore complete, and ``latest`` is the
highest such N. (Multi-node runs need ``--output_dir`` on a filesystem all nodes share: the main process renames.)
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io_utils import replace_dir

CHECKPOINT_PATTERN = re.compile(r"^(step|epoch)_(\d+)$")
STATE_FILE = "custom_checkpoint_0.pkl"  # what accelerate writes for the first registered object


@dataclass
class TrainingState:
    """Everything besides model/optimizer/scheduler/RNG that a resumed run needs to continue exactly."""

    strategy: object = None  # the SamplerStrategy (its draws, anchor and history)
    completed_steps: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    train_tokens: int = 0  # non-padding tokens seen by all processes up to the last checkpoint
    train_seconds: float = 0.0
    # --streaming: each rank's complete passes over its share of the stream and micro-batches of the current pass
    stream_passes: list[int] = field(default_factory=list)
    stream_batches: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return {
            "completed_steps": self.completed_steps, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
            "train_tokens": self.train_tokens, "train_seconds": self.train_seconds,
            "strategy": None if self.strategy is None else self.strategy.state_dict(),
            "stream_passes": list(self.stream_passes), "stream_batches": list(self.stream_batches),
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("completed_steps", "epoch", "batches_in_epoch", "train_tokens", "train_seconds"):
            setattr(self, key, state[key])
        for key in ("stream_passes", "stream_batches"):  # absent from checkpoints of runs before --streaming
            setattr(self, key, [int(value) for value in state.get(key, [])])
        if self.strategy is not None:
            self.strategy.load_state_dict(state["strategy"])


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match.group(2)) if match and (path / STATE_FILE).is_file() else None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first (by the step recorded in the folder)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: (_recorded_step(p), p.name))


def _recorded_step(path: Path) -> int:
    info = path / "checkpoint.json"
    return json.loads(info.read_text())["completed_steps"] if info.is_file() else checkpoint_step(path)


def resolve_resume_path(resume_from_checkpoint: str | None, output_dir: str | None) -> Path | None:
    """The checkpoint folder to resume from, or a clear error when there is none (checked before any work)."""
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        found = list_checkpoints(output_dir) if output_dir else []
        if not found:
            raise InputError(f"`resume_from_checkpoint` latest: no complete checkpoint (step_N/ or epoch_N/) in "
                             f"`output_dir` {output_dir!r}.")
        return found[-1]
    path = Path(resume_from_checkpoint)
    if not path.is_dir() or not (path / STATE_FILE).is_file():
        raise InputError(f"`resume_from_checkpoint` {resume_from_checkpoint!r} is not a checkpoint folder written by "
                         "this recipe (expected a folder with the accelerate state); pass 'latest' or such a folder.")
    return path


def save_checkpoint(accelerator, output_dir: str | Path, name: str, completed_steps: int, save_extra=None,
                    total_limit: int | None = None, settings: dict | None = None) -> Path:
    """``accelerator.save_state`` into a temporary folder, renamed to ``name`` once complete (all ranks call this).

    ``save_extra(folder)`` (main process) adds files such as the tokenizer; ``settings`` (what a resume must not
    change) go into ``checkpoint.json`` with the step.
    """
    final = Path(output_dir) / name
    staging = Path(output_dir) / f".tmp-{name}"
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if save_extra is not None:
            save_extra(staging)
        (staging / "checkpoint.json").write_text(json.dumps({"completed_steps": completed_steps,
                                                             "settings": settings or {}}))
        replace_dir(staging, final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


__all__ = ["TrainingState", "list_checkpoints", "resolve_resume_path", "save_checkpoint"]
