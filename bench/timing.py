"""Side-by-side timing: candidates run interleaved in one process, so machine noise hits them alike."""

from __future__ import annotations

import statistics

from magic_bert.timing import interleaved_medians, interleaved_times  # noqa: F401  (the benches import them here)


def paired_ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of one candidate's time over another's in the same round: when round k of both does the
    same work (the same child), this cancels what varies from round to round."""
    return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator], strict=True))


def print_table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
