"""Optimizer-step cost of MAGIC-A and MAGIC-AT divided by SPOS, and their peak memory. Goal: time ratio <= 1.4.

Each variant lives in its own process (a worker started once), as a real training run does: its own supernet (same
seed, so the same initial weights), AdamW and allocator. The parent asks the workers for one step each in turn,
alternating the order every round (``timing.interleaved_times``), so machine noise hits them alike while no variant
pays for another's memory traffic (four 60m supernets in one process slowed the variants that allocate most: MAGIC-AT /
MAGIC-T 1.50 in one process, 1.31 apart). All variants see the same masked batch. A step is the recipe's own code:
``strategy.next_arch(step)`` → the child's forward → the recipe's loss terms (MLM, plus for MAGIC-A/AT the anchor
forward under ``no_grad`` in ``--anchor_precision`` and the alignment terms) → ``accelerator.backward`` → gradient
clipping → ``AdamW.step``. SPOS and MAGIC-A share a seed and sampler class, so they train the same child at every
step; MAGIC-AT walks one op at a time from the same start, so its children differ (the table shows their mean size;
``--with_magic_t`` times that walk without the anchor). The periodic anchor evaluation (every ``--anchor_eval_steps``,
50 by default) is not included: it is a held-out pass, not part of the step.

Memory: each worker reports its peak resident set size (``VmHWM`` of /proc/self/status, per process) after all its
steps, and that peak minus the RSS just before its first step (the weights are already there; the growth is
activations, gradients and AdamW state). Allocator caching makes it an upper bound on live tensors.

    python bench/sampler_overhead.py [--hidden 256 --layers 8 --vocab 8000 --batch 8 --seq 128 --rounds 20]
    python bench/sampler_overhead.py --preset 60m --max_params 60e6 --batch 4 --rounds 10 --warmup 1 --with_magic_t
    python bench/sampler_overhead.py --preset 60m ... --anchor_precision training   # the anchor in fp32, as before

``--preset`` takes a search space of the package (``60m``: hidden 512, 24 layers, vocabulary 30,522, NAS-BERT's
ops); ``--hidden`` / ``--layers`` / ``--vocab`` override its values. ``--max_params`` / ``--min_params`` go to every
variant's strategy as the pre-training flags do: SPOS draws in that band and the anchor is the default anchor inside
it (its size and the mean child size are printed). ``--anchor_precision`` is pre-training's (default auto: bf16 where
the device has bf16 kernels, which is what the table's anchor line says).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
from magic_bert.cli import arg, check_budget_order, parse_one, positive, run
from magic_bert.configuration_magic_bert import PRESETS
from magic_bert.errors import InputError, invalid_value
from magic_bert.training.arguments import (
    PRECISIONS,
    LossArguments,
    PretrainArguments,
    StrategyArguments,
    check_precision,
)
from magic_bert.training.losses import build_loss_terms
from magic_bert.training.strategies import build_strategy

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_times, paired_ratio, print_table  # noqa: E402
from workers import Worker  # noqa: E402

VARIANTS = ("spos", "magic-a", "magic-at")
CONTROL = "magic-t"  # --with_magic_t: MAGIC-AT's children without its anchor
MASK_ID = 4  # any id below 5: the random tokens are drawn from [5, vocab)


def make_batch(vocab: int, batch: int, seq: int, seed: int) -> dict[str, torch.Tensor]:
    """A BERT-style masked batch: 15% of positions carry a label and have their input replaced by [MASK]."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(5, vocab, (batch, seq), generator=generator)
    masked = torch.rand((batch, seq), generator=generator) < 0.15
    return {"input_ids": tokens.masked_fill(masked, MASK_ID), "attention_mask": torch.ones_like(tokens),
            "labels": tokens.masked_fill(~masked, -100)}


class Variant:
    """One supernet + AdamW + sampler strategy training with the recipe's step; calling it runs one step."""

    def __init__(self, name: str, config: MagicBertConfig, batch: dict, accelerator: Accelerator, seed: int,
                 max_params: float | None = None, min_params: float | None = None, anchor_precision: str = "auto"):
        torch.manual_seed(seed)  # same initial weights in every variant
        space = config.search_space
        self.model = accelerator.prepare(MagicBertSupernetForMaskedLM(config).train())
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        # The recipe's defaults (alignment weights, temperature, clipping) and its budget flags.
        self.args = PretrainArguments(sampler=name, max_params=max_params, min_params=min_params,
                                      anchor_precision=anchor_precision)
        self.strategy = build_strategy(self.args.group(StrategyArguments), space, seed)
        self.loss = build_loss_terms(self.args.group(LossArguments),
                                     (lambda: self.strategy.anchor_arch) if self.strategy.uses_anchor else None,
                                     device=accelerator.device)
        self.batch, self.accelerator, self.space = batch, accelerator, space
        self.steps, self.aligned, self.child_params = 0, 0, 0

    def __call__(self) -> None:
        arch = self.strategy.next_arch(self.steps)
        self.steps += 1
        self.child_params += self.space.num_params(arch)
        self.aligned += self.strategy.uses_anchor and arch != self.strategy.anchor_arch  # else alignment is zero
        losses = self.loss.forward(self.model, self.batch, arch, self.unwrapped, self.accelerator.autocast)
        self.accelerator.backward(losses["loss"])
        if self.args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def figures(self) -> dict:
        """What the table shows besides time: steps, aligned steps, mean child size, the anchor, the supernet."""
        anchor = self.strategy.anchor_arch
        return {"steps": self.steps, "aligned": self.aligned, "mean_child_params": self.child_params / self.steps,
                "anchor_arch": anchor, "anchor_params": None if anchor is None else self.space.num_params(anchor),
                "anchor_precision": self.loss.anchor_precision,
                "supernet_params": self.unwrapped.num_parameters()}


def build_variant(name: str, settings: dict) -> Variant:
    """One variant, in its worker process (``workers.serve``)."""
    args = SamplerOverheadArguments(**settings)
    config = args.config()
    return Variant(name, config, make_batch(config.vocab_size, args.batch, args.seq, args.seed),
                   Accelerator(cpu=True), args.seed, args.max_params, args.min_params, args.anchor_precision)


SMALL = {"hidden_size": 256, "num_hidden_layers": 8, "vocab_size": 8000}  # the settings without --preset


@dataclass
class SamplerOverheadArguments:
    preset: str | None = arg(None, "A search space preset of the package (e.g. 60m); default: hidden 256, 8 layers, "
                                   "vocab 8000 with the default ops.", choices=sorted(PRESETS))
    hidden: int | None = arg(None, "Hidden size (overrides the preset's).")
    layers: int | None = arg(None, "Supernet layers (overrides the preset's).")
    vocab: int | None = arg(None, "Vocabulary size (overrides the preset's).")
    max_params: float | None = arg(None, "Every strategy samples children with at most this many parameters (as "
                                         "--max_params of pre-training); the anchor is the default one inside.")
    min_params: float | None = arg(None, "... and at least this many.")
    anchor_precision: str = arg("auto", "MAGIC-A/AT: the anchor forward's precision (as pre-training's flag).",
                                choices=list(PRECISIONS))
    batch: int = arg(8, "Batch size.")
    seq: int = arg(128, "Sequence length.")
    rounds: int = arg(20, "Timed rounds.")
    warmup: int = arg(3, "Untimed rounds first.")
    seed: int = arg(0, "Seed.")
    with_magic_t: bool = arg(False, "Also time MAGIC-T: the same children as MAGIC-AT (its walk) without the anchor, "
                                    "so MAGIC-AT / MAGIC-T is the anchor's cost at equal children (a short run's "
                                    "walk may train larger or smaller children than SPOS's draws).")

    def check(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise InputError(f"`preset` {self.preset!r} is not a preset; choose one of {sorted(PRESETS)}.")
        check_precision(self.anchor_precision, "anchor_precision")
        positive(hidden=self.hidden, layers=self.layers, vocab=self.vocab, batch=self.batch, seq=self.seq,
                 rounds=self.rounds)
        check_budget_order("max_params", self.max_params, "min_params", self.min_params)

    def config(self) -> MagicBertConfig:
        """The preset (or the small default space) with the explicit sizes on top."""
        given = {"hidden_size": self.hidden, "num_hidden_layers": self.layers, "vocab_size": self.vocab}
        overrides = {key: value for key, value in given.items() if value is not None}
        if self.preset is None:
            overrides = SMALL | overrides
            return MagicBertConfig(**overrides, max_position_embeddings=max(self.seq, 128))
        position = max(self.seq, PRESETS[self.preset]["max_position_embeddings"])
        return MagicBertConfig.from_preset(self.preset, **overrides, max_position_embeddings=position)


def sampler_overhead(args: SamplerOverheadArguments) -> dict:
    """Time and measure the variants (one worker process each) and print the table; returns the figures."""
    args.check()
    with invalid_value("`hidden` / `layers` / `vocab` with the `preset`'s ops"):
        config = args.config()
    # An infeasible band fails here, naming the flags, before any worker is started.
    build_strategy(PretrainArguments(max_params=args.max_params, min_params=args.min_params).group(StrategyArguments),
                   config.search_space, args.seed)
    names = (*VARIANTS, CONTROL) if args.with_magic_t else VARIANTS
    workers = {name: Worker(build_variant, name, asdict(args)) for name in names}
    samples = interleaved_times(workers, rounds=args.rounds, warmup=args.warmup)
    times = {name: statistics.median(values) for name, values in samples.items()}
    # Round k of SPOS and MAGIC-A trains the same child, as does round k of MAGIC-T and MAGIC-AT: their per-round
    # ratios cancel the child's size, which moves a step's time far more than the anchor does.
    pairs = [("magic-a", "spos")] + ([("magic-at", CONTROL)] if args.with_magic_t else [])
    paired = {f"{a}/{b}": paired_ratio(samples, a, b) for a, b in pairs}
    figures = {name: worker.finish() for name, worker in workers.items()}
    report(args, config, times, figures, paired)
    return {"times": times, "samples": samples, "paired_ratios": paired, "figures": figures,
            "anchor_params": figures["magic-a"]["anchor_params"],
            "mean_child_params": {name: f["mean_child_params"] for name, f in figures.items()}}


def main(argv: list[str] | None = None) -> dict:
    return run(sampler_overhead, parse_one(SamplerOverheadArguments, argv, __doc__))


def report(args: SamplerOverheadArguments, config: MagicBertConfig, times: dict[str, float],
           figures: dict[str, dict], paired: dict[str, float]) -> None:
    """The table (time, memory and mean child size per variant), the anchor and the goal line."""
    spos = figures["spos"]
    rows = []
    for name, f in figures.items():
        growth = f["peak_kb"] - f["start_kb"]
        rows.append((name, f"{times[name] * 1e3:.1f}", f"{times[name] / times['spos']:.3f}",
                     f"{f['aligned']}/{f['steps']}", f"{f['mean_child_params'] / 1e6:.2f}",
                     f"{f['peak_kb'] / 1024:.0f}", f"{f['peak_kb'] / spos['peak_kb']:.3f}", f"{growth / 1024:.0f}",
                     f"{growth / (spos['peak_kb'] - spos['start_kb']):.3f}"))
    headers = ("variant", "step ms", "time/SPOS", "aligned steps", "mean child M params", "peak RSS MiB", "peak/SPOS",
               "step growth MiB", "growth/SPOS")
    anchored = figures["magic-a"]
    print(f"preset={args.preset} hidden={config.hidden_size} layers={config.num_hidden_layers} "
          f"vocab={config.vocab_size} batch={args.batch} seq={args.seq} max_params={args.max_params} "
          f"min_params={args.min_params} threads={torch.get_num_threads()} rounds={args.rounds} supernet params="
          f"{spos['supernet_params']:,} (one process per variant)")
    print(f"anchor (the default: the largest BERT-like child in budget; no checks here, so it stays) "
          f"{anchored['anchor_params'] / 1e6:.2f}M params, forward in {anchored['anchor_precision']} "
          f"(--anchor_precision {args.anchor_precision}): {anchored['anchor_arch']}")
    print_table(rows, headers)
    worst = max(times["magic-a"], times["magic-at"]) / times["spos"]
    print(f"worst time ratio MAGIC-A/AT over SPOS: {worst:.3f} (goal <= 1.4): {'met' if worst <= 1.4 else 'NOT met'}")
    if CONTROL in times:
        print(f"anchor cost at equal children: MAGIC-AT / MAGIC-T = {times['magic-at'] / times[CONTROL]:.3f}")
    print("paired (median over rounds of the ratio within a round, same child): "
          + ", ".join(f"{name} = {ratio:.3f}" for name, ratio in paired.items()))


if __name__ == "__main__":
    main()
