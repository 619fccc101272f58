"""The study's human-readable outputs: the table of study.md, its sentences (primary comparison, intervention,
anchors) and the figures. Numbers come from :mod:`magic_bert.analysis.study`; nothing here computes a statistic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .interference import KINDS
from .plots import plot_rank_scatter, plot_similarity_matrix, plot_similarity_vs_m, short_arch

if TYPE_CHECKING:
    from .study import StudySettings


def format_summary(summary: dict, settings: StudySettings) -> str:
    """The report's table: mean ± std over seeds."""
    last = settings.num_layers - 1

    def ms(stats, digits=3, sign="+"):
        return f"{stats['mean']:{sign}.{digits}f} ± {stats['std']:.{digits}f}"

    def point(row, kind, digits=3):
        return f"{row[f'{kind}_mean']:.{digits}f} ± {row[f'{kind}_std']:.{digits}f}"

    lines = [f"| sampler | seeds | Kendall τ | τ, informative pairs | Spearman ρ | grad. sim. m=1 | grad. sim. "
             f"m={last} | input sim. m=1 | input sim. m={last} | ρ(input sim., grad. sim.) | children's inherited "
             "loss |", "|" + "---|" * 11]
    for sampler, entry in summary.items():
        first, final = entry["similarity_vs_m"][0], entry["similarity_vs_m"][-1]
        name = f"{sampler} (exploratory)" if entry["exploratory"] else sampler
        tau, informative, rho = (ms(entry[key]) if entry[key] else "–"
                                 for key in ("kendall_tau", "kendall_tau_informative", "spearman_rho"))
        lines.append(f"| {name} | {len(entry['final_eval_loss']['values'])} | {tau} | {informative} | {rho} | "
                     f"{point(first, 'gradient')} | {point(final, 'gradient')} | {point(first, 'input', 4)} | "
                     f"{point(final, 'input', 4)} | {ms(entry['input_gradient_spearman'], 2)} | "
                     f"{ms(entry['mean_inherited_loss'], sign='')} |")
    return "\n".join(lines)


def primary_text(primary: dict | None, informative: int, children: int) -> str:
    if primary is None:
        return ""
    text = (f"\n\nPrimary comparison ({primary['a']} − {primary['b']}, paired by seed, 95 % bootstrap interval over "
            f"children and seeds): Δτ = {primary['all_pairs']['difference']:+.3f} "
            f"[{primary['all_pairs']['low']:+.3f}, {primary['all_pairs']['high']:+.3f}].")
    if "informative_pairs" in primary:
        part = primary["informative_pairs"]
        text += (f" On the {informative} of {children * (children - 1) // 2} pairs not ordered like the reference by "
                 f"every run: Δτ = {part['difference']:+.3f} [{part['low']:+.3f}, {part['high']:+.3f}].")
    return text


def intervention_text(intervention: dict | None) -> str:
    if intervention is None:
        return ""

    def cell(stats):
        if stats is None:
            return "–"
        interval = f" [{stats['low']:+.4f}, {stats['high']:+.4f}]" if stats["low"] is not None else ""
        return f"{stats['mean']:+.4f}{interval}"

    rows = [*intervention["by_m"], {"m": "all", **intervention["all_m"]}]
    return (f"\n\nIntervention ({intervention['second']} − {intervention['first']}, paired by seed over "
            f"{len(intervention['seeds'])} seeds, 95 % t interval):\n\n| m | Δ grad. sim. | Δ input sim. | "
            "Δ output sim. |\n|---|---|---|---|\n"
            + "\n".join(f"| {row['m']} | " + " | ".join(cell(row.get(kind)) for kind in KINDS) + " |"
                        for row in rows))


def write_figures(output: Path, runs: list[dict], summary: dict, settings: StudySettings,
                   standalone_losses: list[float], matrix_children: list[list[str]]) -> None:
    layer, op = settings.interference_layer, settings.interference_op
    n_seeds = len(settings.seeds)
    plot_similarity_vs_m({s: e["similarity_vs_m"] for s, e in summary.items()}, output / "similarity_vs_m.png",
                         f"{op} at layer {layer}: similarity between children differing in m layers "
                         f"(mean ± std over {n_seeds} seeds)")
    first_seed = settings.seeds[0]
    series = {}
    for run in runs:
        if run["seed"] == first_seed:
            if standalone_losses:
                series[f"{run['sampler']} (τ={run['kendall_tau']:+.2f})"] = (run["inherited_losses"],
                                                                              standalone_losses)
            labels = [short_arch(arch) for arch in matrix_children]
            plot_similarity_matrix(run["similarity_matrix"]["gradient"], labels,
                                   output / f"similarity_matrix_{run['sampler']}.png",
                                   f"{run['sampler']} (seed {first_seed}): gradient cosine at {op}, layer {layer}")
    if series:  # none without a standalone reference
        plot_rank_scatter(series, output / "rank_scatter.png",
                          f"{len(standalone_losses)} children: supernets of seed {first_seed} vs standalone "
                          f"(mean of {len(settings.standalone_seeds)} seeds)")


def anchor_text(summary: dict, children: int) -> str:
    """Per anchor sampler: how often the anchor changed, and how good the final anchor is when trained alone."""
    lines = []
    for sampler, entry in summary.items():
        if "anchor_swap_rate" not in entry:
            continue
        rate, rank = entry["anchor_swap_rate"], entry.get("final_anchor_rank")
        line = f"{sampler}: the anchor changed at {rate['mean']:.0%} ± {rate['std']:.0%} of its checks"
        if rank is not None:
            ranks = ", ".join(str(value) for value in rank["values"])
            line += (f"; trained alone, the final anchor ranks {rank['mean']:.1f} of {children} children on average "
                     f"(1 = best; per seed {ranks})")
        lines.append(f"- {line}.")
    return "\n\nAnchors:\n\n" + "\n".join(lines) if lines else ""
