"""PNG figures of the analysis: similarity heatmap, similarity versus m, rank scatter. Each is written to a
temporary name and renamed, so a figure on disk is always complete."""

from __future__ import annotations

from pathlib import Path

from ..io_utils import save_figure

SHORT = {"identity": "I", "mha": "M", "heads": "H", "ffn": "F", "conv": "C"}


def short_arch(arch: list[str]) -> str:
    """A compact label: ``['mha:2', 'ffn:256', 'identity']`` -> ``M2 F256 I``."""
    parts = []
    for op in arch:
        kind, _, size = op.partition(":")
        parts.append(SHORT.get(kind, kind) + size)
    return " ".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_similarity_matrix(matrix: list[list[float]], labels: list[str], path: str | Path, title: str) -> None:
    plt = _pyplot()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(2.5 + 0.55 * n, 1.8 + 0.5 * n))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i][j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def plot_similarity_vs_m(curves: dict[str, list[dict]], path: str | Path, title: str,
                         kinds: tuple[str, ...] = ("gradient", "input", "output")) -> None:
    """One panel per kind; one line (mean, with a ±std band) per entry of ``curves``. Each row holds ``m``,
    ``{kind}_mean`` and ``{kind}_std``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for label, rows in curves.items():
            rows = [r for r in rows if r.get(f"{kind}_mean") is not None]
            ms = [r["m"] for r in rows]
            mean = [r[f"{kind}_mean"] for r in rows]
            std = [r[f"{kind}_std"] or 0.0 for r in rows]
            ax.plot(ms, mean, "o-", ms=4, label=label)
            ax.fill_between(ms, [a - s for a, s in zip(mean, std, strict=True)],
                            [a + s for a, s in zip(mean, std, strict=True)], alpha=0.15)
        ax.set_xlabel("m (layers in which the two children differ)")
        ax.set_ylabel(f"{kind} cosine similarity")
        ax.set_title(kind if kind == "gradient" else f"shared op's {kind}s", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_rank_scatter(series: dict[str, tuple[list[float], list[float]]], path: str | Path, title: str) -> None:
    """Inherited-weight loss (x) against standalone loss (y), one colour per entry of ``series``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    for label, (supernet, standalone) in series.items():
        ax.scatter(supernet, standalone, s=18, alpha=0.75, label=label)
    ax.set_xlabel("held-out MLM loss with inherited supernet weights")
    ax.set_ylabel("held-out MLM loss trained alone")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


__all__ = ["plot_rank_scatter", "plot_similarity_matrix", "plot_similarity_vs_m", "short_arch"]
