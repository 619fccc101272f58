"""The distillation teacher: any BERT, with an MLM head (logits and hidden-state KD) or without one (a
sentence-transformers encoder, a task-tuned encoder: hidden-state KD only), and the map between the student's
sublayer outputs and the teacher's hidden states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from ..errors import InputError, load_user_file
from .arguments import LossArguments

_HEADED = ("ForMaskedLM", "ForPreTraining")  # architectures whose checkpoints carry BERT's MLM head


@dataclass
class Teacher:
    """A frozen teacher; ``outputs(batch)`` runs it once per batch (the logits and hidden-state terms share it)."""

    model: torch.nn.Module
    name: str
    has_mlm_head: bool
    _cache: tuple = field(default=(None, None), repr=False)

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def outputs(self, batch: dict, autocast: Callable):
        if self._cache[0] is not batch:
            with torch.no_grad(), autocast():
                out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 output_hidden_states=True)
            self._cache = (batch, out)
        return self._cache[1]


def load_teacher_model(name: str) -> Teacher:
    """The teacher as a masked-LM when its checkpoint has BERT's MLM head, else as an encoder (``AutoModel``)."""
    config = load_user_file(f"`teacher_name_or_path` {name!r}", lambda: AutoConfig.from_pretrained(name))
    architectures = config.architectures or []
    headed = not architectures or any(a.endswith(_HEADED) for a in architectures)
    auto = AutoModelForMaskedLM if headed else AutoModel
    model = load_user_file(f"`teacher_name_or_path` {name!r}", lambda: auto.from_pretrained(name))
    return Teacher(model.eval().requires_grad_(False), name, headed)


def resolve_kd_weight(loss: LossArguments, teacher: Teacher | None) -> float:
    """The logits-KD weight: as given, else 0.5 with an MLM head and 0 without; refused where it cannot work."""
    if teacher is None:
        return 0.0
    weight = loss.kd_weight if loss.kd_weight is not None else (0.5 if teacher.has_mlm_head else 0.0)
    if weight > 0 and not teacher.has_mlm_head:
        raise InputError(f"`kd_weight` {weight} distils the teacher's MLM predictions, but `teacher_name_or_path` "
                         f"{teacher.name!r} is an encoder without an MLM head; use `kd_hidden_weight` (hidden-state "
                         "KD) with `kd_weight` 0.")
    if weight == 0 and loss.kd_hidden_weight == 0:
        raise InputError(f"`teacher_name_or_path` {teacher.name!r} is given but nothing is distilled: set "
                         "`kd_hidden_weight` (or `kd_weight` for a teacher with an MLM head).")
    return weight


def layer_map(text: str | None, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) indices into ``hidden_states`` (0 = embeddings). Default: teacher layer ``k`` is matched
    with student index ``round(k * student_layers / teacher_layers)``: sublayer ``2j+1`` ↔ layer ``j+1`` when the
    student has two sublayers per teacher layer (a space built around the teacher)."""
    if text is None:
        return [(round(k * student_layers / teacher_layers), k) for k in range(1, teacher_layers + 1)]
    pairs = []
    for item in text.replace(" ", "").split(","):
        student, _, teacher = item.partition(":")
        if not (student.isdigit() and teacher.isdigit()):
            raise InputError(f"`kd_layer_map` {text!r}: write pairs 'student:teacher' of hidden-state indices, e.g. "
                             "'2:1,4:2'.")
        pairs.append((int(student), int(teacher)))
    bad = [(s, t) for s, t in pairs if s > student_layers or t > teacher_layers]
    if bad or not pairs:
        raise InputError(f"`kd_layer_map` {text!r}: student indices go up to {student_layers} and teacher indices "
                         f"up to {teacher_layers} (0 = embeddings); out of range: {bad}.")
    return pairs


def kd_projection(student_hidden: int, teacher: Teacher | None, hidden_weight: float) -> torch.nn.Module | None:
    """TinyBERT's learned map from the student's width to the teacher's, when they differ (trained with the run,
    saved in its checkpoints, never exported)."""
    if teacher is None or hidden_weight == 0 or student_hidden == teacher.hidden_size:
        return None
    return torch.nn.Linear(student_hidden, teacher.hidden_size)


__all__ = ["Teacher", "kd_projection", "layer_map", "load_teacher_model", "resolve_kd_weight"]
