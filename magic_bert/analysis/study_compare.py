"""One sampler in two studies that differ by one training setting (same children, reference and seeds): did the
setting change what the supernets rank? Used for the anchor's precision (``bench/magic_study.py --design
anchor-precision``: study v2's MAGIC-AT runs with the anchor in fp32 against the same runs with it in bf16)."""

from __future__ import annotations

import numpy as np

from .rank_bootstrap import paired_tau_difference


def compare_setting(base: dict, variant: dict, sampler: str, samples: int = 2000) -> dict:
    """``variant`` − ``base`` (two ``study.json`` reports) for ``sampler`` over the seeds both ran: per-seed τ, the
    paired mean Δτ with a bootstrap interval over children and seeds, the largest change of any child's inherited
    loss, and whether each seed kept the same anchor swaps and final arch."""
    if base["children"] != variant["children"]:
        raise ValueError("the two studies score different children: they cannot be compared child by child")
    runs = {name: {run["seed"]: run for run in report["runs"] if run["sampler"] == sampler}
            for name, report in (("base", base), ("variant", variant))}
    seeds = sorted(set(runs["base"]) & set(runs["variant"]))
    if len(seeds) < 2:
        raise ValueError(f"{sampler}: the studies share {len(seeds)} seed(s); a paired comparison needs 2")
    reference = [entry["eval_loss"] for entry in base["standalone"]]
    losses = {name: [runs[name][seed]["inherited_losses"] for seed in seeds] for name in runs}
    gaps = np.abs(np.asarray(losses["variant"]) - np.asarray(losses["base"]))
    per_seed = []
    for seed in seeds:
        before, after = runs["base"][seed]["train_results"], runs["variant"][seed]["train_results"]
        per_seed.append({"seed": seed, "tau_base": runs["base"][seed]["kendall_tau"],
                         "tau_variant": runs["variant"][seed]["kendall_tau"],
                         "anchor_swaps": [before.get("anchor_swaps"), after.get("anchor_swaps")],
                         "same_final_arch": before["eval_arch"] == after["eval_arch"]})
    return {"sampler": sampler, "seeds": seeds, "children": len(reference),
            "tau": paired_tau_difference(losses["variant"], losses["base"], reference, samples),
            "inherited_loss_change": {"max": float(gaps.max()), "mean": float(gaps.mean())},
            "per_seed": per_seed}


def comparison_text(comparison: dict, base_name: str, variant_name: str) -> str:
    """The comparison as Markdown: the per-seed table and one sentence with the interval."""
    tau = comparison["tau"]
    lines = [f"| seed | τ, {base_name} | τ, {variant_name} | anchor swaps | same final arch |", "|---|---|---|---|---|"]
    lines += [f"| {row['seed']} | {row['tau_base']:.3f} | {row['tau_variant']:.3f} | "
              f"{row['anchor_swaps'][0]} → {row['anchor_swaps'][1]} | {'yes' if row['same_final_arch'] else 'no'} |"
              for row in comparison["per_seed"]]
    change = comparison["inherited_loss_change"]
    lines += ["", f"{comparison['sampler']}, {variant_name} − {base_name}, paired by seed ({len(comparison['seeds'])} "
                  f"seeds, {comparison['children']} children): Δτ = {tau['difference']:+.4f} "
                  f"[{tau['low']:+.4f}, {tau['high']:+.4f}] ({tau['level']:.0%} bootstrap interval over children and "
                  f"seeds). Largest change of a child's inherited loss: {change['max']:.2e} nats (mean "
                  f"{change['mean']:.2e})."]
    return "\n".join(lines)


__all__ = ["compare_setting", "comparison_text"]
