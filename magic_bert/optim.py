"""Optimizer parameter groups shared by pre-training and fine-tuning."""

from __future__ import annotations

from torch import nn

NO_DECAY = ("bias", "LayerNorm.weight")


def adamw_parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on every weight but biases and LayerNorm weights (as BERT and transformers' examples do)."""
    params = list(model.named_parameters())
    return [{"params": [p for n, p in params if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
            {"params": [p for n, p in params if n.endswith(NO_DECAY)], "weight_decay": 0.0}]


__all__ = ["adamw_parameter_groups"]
