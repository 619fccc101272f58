"""The distillation maths shared by pre-training and GLUE fine-tuning: the temperature-scaled KL of predictions
(teacher and anchor predictions on masked positions, prediction-layer KD), layer-mapped hidden states (TinyBERT),
MiniLMv2's self-attention relations and mean-pooled sentence embeddings."""

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


def hidden_state_mse(student_states: tuple[torch.Tensor, ...], teacher_states: tuple[torch.Tensor, ...],
                     pairs: list[tuple[int, int]], attention_mask: torch.Tensor,
                     projection: torch.nn.Module | None = None) -> torch.Tensor:
    """TinyBERT's intermediate-layer loss: the mean over the ``(student, teacher)`` index pairs into the two
    ``hidden_states`` tuples of the MSE per dimension over real tokens, the student's side through ``projection``
    when the widths differ. The teacher side is detached; computed in fp32."""
    real = attention_mask.unsqueeze(-1).float()
    per_pair = []
    for student_index, teacher_index in pairs:
        student = student_states[student_index]
        if projection is not None:
            student = projection(student)
        squared = (student.float() - teacher_states[teacher_index].detach().float()).pow(2) * real
        per_pair.append(squared.sum() / (real.sum() * squared.shape[-1]).clamp(min=1))
    return torch.stack(per_pair).mean()


def self_relations(states: torch.Tensor, heads: int, key_mask: torch.Tensor) -> torch.Tensor:
    """MiniLMv2's relation of a projection with itself: ``states`` ``(batch, seq, width)`` split into ``heads``
    relation heads of ``width / heads``, and ``log_softmax(x xᵀ / √d)`` over the real keys (``key_mask`` 1 for real
    tokens): ``(batch, heads, seq, seq)`` log-probabilities, in fp32."""
    batch, seq, width = states.shape
    if width % heads:
        raise ValueError(f"{heads} relation heads do not divide the width {width}")
    x = states.float().view(batch, seq, heads, width // heads).transpose(1, 2)
    scores = x @ x.transpose(-1, -2) * (width // heads) ** -0.5
    scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, -1)


def relation_kl(student_states: torch.Tensor, teacher_states: torch.Tensor, heads: int,
                attention_mask: torch.Tensor) -> torch.Tensor:
    """``KL(teacher ‖ student)`` of the two models' self-relations (any widths that ``heads`` divides), averaged over
    the relation heads and the real query positions. The teacher side is detached."""
    student = self_relations(student_states, heads, attention_mask)
    teacher = self_relations(teacher_states.detach(), heads, attention_mask)
    per_row = F.kl_div(student, teacher, log_target=True, reduction="none").sum(-1)  # (batch, heads, seq)
    rows = attention_mask.to(per_row.dtype)[:, None, :].expand_as(per_row)
    return (per_row * rows).sum() / rows.sum().clamp(min=1)


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' mean pooling: the average hidden state over the real tokens, ``(batch, width)``."""
    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1)


def embedding_distance(student: torch.Tensor, teacher: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean over sentences of ``1 - cos`` (``loss`` "cosine") or the MSE per dimension ("mse") between pooled
    embeddings; the teacher side is detached."""
    student, teacher = student.float(), teacher.detach().float()
    if loss == "cosine":
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    if loss == "mse":
        return F.mse_loss(student, teacher)
    raise ValueError(f"unknown embedding loss {loss!r}")


__all__ = ["embedding_distance", "hidden_state_mse", "mean_pool", "relation_kl", "self_relations", "soft_target_kl"]
