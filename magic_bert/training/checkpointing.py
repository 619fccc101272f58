"""Training state and checkpoints that are never half-written, never taken for complete when they are not, and
never run code when loaded.

``accelerator.save_state`` writes model, optimizer, scheduler and per-rank RNG states into a uniquely named staging
folder ``.tmp-step_N-*``; the main process adds ``training_state.json`` (the :class:`TrainingState`: step, epoch
position, the sampler strategy, as JSON rather than accelerate's pickled custom objects), ``checkpoint.json`` (the step
and the settings a resume must keep) and, last, ``manifest.json`` (every file's size and SHA-256), then renames the
folder to ``step_N`` once every rank has finished. ``latest`` is the highest step whose files match its manifest.
(Multi-node runs need ``--output_dir`` on a filesystem all nodes share: the main process renames.)

Accelerate still unpickles its RNG states (with ``torch.load(weights_only=True)``, which refuses arbitrary code, but
a checkpoint is a program's state all the same): resume only from checkpoints you trust. A file that weights-only
loading refuses, or a ``custom_checkpoint_N.pkl`` (accelerate's registered objects, which this recipe never saves and
accelerate would unpickle without that protection), is refused in one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from accelerate.utils import broadcast_object_list
from accelerate.utils import load as weights_only_load

from ..errors import InputError, invalid_value, load_user_file
from ..io_utils import replace_dir, staging_dir, write_json_atomic

CHECKPOINT_PATTERN = re.compile(r"^(step|epoch)_(\d+)$")
STATE_FILE = "training_state.json"
MANIFEST = "manifest.json"  # written last: a folder without it is not a checkpoint


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


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    write_json_atomic(folder / MANIFEST, {str(p.relative_to(folder)): {"size": p.stat().st_size,
                                                                        "sha256": file_digest(p)} for p in files})


def manifest_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint (a missing, truncated or changed file), or None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        return f"no readable {MANIFEST} ({type(error).__name__})"
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"] or file_digest(path) != expected["sha256"]:
            return f"{name} does not match its manifest (truncated or changed)"
    extra = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and p.name != MANIFEST and str(p.relative_to(folder)) not in manifest)
    return f"{', '.join(extra)} not in its manifest (added after the save)" if extra else None


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match.group(2)) if match and (path / MANIFEST).is_file() else None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoints in ``output_dir`` (folders named step_N or epoch_N with a manifest), oldest first (by the step
    recorded in the folder). Their files are verified only when one is chosen (:func:`resolve_resume_path`)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: (_recorded_step(p), p.name))


def _recorded_step(path: Path) -> int:
    info = path / "checkpoint.json"
    return json.loads(info.read_text())["completed_steps"] if info.is_file() else checkpoint_step(path)


def resolve_resume_path(resume_from_checkpoint: str | None, output_dir: str | None) -> Path | None:
    """The checkpoint folder to resume from, verified against its manifest, or a clear error (before any work).

    ``latest`` skips, with a warning, newer checkpoints whose files do not match their manifest."""
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        skipped = []
        for candidate in reversed(list_checkpoints(output_dir) if output_dir else []):
            problem = manifest_problem(candidate)
            if problem is None:
                return check_pickled_files(candidate)
            print(f"warning: skipping checkpoint {candidate}: {problem}")
            skipped.append(f"{candidate.name}: {problem}")
        raise InputError(f"`resume_from_checkpoint` latest: no complete checkpoint (step_N/ or epoch_N/ with a "
                         f"matching {MANIFEST}) in `output_dir` {output_dir!r}"
                         + (f"; damaged: {'; '.join(skipped)}." if skipped else "."))
    path = Path(resume_from_checkpoint)
    if not path.is_dir() or not (path / MANIFEST).is_file():
        raise InputError(f"`resume_from_checkpoint` {resume_from_checkpoint!r} is not a checkpoint folder written by "
                         f"this recipe (expected a folder with {MANIFEST}); pass 'latest' or such a folder.")
    problem = manifest_problem(path)
    if problem is not None:
        raise InputError(f"`resume_from_checkpoint` {resume_from_checkpoint!r} is damaged: {problem}.")
    return check_pickled_files(path)


def check_pickled_files(path: Path) -> Path:
    """``path``, once its pickled files are ones this recipe could have saved: no ``custom_checkpoint_N.pkl``, and RNG
    states that weights-only loading accepts (accelerate skips an unreadable one in silence: the resumed run would
    then not continue exactly). Their manifest may have been recomputed, so it proves nothing here."""
    foreign = sorted(p.name for p in path.glob("custom_checkpoint_*.pkl"))
    if foreign:
        raise InputError(f"`resume_from_checkpoint` {str(path)!r} holds {', '.join(foreign)}: this recipe saves no "
                         "custom objects (accelerate would unpickle them), so it is not one of its checkpoints; "
                         "remove the file(s) or pass another checkpoint.")
    for file in sorted(path.glob("random_states_*.pkl")):
        _check_weights_only(path, file)
    return path


def _check_weights_only(checkpoint: Path, file: Path) -> None:
    try:
        weights_only_load(file, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise InputError(f"`resume_from_checkpoint` {str(checkpoint)!r}: {file.name} holds an object that safe "
                         "(weights-only) loading refuses, so it is not a file this recipe saved; resume only from "
                         "checkpoints you trust.") from error
    except (EOFError, RuntimeError) as error:  # a truncated or garbled file (its manifest recomputed to match)
        raise InputError(f"`resume_from_checkpoint` {str(checkpoint)!r}: {file.name} cannot be read ({error}); "
                         "resume from an earlier checkpoint.") from error


def load_checkpoint(accelerator, path: Path, state: TrainingState) -> None:
    """Model, optimizer, scheduler and RNG states through accelerate; the training state from its JSON, checked and
    loaded first (its archs belong to the run's space; nothing of the run folder is touched before a checkpoint has
    loaded whole)."""
    values = load_user_file(f"`resume_from_checkpoint` {str(path)!r} ({STATE_FILE})",
                            lambda: json.loads((path / STATE_FILE).read_text()))
    _check_state(path, values)
    with invalid_value(f"`resume_from_checkpoint` {str(path)!r}: {STATE_FILE}"):  # e.g. an arch of another space
        state.load_state_dict(values)
    try:
        accelerator.load_state(str(path))
    except pickle.UnpicklingError:
        for file in sorted(path.glob("*.bin")):  # accelerate does not say which file it refused: find it
            _check_weights_only(path, file)
        raise
    except FileNotFoundError as error:  # a file its manifest no longer lists
        raise InputError(f"`resume_from_checkpoint` {str(path)!r} lacks {Path(error.filename or '?').name}; "
                         "resume from an earlier checkpoint.") from error


_COUNTS = ("completed_steps", "epoch", "batches_in_epoch", "train_tokens")


def _check_state(path: Path, values) -> None:
    """The training state's counters are non-negative integers, its seconds a non-negative number, and its step the
    one the checkpoint was written at: a resumed run trusts them to cut its log and drop later checkpoints."""
    what = f"`resume_from_checkpoint` {str(path)!r}: {STATE_FILE}"
    if not isinstance(values, dict):
        raise InputError(f"{what} must hold an object, got {type(values).__name__}.")
    for key in _COUNTS:
        value = values.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{what} has {key} {value!r}; it must be a non-negative integer.")
    seconds = values.get("train_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise InputError(f"{what} has train_seconds {seconds!r}; it must be a non-negative number.")
    info = path / "checkpoint.json"
    if info.is_file():
        recorded = load_user_file(f"`resume_from_checkpoint` {str(path)!r}", lambda: json.loads(info.read_text()))
        step = recorded.get("completed_steps") if isinstance(recorded, dict) else None
        if step is not None and step != values["completed_steps"]:
            raise InputError(f"{what} says step {values['completed_steps']}, but the checkpoint was written at step "
                             f"{step}; resume from a checkpoint this recipe wrote.")


_STAGING = re.compile(r"\.tmp-(step|epoch)_\d+-[A-Za-z0-9_]{8}")  # staging_dir's mkdtemp names, nothing else


def remove_dead_staging(output_dir: str | Path) -> list[Path]:
    """Delete the staging folders (``.tmp-step_N-*``, ``.tmp-epoch_N-*``) of checkpoints whose run was killed before
    the rename. Only the run holding the output folder's lock calls this, so none of them is being written."""
    dead = [p for p in Path(output_dir).glob(".tmp-*") if p.is_dir() and _STAGING.fullmatch(p.name)]
    for folder in dead:
        shutil.rmtree(folder)
    return dead


def save_checkpoint(accelerator, output_dir: str | Path, name: str, state: TrainingState, save_extra=None,
                    total_limit: int | None = None, settings: dict | None = None) -> Path:
    """``accelerator.save_state`` into a unique staging folder, renamed to ``name`` once complete (all ranks call
    this).

    ``save_extra(folder)`` (main process) adds files such as the tokenizer; ``settings`` (what a resume must not
    change) go into ``checkpoint.json`` with the step.
    """
    final = Path(output_dir) / name
    staging = [staging_dir(final) if accelerator.is_main_process else None]
    broadcast_object_list(staging)  # every rank writes its RNG state into the same folder
    staging = staging[0]
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if save_extra is not None:
            save_extra(staging)
        write_json_atomic(staging / STATE_FILE, state.state_dict())
        write_json_atomic(staging / "checkpoint.json", {"completed_steps": state.completed_steps,
                                                        "settings": settings or {}})
        write_manifest(staging)
        replace_dir(staging, final)
        remove_dead_staging(output_dir)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


__all__ = ["TrainingState", "list_checkpoints", "load_checkpoint", "remove_dead_staging", "resolve_resume_path",
           "save_checkpoint"]
