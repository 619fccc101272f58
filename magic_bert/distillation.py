"""The temperature-scaled KL of knowledge distillation, shared by pre-training (teacher and anchor predictions on
masked positions) and GLUE fine-tuning (prediction-layer KD)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_kl(student_logits: torch.Tensor, target_logits: torch.Tensor, temperature: float = 1.0,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """``T² · KL(softmax(target/T) ‖ softmax(student/T))`` averaged over positions (the last axis is the classes),
    or over the positions where ``mask`` is true (zero when there are none; no host sync). The target is detached."""
    t = temperature
    per_position = F.kl_div(F.log_softmax(student_logits.float() / t, -1),
                            F.log_softmax(target_logits.detach().float() / t, -1), log_target=True,
                            reduction="none").sum(-1)
    if mask is None:
        return per_position.mean() * t * t
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1) * t * t


__all__ = ["soft_target_kl"]
