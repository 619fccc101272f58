"""Power of the MAGIC vs SPOS study: how many children and supernet seeds detect a true +0.10 Kendall τ gain of
MAGIC-AT over SPOS at 80 % power, with the study's own test (a paired bootstrap interval above zero)?

A simulation fitted to the first study (docs/magic_study.md, the pilot):
- each child has a true quality ``q ~ N(0, 1)``;
- a standalone seed measures ``q + σ_r·e``; σ_r makes two seeds agree at the pilot's τ (0.60); the reference is the
  mean of ``--reference_seeds`` seeds;
- a supernet of sampler A and seed s scores ``q + σ_b·β_A + σ_w·ω_s``: ``β_A`` is the sampler's systematic error
  (the same for every seed; correlated ``--bias_correlation`` between samplers: both rank the same odd children
  badly), ``ω_s`` the seed's own noise. σ_b and σ_w are fitted to SPOS's pilot τ against its reference (mean and
  seed standard deviation, 16 children, 2 reference seeds);
- MAGIC-AT has a smaller σ_b, chosen so that its τ against the children's true quality is ``--effect`` higher
  (``--effect_against reference``: its expected τ against the study's reference).
Each simulated study runs ``magic_bert.analysis.rank_bootstrap.paired_tau_difference`` (the study's own analysis) and
counts a detection when the 95 % interval lies above zero.

    python bench/study_power.py                                     # the grid below, ~2 min on 2 CPU cores
    python bench/study_power.py --children 64 --seeds 8 --simulations 1000

Writes docs/results/magic_study_v2/power.json and prints a table.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from magic_bert.analysis.rank_bootstrap import paired_tau_difference, sign_matrix, weighted_tau
from magic_bert.cli import arg, parse_one, run
from magic_bert.errors import InputError
from magic_bert.io_utils import write_json_atomic

FIT_SIMULATIONS = 1000  # simulated pilots per grid point when fitting the seed share (its Monte Carlo noise is small)
OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "magic_study_v2" / "power.json"


@dataclass
class PowerArguments:
    children: str = arg("16,32,64,96", "Comma-separated numbers of children to try.")
    seeds: str = arg("3,5,8,12", "Comma-separated numbers of supernet seeds per sampler to try.")
    effect: float = arg(0.10, "The τ gain of MAGIC-AT over SPOS to detect.")
    effect_against: str = arg("truth", "truth: the gain in τ against the children's true quality (what a perfect "
                                       "reference would show; the study sees less through its noisy reference); "
                                       "reference: the gain in expected τ against the study's reference.",
                              choices=["truth", "reference"])
    pilot_tau: float = arg(0.639, "Pilot: SPOS's mean τ against the 2-seed reference (16 children, 3 seeds).")
    pilot_tau_std: float = arg(0.048, "Pilot: the standard deviation of τ over supernet seeds (pooled over SPOS, "
                                      "MAGIC-T and MAGIC-AT: 0.075, 0.025, 0.025; MAGIC-A's 0.164 left out).")
    pilot_reference_tau: float = arg(0.60, "Pilot: τ between two standalone seeds (1,000 steps each).")
    reference_tau: float | None = arg(None, "The planned reference's τ between two of its seeds (default: the "
                                            "pilot's); a longer standalone schedule raises it.")
    reference_seeds: int = arg(2, "Standalone seeds averaged into the planned reference (the pilot averaged 2).")
    bias_correlation: float = arg(0.5, "Correlation of the two samplers' systematic errors.")
    simulations: int = arg(400, "Simulated studies per cell.")
    bootstrap_samples: int = arg(400, "Bootstrap resamples per simulated study.")
    seed: int = arg(0, "Seed.")
    output: str = arg(str(OUTPUT), "The JSON written.")

    def check(self) -> None:
        for name in ("children", "seeds"):
            values = _ints(getattr(self, name))
            if not values or min(values) < (3 if name == "children" else 2):
                raise InputError(f"`{name}` must be comma-separated integers (children >= 3, seeds >= 2), got "
                                 f"{getattr(self, name)!r}.")
        for name in ("pilot_tau", "pilot_reference_tau", "reference_tau"):
            if getattr(self, name) is not None and not 0 < getattr(self, name) < 1:
                raise InputError(f"`{name}` must be in (0, 1), got {getattr(self, name)}.")
        if (not 0 <= self.bias_correlation <= 1 or self.simulations < 10 or self.bootstrap_samples < 100
                or self.reference_seeds < 1):
            raise InputError("`bias_correlation` must be in [0, 1], `simulations` >= 10, `bootstrap_samples` >= 100, "
                             "`reference_seeds` >= 1.")


def _ints(text: str) -> list[int]:
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    return [int(i) for i in items] if items and all(i.isdigit() for i in items) else []


def _population_tau(noise_var: float, reference_var: float) -> float:
    """Expected τ of two noisy copies of q (Greiner's relation for Gaussians: τ = 2/π · arcsin(corr))."""
    return 2 / math.pi * math.asin(1 / math.sqrt((1 + noise_var) * (1 + reference_var)))


def _noise_for_tau(tau: float, reference_var: float) -> float:
    """The supernet noise variance σ_b² + σ_w² whose expected τ against the reference is ``tau``."""
    corr = math.sin(math.pi * tau / 2)
    value = 1 / (corr ** 2 * (1 + reference_var)) - 1
    if value < 0:
        raise InputError(f"τ {tau:.3f} is above what a reference with this noise allows; lower `effect`.")
    return value


@dataclass
class Model:
    reference_var: float  # one standalone seed's noise variance σ_r²
    reference_seeds: int
    bias_var: dict  # per sampler: σ_b²
    seed_var: float  # σ_w², the same for both samplers
    bias_correlation: float

    def study(self, rng: np.random.Generator, children: int, seeds: int) -> tuple[np.ndarray, ...]:
        q = rng.standard_normal(children)
        reference = q + math.sqrt(self.reference_var / self.reference_seeds) * rng.standard_normal(children)
        common = rng.standard_normal(children)
        losses = []
        for sampler in ("magic-at", "spos"):
            own = rng.standard_normal(children)
            bias = math.sqrt(self.bias_correlation) * common + math.sqrt(1 - self.bias_correlation) * own
            losses.append(q + math.sqrt(self.bias_var[sampler]) * bias
                          + math.sqrt(self.seed_var) * rng.standard_normal((seeds, children)))
        return losses[0], losses[1], reference


def fit(args: PowerArguments, rng: np.random.Generator) -> Model:
    """σ_r from the pilot reference's agreement; σ_b² + σ_w² from SPOS's mean τ against it (2 seeds); their split
    from the seed spread (a grid over the seed share, 16 children and 3 seeds as in the pilot); MAGIC-AT's σ_b² so
    that its expected τ against the planned reference is ``effect`` above SPOS's."""
    pilot_var = 1 / math.sin(math.pi * args.pilot_reference_tau / 2) - 1
    total = _noise_for_tau(args.pilot_tau, pilot_var / 2)
    best = None
    for share in np.linspace(0.01, 0.99, 50):
        model = Model(pilot_var, 2, {"spos": total * (1 - share), "magic-at": 0.0}, total * share,
                      args.bias_correlation)
        spreads = []
        for _ in range(FIT_SIMULATIONS):
            _, spos, reference = model.study(rng, 16, 3)
            taus = weighted_tau(np.stack([sign_matrix(run) for run in spos]), sign_matrix(reference), np.ones((1, 16)))
            spreads.append(np.std(taus[0], ddof=1))
        gap = abs(float(np.mean(spreads)) - args.pilot_tau_std)
        if best is None or gap < best[0]:
            best = (gap, share)
    share = best[1]
    reference_var = 1 / math.sin(math.pi * (args.reference_tau or args.pilot_reference_tau) / 2) - 1
    against = 0.0 if args.effect_against == "truth" else reference_var / args.reference_seeds
    spos_tau = _population_tau(total, against)
    target = _noise_for_tau(spos_tau + args.effect, against)
    if target < total * share:
        raise InputError(f"A +{args.effect} gain over SPOS's expected τ {spos_tau:.3f} needs supernet noise "
                         f"{target:.3f}, below the seed noise alone ({total * share:.3f}); the model cannot express "
                         "it: lower `effect` or `pilot_tau_std`, or sharpen the reference (`reference_tau`, "
                         "`reference_seeds`).")
    return Model(reference_var, args.reference_seeds, {"spos": total * (1 - share),
                                                       "magic-at": target - total * share},
                 total * share, args.bias_correlation)


def power(model: Model, children: int, seeds: int, args: PowerArguments, rng: np.random.Generator) -> dict:
    hits, differences, widths = 0, [], []
    for index in range(args.simulations):
        magic, spos, reference = model.study(rng, children, seeds)
        result = paired_tau_difference(magic, spos, reference, samples=args.bootstrap_samples, seed=index)
        hits += result["low"] > 0
        differences.append(result["difference"])
        widths.append(result["high"] - result["low"])
    return {"children": children, "seeds": seeds, "power": hits / args.simulations,
            "mean_difference": float(np.mean(differences)), "sd_difference": float(np.std(differences)),
            "mean_interval_width": float(np.mean(widths))}


def main(argv: list[str] | None = None) -> dict:
    args = parse_one(PowerArguments, argv, __doc__)
    return run(_main, args)


def _main(args: PowerArguments) -> dict:
    args.check()
    rng = np.random.default_rng(args.seed)
    model = fit(args, rng)
    population = {s: _population_tau(model.bias_var[s] + model.seed_var, model.reference_var / model.reference_seeds)
                  for s in model.bias_var}  # expected τ against the planned reference
    truth = {s: _population_tau(model.bias_var[s] + model.seed_var, 0.0) for s in model.bias_var}
    cells = []
    for children in _ints(args.children):
        for seeds in _ints(args.seeds):
            cells.append(power(model, children, seeds, args, rng))
            cell = cells[-1]
            print(f"children {children:3d}  seeds {seeds:2d}  power {cell['power']:.2f}  mean Δτ "
                  f"{cell['mean_difference']:+.3f} ± {cell['sd_difference']:.3f}  95% interval width "
                  f"{cell['mean_interval_width']:.3f}", flush=True)
    report = {"arguments": asdict(args), "model": asdict(model), "expected_tau": population,
              "expected_tau_against_truth": truth, "cells": cells}
    write_json_atomic(Path(args.output), report)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
