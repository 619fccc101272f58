"""Optimizer-step cost of MAGIC-A and MAGIC-AT divided by SPOS, and their peak memory. Goal: time ratio <= 1.4.

Each variant has its own supernet (same seed, so the same initial weights) and AdamW; all see the same masked batch.
A step is the recipe's own code: ``strategy.next_arch(step)`` → the child's forward → the recipe's loss terms (MLM,
plus for MAGIC-A/AT the anchor forward under ``no_grad`` and the alignment terms) → ``accelerator.backward`` → gradient
clipping → ``AdamW.step``. The variants run interleaved in one process (``timing.interleaved_medians``). SPOS and
MAGIC-A share a seed and sampler class, so they train the same child at every step; MAGIC-AT walks one op at a time
from the same start, so its children differ (the table shows their mean size; ``--with_magic_t`` times that walk
without the anchor). The periodic anchor evaluation (every ``--anchor_eval_steps``, 50 by default) is not included:
it is a held-out pass, not part of the step.

Memory: each variant then runs ``--mem_steps`` steps alone in a fresh subprocess (``--variant NAME``, internal) and
reports its peak resident set size (``VmHWM`` of /proc/self/status), and that peak minus the RSS just before the
first step (the model's weights are already there; the growth is activations, gradients and AdamW state). RSS is
process-wide, so the fresh process is what makes it per-variant; allocator caching makes it an upper bound on live
tensors. Not ``ru_maxrss``: Linux carries that across exec, so a child would report the parent's peak.

    python bench/sampler_overhead.py [--hidden 256 --layers 8 --vocab 8000 --batch 8 --seq 128 --rounds 20]
    python bench/sampler_overhead.py --preset 60m --max_params 60e6 --batch 4 --rounds 6 --warmup 1

``--preset`` takes a search space of the package (``60m``: hidden 512, 24 layers, vocabulary 30,522, NAS-BERT's
ops); ``--hidden`` / ``--layers`` / ``--vocab`` override its values. ``--max_params`` / ``--min_params`` go to every
variant's strategy as the pre-training flags do: SPOS draws in that band and the anchor is the default anchor inside
it (its size and the mean child size are printed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
from magic_bert.cli import arg, check_budget_order, parse_one, positive, run
from magic_bert.configuration_magic_bert import PRESETS
from magic_bert.errors import InputError, invalid_value
from magic_bert.training.arguments import LossArguments, PretrainArguments, StrategyArguments
from magic_bert.training.losses import StepContext, build_loss_terms
from magic_bert.training.strategies import build_strategy

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_medians, print_table  # noqa: E402

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
                 max_params: float | None = None, min_params: float | None = None):
        torch.manual_seed(seed)  # same initial weights in every variant
        space = config.search_space
        self.model = accelerator.prepare(MagicBertSupernetForMaskedLM(config).train())
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        # The recipe's defaults (alignment weights, temperature, clipping) and its budget flags.
        self.args = PretrainArguments(sampler=name, max_params=max_params, min_params=min_params)
        self.strategy = build_strategy(self.args.group(StrategyArguments), space, seed)
        self.loss = build_loss_terms(self.args.group(LossArguments),
                                     (lambda: self.strategy.anchor_arch) if self.strategy.uses_anchor else None)
        self.batch, self.accelerator, self.space = batch, accelerator, space
        self.steps, self.aligned, self.child_params = 0, 0, 0

    def __call__(self) -> None:
        arch = self.strategy.next_arch(self.steps)
        self.steps += 1
        self.child_params += self.space.num_params(arch)
        self.aligned += self.strategy.uses_anchor and arch != self.strategy.anchor_arch  # else alignment is zero
        outputs = self.model(**self.batch, arch=arch, output_hidden_states=self.loss.needs_hidden_states(arch))
        losses = self.loss(StepContext(self.batch, outputs, self.unwrapped, arch, self.accelerator.autocast))
        self.accelerator.backward(losses["loss"])
        if self.args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def status_kb(field: str) -> int:
    """A kB figure of /proc/self/status: VmRSS (now) or VmHWM (this address space's peak, fresh after exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (this measurement needs Linux).")


def measure_memory(name: str, make: Callable[[str], Variant], steps: int) -> None:
    """Internal (--variant): run one variant alone and print its RSS figures as one JSON line."""
    variant = make(name)
    start = status_kb("VmRSS")
    for _ in range(steps):
        variant()
    print(json.dumps({"peak_kb": status_kb("VmHWM"), "start_kb": start}))


def memory_in_subprocess(name: str, argv: list[str]) -> dict[str, int]:
    done = subprocess.run([sys.executable, __file__, *argv, "--variant", name], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    batch: int = arg(8, "Batch size.")
    seq: int = arg(128, "Sequence length.")
    rounds: int = arg(20, "Timed rounds.")
    warmup: int = arg(3, "Untimed rounds first.")
    mem_steps: int = arg(5, "Steps per memory subprocess (0: skip memory).")
    seed: int = arg(0, "Seed.")
    variant: str | None = arg(None, "Internal: one memory measurement in a fresh process.",
                              choices=[*VARIANTS, CONTROL])
    with_magic_t: bool = arg(False, "Also time MAGIC-T: the same children as MAGIC-AT (its walk) without the anchor, "
                                    "so MAGIC-AT / MAGIC-T is the anchor's cost at equal children (a short run's "
                                    "walk may train larger or smaller children than SPOS's draws).")

    def check(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise InputError(f"`preset` {self.preset!r} is not a preset; choose one of {sorted(PRESETS)}.")
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

    def flags(self) -> list[str]:
        """The flags a memory subprocess needs to rebuild the same variants."""
        names = ("preset", "hidden", "layers", "vocab", "max_params", "min_params", "batch", "seq", "mem_steps", "seed")
        return [f"--{name}={getattr(self, name)}" for name in names if getattr(self, name) is not None]


def sampler_overhead(args: SamplerOverheadArguments) -> dict | None:
    """Time (and measure) the variants and print the table; returns the figures (None for a --variant run)."""
    args.check()
    with invalid_value("`hidden` / `layers` / `vocab` with the `preset`'s ops"):
        config = args.config()
    # An infeasible band fails here, naming the flags, before any supernet is built.
    build_strategy(PretrainArguments(max_params=args.max_params, min_params=args.min_params).group(StrategyArguments),
                   config.search_space, args.seed)
    batch = make_batch(config.vocab_size, args.batch, args.seq, args.seed)
    accelerator = Accelerator(cpu=True)

    def make(name: str) -> Variant:
        return Variant(name, config, batch, accelerator, args.seed, args.max_params, args.min_params)

    if args.variant is not None:
        measure_memory(args.variant, make, args.mem_steps)
        return None

    names = (*VARIANTS, CONTROL) if args.with_magic_t else VARIANTS
    variants = {name: make(name) for name in names}
    times = interleaved_medians(variants, rounds=args.rounds, warmup=args.warmup)
    memory = {name: memory_in_subprocess(name, args.flags()) for name in names} if args.mem_steps > 0 else {}
    report(args, config, variants, times, memory)
    anchor = variants["magic-a"].strategy.anchor_arch
    return {"times": times, "memory": memory, "anchor_params": config.search_space.num_params(anchor),
            "mean_child_params": {name: v.child_params / v.steps for name, v in variants.items()}}


def main(argv: list[str] | None = None) -> dict | None:
    return run(sampler_overhead, parse_one(SamplerOverheadArguments, argv, __doc__))


def report(args: SamplerOverheadArguments, config: MagicBertConfig, variants: dict[str, Variant],
           times: dict[str, float], memory: dict[str, dict[str, int]]) -> None:
    """The table (time, memory and mean child size per variant), the anchor's size and the goal line."""
    rows = []
    for name, variant in variants.items():
        row = (name, f"{times[name] * 1e3:.1f}", f"{times[name] / times['spos']:.3f}",
               f"{variant.aligned}/{variant.steps}", f"{variant.child_params / variant.steps / 1e6:.2f}")
        if memory:
            peak, growth = memory[name]["peak_kb"], memory[name]["peak_kb"] - memory[name]["start_kb"]
            spos_growth = memory["spos"]["peak_kb"] - memory["spos"]["start_kb"]
            row += (f"{peak / 1024:.0f}", f"{peak / memory['spos']['peak_kb']:.3f}", f"{growth / 1024:.0f}",
                    f"{growth / spos_growth:.3f}")
        rows.append(row)
    headers = ("variant", "step ms", "time/SPOS", "aligned steps", "mean child M params")
    if memory:
        headers += ("peak RSS MiB", "peak/SPOS", "step growth MiB", "growth/SPOS")
    space, anchored = config.search_space, variants["magic-a"].strategy
    print(f"preset={args.preset} hidden={config.hidden_size} layers={config.num_hidden_layers} "
          f"vocab={config.vocab_size} batch={args.batch} seq={args.seq} max_params={args.max_params} "
          f"min_params={args.min_params} threads={torch.get_num_threads()} rounds={args.rounds} supernet params="
          f"{variants['spos'].unwrapped.num_parameters():,}" + (f" mem_steps={args.mem_steps}" if memory else ""))
    print(f"anchor (the default: the largest BERT-like child in budget; no checks here, so it stays) "
          f"{space.num_params(anchored.anchor_arch) / 1e6:.2f}M params: {anchored.anchor_arch}")
    print_table(rows, headers)
    worst = max(times["magic-a"], times["magic-at"]) / times["spos"]
    print(f"worst time ratio MAGIC-A/AT over SPOS: {worst:.3f} (goal <= 1.4): {'met' if worst <= 1.4 else 'NOT met'}")
    if CONTROL in times:
        print(f"anchor cost at equal children: MAGIC-AT / MAGIC-T = {times['magic-at'] / times[CONTROL]:.3f}")


if __name__ == "__main__":
    main()
