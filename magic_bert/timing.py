"""Side-by-side timing: candidates run interleaved in one process, so machine noise hits them alike (used by the
search's latency table and the benches)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _synchronize(device: str | torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved_times(candidates: dict[str, Callable[[], object]], rounds: int = 30, warmup: int = 3,
                      device: str | torch.device | None = None) -> dict[str, list[float]]:
    """Seconds of every timed call of each candidate (round by round), every candidate once per round and the order
    reversed every other round, so a burst of load on a shared machine falls on all of them."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            _synchronize(device)
            start = time.perf_counter()
            candidates[name]()
            _synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return samples


def interleaved_medians(candidates: dict[str, Callable[[], object]], rounds: int = 30, warmup: int = 3,
                        device: str | torch.device | None = None) -> dict[str, float]:
    """Median seconds per call of each candidate (:func:`interleaved_times`)."""
    samples = interleaved_times(candidates, rounds, warmup, device)
    return {name: statistics.median(times) for name, times in samples.items()}


__all__ = ["interleaved_medians", "interleaved_times"]
