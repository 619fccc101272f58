"""Import transformers BERT models into MagicBert (and the supernet), and turn BERT-shaped MagicBert models back.

``from_bert(bert, model_class, config)`` and ``to_bert(model)`` are the API (exported by ``magic_bert``). This module is
part of the installed package only: the model code saved with checkpoints never imports it, so checkpoint folders
hold only the four core files.

BERT layer ``j`` is MagicBert layers ``2j`` (``mha:<heads>``) and ``2j+1`` (``ffn:<intermediate_size>``); embeddings,
pooler and heads are the same modules under the same names, so only ``encoder.layer.*`` keys are renamed.
"""

from __future__ import annotations

import re

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    PreTrainedModel,
)

from .configuration_magic_bert import MagicBertConfig
from .modeling_magic_bert import (
    MagicBertForMaskedLM,
    MagicBertForSequenceClassification,
    MagicBertModel,
    MagicBertPreTrainedModel,
    MagicBertSupernetForMaskedLM,
)
from .modeling_magic_bert_heads import (
    MagicBertForMultipleChoice,
    MagicBertForQuestionAnswering,
    MagicBertForTokenClassification,
)

# BERT module inside layer j -> (offset of the MagicBert layer, module name inside that op).
_BERT_TO_MAGIC = {
    "attention.self.query": (0, "query"),
    "attention.self.key": (0, "key"),
    "attention.self.value": (0, "value"),
    "attention.output.dense": (0, "output"),
    "attention.output.LayerNorm": (0, "LayerNorm"),
    "intermediate.dense": (1, "intermediate"),
    "output.dense": (1, "output"),
    "output.LayerNorm": (1, "LayerNorm"),
}
_MAGIC_TO_BERT = {target: source for source, target in _BERT_TO_MAGIC.items()}
_BERT_LAYER_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?encoder\.layer\.)(?P<index>\d+)\.(?P<module>.+)\.(?P<param>\w+)$")

# Which BERT class corresponds to which MagicBert class (fixed models; the supernet imports a masked-LM BERT).
_BERT_CLASS = {
    MagicBertModel: BertModel,
    MagicBertForMaskedLM: BertForMaskedLM,
    MagicBertSupernetForMaskedLM: BertForMaskedLM,
    MagicBertForSequenceClassification: BertForSequenceClassification,
    MagicBertForTokenClassification: BertForTokenClassification,
    MagicBertForQuestionAnswering: BertForQuestionAnswering,
    MagicBertForMultipleChoice: BertForMultipleChoice,
}
_SHARED_FIELDS = (
    "vocab_size", "hidden_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
    "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id",
    "classifier_dropout", "tie_word_embeddings",
)
_LABEL_FIELDS = ("id2label", "label2id", "problem_type")


def bert_arch(bert_config: BertConfig) -> list[str]:
    """The MagicBert arch of a BERT config: ``[mha:heads, ffn:intermediate] * num_hidden_layers``."""
    return [f"mha:{bert_config.num_attention_heads}", f"ffn:{bert_config.intermediate_size}"] * (
        bert_config.num_hidden_layers
    )


def magic_config_from_bert(bert_config: BertConfig, arch: bool = True) -> MagicBertConfig:
    """A MagicBert config with BERT's dimensions; candidate ops are BERT's two ops; ``arch`` its layers or ``None``."""
    ops = bert_arch(bert_config)
    return MagicBertConfig(
        **{field: getattr(bert_config, field) for field in _SHARED_FIELDS},
        **{field: getattr(bert_config, field) for field in _LABEL_FIELDS},
        num_hidden_layers=len(ops),
        candidate_ops=ops[:2],
        arch=ops if arch else None,
    )


def bert_to_magic_state_dict(state_dict: dict) -> dict:
    renamed = {}
    for name, tensor in state_dict.items():
        match = _BERT_LAYER_KEY.match(name)
        if match is not None and match["module"] in _BERT_TO_MAGIC:
            offset, module = _BERT_TO_MAGIC[match["module"]]
            name = f"{match['prefix']}{2 * int(match['index']) + offset}.{module}.{match['param']}"
        renamed[name] = tensor
    return renamed


def magic_to_bert_state_dict(state_dict: dict) -> dict:
    renamed = {}
    for name, tensor in state_dict.items():
        match = _BERT_LAYER_KEY.match(name)
        if match is not None:
            index = int(match["index"])
            module = _MAGIC_TO_BERT[(index % 2, match["module"])]
            name = f"{match['prefix']}{index // 2}.{module}.{match['param']}"
        renamed[name] = tensor
    return renamed


def _load_bert(bert, bert_class: type[PreTrainedModel]) -> PreTrainedModel:
    if isinstance(bert, (str, bytes)) or hasattr(bert, "__fspath__"):
        return bert_class.from_pretrained(bert)
    bert_classes = list(dict.fromkeys(_BERT_CLASS.values()))
    if not isinstance(bert, tuple(bert_classes)):
        raise ValueError(
            f"Expected a transformers BertModel or one of its heads ({', '.join(c.__name__ for c in bert_classes[1:])}"
            f"), or a path / Hub id; got {type(bert).__name__}."
        )
    if type(bert) is not bert_class:
        raise ValueError(f"Importing into this class needs a {bert_class.__name__}, got a {type(bert).__name__}.")
    return bert


def _check_matches_bert(config: MagicBertConfig, bert_config: BertConfig) -> None:
    mismatched = [
        f"{field}: {getattr(config, field)!r} vs BERT's {getattr(bert_config, field)!r}"
        for field in ("vocab_size", "hidden_size", "max_position_embeddings", "type_vocab_size", "hidden_act",
                      "layer_norm_eps", "pad_token_id")
        if getattr(config, field) != getattr(bert_config, field)
    ]
    layers = 2 * bert_config.num_hidden_layers
    if config.num_hidden_layers != layers:
        mismatched.append(f"num_hidden_layers: {config.num_hidden_layers} vs {layers} (2 per BERT layer)")
    missing_ops = [op for op in bert_arch(bert_config)[:2] if op not in config.candidate_ops]
    if missing_ops:
        mismatched.append(f"candidate_ops lack BERT's ops {missing_ops}")
    if mismatched:
        raise ValueError("The MagicBert config does not fit this BERT model: " + "; ".join(mismatched) + ".")


def from_bert(bert, model_class: type[MagicBertPreTrainedModel] = MagicBertForMaskedLM,
              config: MagicBertConfig | None = None) -> MagicBertPreTrainedModel:
    """Import ``bert`` (a transformers BERT instance, Hub id or path) as a ``model_class``: identical outputs for the
    BERT-shaped arch ``[mha:<heads>, ffn:<intermediate_size>] * num_hidden_layers``.

    ``model_class`` is :class:`MagicBertModel` (from a ``BertModel``), :class:`MagicBertForMaskedLM` or
    :class:`MagicBertSupernetForMaskedLM` (from a ``BertForMaskedLM``), or the head of the same name as a BERT head:
    ``MagicBertFor{SequenceClassification,TokenClassification,QuestionAnswering,MultipleChoice}``.

    For the supernet, ``config`` may give a larger search space (more candidate ops) with BERT's dimensions and
    ``2 * num_hidden_layers`` layers: BERT's weights go into the ``mha``/``ffn`` ops of its own arch, the other ops
    keep their fresh initialisation. Fixed models take BERT's config (``config`` must be ``None``).
    """
    if model_class not in _BERT_CLASS:
        raise ValueError(f"from_bert is not available for {getattr(model_class, '__name__', model_class)!r}; "
                         f"model_class is one of {[c.__name__ for c in _BERT_CLASS]}.")
    bert = _load_bert(bert, _BERT_CLASS[model_class])
    state_dict = bert_to_magic_state_dict(bert.state_dict())
    attn_implementation = bert.config._attn_implementation
    if model_class is MagicBertSupernetForMaskedLM:
        config = magic_config_from_bert(bert.config, arch=False) if config is None else config.with_arch(None)
        _check_matches_bert(config, bert.config)
        config._attn_implementation = attn_implementation
        supernet = model_class(config).to(dtype=bert.dtype)
        supernet.load_child_state_dict(bert_arch(bert.config), state_dict)
        return supernet.to(bert.device).train(bert.training)
    if config is not None:
        raise ValueError("Fixed models take their config from BERT: call from_bert(bert, model_class) without config.")
    config = magic_config_from_bert(bert.config)
    config._attn_implementation = attn_implementation
    if model_class is MagicBertModel:
        model = model_class(config, add_pooling_layer=bert.pooler is not None)
    else:
        model = model_class(config)
    model = model.to(dtype=bert.dtype)
    model.load_state_dict(state_dict, strict=True)
    return model.to(bert.device).train(bert.training)


def _zero_padded(state_dict: dict, shapes: dict) -> dict:
    """A ``heads:<k>`` layer's projections padded to BERT's ``H`` heads with zeros: the extra heads have zero value
    weights and bias (their context is 0 whatever they attend to) and zero output columns, so they add nothing."""
    padded = {}
    for name, tensor in state_dict.items():
        shape = shapes[name].shape if name in shapes else tensor.shape
        if tensor.shape != shape:
            grown = torch.zeros(shape, dtype=tensor.dtype, device=tensor.device)
            grown[tuple(slice(0, n) for n in tensor.shape)] = tensor  # the kept heads first, zero heads after
            tensor = grown
        padded[name] = tensor
    return padded


def to_bert(model: PreTrainedModel) -> PreTrainedModel:
    """The plain transformers ``Bert*`` model of a BERT-shaped MagicBert model (same weights, same outputs).

    A ``heads:<k>`` layer becomes a BERT layer whose other heads are zero (transformers v5 has no ``pruned_heads``):
    the same outputs, at the size of a BERT with every head; the MagicBert checkpoint is the small one."""
    if isinstance(model, MagicBertSupernetForMaskedLM):
        raise ValueError("to_bert needs a fixed architecture; call supernet.export(arch) first.")
    magic_class = type(model)
    if magic_class not in _BERT_CLASS:
        fixed = [c.__name__ for c in _BERT_CLASS if c is not MagicBertSupernetForMaskedLM]
        raise ValueError(f"to_bert takes one of {fixed}, got {magic_class}.")
    config = model.config
    if not config.is_bert_shaped:
        raise ValueError(
            f"to_bert needs a BERT-shaped arch [attention, 'ffn:<inner>'] * n (one inner size; attention 'mha:<H>' or "
            f"'heads:<k>' with one head size hidden/H); got {config.arch}."
        )
    heads, inner = config.bert_num_attention_heads, config.arch_specs[1].size
    bert_config = BertConfig(
        **{field: getattr(config, field) for field in _SHARED_FIELDS},
        **{field: getattr(config, field) for field in _LABEL_FIELDS},
        num_hidden_layers=config.num_hidden_layers // 2,
        num_attention_heads=heads,
        intermediate_size=inner,
    )
    bert_config._attn_implementation = config._attn_implementation
    bert_class = _BERT_CLASS[magic_class]
    if bert_class is BertModel:
        bert = BertModel(bert_config, add_pooling_layer=model.pooler is not None)
    else:
        bert = bert_class(bert_config)
    bert.load_state_dict(_zero_padded(magic_to_bert_state_dict(model.state_dict()), bert.state_dict()), strict=True)
    param = next(model.parameters())
    return bert.to(device=param.device, dtype=param.dtype).train(model.training)


__all__ = ["bert_arch", "from_bert", "magic_config_from_bert", "to_bert"]
