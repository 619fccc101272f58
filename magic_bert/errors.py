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
from typing import TypeVar

T = TypeVar("T")

_PARAMETER = re.compile(r"`(\w+)`")


class InputError(ValueError):
    """Bad input, found before any work is done and before anything is written.

    A ``ValueError`` so that callers catching that keep working; only this type is caught at the command line.
    """

    def as_flags(self) -> str:
        """The message with the backticked parameter names written as command-line flags."""
        return _PARAMETER.sub(r"--\1", str(self))


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
    try:
        return load()
    except _known_load_failures() as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{what}: {first_line}") from error


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


__all__ = ["InputError", "invalid_value", "load_user_file"]
