"""MAGIC-T's own claim, measured during supernet pre-training: do consecutive children interfere less when they differ
by one op (``magic-t``) than when they are drawn independently (``spos``)?

Every ``every`` steps, on the step pair ``(t-1, t)`` with ``t % every == 0``, :class:`InterferenceProbe` measures

- ``probe_grad_cosine``: the cosine between step ``t-1``'s and step ``t``'s gradients on the ops the two children
  share (the same op module at the same layer), all shared ops' parameter gradients concatenated; the gradients as
  the optimizer sees them (complete after accumulation, all-reduced, clipped). ``None`` (JSON null) when no shared op
  has a gradient (no shared op, or only ``identity``).
- ``probe_shared_ops``: how many layers the two children share their op at (``identity`` included).
- ``probe_prev_child_loss_rise``: child ``t-1``'s masked-LM loss on a fixed probe batch (the first pre-masked held-out
  batch; eval mode, no grad) just after step ``t``'s optimizer step minus just before it: how much step ``t``'s update
  hurt the previous child.

The recipe wraps each optimizer step in :meth:`InterferenceProbe.around_update`. The probe only reads gradients and
scores without grad in eval mode (no dropout, so no random numbers drawn): training is bit-identical with it on or
off. Step ``t-1``'s gradients are kept (one child's ops) only when step ``t`` is measured. Every rank computes the
same values (same all-reduced gradients, same weights, same whole probe batch); the recipe logs them on the main
process. The first step of a run, or of a resumed run, has no previous step in memory and logs no probe fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import default_data_collator

from ..errors import InputError
from ..evaluation import evaluate_mlm

FIELDS = ("probe_grad_cosine", "probe_shared_ops", "probe_prev_child_loss_rise")


@dataclass
class _Kept:
    step: int
    arch: list[str]
    ops: list[torch.nn.Module]  # the op module of each layer
    grads: list[torch.Tensor]  # each layer's op gradient, flattened (empty for identity)


def _flat(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Concatenated and flattened in float64 (empty for no tensors)."""
    return torch.cat([t.reshape(-1).double() for t in tensors]) if tensors else torch.zeros(0, device=device)


def _op_gradient(op: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """One op's parameter gradients, flattened (a parameter without one counts as zeros; identity: empty)."""
    return _flat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach() for p in op.parameters()],
                 device).float()


def cosine(first: torch.Tensor, second: torch.Tensor) -> float | None:
    """Cosine in float64; ``None`` when either vector is empty or zero (undefined, never NaN)."""
    first, second = first.double(), second.double()
    norms = first.norm() * second.norm()
    if first.numel() == 0 or norms == 0:
        return None
    return float(first.dot(second) / norms)


def probe_batch(held_out, batch_size: int) -> dict:
    """The first ``batch_size`` pre-masked held-out blocks, collated (CPU); refused when they have no masked token."""
    batch = default_data_collator([held_out[i] for i in range(min(batch_size, len(held_out)))]) if len(
        held_out) else {}
    if not batch or not (batch["labels"] != -100).any():
        raise InputError(f"`probe_interference_steps` scores on the first held-out batch, but its {len(held_out)} "
                         "held-out block(s) have no masked token there; pass more validation text.")
    return batch


class InterferenceProbe:
    """See the module docstring. ``supernet`` is the unwrapped model (its ``.grad`` are what the optimizer steps
    on); ``batch`` the pre-masked probe batch on the model's device."""

    def __init__(self, every: int, supernet, batch: dict):
        self.every, self.supernet, self.batch = every, supernet, batch
        self.kept: _Kept | None = None  # step t-1's gradients, only when step t is measured
        self.measured: dict[int, dict] = {}  # step -> fields, until the step's record takes them

    def loss(self, arch: list[str]) -> float:
        return evaluate_mlm(self.supernet, [self.batch], arch=arch).loss

    @contextmanager
    def around_update(self, step: int, arch: list[str]) -> Iterator[None]:
        """Wrap step ``step``'s (1-based) optimizer update, once its gradients are complete and clipped."""
        prev = self.kept if step % self.every == 0 and self.kept is not None and self.kept.step == step - 1 else None
        ops = self.supernet.bert.encoder.path(arch)
        device = self.supernet.device
        if prev is not None:
            shared = [i for i, op in enumerate(ops) if op is prev.ops[i]]  # same op module at the same layer
            gradient_cosine = cosine(_flat([prev.grads[i] for i in shared], device),
                                     _flat([_op_gradient(ops[i], device) for i in shared], device))
            before = self.loss(prev.arch)
        self.kept = None
        if (step + 1) % self.every == 0:  # the next step is measured: keep this one's gradients
            self.kept = _Kept(step, list(arch), ops, [_op_gradient(op, device) for op in ops])
        yield
        if prev is not None:
            self.measured[step] = {"probe_grad_cosine": gradient_cosine, "probe_shared_ops": len(shared),
                                   "probe_prev_child_loss_rise": self.loss(prev.arch) - before}

    def record(self, step: int) -> dict:
        """The probe's fields for step ``step``'s log record (none when the step was not measured)."""
        return self.measured.pop(step, {})


def probe_means(records: list[dict]) -> dict:
    """For all_results.json: the mean cosine and loss rise over a run's log records (``None`` without any), and how
    many measurements each mean is over (a cosine needs a shared op with weights: SPOS pairs often have none)."""
    cosines = [r["probe_grad_cosine"] for r in records if r.get("probe_grad_cosine") is not None]
    rises = [r["probe_prev_child_loss_rise"] for r in records if "probe_prev_child_loss_rise" in r]
    return {"probe_grad_cosine_mean": sum(cosines) / len(cosines) if cosines else None,
            "probe_grad_cosine_count": len(cosines),
            "probe_prev_child_loss_rise_mean": sum(rises) / len(rises) if rises else None,
            "probe_measurements": len(rises)}


__all__ = ["FIELDS", "InterferenceProbe", "cosine", "probe_batch", "probe_means"]
