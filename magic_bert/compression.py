"""Compress a pretrained BERT: a search space built around it, and every candidate op of the supernet started from it.

* :func:`space_from_bert` — the BERT's hidden size, head size, vocabulary, positions and token types, ``2 × layers``
  sublayers and the ops ``identity``, ``mha:<H/2>``, ``mha:<H>``, ``heads:<H/4>``, ``heads:<H/2>``, ``ffn:<I/4>``,
  ``ffn:<I/2>``, ``ffn:<I>``, ``conv:3/5/7``.
* :func:`inherit_from_bert` — every op of sublayers ``2j`` and ``2j+1`` starts from BERT layer ``j``:

  - ``mha:<h>`` takes the layer's query/key/value/output projections and attention LayerNorm (every ``mha`` has
    full-width projections, so ``h`` heads are a re-split of the same weights);
  - ``heads:<k>`` takes the layer's ``k`` most important heads (:data:`INHERIT_METHODS`; kept in BERT's order): their
    query/key/value rows and output-projection columns, BERT's output bias and attention LayerNorm;
  - ``ffn:<n>`` takes the ``n`` most important neurons of the layer's FFN (:data:`INHERIT_METHODS`); ``ffn:<I>`` is
    BERT's FFN in its own order, and a wider ``ffn`` adds neurons with zero output weights (the same function);
  - ``conv:<k>`` starts with a zero pointwise projection (weight and bias) and the LayerNorm BERT has at that
    sublayer (attention's at ``2j``, the FFN's at ``2j+1``). Its forward is ``LayerNorm(x + act(pointwise(...)))``
    and ``act(0) = 0`` for BERT's activations, so a fresh conv computes exactly ``LayerNorm_bert(x)``: BERT's
    sublayer with its attention / FFN term removed. It cannot be ``x`` itself (a post-LayerNorm block renormalises);
    this is the identity through the residual that BERT's next sublayer expects. The depthwise conv keeps its fresh
    initialisation, so the gradient reaches the pointwise weights from the first step (``gelu'(0) = 0.5``).

  What each op inherited is recorded in ``config.inherited`` (saved in ``config.json``, shown on model cards).
* :func:`bert_layers_arch` — the child of that space that is exactly some of BERT's layers (``identity`` elsewhere):
  a hand-designed student such as DistilBERT's every other layer, built from the teacher's own weights.

This module is part of the installed package only (checkpoint folders never import it).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoConfig, BertConfig, BertForMaskedLM, PreTrainedModel

from .bert_interop import _SHARED_FIELDS
from .configuration_magic_bert import MagicBertConfig, MagicBertSupernetConfig
from .errors import InputError, invalid_value
from .op_specs import parse_op
from .optim import check_finite_weights

INHERIT_METHODS = ("importance", "magnitude", "first")
CONV_KERNELS = (3, 5, 7)


# ------------------------------------------------------------------------------------------------------- the space
def _bert_config(bert, what: str = "`bert`") -> BertConfig:
    """The BERT config of a config, a BERT model, or a path / Hub id (only its config.json is read); ``what`` names
    it in the error."""
    if isinstance(bert, PreTrainedModel):
        bert = bert.config
    elif isinstance(bert, str | Path):
        bert = AutoConfig.from_pretrained(str(bert))
    if not isinstance(bert, BertConfig):
        raise InputError(f"{what} must be a BERT (model, config, path or Hub id); got {type(bert).__name__}.")
    return bert


def default_bert_ops(bert_config: BertConfig) -> list[str]:
    """``identity``, ``mha:<H/2>``, ``mha:<H>``, ``heads:<H/4>``, ``heads:<H/2>``, ``ffn:<I/4>``, ``ffn:<I/2>``,
    ``ffn:<I>``, ``conv:3/5/7`` (duplicates, head counts that do not divide the hidden size and empty sizes dropped).
    ``heads:<k>`` keeps ``k`` of a layer's heads, so attention too can be made narrower rather than only dropped."""
    heads, inner, hidden = bert_config.num_attention_heads, bert_config.intermediate_size, bert_config.hidden_size
    mha = sorted({h for h in (heads // 2, heads) if h >= 1 and hidden % h == 0})
    kept = sorted({k for k in (heads // 4, heads // 2) if 1 <= k < heads}) if hidden % heads == 0 else []
    ffn = sorted({i for i in (inner // 4, inner // 2, inner) if i >= 1})
    return ["identity", *(f"mha:{h}" for h in mha), *(f"heads:{k}" for k in kept), *(f"ffn:{i}" for i in ffn),
            *(f"conv:{k}" for k in CONV_KERNELS)]


def space_from_bert(bert, ops: list[str] | None = None, what: str = "`bert`") -> MagicBertSupernetConfig:
    """The supernet config of a search space around ``bert`` (a BERT model, its config, or a path / Hub id).

    Dimensions, vocabulary, positions, token types and activation are BERT's, and ``attention_head_size`` its head
    size (``heads:<k>`` ops keep ``k`` of its heads); there are ``2 × num_hidden_layers`` sublayers (BERT layer ``j`` is
    sublayers ``2j`` and ``2j+1``); ``ops`` defaults to :func:`default_bert_ops` and must contain BERT's own two ops,
    so that its own arch is a child. ``what`` names ``bert`` in errors (e.g. ``"`init_from_bert` 'path'"``).
    """
    bert_config = _bert_config(bert, what)
    ops = default_bert_ops(bert_config) if ops is None else list(ops)
    own = [f"mha:{bert_config.num_attention_heads}", f"ffn:{bert_config.intermediate_size}"]
    with invalid_value("`ops`"):
        config = MagicBertSupernetConfig(**{field: getattr(bert_config, field) for field in _SHARED_FIELDS},
                                         num_hidden_layers=2 * bert_config.num_hidden_layers, candidate_ops=ops,
                                         attention_head_size=bert_config.hidden_size // bert_config.num_attention_heads)
    missing = [op for op in own if op not in config.candidate_ops]
    if missing:
        raise InputError(f"`ops` must include BERT's own ops {own} (its arch is a child of the space); "
                         f"missing {missing}.")
    return config


def bert_layers_arch(bert, layers: Iterable[int]) -> list[str]:
    """The arch of the space around ``bert`` that computes BERT's ``layers`` (in order) and nothing else.

    Sublayers ``2j`` and ``2j+1`` inherit BERT layer ``j``, so keeping layer ``j`` is ``[mha:<H>, ffn:<I>]`` there
    and dropping it is ``[identity, identity]`` (which passes hidden states through unchanged). Exported from a
    supernet built by :func:`supernet_from_bert`, ``bert_layers_arch(bert, [0, 2, 4])`` is BERT's layers 0, 2 and 4
    with their weights: DistilBERT's initialisation."""
    bert_config = _bert_config(bert)
    depth, layers = bert_config.num_hidden_layers, list(layers)
    kept = sorted(set(layers))
    if not kept or any(not isinstance(j, int) or not 0 <= j < depth for j in kept):
        raise InputError(f"`layers` must be layer indices in [0, {depth - 1}]; got {layers}.")
    own = [f"mha:{bert_config.num_attention_heads}", f"ffn:{bert_config.intermediate_size}"]
    return [op for j in range(depth) for op in (own if j in kept else ["identity", "identity"])]


HAND_DESIGNS = ("every_other_layer", "first_half", "width_half")


def teacher_ops(config: MagicBertConfig) -> list[str] | None:
    """The ``[mha:<H>, ffn:<I>]`` of the BERT a space was built around and inherited from (``config.inherited``;
    supernets inherited before the record existed: its ``mha`` with the most heads and the FFN recorded as BERT's)."""
    inherited = getattr(config, "inherited", None) or {}
    if inherited.get("teacher_ops"):
        return list(inherited["teacher_ops"])
    own_ffn = [op for op, what in (inherited.get("ops") or {}).items() if what == "BERT's FFN"]
    mha = [spec.size for spec in config.op_specs if spec.kind == "mha"]
    return [f"mha:{max(mha)}", own_ffn[0]] if own_ffn and mha else None


def hand_designed_archs(config: MagicBertConfig, own: list[str] | None = None) -> dict[str, list[str]]:
    """The hand-designed students of a space built around a BERT whose layer is ``own`` (``[mha:<H>, ffn:<I>]``;
    default :func:`teacher_ops`, the record of a supernet that inherited from it), by name:

    - ``every_other_layer``: BERT layers 0, 2, 4, ... (DistilBERT's initialisation);
    - ``first_half``: its first ``L/2`` layers;
    - ``width_half``: every layer with half its heads and half its FFN neurons, ``[heads:H/2, ffn:I/2] * L`` (the
      uniform width cut DynaBERT's width multiplier 0.5 gives).

    Only those whose ops the space has, each once and none equal to the BERT itself; none for a space that was not
    built around a BERT."""
    own = own or teacher_ops(config)
    if own is None or config.num_hidden_layers % 2:
        return {}
    depth, (heads, inner) = config.num_hidden_layers // 2, (parse_op(op).size for op in own)

    def layers(kept) -> list[str]:
        return [op for j in range(depth) for op in (own if j in kept else ["identity", "identity"])]

    designs = {"every_other_layer": layers(range(0, depth, 2)), "first_half": layers(range(max(1, depth // 2))),
               "width_half": [f"heads:{heads // 2}", f"ffn:{inner // 2}"] * depth}
    kept: dict[str, list[str]] = {}
    for name, arch in designs.items():
        if set(arch) <= set(config.candidate_ops) and arch != own * depth and arch not in kept.values():
            kept[name] = arch
    return kept


# ------------------------------------------------------------------------------------------------- neuron order
def _bert_layers(bert: PreTrainedModel):
    return (bert.bert if isinstance(bert, BertForMaskedLM) else bert).encoder.layer


def _head_columns(layer, values: torch.Tensor) -> torch.Tensor:
    """``values`` over the attention width (last dim) summed per head: ``(..., heads)``."""
    heads = layer.attention.self.config.num_attention_heads
    return values.reshape(*values.shape[:-1], heads, values.shape[-1] // heads).sum(-1)


def _magnitude_scores(bert: PreTrainedModel) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Norm of each neuron's input weights × norm of its output weights (no data); for a head, the norm of its value
    rows × the norm of its output columns (what it can add to the layer's output)."""
    layers = _bert_layers(bert)
    ffn = [layer.intermediate.dense.weight.double().norm(dim=1) * layer.output.dense.weight.double().norm(dim=0)
           for layer in layers]
    heads = [_head_columns(layer, layer.attention.self.value.weight.double().square().sum(1)).sqrt()
             * _head_output_norms(layer) for layer in layers]
    return ffn, heads


def _head_output_norms(layer) -> torch.Tensor:
    """Per head: the norm of its columns of the attention's output projection (what it can write)."""
    return _head_columns(layer, layer.attention.output.dense.weight.detach().double().square().sum(0)).sqrt()


def _model_inputs(batch: dict, device: torch.device) -> dict:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {key: torch.as_tensor(batch[key]).to(device) for key in keys if batch.get(key) is not None}


def _activation_scores(bert: PreTrainedModel, batches: Iterable[dict],
                       max_batches: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per FFN neuron and per attention head (its slice of the attention output before the output projection): with an
    MLM head, ``|Σ activation × ∂MLM loss/∂activation|`` summed over batches (the first-order loss change of removing
    it, as DynaBERT ranks heads and neurons); without one, mean ``|activation|`` over real tokens × the norm of its
    output weights."""
    layers = _bert_layers(bert)
    with_head = isinstance(bert, BertForMaskedLM)
    device = next(bert.parameters()).device
    ffn = [torch.zeros(layer.intermediate.dense.out_features, dtype=torch.float64) for layer in layers]
    heads = [torch.zeros(layer.attention.self.config.num_attention_heads, dtype=torch.float64) for layer in layers]
    neurons: list[torch.Tensor] = []  # the layers' FFN activations, in layer order
    contexts: list[torch.Tensor] = []  # the layers' attention outputs before the output projection
    hooks = [layer.intermediate.register_forward_hook(lambda _m, _i, out: neurons.append(out)) for layer in layers]
    hooks += [layer.attention.self.register_forward_hook(lambda _m, _i, out: contexts.append(out[0]))
              for layer in layers]
    tokens, seen, training = 0, 0, bert.training
    bert.eval()
    try:
        for batch in batches:
            if seen >= max_batches:
                break
            seen += 1
            neurons.clear()
            contexts.clear()
            inputs = _model_inputs(batch, device)
            mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).unsqueeze(-1).double()
            tokens += int(mask.sum())
            if with_head:
                if batch.get("labels") is None:
                    raise InputError("`batches` need masked-LM `labels` to rank neurons by importance with an MLM "
                                     "head (held-out blocks masked once have them).")
                ids = inputs.pop("input_ids")
                with torch.enable_grad():  # gradients w.r.t. activations only: the weights' .grad stays untouched
                    embeds = bert.get_input_embeddings()(ids).detach().requires_grad_()
                    loss = bert(inputs_embeds=embeds, labels=torch.as_tensor(batch["labels"]).to(device),
                                **inputs).loss
                    activations = neurons + contexts
                    grads = torch.autograd.grad(loss, activations)
                terms = [((act * grad).double() * mask).sum(dim=(0, 1)) for act, grad in
                         zip(activations, grads, strict=True)]
            else:
                with torch.no_grad():
                    bert(**inputs)
                terms = [(act.detach().double().abs() * mask).sum(dim=(0, 1)) for act in neurons + contexts]
            for j, layer in enumerate(layers):  # a head's term sums its columns before the absolute value
                ffn[j] += terms[j].abs().cpu()
                heads[j] += _head_columns(layer, terms[len(layers) + j]).abs().cpu()
    finally:
        for hook in hooks:
            hook.remove()
        bert.train(training)
    if seen == 0:
        raise InputError("`batches` is empty: ranking neurons by importance needs held-out batches.")
    if not with_head:
        ffn = [s / max(tokens, 1) * layer.output.dense.weight.detach().double().norm(dim=0).cpu()
               for s, layer in zip(ffn, layers, strict=True)]
        heads = [s / max(tokens, 1) * _head_output_norms(layer).cpu() for s, layer in zip(heads, layers, strict=True)]
    return ffn, heads


def unit_orders(bert: PreTrainedModel, method: str = "importance", batches: Iterable[dict] | None = None,
                max_batches: int = 8) -> tuple[list[list[int]], list[list[int]]]:
    """For each BERT layer, its FFN neurons and its attention heads, each from most to least important (stable sorts:
    ties keep index order), from one pass over the data.

    ``importance`` needs ``batches`` (an iterable of held-out batches; the first ``max_batches`` are used),
    ``magnitude`` and ``first`` need no data. ``bert`` is a ``BertForMaskedLM`` (its MLM loss ranks them) or a
    ``BertModel``.
    """
    if method not in INHERIT_METHODS:
        raise InputError(f"`inherit` {method!r} is not a method; choose one of {list(INHERIT_METHODS)}.")
    layers = _bert_layers(bert)
    if method == "first":
        return ([list(range(layer.intermediate.dense.out_features)) for layer in layers],
                [list(range(layer.attention.self.config.num_attention_heads)) for layer in layers])
    if method == "magnitude":
        ffn, heads = _magnitude_scores(bert)
    elif batches is None:
        raise InputError("`inherit` importance needs held-out `batches` (or use `inherit` magnitude).")
    else:
        ffn, heads = _activation_scores(bert, batches, max_batches)

    def order(scores: list[torch.Tensor]) -> list[list[int]]:
        return [torch.argsort(-s.detach().cpu(), stable=True).tolist() for s in scores]

    return order(ffn), order(heads)


def neuron_orders(bert: PreTrainedModel, method: str = "importance", batches: Iterable[dict] | None = None,
                  max_batches: int = 8) -> list[list[int]]:
    """For each BERT layer, its FFN neurons from most to least important (see :func:`unit_orders`)."""
    return unit_orders(bert, method, batches, max_batches)[0]


def head_orders(bert: PreTrainedModel, method: str = "importance", batches: Iterable[dict] | None = None,
                max_batches: int = 8) -> list[list[int]]:
    """For each BERT layer, its attention heads from most to least important (see :func:`unit_orders`)."""
    return unit_orders(bert, method, batches, max_batches)[1]


# ---------------------------------------------------------------------------------------------------- inheritance
def _copy(target: torch.nn.Module, source: torch.nn.Module) -> None:
    target.weight.copy_(source.weight)
    target.bias.copy_(source.bias)


def _inherit_ffn(op: torch.nn.Module, bert_layer, order: list[int], method: str) -> str:
    inner, n = len(order), op.intermediate.out_features
    w_in, b_in = bert_layer.intermediate.dense.weight, bert_layer.intermediate.dense.bias
    w_out = bert_layer.output.dense.weight
    kept = list(range(inner)) if n >= inner else order[:n]  # BERT's own width keeps BERT's order: exactly BERT
    index = torch.tensor(kept, device=w_in.device)
    m = len(kept)
    op.intermediate.weight[:m].copy_(w_in[index])
    op.intermediate.bias[:m].copy_(b_in[index])
    op.output.weight[:, :m].copy_(w_out[:, index])
    op.output.weight[:, m:].zero_()  # extra neurons (a wider ffn) add nothing until trained
    op.output.bias.copy_(bert_layer.output.dense.bias)
    _copy(op.LayerNorm, bert_layer.output.LayerNorm)
    if n == inner:
        return "BERT's FFN"
    if n > inner:
        return f"BERT's FFN + {n - inner} new neurons with zero output weights"
    return f"{method}: {n} of {inner} neurons"


def _inherit_heads(op: torch.nn.Module, bert_layer, order: list[int], method: str) -> str:
    """``heads:<k>``: the ``k`` first heads of ``order`` (kept in BERT's order), their projection rows and output
    columns; BERT's output bias and LayerNorm."""
    attention, total, k = bert_layer.attention, len(order), op.num_heads
    if k > total or op.head_dim * total != attention.self.query.out_features:
        raise InputError(f"Op heads:{k} (head size {op.head_dim}) cannot keep heads of a BERT layer with {total} "
                         f"heads of {attention.self.query.out_features // total}.")
    kept = sorted(order[:k])
    index = torch.cat([torch.arange(h * op.head_dim, (h + 1) * op.head_dim) for h in kept]).to(op.query.weight.device)
    for name in ("query", "key", "value"):
        source = getattr(attention.self, name)
        getattr(op, name).weight.copy_(source.weight[index])
        getattr(op, name).bias.copy_(source.bias[index])
    op.output.weight.copy_(attention.output.dense.weight[:, index])
    op.output.bias.copy_(attention.output.dense.bias)
    _copy(op.LayerNorm, attention.output.LayerNorm)
    return "BERT's attention" if k == total else f"{method}: {k} of {total} heads"


def _inherit_mha(op: torch.nn.Module, bert_layer) -> str:
    attention = bert_layer.attention
    for name in ("query", "key", "value"):
        _copy(getattr(op, name), getattr(attention.self, name))
    _copy(op.output, attention.output.dense)
    _copy(op.LayerNorm, attention.output.LayerNorm)
    return "BERT's attention projections, re-split into heads"


def _inherit_conv(op: torch.nn.Module, layer_norm: torch.nn.LayerNorm) -> str:
    op.pointwise.weight.zero_()
    op.pointwise.bias.zero_()
    _copy(op.LayerNorm, layer_norm)
    return "zero pointwise projection: starts as BERT's LayerNorm of the sublayer"


def _check_fits(supernet, bert: PreTrainedModel) -> None:
    config, bert_config = supernet.config, bert.config
    if config.hidden_size != bert_config.hidden_size or config.num_hidden_layers != 2 * bert_config.num_hidden_layers:
        raise InputError(f"`bert` (hidden {bert_config.hidden_size}, {bert_config.num_hidden_layers} layers) does not "
                         f"fit a supernet of hidden {config.hidden_size} with {config.num_hidden_layers} sublayers "
                         "(2 per BERT layer).")


@torch.no_grad()
def inherit_from_bert(supernet, bert: PreTrainedModel, method: str = "importance",
                      batches: Iterable[dict] | None = None, accelerator=None, max_batches: int = 8,
                      orders: tuple[list[list[int]], list[list[int]]] | None = None) -> dict:
    """Start every candidate op of ``supernet`` (a :class:`MagicBertSupernetForMaskedLM` or supernet model) from
    ``bert`` (a ``BertForMaskedLM`` or ``BertModel`` of the same hidden size and half the sublayers); see the module
    docstring for what each op takes. Embeddings and head are not touched (``from_bert`` loads them).

    The neuron and head orders are computed on the main process and sent to every rank when ``accelerator`` is given
    (else computed here: deterministic for the same data and weights), or taken from ``orders`` (``(ffn, heads)`` as
    :func:`unit_orders` returns them). Returns the record also stored in ``supernet.config.inherited``:
    ``{"method": ..., "ops": {op: what it inherited}}``.
    """
    _check_fits(supernet, bert)
    if orders is None:
        def compute() -> tuple[list[list[int]], list[list[int]]]:
            return unit_orders(bert, method, batches, max_batches)

        if accelerator is None:
            orders = compute()
        else:
            from .ranks import computed_on_main

            orders = computed_on_main(accelerator, compute)
    bert_layers = _bert_layers(bert)
    if not (isinstance(orders, tuple) and len(orders) == 2 and all(len(o) == len(bert_layers) for o in orders)):
        raise ValueError(f"`orders` must be (FFN orders, head orders), one list per BERT layer ({len(bert_layers)}), "
                         "as unit_orders returns them.")
    ffn_orders, head_orders_ = orders
    base = getattr(supernet, "bert", supernet)
    record: dict[str, str] = {}
    for position, layer in enumerate(base.encoder.layer):
        bert_layer = bert_layers[position // 2]
        layer_norm = (bert_layer.attention.output.LayerNorm if position % 2 == 0 else bert_layer.output.LayerNorm)
        for spec in supernet.config.op_specs:
            op = layer.ops[spec.key]
            if spec.kind == "mha":
                record[spec.name] = _inherit_mha(op, bert_layer)
            elif spec.kind == "heads":
                record[spec.name] = _inherit_heads(op, bert_layer, head_orders_[position // 2], method)
            elif spec.kind == "ffn":
                record[spec.name] = _inherit_ffn(op, bert_layer, ffn_orders[position // 2], method)
            elif spec.kind == "conv":
                record[spec.name] = _inherit_conv(op, layer_norm)
            else:
                record[spec.name] = "nothing (no parameters)"
    own = [f"mha:{bert.config.num_attention_heads}", f"ffn:{bert.config.intermediate_size}"]
    inherited = {"method": method, "ops": record, "teacher_ops": own}
    supernet.config.inherited = inherited
    return inherited


class _MissingHeadFilter(logging.Filter):
    """transformers calls a checkpoint without BERT's MLM head "corrupted" (its tied decoder bias is absent); for a
    ``BertModel`` that is expected, and the warning below says what it means here."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("seem corrupted" in message and "cls.predictions" in message)


@contextmanager
def _quiet_missing_head() -> Iterator[None]:
    logger, hush = logging.getLogger("transformers.modeling_utils"), _MissingHeadFilter()
    logger.addFilter(hush)
    try:
        yield
    finally:
        logger.removeFilter(hush)


def supernet_from_bert(name: str, config: MagicBertConfig, method: str = "importance",
                       batches: Iterable[dict] | None = None, accelerator=None):
    """A :class:`MagicBertSupernetForMaskedLM` of ``config`` whose every candidate op starts from BERT ``name``:
    BERT's own arch is BERT exactly, and :func:`inherit_from_bert` fills the other ops. Without ``batches``,
    ``importance`` falls back to ``magnitude`` with a warning (recorded as such)."""
    from .bert_interop import from_bert
    from .modeling_magic_bert import MagicBertSupernetForMaskedLM

    with _quiet_missing_head():
        bert, info = BertForMaskedLM.from_pretrained(name, output_loading_info=True)
    check_finite_weights(bert, f"`init_from_bert` {str(name)!r}")  # every op would inherit the NaN
    # A BertModel checkpoint (no MLM head) loads with a fresh head: rank its neurons without the MLM loss.
    has_head = not any(key.startswith("cls.") for key in info.get("missing_keys", ()))
    if not has_head:
        warnings.warn(f"`init_from_bert` {name!r} has no MLM head: the student's head is tied to the embeddings with "
                      "a fresh transform, so its masked-LM predictions start untrained (the encoder learns from the "
                      "teacher through the `kd_*_weight` terms; `mlm_weight` 0 leaves the head out).", stacklevel=2)
    supernet = from_bert(bert, MagicBertSupernetForMaskedLM, config=config)
    if method == "importance" and batches is None:
        warnings.warn("`inherit` importance got no held-out batches; FFN neurons and attention heads are ranked by "
                      "magnitude instead.",
                      stacklevel=2)
        method = "magnitude"
    inherit_from_bert(supernet, bert if has_head else bert.bert, method, batches, accelerator)
    supernet.config.inherited["bert"] = str(name)
    return supernet


__all__ = ["CONV_KERNELS", "HAND_DESIGNS", "INHERIT_METHODS", "bert_layers_arch", "default_bert_ops",
           "hand_designed_archs", "head_orders", "inherit_from_bert", "neuron_orders", "space_from_bert",
           "supernet_from_bert", "teacher_ops", "unit_orders"]
