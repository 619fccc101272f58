"""Sampler strategies: which arch trains at each step, what happens after a step, which arch is scored at the end.

One object per run. The loop asks it ``next_arch(step)`` at the first micro-batch of every optimizer step,
``after_step(step, arch, score)`` once the step is done (MAGIC-A's anchor checks live there) and ``eval_arch()`` at
the end; its ``state_dict()`` goes into every checkpoint. Draws are pure functions of ``(seed, step, state)``: every
rank that holds the same state draws the same child without communicating, and a resumed run continues the exact
sequence.

A new strategy is one class plus its registration::

    @register_strategy
    class Greedy(ArchSampler):
        name = "greedy"
        def _draw(self, step): ...

``--sampler greedy`` then trains with it (``STRATEGIES`` is the table the command line and checks read).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..errors import InputError, invalid_value
from ..evaluation import paired_standard_error
from ..search_space import SearchSpace, load_arch

if TYPE_CHECKING:
    from ..evaluation import MLMScore
    from .arguments import StrategyArguments

Scorer = Callable[[list[str]], "MLMScore"]  # an arch's anchor-block score (with per-example sums) on the shared weights

STRATEGIES: dict[str, type[SamplerStrategy]] = {}
SAMPLERS = ("spos", "magic-t", "magic-a", "magic-at")  # the paper's four (the studies compare these)


def register_strategy(cls: type[SamplerStrategy]) -> type[SamplerStrategy]:
    """Add a strategy to the table under ``cls.name`` (a class decorator)."""
    STRATEGIES[cls.name] = cls
    return cls


class _SamplerChoices:
    """The ``--sampler`` choices, read from the registry when the command line is parsed (so later registrations
    count). ``fixed`` is chosen with ``--arch``, not by name."""

    def __iter__(self) -> Iterator[str]:
        return iter([name for name in STRATEGIES if name != "fixed"])

    def __contains__(self, name: object) -> bool:
        return name in list(self)

    def __repr__(self) -> str:
        return repr(list(self))


SAMPLER_CHOICES = _SamplerChoices()


def _step_rng(seed: int, step: int) -> random.Random:
    # A string seed hashes deterministically (unlike hash() of a tuple under PYTHONHASHSEED randomisation).
    return random.Random(f"magic_bert-sampler-{seed}-{step}")


class SamplerStrategy:
    """The interface the training loop sees. Subclasses set ``name`` and implement ``next_arch``."""

    name: ClassVar[str]
    is_supernet: ClassVar[bool] = True  # the model takes ``arch=`` (False: one fixed model)
    uses_anchor: ClassVar[bool] = False  # an anchor to align children with (MAGIC-A's alignment loss term)

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space, self.seed = space, seed
        self.history: list[dict] = []  # events worth a line in anchor_history.jsonl (anchor swaps)

    @classmethod
    def from_arguments(cls, space: SearchSpace, args: StrategyArguments, seed: int) -> SamplerStrategy:
        return cls(space, seed=seed)

    def next_arch(self, step: int) -> list[str]:
        raise NotImplementedError

    @property
    def anchor_arch(self) -> list[str] | None:
        """The arch children are aligned with this step (``None``: no alignment)."""
        return None

    def after_step(self, step: int, arch: list[str], score: Scorer) -> dict:
        """Called once per optimizer step, on every rank; returns fields for the step's log record."""
        return {}

    def eval_arch(self) -> list[str]:
        """The arch scored on the held-out set at the end of training."""
        raise NotImplementedError

    def results(self) -> dict:
        """Fields for all_results.json (MAGIC-A: anchor checks, swap rate, margin)."""
        return {}

    def random_child(self) -> list[str] | None:
        """A child drawn inside the run's budget (with a fixed seed), scored at the end next to ``eval_arch`` so the
        results show what the supernet gives an arbitrary child. ``None`` for one fixed arch."""
        return None

    def state_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise InputError(f"Checkpoint sampler is {state.get('name')!r}, this run uses {self.name!r}.")
        self.seed = state["seed"]


@register_strategy
class FixedArch(SamplerStrategy):
    """One architecture for every step (``--arch``): re-pre-training a searched child, standalone baselines."""

    name = "fixed"
    is_supernet = False

    def __init__(self, space: SearchSpace, arch: list[str], seed: int = 0):
        super().__init__(space, seed)
        self.arch = space.validate(arch)

    @classmethod
    def from_arguments(cls, space: SearchSpace, args: StrategyArguments, seed: int) -> FixedArch:
        with invalid_value(f"`arch` {args.arch!r}"):
            return cls(space, load_arch(args.arch), seed=seed)

    def next_arch(self, step: int) -> list[str]:
        return self.arch

    def eval_arch(self) -> list[str]:
        return self.arch


@register_strategy
class ArchSampler(SamplerStrategy):
    """SPOS: each step's child drawn uniformly inside the budget."""

    name = "spos"

    def __init__(self, space: SearchSpace, seed: int = 0, max_params: float | None = None,
                 min_params: float | None = None, max_encoder_params: float | None = None,
                 min_encoder_params: float | None = None):
        super().__init__(space, seed)
        self.max_encoder_params, self.min_encoder_params = max_encoder_params, min_encoder_params
        # Encoder budgets are total budgets shifted by the fixed embeddings: draws and moves see one budget.
        self.max_params, self.min_params = space.total_budget(max_params, min_params, max_encoder_params,
                                                              min_encoder_params)
        self.last_arch: list[str] | None = None
        # Fail now (before any training) on an infeasible budget.
        space.sample(_step_rng(seed, -1), max_params=self.max_params, min_params=self.min_params)

    @classmethod
    def from_arguments(cls, space: SearchSpace, args: StrategyArguments, seed: int) -> ArchSampler:
        _check_encoder_budget(space, args)
        with invalid_value("`max_params` / `min_params`"):
            return cls(space, seed=seed, max_params=args.max_params, min_params=args.min_params,
                       max_encoder_params=getattr(args, "max_encoder_params", None),
                       min_encoder_params=getattr(args, "min_encoder_params", None))

    def next_arch(self, step: int) -> list[str]:
        self.last_arch = self._draw(step)
        return self.last_arch

    def _draw(self, step: int) -> list[str]:
        return self.space.sample(_step_rng(self.seed, step), max_params=self.max_params, min_params=self.min_params)

    def eval_arch(self) -> list[str]:
        # The default anchor arch: the same child for every sampler, so that runs are comparable.
        return default_anchor_arch(self.space, self.max_params, self.min_params)

    def random_child(self) -> list[str]:
        return self.space.sample(_step_rng(self.seed, -3), max_params=self.max_params, min_params=self.min_params)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "last_arch": self.last_arch}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        last = state.get("last_arch")  # MAGIC-T mutates it: an arch of this space, or None before the first step
        self.last_arch = None if last is None else self.space.validate(last)


@register_strategy
class TopologySampler(ArchSampler):
    """MAGIC-T: the child of step ``t`` is the child of step ``t-1`` with exactly one layer's op replaced."""

    name = "magic-t"

    def _draw(self, step: int) -> list[str]:
        if self.last_arch is None:
            return super()._draw(step)
        return self.space.mutate(self.last_arch, _step_rng(self.seed, step), max_params=self.max_params,
                                 min_params=self.min_params)


DEFAULT_SWAP_MARGIN = 2.0  # paired standard errors (see Anchor)


@dataclass
class Anchor:
    """The anchor child of MAGIC-A: a top-performing arch, replaced by a child that is clearly better.

    At a check both the anchor and the child just trained are scored now, on the same masked tokens of the anchor's
    held-out blocks, and the child replaces the anchor when ``child_loss < anchor_loss - margin * paired_se``
    (``paired_se``: the standard error of the loss difference, :func:`magic_bert.evaluation.paired_standard_error`).
    A margin of 2 lets a child that is no better through about 2 % of the time (a one-sided z-test); 0 is the plain
    "lower loss" rule, which swaps at nearly half the checks on noise alone.
    """

    arch: list[str]
    margin: float = DEFAULT_SWAP_MARGIN
    loss: float | None = None  # the anchor's held-out loss at the last check
    checks: int = 0
    history: list[dict] = field(default_factory=list)

    def threshold(self, anchor_loss: float, paired_se: float) -> float:
        """The loss a child must beat (strictly) to replace the anchor."""
        return anchor_loss - (self.margin * paired_se if self.margin else 0.0)

    def consider(self, step: int, arch: list[str], child_loss: float, anchor_loss: float,
                 paired_se: float) -> dict | None:
        """Count a check and swap in ``arch`` if its loss beats :meth:`threshold`; returns the swap record or None.

        Callers pass scores already reduced across ranks so that every rank decides the same.
        """
        self.loss = anchor_loss
        self.checks += 1
        if arch == self.arch or not child_loss < self.threshold(anchor_loss, paired_se):
            return None
        event = {"step": step, "old_arch": self.arch, "new_arch": list(arch), "old_loss": anchor_loss,
                 "new_loss": child_loss, "paired_se": paired_se, "margin": self.margin}
        self.arch, self.loss = list(arch), child_loss
        self.history.append(event)
        return event

    def state_dict(self) -> dict:
        return {"arch": self.arch, "loss": self.loss, "checks": self.checks, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        # Checkpoints of the old accuracy rule hold "score" and no check count: the count starts there at 0.
        self.arch, self.history = state["arch"], list(state["history"])
        self.loss, self.checks = state.get("loss"), state.get("checks", 0)


class AnchoredSampling:
    """MAGIC-A's anchor, mixed into a sampler: children align with it, and every ``eval_steps`` steps the child just
    trained replaces it when its masked-LM loss on the anchor's held-out blocks is lower by ``swap_margin`` paired
    standard errors (:class:`Anchor`). The scorer must keep per-example sums (``keep_examples``)."""

    uses_anchor = True
    space: SearchSpace
    max_params: float | None
    min_params: float | None

    def __init__(self, space: SearchSpace, seed: int = 0, max_params: float | None = None,
                 min_params: float | None = None, anchor_arch: list[str] | None = None, eval_steps: int = 50,
                 max_encoder_params: float | None = None, min_encoder_params: float | None = None,
                 swap_margin: float = DEFAULT_SWAP_MARGIN):
        super().__init__(space, seed=seed, max_params=max_params, min_params=min_params,
                         max_encoder_params=max_encoder_params, min_encoder_params=min_encoder_params)
        # self.max_params / min_params now hold the combined budget (encoder bounds included).
        initial = space.validate(anchor_arch) if anchor_arch is not None else default_anchor_arch(
            space, self.max_params, self.min_params, warn=True)
        self.anchor = Anchor(initial, margin=swap_margin)
        self.history = self.anchor.history
        self.eval_steps = eval_steps

    @classmethod
    def from_arguments(cls, space: SearchSpace, args: StrategyArguments, seed: int) -> SamplerStrategy:
        anchor = None
        if args.anchor_arch is not None:
            with invalid_value(f"`anchor_arch` {args.anchor_arch!r}"):
                anchor = space.validate(load_arch(args.anchor_arch))
        _check_encoder_budget(space, args)
        with invalid_value("`max_params` / `min_params`"):
            return cls(space, seed=seed, max_params=args.max_params, min_params=args.min_params, anchor_arch=anchor,
                       eval_steps=args.anchor_eval_steps, max_encoder_params=getattr(args, "max_encoder_params", None),
                       min_encoder_params=getattr(args, "min_encoder_params", None),
                       swap_margin=getattr(args, "anchor_swap_margin", DEFAULT_SWAP_MARGIN))

    @property
    def anchor_arch(self) -> list[str]:
        return self.anchor.arch

    def after_step(self, step: int, arch: list[str], score: Scorer) -> dict:
        if step % self.eval_steps:
            return {}
        child = score(arch)
        current = child if arch == self.anchor.arch else score(self.anchor.arch)
        paired_se = paired_standard_error(child, current)
        threshold = self.anchor.threshold(current.loss, paired_se)
        event = self.anchor.consider(step, arch, child.loss, current.loss, paired_se)
        if event is not None:
            event |= {"old_accuracy": current.accuracy, "new_accuracy": child.accuracy}
        return {"child_eval_loss": child.loss, "child_accuracy": child.accuracy,
                "anchor_eval_loss": current.loss, "anchor_accuracy": current.accuracy,
                "anchor_eval_tokens": child.num_tokens, "anchor_paired_se": paired_se,
                "anchor_swap_margin": self.anchor.margin, "anchor_swap_threshold": threshold,
                "anchor_swapped": event is not None}

    def eval_arch(self) -> list[str]:
        return self.anchor.arch

    def results(self) -> dict:
        checks = self.anchor.checks
        return {"anchor_checks": checks, "anchor_swap_rate": len(self.history) / checks if checks else None,
                "anchor_swap_margin": self.anchor.margin}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "anchor": self.anchor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.anchor.load_state_dict(state["anchor"])
        self.anchor.arch = self.space.validate(self.anchor.arch)  # children align with it: one of this space
        self.history = self.anchor.history


@register_strategy
class MagicA(AnchoredSampling, ArchSampler):
    """MAGIC-A: SPOS sampling, children aligned with a top-performing anchor child."""

    name = "magic-a"


@register_strategy
class MagicAT(AnchoredSampling, TopologySampler):
    """MAGIC-AT: MAGIC-T sampling plus MAGIC-A's anchor."""

    name = "magic-at"


def default_anchor_arch(space: SearchSpace, max_params: float | None = None, min_params: float | None = None,
                        max_encoder_params: float | None = None, min_encoder_params: float | None = None,
                        warn: bool = False) -> list[str]:
    """The initial anchor when none is given: the largest BERT-like child ``[attention, ffn] * L/2`` inside the budget
    (attention: ``mha`` or ``heads``).

    The largest-parameter child would be all-FFN in these spaces (no token mixing at all), a poor anchor, so we
    prefer the strongest BERT-shaped child. Without mha/ffn ops, an odd layer count or any BERT-like child in
    budget, a seeded draw from the budget.
    """
    max_params, min_params = space.total_budget(max_params, min_params, max_encoder_params, min_encoder_params)
    half, odd = divmod(space.num_layers, 2)
    # Largest first, so that ties in parameters (more mha heads cost none) go to the larger op.
    mha = sorted((op for op in space.ops if op.is_attention), key=lambda op: (space.op_params(op), op.size))
    ffn = [op for op in space.ops if op.kind == "ffn"]
    candidates = [[a.name, f.name] * half for a in reversed(mha) for f in reversed(ffn)] if not odd else []
    fits = [arch for arch in candidates if space.in_budget(arch, min_params=min_params, max_params=max_params)]
    if fits:
        return max(fits, key=space.num_params)
    drawn = space.sample(_step_rng(0, -2), max_params=max_params, min_params=min_params)
    if warn:  # MAGIC-A/AT's anchor (SPOS only evaluates this child, and takes no --anchor_arch)
        sizes = sorted(space.num_params(arch) for arch in candidates)
        why = ("the space has no BERT-shaped child [mha, ffn] * L/2" if not candidates else
               f"none of its BERT-shaped children ({sizes[0]:,} to {sizes[-1]:,} parameters) fits the budget")
        warnings.warn(f"MAGIC-A/AT's first anchor: {why}, so it is a seeded draw from the budget: {' '.join(drawn)}. "
                      "Pass --anchor_arch to choose it.", stacklevel=2)
    return drawn


def _check_encoder_budget(space: SearchSpace, args: StrategyArguments) -> None:
    """An encoder budget that is inverted or outside the space fails naming the encoder flags."""
    with invalid_value("`max_encoder_params` / `min_encoder_params`"):
        space.total_budget(None, None, getattr(args, "max_encoder_params", None),
                           getattr(args, "min_encoder_params", None))


def build_strategy(args: StrategyArguments, space: SearchSpace, seed: int) -> SamplerStrategy:
    """The registered strategy for these arguments (``fixed`` with ``arch``, else ``sampler``, default spos)."""
    name = args.strategy_name
    if name not in STRATEGIES:
        raise InputError(f"Unknown `sampler` {name!r}; allowed: {list(SAMPLER_CHOICES)}.")
    return STRATEGIES[name].from_arguments(space, args, seed)


__all__ = ["DEFAULT_SWAP_MARGIN", "SAMPLERS", "SAMPLER_CHOICES", "STRATEGIES", "Anchor", "AnchoredSampling",
           "ArchSampler", "FixedArch", "MagicA", "MagicAT", "SamplerStrategy", "TopologySampler", "build_strategy",
           "default_anchor_arch", "register_strategy"]
