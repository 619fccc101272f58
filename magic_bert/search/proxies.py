"""Search scores meant to predict a child's fine-tuned quality better than held-out masked-LM loss.

* ``distill`` (lower is better): the student recipe's task-agnostic distillation loss of the child against the
  teacher on the held-out blocks, the terms ``ladder-v1`` trains students with, each weight 1: hidden-state MSE
  through TinyBERT's uniform layer map, MiniLMv2's query/key/value relation KL of the child's last attention
  sublayer against the teacher's last layer, and ``1 - cos`` of the mean-pooled last hidden states. A child without
  attention is scored as attending uniformly (the KL to uniform relations), a child with every layer empty matches
  its output with the teacher's last layer: empty children are not rewarded for having nothing to compare. Cost per
  child: one forward of the child over the blocks (the teacher runs once, for every child).
* ``embedding`` (higher is better): the mean cosine between the child's and the teacher's mean-pooled last hidden
  states (sentence-transformers' distillation target). Cost: one forward of the child.
* ``task`` (higher is better): :mod:`magic_bert.search.task_probe`.

Every process scores every block (the teacher's targets are computed once and kept), so every rank gets the same
numbers; under several processes the proxies are not split across them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..distillation import embedding_distance, hidden_state_mse, mean_pool, relation_kl
from ..modeling_magic_bert import MagicBertSelfAttention
from ..training.teacher import PerChildUniformMap

DISTILL_TERMS = ("distill_hidden", "distill_attention", "distill_embedding")


@dataclass(frozen=True)
class ProxyScore:
    """What a search metric returns: the masked-LM numbers when they were computed (else NaN) and the proxies."""

    loss: float = float("nan")
    accuracy: float = float("nan")
    proxies: dict[str, float] = field(default_factory=dict)


@dataclass
class TeacherReference:
    """The teacher's targets on the held-out batches, computed once: every hidden state, the query/key/value
    projections of its last layer (relations) and its mean-pooled last hidden state."""

    batches: list[dict]
    hidden_states: list[tuple[torch.Tensor, ...]]
    projections: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    pooled: list[torch.Tensor]
    num_layers: int
    relation_heads: int

    @classmethod
    @torch.no_grad()
    def compute(cls, teacher: torch.nn.Module, batches: list[dict]) -> TeacherReference:
        base = teacher.base_model.eval()
        hidden, projections, pooled = [], [], []
        attention = base.encoder.layer[-1].attention.self
        for batch in batches:
            out = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True)
            states = tuple(h.float() for h in out.hidden_states)
            hidden.append(states)
            projections.append(tuple(getattr(attention, name)(out.hidden_states[-2]).float()
                                     for name in ("query", "key", "value")))
            pooled.append(mean_pool(states[-1], batch["attention_mask"]))
        return cls(batches, hidden, projections, pooled, base.config.num_hidden_layers,
                   base.config.num_attention_heads)


def _child_states(supernet, batch: dict, arch: list[str]) -> tuple[torch.Tensor, ...]:
    return supernet.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], arch=arch,
                         output_hidden_states=True).hidden_states


@torch.no_grad()
def embedding_agreement(supernet, reference: TeacherReference, arch: list[str]) -> ProxyScore:
    """``embedding``: the mean over blocks of the cosine between the child's and the teacher's pooled states."""
    was_training = supernet.training
    supernet.eval()
    try:
        cosines = [1 - embedding_distance(mean_pool(_child_states(supernet, batch, arch)[-1].float(),
                                                    batch["attention_mask"]), target, "cosine")
                   for batch, target in zip(reference.batches, reference.pooled, strict=True)]
    finally:
        supernet.train(was_training)
    return ProxyScore(proxies={"embedding": float(torch.stack(cosines).mean())})


@torch.no_grad()
def distillation_loss(supernet, reference: TeacherReference, arch: list[str]) -> ProxyScore:
    """``distill``: the sum of the three terms (each reported too) and ``embedding``, averaged over blocks."""
    was_training = supernet.training
    supernet.eval()
    ops = supernet.bert.encoder.path(arch)
    attention = max((i for i, op in enumerate(ops) if isinstance(op, MagicBertSelfAttention)), default=None)
    pairs = list(PerChildUniformMap(reference.num_layers)(arch)) or [(len(arch), reference.num_layers)]
    totals = {name: 0.0 for name in (*DISTILL_TERMS, "embedding")}
    try:
        for index, batch in enumerate(reference.batches):
            states, mask = _child_states(supernet, batch, arch), batch["attention_mask"]
            targets = reference.projections[index]
            if attention is None:  # uniform relations: zero projections give equal scores over the real keys
                projected = [torch.zeros_like(target) for target in targets]
            else:
                op, inputs = ops[attention], states[attention]
                projected = [getattr(op, name)(inputs) for name in ("query", "key", "value")]
            relations = torch.stack([relation_kl(s, t, reference.relation_heads, mask)
                                     for s, t in zip(projected, targets, strict=True)]).mean()
            pooled = mean_pool(states[-1].float(), mask)
            distance = embedding_distance(pooled, reference.pooled[index], "cosine")
            terms = {"distill_hidden": hidden_state_mse(states, reference.hidden_states[index], pairs, mask),
                     "distill_attention": relations, "distill_embedding": distance, "embedding": 1 - distance}
            for name, value in terms.items():
                totals[name] += float(value) / len(reference.batches)
    finally:
        supernet.train(was_training)
    totals["distill"] = sum(totals[name] for name in DISTILL_TERMS)
    return ProxyScore(proxies=totals)


__all__ = ["DISTILL_TERMS", "ProxyScore", "TeacherReference", "distillation_loss", "embedding_agreement"]
