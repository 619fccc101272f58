"""Loss terms that compose: masked-LM; logits, hidden-state, self-attention-relation and sentence-embedding
distillation from a teacher; MAGIC-A's alignment.

Each term returns its unweighted components under their log keys (``mlm_loss``, ``kd_loss``, ``kd_hidden_loss``,
``kd_attention_loss``, ``kd_embedding_loss``, ``align_hidden_loss``, ``align_logits_loss``); :class:`CompositeLoss`
weights and sums them into ``loss``. Terms are enabled independently of the sampler (a fixed-arch run distils too).
A new term is one class here plus a line in :func:`build_loss_terms`; the loop does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..distillation import embedding_distance, hidden_state_mse, mean_pool, relation_kl, soft_target_kl
from ..modeling_magic_bert import MagicBertSelfAttention
from .arguments import LossArguments
from .electra import ElectraObjective
from .teacher import Teacher


@dataclass
class StepContext:
    """What a term may read: the (masked) batch, the child's outputs, the unwrapped model and the child's arch."""

    batch: dict[str, torch.Tensor]
    outputs: object  # MaskedLMOutput (with hidden_states when a term asked for them)
    model: torch.nn.Module  # unwrapped: terms run extra forwards (anchor, heads) on the shared weights
    arch: list[str] | None  # None for a fixed-arch model
    autocast: Callable  # accelerator.autocast: extra forwards run in the training precision

    @property
    def masked(self) -> torch.Tensor:
        return self.batch["labels"] != -100

    @property
    def masked_logits(self) -> torch.Tensor:
        """The child's predictions at the labelled positions, ``(labelled, vocab)``: as the forward gave them with
        ``masked_logits_only=True`` (the recipe's), or picked out of full ``(batch, seq, vocab)`` logits."""
        logits = self.outputs.logits
        return logits[self.masked] if logits.dim() == 3 else logits


class LossTerm:
    """One loss term: ``weights`` maps each component's log key to its weight in the total."""

    weights: dict[str, float]

    def needs_hidden_states(self, arch: list[str] | None) -> bool:
        return False

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class MaskedLMLoss(LossTerm):
    def __init__(self, weight: float = 1.0):
        self.weights = {"mlm_loss": weight}

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        return {"mlm_loss": ctx.outputs.loss}


class LogitsDistillation(LossTerm):
    """``T² · KL(teacher ‖ student)`` on the masked positions (both heads run there only); the teacher must predict
    over the same vocabulary."""

    def __init__(self, teacher: Teacher, weight: float, temperature: float = 1.0):
        self.teacher, self.temperature = teacher, temperature
        self.weights = {"kd_loss": weight}

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        target = self.teacher.outputs(ctx.batch, ctx.autocast).logits
        return {"kd_loss": _kl_over_rows(ctx.masked_logits, target, self.temperature)}


class HiddenStateDistillation(LossTerm):
    """Mean over the mapped pairs of the MSE between a student sublayer output (through ``projection`` when the
    widths differ) and a teacher hidden state, over real tokens. Works with any BERT encoder as the teacher.
    ``pairs`` may be a function of the step's arch (a supernet's uniform map, ``teacher.PerChildUniformMap``)."""

    def __init__(self, teacher: Teacher, weight: float,
                 pairs: list[tuple[int, int]] | Callable[[list[str]], list[tuple[int, int]]],
                 projection: torch.nn.Module | None = None):
        self.teacher, self.pairs, self.projection = teacher, pairs, projection
        self.weights = {"kd_hidden_loss": weight}

    def needs_hidden_states(self, arch: list[str] | None) -> bool:
        return True

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        pairs = self.pairs(ctx.arch) if callable(self.pairs) else self.pairs  # a supernet's uniform map: per child
        if not pairs:  # a child with every layer empty: nothing to match (zero, in the graph)
            return {"kd_hidden_loss": ctx.outputs.hidden_states[-1].sum() * 0.0}
        target = self.teacher.outputs(ctx.batch, ctx.autocast).hidden_states
        return {"kd_hidden_loss": hidden_state_mse(ctx.outputs.hidden_states, target, pairs,
                                                   ctx.batch["attention_mask"], self.projection)}


class AttentionRelationDistillation(LossTerm):
    """MiniLMv2's self-attention relation KD: the query-query, key-key and value-value relations of the student's
    last attention sublayer against those of teacher layer ``layer``, each split into ``heads`` relation heads (so
    the head counts and widths may differ), the KLs averaged. A path without attention gets 0. The projections are
    recomputed from each layer's input hidden state (three small matmuls), the teacher's without gradient."""

    def __init__(self, teacher: Teacher, weight: float, heads: int, layer: int):
        self.teacher, self.heads, self.layer = teacher, heads, layer
        self.weights = {"kd_attention_loss": weight}

    def needs_hidden_states(self, arch: list[str] | None) -> bool:
        return True

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        encoder = ctx.model.base_model.encoder
        ops = encoder.path(ctx.arch if encoder.supernet else None)
        index = next((i for i in reversed(range(len(ops))) if isinstance(ops[i], MagicBertSelfAttention)), None)
        if index is None:
            return {"kd_attention_loss": torch.zeros((), device=ctx.outputs.hidden_states[0].device)}
        student, mask = ops[index], ctx.batch["attention_mask"]
        student_input = ctx.outputs.hidden_states[index]  # the input of op `index`
        teacher_input = self.teacher.outputs(ctx.batch, ctx.autocast).hidden_states[self.layer]
        attention = self.teacher.self_attention(self.layer)
        losses = []
        for name in ("query", "key", "value"):
            with torch.no_grad():
                target = getattr(attention, name)(teacher_input)
            with ctx.autocast():
                states = getattr(student, name)(student_input)
            losses.append(relation_kl(states, target, self.heads, mask))
        return {"kd_attention_loss": torch.stack(losses).mean()}


class EmbeddingDistillation(LossTerm):
    """sentence-transformers' distillation: the student's mean-pooled last hidden state (through ``projection`` when
    the widths differ) against the teacher's, by ``loss`` (``cosine`` or ``mse``)."""

    def __init__(self, teacher: Teacher, weight: float, loss: str = "cosine",
                 projection: torch.nn.Module | None = None):
        self.teacher, self.loss, self.projection = teacher, loss, projection
        self.weights = {"kd_embedding_loss": weight}

    def needs_hidden_states(self, arch: list[str] | None) -> bool:
        return True

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        mask = ctx.batch["attention_mask"]
        student = ctx.outputs.hidden_states[-1]
        if self.projection is not None:
            student = self.projection(student)
        target = self.teacher.outputs(ctx.batch, ctx.autocast).hidden_states[-1]
        return {"kd_embedding_loss": embedding_distance(mean_pool(student.float(), mask), mean_pool(target, mask),
                                                        self.loss)}


class AnchorAlignment(LossTerm):
    """MAGIC-A: pull the child's per-layer outputs (and, unless its weight is 0, its predictions) toward the anchor's
    on the same batch. The anchor runs on the shared weights in eval mode (targets without dropout noise) under
    ``no_grad``; its MLM head only at the masked positions, the only ones the KL uses. A child that is the anchor
    gets zeros. ``precision`` is ``"training"`` (the anchor runs like the child, under the accelerator's autocast) or
    ``"bf16"`` (under a bfloat16 autocast: the targets carry no gradient, so only their rounding changes)."""

    def __init__(self, anchor_arch: Callable[[], list[str] | None], hidden_weight: float = 1.0,
                 logits_weight: float = 1.0, temperature: float = 1.0, precision: str = "training"):
        if precision not in ("training", "bf16"):
            raise ValueError(f"precision {precision!r}: resolve 'auto' first (resolve_anchor_precision)")
        self.anchor_arch, self.temperature, self.precision = anchor_arch, temperature, precision
        self.weights = {"align_hidden_loss": hidden_weight}
        if logits_weight > 0:  # weight 0 is `--alignment paper`: hidden states only, no extra head
            self.weights["align_logits_loss"] = logits_weight

    def needs_hidden_states(self, arch: list[str] | None) -> bool:
        return arch != self.anchor_arch()

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        anchor = self.anchor_arch()
        if ctx.arch == anchor:  # aligning a child with itself is a no-op
            zero = torch.zeros((), device=ctx.batch["input_ids"].device)
            return dict.fromkeys(self.weights, zero)
        model, masked = ctx.model, ctx.masked
        model.eval()
        with torch.no_grad(), self._autocast(ctx):
            target = model.bert(input_ids=ctx.batch["input_ids"], attention_mask=ctx.batch["attention_mask"],
                                arch=anchor, output_hidden_states=True)
            target_logits = model.cls(target.last_hidden_state[masked]) if "align_logits_loss" in self.weights \
                else None
        model.train()
        losses = {"align_hidden_loss": hidden_alignment(ctx.outputs.hidden_states, target.hidden_states)}
        if target_logits is not None:
            losses["align_logits_loss"] = _kl_over_rows(ctx.masked_logits, target_logits, self.temperature)
        return losses

    def _autocast(self, ctx: StepContext):
        if self.precision == "bf16":
            return torch.autocast(ctx.batch["input_ids"].device.type, dtype=torch.bfloat16)
        return ctx.autocast()


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision of a forward that computes targets only (the anchor's, the teacher's): ``auto`` → ``bf16``
    where ``device`` has bf16 kernels (a CUDA GPU that supports bf16; a CPU on which oneDNN runs bf16: AVX-512 or
    AMX), else ``training``; ``bf16`` and ``training`` stay."""
    if precision != "auto":
        return precision
    device = torch.device(device)
    # Native bf16 only: pre-Ampere GPUs emulate it (slower than fp32), which is_bf16_supported counts by default.
    native = {"cuda": lambda: torch.cuda.is_bf16_supported(including_emulation=False),
              "cpu": cpu_runs_bf16}.get(device.type, lambda: False)()
    return "bf16" if native else "training"


resolve_anchor_precision = resolve_precision  # the name of the first target-only forward it served


def cpu_runs_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 or AMX); elsewhere bf16 autocast is emulated, slower."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class CompositeLoss:
    """The step's loss: every term's components, weighted and summed into ``loss``."""

    def __init__(self, terms: list[LossTerm], electra: ElectraObjective | None = None):
        self.terms, self.electra = terms, electra

    @property
    def anchor_precision(self) -> str | None:
        """The resolved precision of the anchor's forward (None: no alignment term)."""
        return next((term.precision for term in self.terms if isinstance(term, AnchorAlignment)), None)

    def needs_hidden_states(self, arch: list[str] | None) -> bool:
        return any(term.needs_hidden_states(arch) for term in self.terms)

    def forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], arch: list[str],
                unwrapped: torch.nn.Module, autocast: Callable, supernet: bool = True,
                masked_logits_only: bool = True) -> dict[str, torch.Tensor]:
        """One micro-batch as pre-training runs it: the child's forward (``arch`` passed to a supernet) with the
        hidden states a term reads and its MLM head on the masked positions only, then every term.
        ``masked_logits_only=False`` runs the head over every position (the step before it was cheaper; benches).
        With ELECTRA the generator first fills the masked positions and the child sees that text (its masked-LM head
        runs nowhere); every term reads the corrupted batch."""
        electra = self.electra
        if electra is not None:
            batch, replaced, generator_loss = electra.corrupt(batch, unwrapped.bert.embeddings)
        outputs = model(**batch, output_hidden_states=electra is not None or self.needs_hidden_states(arch),
                        masked_logits_only=masked_logits_only, **({"arch": arch} if supernet else {}))
        losses = self(StepContext(batch, outputs, unwrapped, arch, autocast))
        if electra is not None:
            losses = electra.add_losses(losses, generator_loss, outputs.hidden_states[-1], replaced,
                                        batch["attention_mask"])
        return losses

    def __call__(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        components: dict[str, torch.Tensor] = {}
        total = None
        for term in self.terms:
            for key, value in term(ctx).items():
                components[key] = value
                weighted = term.weights[key] * value
                total = weighted if total is None else total + weighted
        return {"loss": total, **components}


def build_loss_terms(args: LossArguments, anchor_arch: Callable[[], list[str] | None] | None = None,
                     teacher: Teacher | None = None, kd_weight: float = 0.0,
                     layer_pairs: list[tuple[int, int]] | None = None,
                     projection: torch.nn.Module | None = None,
                     device: torch.device | str = "cpu", relation_heads: int | None = None,
                     attention_layer: int | None = None, electra: ElectraObjective | None = None) -> CompositeLoss:
    """MLM (weighing ``mlm_weight``, by default ``1 - kd_weight``; none at 0), logits distillation (``kd_weight`` >
    0), hidden-state, attention-relation (``relation_heads`` heads of teacher layer ``attention_layer``) and
    sentence-embedding distillation (their weights > 0), and alignment when the strategy keeps an anchor (its forward
    in ``anchor_precision``, resolved for ``device``); ``electra``: ELECTRA's objective in place of masked-LM."""
    mlm_weight = 0.0 if electra is not None else 1.0 - kd_weight if args.mlm_weight is None else args.mlm_weight
    terms: list[LossTerm] = [MaskedLMLoss(mlm_weight)] if mlm_weight > 0 else []
    if teacher is not None and kd_weight > 0:
        terms.append(LogitsDistillation(teacher, kd_weight, args.kd_temperature))
    if teacher is not None and args.kd_hidden_weight > 0:
        terms.append(HiddenStateDistillation(teacher, args.kd_hidden_weight, layer_pairs, projection))
    if teacher is not None and args.kd_attention_weight > 0:
        terms.append(AttentionRelationDistillation(teacher, args.kd_attention_weight, relation_heads,
                                                   attention_layer))
    if teacher is not None and args.kd_embedding_weight > 0:
        terms.append(EmbeddingDistillation(teacher, args.kd_embedding_weight, args.kd_embedding_loss, projection))
    if anchor_arch is not None:
        hidden_weight, logits_weight = args.alignment_weights()  # --alignment paper: logits weight 0
        precision = resolve_precision(args.anchor_precision, device)
        terms.append(AnchorAlignment(anchor_arch, hidden_weight, logits_weight, args.align_temperature, precision))
    return CompositeLoss(terms, electra)


def hidden_alignment(child_hidden_states, anchor_hidden_states) -> torch.Tensor:
    """Mean over layers of ``MSE(h_l(child), h_l(anchor))`` over the per-layer outputs (embeddings excluded); the
    anchor's states are detached, so only the child is pulled."""
    layer_pairs = zip(child_hidden_states[1:], anchor_hidden_states[1:], strict=True)
    # A bf16 anchor's states are compared in the child's dtype (a no-op when they match).
    return torch.stack([F.mse_loss(child, anchor.detach().to(child.dtype))
                        for child, anchor in layer_pairs]).mean()


def alignment_loss(child_hidden_states, anchor_hidden_states, child_logits: torch.Tensor,
                   anchor_logits: torch.Tensor, labels: torch.Tensor, hidden_weight: float = 1.0,
                   logits_weight: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
    """MAGIC-A's pull toward the anchor in one number (the paper's exact Eq. 5 is not public; this is our choice):

    ``hidden_weight * mean_l MSE(h_l(child), h_l(anchor))`` plus
    ``logits_weight * T² * KL(softmax(anchor/T) || softmax(child/T))`` on the masked positions (``labels != -100``).
    """
    return (hidden_weight * hidden_alignment(child_hidden_states, anchor_hidden_states)
            + logits_weight * masked_kl(child_logits, anchor_logits, labels, temperature))


def _kl_over_rows(student_logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The KD / alignment KL averaged over rows of masked positions; 0 (not NaN) for a batch without any, as before."""
    rows = torch.ones(student_logits.shape[0], dtype=torch.bool, device=student_logits.device)
    return soft_target_kl(student_logits, target_logits, temperature, mask=rows)


def masked_kl(student_logits: torch.Tensor, target_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float = 1.0) -> torch.Tensor:
    """``T² * KL(softmax(target/T) || softmax(student/T))`` averaged over masked positions (``labels != -100``).

    The target is detached. Used for the anchor's predictions (MAGIC-A) and a teacher's (distillation).
    """
    return soft_target_kl(student_logits, target_logits, temperature, mask=labels != -100)


__all__ = ["AnchorAlignment", "AttentionRelationDistillation", "CompositeLoss", "EmbeddingDistillation",
           "HiddenStateDistillation", "LogitsDistillation", "LossTerm",
           "MaskedLMLoss", "StepContext", "alignment_loss", "build_loss_terms", "hidden_alignment", "masked_kl",
           "resolve_anchor_precision", "resolve_precision"]
