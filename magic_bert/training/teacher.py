"""The distillation teacher: any BERT, with an MLM head (logits and hidden-state KD) or without one (a
sentence-transformers encoder, a task-tuned encoder: hidden-state KD only), and the map between the student's
sublayer outputs and the teacher's hidden states."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from ..errors import InputError, load_user_file
from ..optim import check_finite_weights
from .arguments import UNIFORM_MAP, LossArguments

_HEADED = ("ForMaskedLM", "ForPreTraining")  # architectures whose checkpoints carry BERT's MLM head


@dataclass(frozen=True)
class TeacherTargets:
    """What the loss terms read of one teacher forward: every hidden state (0 = embeddings) and, where logits KD asked
    for them, the MLM predictions at the labelled positions only (``labels != -100``, row-major), as fp32 tensors
    outside inference mode (so they can meet the student's tensors in autograd)."""

    hidden_states: tuple[torch.Tensor, ...]
    logits: torch.Tensor | None


@dataclass
class Teacher:
    """A frozen teacher; ``outputs(batch)`` runs it once per batch (the logits and hidden-state terms share it).

    The forward runs under ``torch.inference_mode`` (nothing of it is trained) and, with ``precision`` ``"bf16"``, under
    a bfloat16 autocast; ``"training"`` runs it in the training precision (the accelerator's autocast). Its MLM head,
    only when ``needs_logits``, runs on the labelled positions alone: the decoder (hidden × vocabulary) over every
    position would cost more than a small teacher's encoder.
    """

    model: torch.nn.Module
    name: str
    has_mlm_head: bool
    precision: str = "training"
    needs_logits: bool = True
    _cache: tuple = field(default=(None, None), repr=False)

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_attention_heads(self) -> int:
        return self.model.config.num_attention_heads

    def self_attention(self, layer: int) -> torch.nn.Module:
        """Layer ``layer``'s self-attention (its ``query``, ``key`` and ``value`` projections), as BERT lays it out."""
        try:
            attention = self.model.base_model.encoder.layer[layer].attention.self
            _ = attention.query, attention.key, attention.value
        except (AttributeError, IndexError, TypeError):
            raise InputError(f"`teacher_name_or_path` {self.name!r}: its layer {layer} has no BERT self-attention "
                             "(encoder.layer[i].attention.self.query/key/value) to distil relations from.") from None
        return attention

    def outputs(self, batch: dict, autocast: Callable) -> TeacherTargets:
        if self._cache[0] is not batch:
            self._cache = (batch, self._forward(batch, autocast))
        return self._cache[1]

    def _forward(self, batch: dict, autocast: Callable) -> TeacherTargets:
        logits_wanted = self.needs_logits and self.has_mlm_head
        head = _mlm_head(self.model) if logits_wanted else None
        precision = (torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16)
                     if self.precision == "bf16" else autocast())
        with torch.inference_mode(), precision:
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                      "output_hidden_states": True}
            logits = None
            if logits_wanted and head is None:  # a masked-LM whose head we cannot call apart: the full forward
                out = self.model(**inputs)
                logits = out.logits[batch["labels"] != -100]
            else:
                out = self.model.base_model(**inputs)
                if head is not None:
                    logits = head(out.last_hidden_state[batch["labels"] != -100])
        # Copies outside inference mode: inference tensors may not be saved for backward.
        return TeacherTargets(tuple(h.to(torch.float32, copy=True) for h in out.hidden_states),
                              None if logits is None else logits.to(torch.float32, copy=True))


def _mlm_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The masked-LM head that maps the base model's last hidden state to logits: BERT's ``cls.predictions`` (BERT's
    masked-LM and pre-training models, MagicBert), RoBERTa-style ``lm_head``; None for other layouts (the teacher
    then runs its whole forward)."""
    if model.base_model is model:
        return None
    head = getattr(getattr(model, "cls", None), "predictions", None)
    head = getattr(model, "lm_head", None) if head is None else head
    return head if isinstance(head, torch.nn.Module) else None


def load_teacher_model(name: str) -> Teacher:
    """The teacher as a masked-LM when its checkpoint has BERT's MLM head, else as an encoder (``AutoModel``); the
    run sets its ``precision`` and ``needs_logits`` once the device and the loss weights are known."""
    config = load_user_file(f"`teacher_name_or_path` {name!r}", lambda: AutoConfig.from_pretrained(name))
    architectures = config.architectures or []
    headed = not architectures or any(a.endswith(_HEADED) for a in architectures)
    auto = AutoModelForMaskedLM if headed else AutoModel
    model = load_user_file(f"`teacher_name_or_path` {name!r}", lambda: auto.from_pretrained(name))
    check_finite_weights(model, f"`teacher_name_or_path` {name!r}")  # NaN targets would stop the run at step 1
    return Teacher(model.eval().requires_grad_(False), name, headed)


def resolve_kd_weight(loss: LossArguments, teacher: Teacher | None) -> float:
    """The logits-KD weight: as given, else 0.5 with an MLM head and 0 without; refused where it cannot work."""
    if teacher is None:
        return 0.0
    # (ELECTRA's discriminator has no masked-LM predictions: no logits KD by default; given, it is refused earlier)
    default = 0.5 if teacher.has_mlm_head and loss.objective != "electra" else 0.0
    weight = loss.kd_weight if loss.kd_weight is not None else default
    if weight > 0 and not teacher.has_mlm_head:
        raise InputError(f"`kd_weight` {weight} distils the teacher's MLM predictions, but `teacher_name_or_path` "
                         f"{teacher.name!r} is an encoder without an MLM head; use `kd_hidden_weight` (hidden-state "
                         "KD) with `kd_weight` 0.")
    if weight == 0 and loss.kd_hidden_weight == 0 and loss.kd_attention_weight == 0 and loss.kd_embedding_weight == 0:
        raise InputError(f"`teacher_name_or_path` {teacher.name!r} is given but nothing is distilled: set "
                         "`kd_hidden_weight`, `kd_attention_weight` or `kd_embedding_weight` (or `kd_weight` for a "
                         "teacher with an MLM head).")
    return weight


def layer_map(text: str | None, student_layers: int, teacher_layers: int,
              arch: list[str] | None = None) -> list[tuple[int, int]] | PerChildUniformMap:
    """(student, teacher) indices into ``hidden_states`` (0 = embeddings). Default: teacher layer ``k`` is matched
    with student index ``round(k * student_layers / teacher_layers)``: sublayer ``2j+1`` ↔ layer ``j+1`` when the
    student has two sublayers per teacher layer (a space built around the teacher). ``"uniform"``: see
    :func:`uniform_layer_map` of the fixed ``arch``; for a supernet (``arch`` None) a :class:`PerChildUniformMap`,
    each sampled child's own."""
    if text is None:
        return [(round(k * student_layers / teacher_layers), k) for k in range(1, teacher_layers + 1)]
    if text == UNIFORM_MAP:
        return PerChildUniformMap(teacher_layers) if arch is None else uniform_layer_map(arch, teacher_layers)
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


def uniform_layer_map(arch: list[str], teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT's uniform map for a child of the NAS-BERT space: its non-empty layers (sublayers ``2j, 2j+1``, not
    both identity; output at ``hidden_states[2j+2]``) matched with teacher layers spread evenly, the last with the
    last. The DistilBERT-style cut of a 6-layer teacher (its layers 0, 2, 4, identities between) gets 2:2,6:4,10:6."""
    outputs = [min(j + 2, len(arch)) for j in range(0, len(arch), 2) if any(op != "identity" for op in arch[j:j + 2])]
    if not outputs:
        raise InputError(f"`kd_layer_map` 'uniform': the arch {arch} has no layer to match (every op is identity).")
    return spread_evenly(outputs, teacher_layers)


def spread_evenly(outputs: list[int], teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT's uniform pairs: the student's layer outputs (indices into its ``hidden_states``) with teacher layers
    spread evenly, the last with the last."""
    return [(index, max(1, round((m + 1) * teacher_layers / len(outputs)))) for m, index in enumerate(outputs)]


@dataclass(frozen=True)
class PerChildUniformMap:
    """``--kd_layer_map uniform`` for a supernet: the children it samples differ in which layers are empty, so each
    step's pairs are the uniform map of that step's child (a child with no non-empty layer has none)."""

    teacher_layers: int

    def __call__(self, arch: list[str]) -> tuple[tuple[int, int], ...]:
        return _uniform_or_none(tuple(arch), self.teacher_layers)


@functools.lru_cache(maxsize=4096)
def _uniform_or_none(arch: tuple[str, ...], teacher_layers: int) -> tuple[tuple[int, int], ...]:
    if all(op == "identity" for op in arch):
        return ()
    return tuple(uniform_layer_map(list(arch), teacher_layers))


def kd_projection(student_hidden: int, teacher: Teacher | None, hidden_weight: float) -> torch.nn.Module | None:
    """TinyBERT's learned map from the student's width to the teacher's, when they differ and a term compares hidden
    states (``hidden_weight``: the sum of those terms' weights); trained with the run, saved in its checkpoints,
    never exported."""
    if teacher is None or hidden_weight == 0 or student_hidden == teacher.hidden_size:
        return None
    return torch.nn.Linear(student_hidden, teacher.hidden_size)


def check_relation_heads(heads: int, student_widths: Iterable[int], teacher: Teacher,
                         what: str = "`kd_relation_heads`") -> None:
    """Relation KD splits each model's query/key/value width into ``heads`` heads: they must divide the teacher's and
    every attention width of the student (``mha`` ops are ``hidden_size`` wide, ``heads:<k>`` ops ``k × head size``)."""
    for width in sorted(set(student_widths), reverse=True) or [teacher.hidden_size]:
        if width % heads or teacher.hidden_size % heads:
            common = math.gcd(width, teacher.hidden_size)
            raise InputError(f"{what} {heads} must divide the student's attention width {width} "
                             f"and the teacher's {teacher.hidden_size}: choose a divisor of {common}.")


def check_attention_layer(layer: int | None, teacher: Teacher) -> int:
    """The teacher layer whose relations are distilled (default: the last), checked against its depth."""
    if layer is None:
        layer = teacher.num_layers - 1
    elif layer >= teacher.num_layers:
        raise InputError(f"`kd_attention_layer` {layer}: the teacher {teacher.name!r} has layers 0 to "
                         f"{teacher.num_layers - 1}.")
    teacher.self_attention(layer)
    return layer


__all__ = ["PerChildUniformMap", "Teacher", "TeacherTargets", "check_attention_layer", "check_relation_heads",
           "kd_projection", "layer_map", "load_teacher_model", "resolve_kd_weight", "spread_evenly",
           "uniform_layer_map"]
