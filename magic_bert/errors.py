"""The package's one error contract.

Library code raises :class:`InputError` for a bad value and names the parameter in backticks (`` `output_dir` ``);
the command line (:func:`magic_bert.cli.run`) prints the message alone, with those names as flags
(``--output_dir``), and exits. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PARAMETER = re.compile(r"`(\w+)`")


class InputError(ValueError):
    """Bad input, found before any work is done and before anything is written.

    A ``ValueError`` so that callers catching that keep working; only this type is caught at the command line.
    """

    def as_flags(self) -> str:
        """The message with the backticked parameter names written as command-line flags."""
        return as_flags(str(self))


def as_flags(text: str) -> str:
    """``text`` with its backticked parameter names (`` `output_dir` ``) written as command-line flags."""
    return _PARAMETER.sub(r"--\1", text)


def _known_load_failures() -> tuple[type[BaseException], ...]:
    """What loading a user's file (weights, JSON, text, tsv, a dataset) raises when the file itself is bad."""
    failures: list[type[BaseException]] = [OSError, json.JSONDecodeError, UnicodeDecodeError]
    try:
        from safetensors import SafetensorError

        failures.append(SafetensorError)
    except ImportError:  # pragma: no cover - safetensors is a dependency
        pass
    from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError

    failures += [DatasetGenerationError, DatasetNotFoundError]
    try:
        import yaml

        failures.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(failures)


def load_user_file(what: str, load: Callable[[], T]) -> T:
    """``load()``, with the known failures of loading a user's file turned into one :class:`InputError` that names
    ``what`` (the parameter and the file, e.g. ``"`train_file` 'a.csv'"``). Anything else propagates unchanged."""
    known = _known_load_failures()
    try:
        return load()
    except known as error:
        raise InputError(f"{what}: {_reason(error, known)}") from error


def _reason(error: BaseException, known: tuple[type[BaseException], ...]) -> str:
    """The first line of the innermost known failure behind ``error`` (datasets' "An error occurred while generating
    the dataset" hides the real one, e.g. a UnicodeDecodeError), with what is allowed where that is clear."""
    while isinstance(error.__cause__, known):
        error = error.__cause__
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    return reason + ("; the file must be UTF-8 text" if isinstance(error, UnicodeDecodeError) else "")


def check_weight_files(folder: str | Path, what: str) -> None:
    """Every ``*.safetensors`` file of a local model folder or checkpoint is complete (its header parses and covers
    the file): a garbage or truncated file is refused by name before any work, not met as a traceback mid-run. A Hub
    id (no such folder) is left to transformers' download checks."""
    from safetensors import safe_open

    def open_header(file: Path) -> None:
        with safe_open(file, framework="pt"):
            pass

    folder = Path(folder)
    for file in sorted(folder.glob("*.safetensors")) if folder.is_dir() else ():
        load_user_file(f"{what}: {str(file)!r} is not a complete safetensors file", partial(open_header, file))


def check_local_path(name: str | Path | None, what: str) -> None:
    """A value that can only be a local path names something that exists: else transformers takes it for a Hub id and
    reports a missing cache entry or download. Local: it starts with '.', '/' or '~', holds a backslash or more than
    one '/', or its parent folder exists here (``outputs/run``); a Hub id is ``name`` or ``org/name``."""
    if name is None or Path(name).exists():
        return
    text = str(name)
    parent = Path(text).parent
    if (text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1
            or (parent != Path(".") and parent.is_dir())):
        raise InputError(f"{what} is not a folder or file: no such path here (a Hub id has the form name or "
                         "org/name).")


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def check_config_json(name: str | Path | None, what: str) -> None:
    """A local config (a folder's ``config.json``, or the file named) holds a JSON object: transformers meets anything
    else with a ``TypeError`` deep inside ``from_pretrained``. Hub ids and missing paths are left to the loader."""
    if name is None:
        return
    path = Path(name)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        return
    # ``what`` names the path given; the file is named again only when it is that folder's config.json
    where = f"{what}: its config.json" if file != path else what
    values = load_user_file(where, lambda: json.loads(file.read_text()))
    if not isinstance(values, dict):
        raise InputError(f"{where} holds a JSON {_JSON_TYPES.get(type(values), 'value')}; a config must be a JSON "
                         "object of settings ({...}).")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")


def check_tokenizer_folder(name_or_path, what: str) -> None:
    """A local folder given as a tokenizer holds a tokenizer file (transformers would fail on an empty folder with
    an unrelated message about sentencepiece)."""
    path = Path(str(name_or_path))
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(f"{what} holds no tokenizer (none of {list(TOKENIZER_FILES)}); pass the folder your "
                         "tokenizer was saved to.")


@contextmanager
def invalid_value(what: str) -> Iterator[None]:
    """Turn the ``ValueError`` of a core validator (an arch, an op, a budget) into an :class:`InputError` naming
    ``what``. Use it around the one call that checks a user's value, never around a whole run."""
    try:
        yield
    except InputError:
        raise
    except ValueError as error:
        raise InputError(f"{what}: {error}") from error


__all__ = ["TOKENIZER_FILES", "InputError", "as_flags", "check_config_json", "check_local_path",
           "check_tokenizer_folder", "check_weight_files", "invalid_value", "load_user_file"]
