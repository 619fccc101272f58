"""What pre-training and fine-tuning share about optimisation: AdamW's parameter groups, and the stop on a loss or
weights that are no longer finite (a model of NaNs is never saved)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import InputError

NO_DECAY = ("bias", "LayerNorm.weight")


def adamw_parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on every weight but biases and LayerNorm weights (as BERT and transformers' examples do)."""
    params = list(model.named_parameters())
    return [{"params": [p for n, p in params if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
            {"params": [p for n, p in params if n.endswith(NO_DECAY)], "weight_decay": 0.0}]


class NonFiniteLossError(InputError):
    """The loss became NaN or infinite: training stops instead of writing a model of NaNs."""


def _stop_message(what: str, learning_rate: float) -> str:
    return (f"{what}; training stopped and no model was saved. Check the training text and try a lower "
            f"`learning_rate` (was {learning_rate}).")


def stop_if_not_finite(accelerator, losses: dict[str, float], step: int, learning_rate: float, where: str = "") -> None:
    """Stop on a NaN or infinite ``losses["loss"]``; ranks agree (a rank's own loss may be the only bad one)."""
    bad = torch.tensor(float(not math.isfinite(losses["loss"])), device=accelerator.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if bad.item():
        raise NonFiniteLossError(_stop_message(f"the loss is not finite at step {step}{where} ({losses})",
                                               learning_rate))


def non_finite_parameters(model: nn.Module) -> list[str]:
    """The names of ``model``'s parameters holding a NaN or an infinity."""
    return [name for name, param in model.named_parameters() if not torch.isfinite(param).all()]


def check_finite_weights(model: nn.Module, what: str) -> None:
    """A model loaded for search, export or fine-tuning has finite weights: a file whose header is valid but whose
    values are not (damaged, or saved from a diverged run) is refused by name instead of spreading NaN."""
    bad = non_finite_parameters(model)
    if bad:
        raise InputError(f"{what} holds non-finite weights ({len(bad)} tensor(s), e.g. {bad[0]}): the file is "
                         "damaged or was saved from a run that diverged.")


def stop_if_weights_not_finite(model: nn.Module, step: int, learning_rate: float, where: str = "") -> None:
    """Stop when a weight is NaN or infinite (one step can make them so with a loss still finite); replicas hold the
    same weights, so every rank decides alike."""
    bad = non_finite_parameters(model)
    if bad:
        raise NonFiniteLossError(_stop_message(f"the weights are not finite after step {step}{where} ({len(bad)} "
                                               f"tensor(s), e.g. {bad[0]})", learning_rate))


__all__ = ["NonFiniteLossError", "adamw_parameter_groups", "check_finite_weights", "non_finite_parameters",
           "stop_if_not_finite", "stop_if_weights_not_finite"]
