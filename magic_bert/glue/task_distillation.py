"""Task-specific distillation while fine-tuning, from a teacher already fine-tuned on the same task: prediction-layer
KD (its logits: KL at a temperature, MSE for regression) and, with ``--kd_hidden_weight``, TinyBERT's
intermediate-layer KD (its hidden states through a layer map; a learned projection when the widths differ, trained
with the run and never saved).

    loss = (1 - kd_alpha) * task loss + kd_alpha * prediction KD + kd_hidden_weight * hidden-state MSE
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from ..distillation import hidden_state_mse, soft_target_kl
from ..errors import InputError, load_user_file
from ..training.arguments import UNIFORM_MAP
from ..training.teacher import layer_map, spread_evenly, uniform_layer_map
from .arguments import FinetuneArguments
from .tasks import GlueTask


def distillation_loss(student_logits, teacher_logits, task: GlueTask, temperature: float) -> torch.Tensor:
    """Prediction-layer KD: T²·KL(teacher ‖ student) for classification (the KL pre-training uses too), MSE for
    regression."""
    if task.is_regression:
        return F.mse_loss(student_logits.float().squeeze(-1), teacher_logits.float().squeeze(-1))
    return soft_target_kl(student_logits, teacher_logits, temperature)


def labelled_task_loss(logits, labels, labelled: torch.Tensor, task: GlueTask) -> torch.Tensor:
    """The task loss (as transformers' heads compute it) over the examples that have a label of their own
    (``labelled``: not an augmented copy): their mean, or a zero that keeps the graph when there is none."""
    if not labelled.any():
        return logits.sum() * 0
    logits, labels = logits[labelled], labels[labelled]
    if task.is_regression:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))


def task_layer_map(text: str, student_config, teacher_layers: int) -> list[tuple[int, int]]:
    """``(student, teacher)`` indices into ``hidden_states`` (0 = the embeddings). ``"uniform"``: the student's
    layers matched with teacher layers spread evenly, the last with the last (a MagicBert child: its non-empty
    layers, :func:`~magic_bert.training.teacher.uniform_layer_map`; a BERT: all its layers); else pairs
    ``"student:teacher,..."``."""
    arch = getattr(student_config, "arch", None)
    if text != UNIFORM_MAP:
        return layer_map(text, student_config.num_hidden_layers, teacher_layers)
    if arch is not None:
        return uniform_layer_map(arch, teacher_layers)
    return spread_evenly(list(range(1, student_config.num_hidden_layers + 1)), teacher_layers)


def check_hidden_distillation(args: FinetuneArguments, student_config, teacher_config) -> None:
    """``--kd_layer_map`` fits both models (raises the InputError naming it); called before any work."""
    if args.kd_hidden_weight == 0:
        return
    if args.kd_layer_map == UNIFORM_MAP and getattr(teacher_config, "arch", None) is not None:
        # A MagicBert teacher's hidden states are per sublayer, some of them identities: name the pairs.
        raise InputError(f"`kd_layer_map` 'uniform' spreads over a BERT teacher's layers; the teacher "
                         f"{args.teacher_name_or_path!r} is a MagicBert child: give pairs 'student:teacher'.")
    task_layer_map(args.kd_layer_map, student_config, teacher_config.num_hidden_layers)


@dataclass
class TaskDistillation:
    """The teacher and what the loss takes from it (``pairs`` None: its logits only)."""
    teacher: torch.nn.Module
    alpha: float
    temperature: float
    hidden_weight: float
    pairs: list[tuple[int, int]] | None
    projection: torch.nn.Linear | None

    @property
    def wants_hidden_states(self) -> bool:
        return self.pairs is not None

    def loss(self, task: GlueTask, inputs: dict, outputs, task_loss: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"},
                                  output_hidden_states=self.wants_hidden_states)
        loss = (1 - self.alpha) * task_loss + self.alpha * distillation_loss(outputs.logits, target.logits, task,
                                                                             self.temperature)
        if self.pairs is not None:
            loss = loss + self.hidden_weight * hidden_state_mse(outputs.hidden_states, target.hidden_states,
                                                                self.pairs, inputs["attention_mask"], self.projection)
        return loss


def load_task_distillation(args: FinetuneArguments, student_config, seed: int) -> TaskDistillation:
    """The frozen teacher; with ``--kd_hidden_weight``, the layer pairs and (widths differing) the projection, drawn
    from ``seed`` without touching the global generator (the student's head and data order stay as without it)."""
    name = args.teacher_name_or_path
    teacher = load_user_file(f"`teacher_name_or_path` {name!r}",
                             partial(AutoModelForSequenceClassification.from_pretrained, name))
    teacher.eval().requires_grad_(False)
    pairs = projection = None
    if args.kd_hidden_weight > 0:
        pairs = task_layer_map(args.kd_layer_map, student_config, teacher.config.num_hidden_layers)
        if student_config.hidden_size != teacher.config.hidden_size:
            with torch.random.fork_rng(devices=[]):  # the CPU generator only, restored after
                torch.random.default_generator.manual_seed(seed)
                projection = torch.nn.Linear(student_config.hidden_size, teacher.config.hidden_size)
    return TaskDistillation(teacher, args.kd_alpha, args.kd_temperature, args.kd_hidden_weight, pairs, projection)


__all__ = ["TaskDistillation", "check_hidden_distillation", "distillation_loss", "labelled_task_loss",
           "load_task_distillation", "task_layer_map"]
