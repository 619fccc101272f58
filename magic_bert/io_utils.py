"""Every write the package makes that a reader could see half-done goes through here: a file is written to a
temporary name next to it and renamed; a folder is filled under a unique staging name and moved in whole.

Replacing a finished folder is stage → move the old one aside → move the new one in → delete the old, so at every
moment one complete version exists.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .output_folder import check_output_dir  # noqa: F401 - where commands have long imported it


def _plain_file_mode(fd: int) -> None:
    """The mode ``open()`` would give (0666 less the umask), not mkstemp's private 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``text`` into ``path``, never half-written (a unique temporary name in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _plain_file_mode(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data, indent: int | None = 2) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def write_jsonl_atomic(path: str | Path, records: Iterable[dict]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in records))


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file; none when it does not exist."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """A matplotlib figure as a PNG, written under a temporary name and renamed; the figure is closed."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    _plain_file_mode(fd)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", **savefig_kwargs)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path


def staging_dir(final: str | Path) -> Path:
    """A new, uniquely named staging folder next to ``final`` (two runs never share one)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))


def replace_dir(staging: Path, final: str | Path) -> Path:
    """Move a complete ``staging`` folder to ``final``; an existing ``final`` is moved aside first and deleted only
    once the new one is in place."""
    final = Path(final)
    old = None
    if final.exists() or final.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent)) / final.name
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
    return final


def publish_dir(final: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(staging)`` fills a staging folder that then replaces ``final`` whole; on failure nothing changes."""
    staging = staging_dir(final)
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return replace_dir(staging, final)


__all__ = [
    "check_output_dir",
    "publish_dir",
    "read_jsonl",
    "replace_dir",
    "save_figure",
    "staging_dir",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_text_atomic",
]
