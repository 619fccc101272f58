"""Output folders a run can trust: one run at a time, never one that holds the run's own inputs, and an old
result replaced only once the new one exists.

- :class:`OutputLock` holds an exclusive ``fcntl.flock`` on ``<parent>/.<name>.lock`` for as long as a command writes
  ``<parent>/<name>`` (main process only). The lock file sits next to the folder, not inside it, because a finished
  folder is replaced whole. The holder deletes it (and the parent folders it created) when it lets go, so a run,
  refused or not, leaves no lock file; a run that locked a file deleted meanwhile sees that the path no longer names
  its file and tries again, so two runs never hold two different files. The operating system releases the lock when
  the process ends, even on ``kill -9`` (the file then stays, harmless, until the next run lets go of it).
- :func:`check_output_dir` refuses a folder that is a file, lies under a file, is not writable, is not empty
  (without ``overwrite_output_dir``) or is, or holds, one of the run's input paths.
- :class:`RunFolder` is for runs that fill their folder over time (pre-training, fine-tuning): an old folder is moved
  aside when the run starts and deleted only when it succeeds, so a failed or killed run leaves it as
  ``.old-<name>-*`` next to the new one. A run refused part-way (a non-finite loss) with nothing worth keeping
  abandons its folder: what it wrote is deleted and the old folder put back.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not protected from each other
    fcntl = None


InputPaths = str | Path | list[str] | None  # a parameter's value: a path, several, or none


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _holds(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_dir(output_dir: str | Path | None, overwrite: bool, hint: str = "",
                     inputs: Mapping[str, InputPaths] | None = None) -> Path:
    """The output folder, checked before anything is read or written.

    Refused: no folder given; a file, or a path under a file; a place this process cannot write; a non-empty folder
    without ``overwrite_output_dir``; a folder that is or holds one of ``inputs`` (``{parameter: local path}``;
    values that are not existing local paths, such as Hub ids, are ignored), since writing the run's results there
    would replace what the run reads.
    """
    if output_dir is None:
        raise InputError("`output_dir` is required.")
    output = Path(output_dir)
    existing = _first_existing(output.absolute())
    if existing != output.absolute() and not existing.is_dir():
        raise InputError(f"`output_dir` {str(output)!r} lies under {str(existing)!r}, which is a file, not a folder.")
    if output.exists() and not output.is_dir():
        raise InputError(f"`output_dir` {str(output)!r} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"`output_dir` {str(output)!r}: {str(existing)!r} is not writable by this user.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise InputError(f"`output_dir` {str(output)!r} exists and is not empty; pass `overwrite_output_dir` to "
                         f"replace it{hint}.")
    resolved = output.resolve()
    for name, values in (inputs or {}).items():
        for value in values if isinstance(values, list | tuple) else [values]:
            if value is not None and Path(value).exists() and _holds(resolved, Path(value).resolve()):
                raise InputError(f"`output_dir` {str(output)!r} holds `{name}` {str(value)!r}, an input of this "
                                 "run: writing the results there would replace it. Choose another `output_dir`.")
    return output


def _same_file(file, path: Path) -> bool:
    """Whether the open ``file`` is still the one ``path`` names (not deleted or replaced since it was opened)."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(file.fileno())
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def lock_file(output_dir: str | Path) -> Path:
    output = Path(output_dir).absolute()
    return output.parent / f".{output.name}.lock"


class OutputLock:
    """An exclusive, non-blocking lock on an output folder (see the module's docstring)."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.path = lock_file(output_dir)
        self._file = None
        self._created: Path | None = None

    def acquire(self) -> None:
        """Take the lock, or raise an :class:`InputError` when another run holds it."""
        if fcntl is None or self._file is not None:
            return
        self._created = _first_existing(self.path.parent)  # parents made here go again at release
        while self._file is None:
            # Made again each try: a run letting go of a lock nearby removes the empty parent folders it made.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                file = open(self.path, "a")  # noqa: SIM115 - held open for as long as the lock
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                raise InputError(f"`output_dir` {str(self.output_dir)!r} is in use by another run (it holds "
                                 f"{str(self.path)!r}); wait for it to finish or choose another `output_dir`."
                                 ) from None
            if _same_file(file, self.path):
                self._file = file
            else:  # its holder deleted it as we opened it: lock the file the path names now
                file.close()

    def release(self) -> None:
        """Let go of the lock, deleting its file (while still holding it) and the empty parents ``acquire`` made."""
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)
        self._file.close()  # closing the file releases the lock
        self._file = None
        folder = self.path.parent
        while folder != self._created and folder != folder.parent:
            try:
                folder.rmdir()  # only while empty: never the folder a successful run wrote
            except OSError:
                break
            folder = folder.parent

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def locked_output_dir(output_dir: str | Path, overwrite: bool, accelerator=None, hint: str = "",
                      inputs: Mapping[str, InputPaths] | None = None) -> Iterator[Path]:
    """Check ``output_dir``, hold its lock (on the main process; every rank gets the same error when another run
    holds it) and check the folder again under the lock, since another run may have filled it meanwhile."""
    lock = OutputLock(output_dir)

    def acquire() -> None:
        check_output_dir(output_dir, overwrite, hint, inputs)  # nothing, not even the lock file, before this
        lock.acquire()
        try:
            check_output_dir(output_dir, overwrite, hint, inputs)
        except InputError:  # another run filled the folder meanwhile: let go, leaving no lock file
            lock.release()
            raise

    if accelerator is None:
        acquire()
    else:
        from .ranks import computed_on_main

        computed_on_main(accelerator, acquire)
    try:
        yield Path(output_dir)
    finally:
        lock.release()


def locks_output_dir(*input_names: str) -> Callable[[Callable], Callable]:
    """Decorate a command ``fn(args)`` to run while holding ``args.output_dir``'s lock, after ``args.check()``;
    ``input_names`` are the arguments holding paths the command reads (which its output folder must not hold)."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def locked(args, *rest, **kwargs):
            from accelerate import PartialState
            from accelerate.utils import parse_flag_from_env

            args.check()  # bad values first: nothing, not even the lock file, is written before
            inputs = {name: getattr(args, name) for name in input_names}
            # The process state as the command's Accelerator() will find it (ACCELERATE_USE_CPU: gloo on CPU).
            state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
            with locked_output_dir(args.output_dir, args.overwrite_output_dir, state, inputs=inputs):
                return command(args, *rest, **kwargs)

        return locked

    return decorate


class RunFolder:
    """A folder that a run fills over time. :meth:`start` moves a non-empty old folder aside (``.old-<name>-*``
    next to it) and creates a fresh one; :meth:`commit` deletes the old folder once the run has succeeded;
    :meth:`abandon` undoes :meth:`start` for a run refused part-way (a non-finite loss)."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir)
        self.previous: Path | None = None
        self.started = self._existed = False
        self._made: Path | None = None  # the first folder start() created (the run folder or a parent of it)

    def start(self) -> Path:
        self._existed = self.path.is_dir()
        if self.path.is_dir() and any(self.path.iterdir()):
            aside = Path(tempfile.mkdtemp(prefix=f".old-{self.path.name}-", dir=self.path.parent))
            self.previous = aside / self.path.name
            os.replace(self.path, self.previous)
        existing = _first_existing(self.path.absolute())
        self._made = None if existing == self.path.absolute() else existing / self.path.absolute().relative_to(
            existing).parts[0]
        self.path.mkdir(parents=True, exist_ok=True)
        self.started = True
        return self.path

    def commit(self) -> None:
        if self.previous is not None:
            shutil.rmtree(self.previous.parent, ignore_errors=True)
            self.previous = None

    def abandon(self) -> None:
        """Delete what this run wrote (the folder, and the parents ``start`` made) and put the old folder back:
        the place is as it was before the run."""
        if not self.started:
            return
        shutil.rmtree(self._made or self.path, ignore_errors=True)
        if self.previous is not None:
            os.replace(self.previous, self.path)
            shutil.rmtree(self.previous.parent, ignore_errors=True)
            self.previous = None
        elif self._existed:  # it was there, empty
            self.path.mkdir()
        self.started = False


__all__ = ["OutputLock", "RunFolder", "check_output_dir", "lock_file", "locked_output_dir", "locks_output_dir"]
