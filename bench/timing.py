"""Side-by-side timing: candidates run interleaved in one process, so machine noise hits them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_times(candidates: dict[str, Callable[[], object]], rounds: int = 30, warmup: int = 3
                      ) -> dict[str, list[float]]:
    """Seconds of every timed call of each candidate (round by round), alternating the order every round."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def interleaved_medians(candidates: dict[str, Callable[[], object]], rounds: int = 30, warmup: int = 3
                        ) -> dict[str, float]:
    """Median seconds per call of each candidate, alternating the order every round."""
    samples = interleaved_times(candidates, rounds, warmup)
    return {name: statistics.median(times) for name, times in samples.items()}


def paired_ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of one candidate's time over another's in the same round: when round k of both does the
    same work (the same child), this cancels what varies from round to round."""
    return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator], strict=True))


def print_table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
