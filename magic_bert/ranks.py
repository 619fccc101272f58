"""Work done once on the main process, with every rank agreeing on the outcome: a result shared, or the same error.
An input error on the main process stops every rank with that message; a bug keeps its traceback on the main process
and is reported on the others, so no rank is left waiting in a collective."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from .errors import InputError

T = TypeVar("T")


def _run_on_main(accelerator: Accelerator, fn: Callable[[], T]) -> T | None:
    """``fn()`` on the main process. An :class:`InputError` there is re-raised on every rank; any other failure is
    re-raised with its traceback on the main process and reported on the others (instead of leaving them waiting in
    a collective)."""
    result, failure, report = None, None, None
    if accelerator.is_main_process:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - shared with the other ranks below, then re-raised
            failure, report = exc, ("input" if isinstance(exc, InputError) else "bug", str(exc))
    shared = [report]
    broadcast_object_list(shared)
    if shared[0] is not None:
        if failure is not None:
            raise failure
        kind, text = shared[0]
        raise InputError(text) if kind == "input" else RuntimeError(f"The main process failed: {text}")
    return result


def main_process_first(accelerator: Accelerator, fn: Callable[[], T]) -> T:
    """``fn()`` on the main process, then on the others (which then find its caches)."""
    result = _run_on_main(accelerator, fn)
    return result if accelerator.is_main_process else fn()


def computed_on_main(accelerator: Accelerator, fn: Callable[[], T]) -> T:
    """``fn()`` on the main process only, its (picklable) result sent to every rank."""
    shared = [_run_on_main(accelerator, fn)]
    broadcast_object_list(shared)
    return shared[0]


__all__ = ["computed_on_main", "main_process_first"]
