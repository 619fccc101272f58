"""MagicBert models: searchable ops, fixed-architecture models and the weight-sharing supernet.

Only same-folder (relative) imports here: ``save_pretrained`` copies this file and its relative imports next to the
weights so that ``AutoModel*.from_pretrained(dir, trust_remote_code=True)`` works where ``magic_bert`` is not installed.
Embeddings, pooler and masked-LM head are transformers' own BERT modules, so BERT checkpoints map key for key.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, MaskedLMOutput, SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertLMPredictionHead,
    BertOnlyMLMHead,
    BertPooler,
    eager_attention_forward,
)
from transformers.utils import is_peft_available
from transformers.utils.generic import can_return_tuple

from .configuration_magic_bert import MagicBertConfig, MagicBertSupernetConfig, default_auto_map
from .op_specs import OP_KINDS, OpSpec, attach_op_module, op_kind, parse_arch


class MagicBertOp(GradientCheckpointingLayer):
    """A searchable layer. ``forward(hidden_states, attention_mask, padding_mask) -> (hidden_states, attn_weights)``.

    ``attention_mask`` is the mask prepared for the attention backend; ``padding_mask`` is the 2-D 0/1 mask of real
    tokens (or ``None`` when there is no padding), used by convolutions. Subclasses are built as ``cls(config, size)``
    and registered for their op kind with :func:`register_op_module`. Ops that never read ``padding_mask`` set
    ``uses_padding_mask = False``: a path of such ops does not build it.
    """

    uses_padding_mask = True


def register_op_module(kind: str) -> Callable[[type[MagicBertOp]], type[MagicBertOp]]:
    """Class decorator: ``kind`` (an entry of ``op_specs.OP_KINDS``) is built by the decorated class."""

    def attach(module: type[MagicBertOp]) -> type[MagicBertOp]:
        attach_op_module(kind, module)
        return module

    return attach


@register_op_module("identity")
class MagicBertIdentity(MagicBertOp):
    """Skip the layer: the input passes through unchanged (no parameters, no LayerNorm)."""

    uses_padding_mask = False

    def __init__(self, config: MagicBertConfig | None = None, size: int = 0):
        super().__init__()

    def forward(self, hidden_states, attention_mask=None, padding_mask=None):
        return hidden_states, None


@register_op_module("mha")
class MagicBertSelfAttention(MagicBertOp):
    """Multi-head self-attention + output projection + dropout + residual + LayerNorm (BERT's attention block)."""

    uses_padding_mask = False

    def __init__(self, config: MagicBertConfig, num_heads: int, head_dim: int | None = None):
        super().__init__()
        self.config = config  # the attention interface reads config._attn_implementation
        self.num_heads = num_heads
        self.head_dim = config.hidden_size // num_heads if head_dim is None else head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        width = num_heads * self.head_dim
        self.query = nn.Linear(config.hidden_size, width)
        self.key = nn.Linear(config.hidden_size, width)
        self.value = nn.Linear(config.hidden_size, width)
        self.output = nn.Linear(width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.attention_dropout = config.attention_probs_dropout_prob

    def forward(self, hidden_states, attention_mask=None, padding_mask=None):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query = self.query(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.key(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.value(hidden_states).view(hidden_shape).transpose(1, 2)

        implementation = self.config._attn_implementation or "eager"
        attention = eager_attention_forward if implementation == "eager" else ALL_ATTENTION_FUNCTIONS[implementation]
        attn_output, attn_weights = attention(
            self, query, key, value, attention_mask,
            dropout=self.attention_dropout if self.training else 0.0, scaling=self.scaling,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.LayerNorm(self.dropout(self.output(attn_output)) + hidden_states), attn_weights


@register_op_module("heads")
class MagicBertPrunedSelfAttention(MagicBertSelfAttention):
    """``heads:<k>``: BERT's attention block with ``k`` heads of ``config.attention_head_size`` (projections
    ``k × head size`` wide), e.g. a teacher layer with only its ``k`` most important heads (``inherit_from_bert``)."""

    def __init__(self, config: MagicBertConfig, kept_heads: int):
        super().__init__(config, kept_heads, head_dim=config.attention_head_size)


@register_op_module("ffn")
class MagicBertFeedForward(MagicBertOp):
    """Position-wise feed-forward: dense → activation → dense → dropout → LayerNorm(x + residual) (BERT's FFN)."""

    uses_padding_mask = False

    def __init__(self, config: MagicBertConfig, inner_size: int):
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, inner_size)
        self.activation = ACT2FN[config.hidden_act]
        self.output = nn.Linear(inner_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, attention_mask=None, padding_mask=None):
        output = self.output(self.activation(self.intermediate(hidden_states)))
        return self.LayerNorm(self.dropout(output) + hidden_states), None


@register_op_module("conv")
class MagicBertSeparableConv(MagicBertOp):
    """Depthwise conv over the sequence → pointwise projection → activation → dropout → LayerNorm(x + residual).

    Padded positions are zeroed before convolving, so they look exactly like the conv's own zero padding: adding
    right padding never changes the outputs at real tokens.
    """

    def __init__(self, config: MagicBertConfig, kernel_size: int):
        super().__init__()
        hidden = config.hidden_size
        self.depthwise = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.pointwise = nn.Linear(hidden, hidden)
        self.activation = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, attention_mask=None, padding_mask=None):
        inputs = hidden_states if padding_mask is None else hidden_states * padding_mask.unsqueeze(-1)
        mixed = self.depthwise(inputs.transpose(1, 2)).transpose(1, 2)
        output = self.activation(self.pointwise(mixed))
        return self.LayerNorm(self.dropout(output) + hidden_states), None


def build_op(spec: OpSpec, config: MagicBertConfig) -> MagicBertOp:
    """The module of ``spec``, looked up in the op-kind registry; a ``ValueError`` names unknown kinds."""
    kind = op_kind(spec.kind)
    if kind.module is None:
        raise ValueError(f"Op kind {spec.kind!r} has no module; decorate its MagicBertOp class with "
                         f"@register_op_module({spec.kind!r}). Kinds with modules: "
                         f"{[name for name, known in OP_KINDS.items() if known.module is not None]}.")
    return kind.module(config, spec.size)


class MagicBertChoiceLayer(nn.Module):
    """A supernet layer: every candidate op, keyed by ``OpSpec.key`` (e.g. ``mha_12``)."""

    def __init__(self, config: MagicBertConfig):
        super().__init__()
        self.ops = nn.ModuleDict({spec.key: build_op(spec, config) for spec in config.op_specs})


class MagicBertEncoder(nn.Module):
    """The chain of searchable layers: fixed ops, or (``supernet=True``) choice layers run along a given arch."""

    def __init__(self, config: MagicBertConfig, supernet: bool = False):
        super().__init__()
        self.config = config
        self.supernet = supernet
        if supernet:
            self.layer = nn.ModuleList(MagicBertChoiceLayer(config) for _ in range(config.num_hidden_layers))
        else:
            self.layer = nn.ModuleList(build_op(spec, config) for spec in config.arch_specs)

    def path(self, arch=None) -> list[MagicBertOp]:
        """The op modules that run: the fixed layers, or the supernet's ops selected by ``arch``."""
        if not self.supernet:
            if arch is not None:
                raise ValueError("`arch` is only accepted by supernets; this fixed model runs config.arch.")
            return list(self.layer)
        if arch is None:
            raise ValueError(
                "A supernet forward needs `arch=[...]` (one op per layer), e.g. model.search_space.sample(); "
                f"candidate ops: {self.config.candidate_ops}."
            )
        specs = parse_arch(arch, self.config.candidate_ops, self.config.num_hidden_layers)
        return [layer.ops[spec.key] for layer, spec in zip(self.layer, specs, strict=True)]

    def forward(self, hidden_states, attention_mask=None, padding_mask=None, arch=None,
                output_hidden_states: bool = False, output_attentions: bool = False,
                ops: list[MagicBertOp] | None = None):
        """``ops``: the path when the caller looked it up already (else ``path(arch)``)."""
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for op in self.path(arch) if ops is None else ops:
            hidden_states, attn_weights = op(hidden_states, attention_mask, padding_mask)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attn_weights,)
        return hidden_states, all_hidden_states, all_attentions


# The seed of :func:`fixed_normal`: weights a checkpoint may lack are drawn the same at every load.
FIXED_INIT_SEED = 0


def fixed_normal(shape: torch.Size, std: float) -> torch.Tensor:
    """N(0, std²) draws, the same at every call (their own CPU generator; the global RNG is untouched)."""
    return torch.empty(shape, device="cpu").normal_(std=std, generator=torch.Generator().manual_seed(FIXED_INIT_SEED))


class MagicBertPreTrainedModel(PreTrainedModel):
    config: MagicBertConfig
    config_class = MagicBertConfig
    base_model_prefix = "bert"
    supports_gradient_checkpointing = True
    # Back-ends with outputs equal to eager's (tests/test_attention_backends.py); flash-attention is untested here.
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # Head classes whose code lives in the heads module set this: their folders hold that file too.
    _saves_heads_code = False
    # Every registered op module stays on one device (kinds registered after this point are not listed).
    _no_split_modules = ["BertEmbeddings", *(kind.module.__name__ for kind in OP_KINDS.values() if kind.module)]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, BertLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)

    @property
    def search_space(self):
        return self.config.search_space

    def get_correct_attn_implementation(self, requested_attention: str | None, is_init_check: bool = False) -> str:
        # transformers accepts paged attention for any model; it serves generation from a paged KV cache and, on this
        # encoder, gives other outputs than eager with padding: refuse it rather than run it.
        if requested_attention is not None and requested_attention.startswith("paged|"):
            raise ValueError(f"{type(self).__name__} does not support attn_implementation={requested_attention!r} "
                             "(paged attention is for generation); use 'sdpa', 'eager' or 'flex_attention'.")
        return super().get_correct_attn_implementation(requested_attention, is_init_check)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # auto_map names only classes whose code this folder will hold (the heads file travels with head models).
        self.config.auto_map = default_auto_map(self.config.arch is None, heads=self._saves_heads_code)
        return super().save_pretrained(save_directory, *args, **kwargs)


class MagicBertModel(MagicBertPreTrainedModel):
    """The bare encoder of a fixed architecture (``config.arch``): embeddings, searchable layers, optional pooler."""

    _is_supernet = False

    def __init__(self, config: MagicBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        if self._is_supernet and config.arch is not None:
            raise ValueError(
                f"A supernet config must have arch=None, got arch={config.arch}; use config.with_arch(None)."
            )
        if not self._is_supernet and config.arch is None:
            raise ValueError(
                f"{type(self).__name__} needs config.arch (one op per layer from {config.candidate_ops}); "
                "config.arch is None, which describes a supernet: use MagicBertSupernetForMaskedLM, "
                "or config.with_arch([...]). (A supernet folder saved before supernets had their own model_type "
                "loads with MagicBertSupernetForMaskedLM.from_pretrained(path); save_pretrained it again and the "
                "Auto classes load it too.)"
            )
        self.embeddings = BertEmbeddings(config)
        self.encoder = MagicBertEncoder(config, supernet=self._is_supernet)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if self.pooler is not None and module is self.pooler.dense:
            # Masked-LM checkpoints hold no pooler (as BERT's): a classifier made from one gets the same fresh pooler
            # at every load, so a LoRA adapter (which does not save the frozen pooler) reloads to the same logits.
            init.copy_(module.weight, fixed_normal(module.weight.shape, self.config.initializer_range))

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        arch: list[str] | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""
        arch (`list[str]`, *optional*):
            Supernets only: the child to run, one op name per layer. Fixed models always run `config.arch`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Specify exactly one of input_ids or inputs_embeds.")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else (
            self.config.output_hidden_states)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        embedding_output = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )
        ops = self.encoder.path(arch)
        mask, padding_mask = encoder_masks(self.config, embedding_output, attention_mask, ops)
        sequence_output, hidden_states, attentions = self.encoder(
            embedding_output, mask, padding_mask, arch=arch, ops=ops,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
        return BaseModelOutputWithPooling(
            last_hidden_state=sequence_output, pooler_output=pooled_output, hidden_states=hidden_states,
            attentions=attentions,
        )


def encoder_masks(config: MagicBertConfig, embedding_output: torch.Tensor, attention_mask: torch.Tensor | None,
                  ops: list[MagicBertOp]) -> tuple[object, torch.Tensor | None]:
    """The attention back-end's mask and, for a path with convolutions, the 2-D mask of real tokens (a prepared 4-D
    mask gives them none: no padding assumed; a path without them skips building it)."""
    padding_mask = attention_mask.to(embedding_output.dtype) if (
        attention_mask is not None and attention_mask.dim() == 2 and any(op.uses_padding_mask for op in ops)
    ) else None
    return create_bidirectional_mask(config=config, inputs_embeds=embedding_output,
                                     attention_mask=attention_mask), padding_mask


def _supernet_config(config: MagicBertConfig) -> MagicBertSupernetConfig:
    """A supernet's config is a :class:`MagicBertSupernetConfig` (its own ``model_type``), whatever it came from."""
    if config.arch is not None:
        raise ValueError(f"A supernet config must have arch=None, got arch={config.arch}; use config.with_arch(None).")
    return config if isinstance(config, MagicBertSupernetConfig) else config.with_arch(None)


class MagicBertSupernetModel(MagicBertModel):
    """The weight-sharing encoder: every candidate op in every layer; ``forward(..., arch=[...])`` runs one child."""

    config_class = MagicBertSupernetConfig
    _is_supernet = True

    def __init__(self, config: MagicBertConfig, add_pooling_layer: bool = True):
        super().__init__(_supernet_config(config), add_pooling_layer=add_pooling_layer)


class _MagicBertMaskedLMBase(MagicBertPreTrainedModel):
    """Encoder + BERT's masked-LM head with embeddings tied to the decoder (shared by fixed models and supernet)."""

    _base_model_class: type[MagicBertModel]
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.bert = self._base_model_class(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        arch: list[str] | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        masked_logits_only: bool = False,
        **kwargs,
    ) -> MaskedLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Token ids to predict; `-100` marks positions without a loss.
        arch (`list[str]`, *optional*):
            Supernets only: the child to run, one op name per layer.
        masked_logits_only (`bool`, *optional*, defaults to `False`):
            Run the MLM head only where `labels != -100` (needs `labels`): `logits` is then
            `(num_labelled, vocab_size)`, the labelled positions in row-major order, and the loss is the same. The
            head's decoder (hidden × vocabulary) is the costliest part of a small model's step and only ~15 % of the
            positions carry a loss, so training and scoring loops ask for it. The default keeps HF's contract (full
            `(batch, seq, vocab)` logits), which `Trainer`'s evaluation and `compute_metrics` rely on. (No "label"
            in the name: `Trainer` takes every forward argument whose name holds "label" for a label column.)
        """
        if masked_logits_only and labels is None:
            raise ValueError("`masked_logits_only=True` needs `labels` (the positions whose logits are computed).")
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, arch=arch, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )
        sequence_output = outputs.last_hidden_state
        if masked_logits_only:
            labelled = labels != -100
            sequence_output, labels = sequence_output[labelled], labels[labelled]
        logits = self.cls(sequence_output)
        loss = None
        if labels is not None and labels.numel():  # (masked_logits_only with no labelled position: no loss)
            # `num_items_in_batch` (Trainer, accumulation-aware loops) normalises over all accumulated tokens.
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size,
                                      num_items_in_batch=kwargs.get("num_items_in_batch"))
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MagicBertForMaskedLM(_MagicBertMaskedLMBase):
    """A fixed architecture with the masked-LM head (tied embeddings)."""

    _base_model_class = MagicBertModel


# Supernet parameter names are child names with `ops.<op key>.` after the layer index.
_SUPERNET_OP_KEY = re.compile(r"^(?P<layer>(?:.*\.)?encoder\.layer\.(?P<index>\d+)\.)ops\.(?P<op>[^.]+)\.(?P<rest>.+)$")
_CHILD_LAYER_KEY = re.compile(r"^(?P<layer>(?:.*\.)?encoder\.layer\.(?P<index>\d+)\.)(?P<rest>.+)$")


class MagicBertSupernetForMaskedLM(_MagicBertMaskedLMBase):
    """The supernet with the masked-LM head. ``forward(..., arch=[...])`` runs (and trains) one child; only the
    child's ops receive gradients. ``export(arch)`` gives that child as a standalone :class:`MagicBertForMaskedLM`.
    """

    config_class = MagicBertSupernetConfig
    _base_model_class = MagicBertSupernetModel

    def __init__(self, config: MagicBertConfig):
        super().__init__(_supernet_config(config))

    def child_state_dict(self, arch) -> dict[str, torch.Tensor]:
        """The weights of child ``arch`` under the parameter names of a :class:`MagicBertForMaskedLM`."""
        keys = [spec.key for spec in parse_arch(arch, self.config.candidate_ops, self.config.num_hidden_layers)]
        child = {}
        for name, tensor in self.state_dict().items():
            match = _SUPERNET_OP_KEY.match(name)
            if match is None:
                child[name] = tensor
            elif keys[int(match["index"])] == match["op"]:
                child[match["layer"] + match["rest"]] = tensor
        return child

    def load_child_state_dict(self, arch, state_dict: dict[str, torch.Tensor]) -> None:
        """Write a child's weights (names of a :class:`MagicBertForMaskedLM`) into the ops ``arch`` selects."""
        keys = [spec.key for spec in parse_arch(arch, self.config.candidate_ops, self.config.num_hidden_layers)]
        renamed = {}
        for name, tensor in state_dict.items():
            match = _CHILD_LAYER_KEY.match(name)
            if match is not None:
                name = f"{match['layer']}ops.{keys[int(match['index'])]}.{match['rest']}"
            renamed[name] = tensor
        # Check everything before writing anything, so a bad state dict leaves the supernet untouched.
        own = self.state_dict()
        unexpected = [k for k in renamed if k not in own]
        if unexpected:
            raise ValueError(f"Child weights do not fit this supernet: unexpected keys {unexpected[:5]}.")
        absent = sorted(k for k in self.child_state_dict(arch) if k not in state_dict)
        if absent:
            raise ValueError(f"Child weights are missing keys for arch {list(arch)}: {absent[:5]}.")
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in renamed.items()
                 if v.shape != own[k].shape]
        if wrong:
            raise ValueError(f"Child weights have the wrong shapes for this supernet: {wrong[:5]}.")
        self.load_state_dict(renamed, strict=False)

    def child_parameters(self, arch) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of every supernet parameter child ``arch`` uses (embeddings and head included)."""
        keys = [spec.key for spec in parse_arch(arch, self.config.candidate_ops, self.config.num_hidden_layers)]
        return [
            (name, param) for name, param in self.named_parameters()
            if (match := _SUPERNET_OP_KEY.match(name)) is None or keys[int(match["index"])] == match["op"]
        ]

    def export(self, arch) -> MagicBertForMaskedLM:
        """Child ``arch`` as a standalone :class:`MagicBertForMaskedLM` with the inherited (copied) weights."""
        child = MagicBertForMaskedLM(self.config.with_arch(arch))
        child.load_state_dict(self.child_state_dict(arch), strict=True)
        param = next(self.parameters())
        return child.to(device=param.device, dtype=param.dtype).train(self.training)


class MagicBertForSequenceClassification(MagicBertPreTrainedModel):
    """A fixed architecture with BERT's pooled classification / regression head."""

    def __init__(self, config: MagicBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = MagicBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.Tensor` of shape `(batch_size,)`, *optional*):
            Class indices (classification) or float targets (regression when `config.num_labels == 1`).
        """
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# peft's default targets when `target_modules` is not given: BERT's LoRA default. `output` would name both the
# attention and the FFN projection, so it is left out.
PEFT_TARGET_MODULES = ["query", "value"]


def register_peft_target_modules() -> bool:
    """Register :data:`PEFT_TARGET_MODULES` for both model types with LoRA and every peft adapter whose BERT default
    is the same (AdaLoRA, LoHa, LoKr, VeRA, OFT, ...). Runs on import, here and in remote code; False without peft."""
    if is_peft_available():  # optional: remote code must load without it (transformers skips this import check)
        from peft.utils import constants

        for name, mapping in vars(constants).items():
            if name.startswith("TRANSFORMERS_MODELS_TO_") and name.endswith("_TARGET_MODULES_MAPPING") and (
                    isinstance(mapping, dict) and mapping.get("bert") == PEFT_TARGET_MODULES):
                for model_type in (MagicBertConfig.model_type, MagicBertSupernetConfig.model_type):
                    mapping.setdefault(model_type, list(PEFT_TARGET_MODULES))
        return True
    return False


register_peft_target_modules()

# `save_pretrained` copies this code next to the weights and completes the config's `auto_map`.
MagicBertModel.register_for_auto_class("AutoModel")
MagicBertForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
MagicBertSupernetModel.register_for_auto_class("AutoModel")
MagicBertSupernetForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
MagicBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "FIXED_INIT_SEED",
    "MagicBertForMaskedLM",
    "MagicBertForSequenceClassification",
    "MagicBertModel",
    "MagicBertOp",
    "MagicBertPreTrainedModel",
    "MagicBertSupernetForMaskedLM",
    "MagicBertSupernetModel",
    "PEFT_TARGET_MODULES",
    "fixed_normal",
    "register_peft_target_modules",
]
