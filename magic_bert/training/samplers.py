"""Child samplers for supernet training: SPOS, MAGIC-T, and the anchor of MAGIC-A / MAGIC-AT.

Every draw is a pure function of ``(seed, step, state)``: all ranks that hold the same state draw the same child
without communicating, and a resumed run continues the exact sequence. Each sampler has ``state_dict()`` /
``load_state_dict()`` for checkpoints.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..search_space import SearchSpace

SAMPLERS = ("spos", "magic-t", "magic-a", "magic-at")


def _step_rng(seed: int, step: int) -> random.Random:
    # A string seed hashes deterministically (unlike hash() of a tuple under PYTHONHASHSEED randomisation).
    return random.Random(f"magic_bert-sampler-{seed}-{step}")


class ArchSampler:
    """Uniform sampling inside the budget (SPOS). ``next_arch(step)`` gives the child trained at ``step``."""

    name = "spos"

    def __init__(self, space: SearchSpace, seed: int = 0, max_params: float | None = None,
                 min_params: float | None = None):
        self.space, self.seed = space, seed
        self.max_params, self.min_params = max_params, min_params
        self.last_arch: list[str] | None = None
        # Fail now (before any training) on an infeasible budget.
        space.sample(_step_rng(seed, -1), max_params=max_params, min_params=min_params)

    def next_arch(self, step: int) -> list[str]:
        self.last_arch = self._draw(step)
        return self.last_arch

    def _draw(self, step: int) -> list[str]:
        return self.space.sample(_step_rng(self.seed, step), max_params=self.max_params, min_params=self.min_params)

    def state_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "last_arch": self.last_arch}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"Checkpoint sampler is {state.get('name')!r}, this run uses {self.name!r}.")
        self.seed, self.last_arch = state["seed"], state["last_arch"]


class TopologySampler(ArchSampler):
    """MAGIC-T: the child of step ``t`` is the child of step ``t-1`` with exactly one layer's op replaced."""

    name = "magic-t"

    def _draw(self, step: int) -> list[str]:
        if self.last_arch is None:
            return super()._draw(step)
        return self.space.mutate(self.last_arch, _step_rng(self.seed, step), max_params=self.max_params,
                                 min_params=self.min_params)


@dataclass
class Anchor:
    """The anchor child of MAGIC-A: a top-performing arch and its held-out score; replaced by a better child."""

    arch: list[str]
    score: float | tuple | None = None  # any comparable score, e.g. (accuracy, -loss)
    history: list[dict] = field(default_factory=list)

    def consider(self, step: int, arch: list[str], child_score: float | tuple,
                 anchor_score: float | tuple) -> dict | None:
        """Swap in ``arch`` if its score beats the anchor's (both measured now, on the same held-out data).

        Returns the swap record (step, old, new, scores) or ``None``. Callers pass scores already reduced
        across ranks so that every rank decides the same.
        """
        self.score = anchor_score
        if arch == self.arch or not child_score > anchor_score:
            return None
        event = {"step": step, "old_arch": self.arch, "new_arch": list(arch), "old_score": anchor_score,
                 "new_score": child_score}
        self.arch, self.score = list(arch), child_score
        self.history.append(event)
        return event

    def state_dict(self) -> dict:
        return {"arch": self.arch, "score": self.score, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.arch, self.score, self.history = state["arch"], state["score"], list(state["history"])


def default_anchor_arch(space: SearchSpace, max_params: float | None = None,
                        min_params: float | None = None) -> list[str]:
    """The initial anchor when none is given: the largest BERT-like child ``[mha, ffn] * L/2`` inside the budget.

    The largest-parameter child would be the obvious anchor, but in these spaces that is all-FFN (no token mixing at
    all), a poor anchor, so we prefer the strongest BERT-shaped child. Without mha/ffn ops, an odd layer count or any
    BERT-like child in budget, a seeded draw from the budget.
    """
    half, odd = divmod(space.num_layers, 2)
    mha = [op.name for op in space.ops if op.kind == "mha"]
    ffn = [op.name for op in space.ops if op.kind == "ffn"]
    # Largest sizes first, so that ties in parameters (more heads cost none) go to the larger op.
    candidates = [[a, f] * half for a in reversed(mha) for f in reversed(ffn)] if not odd else []
    fits = [arch for arch in candidates if space.in_budget(arch, min_params=min_params, max_params=max_params)]
    if fits:
        return max(fits, key=space.num_params)
    return space.sample(_step_rng(0, -2), max_params=max_params, min_params=min_params)


def build_sampler(name: str, space: SearchSpace, seed: int = 0, max_params: float | None = None,
                  min_params: float | None = None) -> tuple[ArchSampler, bool]:
    """The arch sampler for ``--sampler name`` and whether it trains with an anchor (MAGIC-A / MAGIC-AT)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; allowed: {list(SAMPLERS)}.")
    cls = TopologySampler if name in ("magic-t", "magic-at") else ArchSampler
    sampler = cls(space, seed=seed, max_params=max_params, min_params=min_params)
    sampler.name = name  # the full choice (magic-at samples like magic-t): checkpoints resume only with the same one
    return sampler, name in ("magic-a", "magic-at")


def alignment_loss(child_hidden_states, anchor_hidden_states, child_logits: torch.Tensor,
                   anchor_logits: torch.Tensor, labels: torch.Tensor, hidden_weight: float = 1.0,
                   logits_weight: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
    """MAGIC-A's pull toward the anchor (our form: the paper's exact Eq. 5 was not available to us):

    ``hidden_weight * mean_l MSE(h_l(child), h_l(anchor))`` over the per-layer outputs (embeddings excluded) plus
    ``logits_weight * T² * KL(softmax(anchor/T) || softmax(child/T))`` on the masked positions (``labels != -100``).
    The anchor's tensors are detached: only the child is pulled.
    """
    layer_pairs = zip(child_hidden_states[1:], anchor_hidden_states[1:], strict=True)
    hidden = torch.stack([F.mse_loss(child, anchor.detach()) for child, anchor in layer_pairs]).mean()
    return hidden_weight * hidden + logits_weight * masked_kl(child_logits, anchor_logits, labels, temperature)


def masked_kl(student_logits: torch.Tensor, target_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float = 1.0) -> torch.Tensor:
    """``T² * KL(softmax(target/T) || softmax(student/T))`` averaged over masked positions (``labels != -100``).

    The target is detached. Used for the anchor's predictions (MAGIC-A) and a teacher's (distillation).
    """
    # Sum over masked positions divided by their count (at least 1): no host sync, zero when nothing is masked.
    masked = (labels != -100).unsqueeze(-1)
    t = temperature
    per_token = F.kl_div(F.log_softmax(student_logits.float() / t, -1),
                         F.log_softmax(target_logits.detach().float() / t, -1), log_target=True, reduction="none")
    return (per_token * masked).sum() / masked.sum().clamp(min=1) * t * t


__all__ = [
    "SAMPLERS",
    "Anchor",
    "ArchSampler",
    "TopologySampler",
    "alignment_loss",
    "build_sampler",
    "default_anchor_arch",
    "masked_kl",
]
