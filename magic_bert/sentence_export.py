"""sentence-transformers students: a child as a folder that ``SentenceTransformer(path)`` loads.

The folder is what sentence-transformers itself saves (``modules.json``, ``sentence_bert_config.json``,
``config_sentence_transformers.json``, ``1_Pooling/``) around the HF checkpoint at its root (``config.json``,
``model.safetensors``, the tokenizer): the child's bare encoder, then mean pooling over the real tokens, the package's
own :func:`magic_bert.distillation.mean_pool`. A BERT-shaped child is saved as a plain transformers ``BertModel``
(no remote code); any other arch as ``MagicBertModel`` with its modeling code, loaded with ``import magic_bert`` or
``SentenceTransformer(path, trust_remote_code=True)``.

sentence-transformers is an optional extra (``pip install magic_bert[sentence]``); it is imported only here, when a
folder is written.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedModel
from transformers.models.bert.modeling_bert import BertPreTrainedModel

from .bert_interop import to_bert
from .errors import InputError
from .io_utils import check_output_dir, publish_dir
from .modeling_magic_bert import MagicBertPreTrainedModel, fixed_normal

SENTENCE_EXTRA = "pip install magic_bert[sentence]"


def require_sentence_transformers(what: str = "Saving a sentence-transformers folder") -> None:
    """One clear line when sentence-transformers (6 or newer: its module layout) is not installed."""
    try:
        import sentence_transformers.sentence_transformer.modules  # noqa: F401
    except ImportError:
        raise InputError(f"{what} needs sentence-transformers>=6, which is not installed: {SENTENCE_EXTRA}") from None


def sentence_encoder(model: PreTrainedModel) -> PreTrainedModel:
    """The bare encoder of ``model`` (a fixed magic_bert child or a transformers BERT, any head) with a pooler, as
    ``AutoModel`` loads it; a plain ``BertModel`` when the arch is BERT-shaped. ``model`` itself is left unchanged.

    A masked-LM child has no pooler; it gets a fresh one, saved (sentence embeddings never read it), so that loading
    reports no missing weight.
    """
    if not isinstance(model, MagicBertPreTrainedModel | BertPreTrainedModel):
        raise InputError(f"`model` must be a magic_bert child or a transformers BERT model, got "
                         f"{type(model).__name__}.")
    if getattr(model.config, "arch", []) is None:
        raise InputError("`model` is a supernet: pass one child, `supernet.export(arch)`.")
    base = model.base_model
    encoder = base
    if base.pooler is None:
        param = next(base.parameters())
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            encoder = type(base)(base.config).to(device=param.device, dtype=param.dtype)
        missing, unexpected = encoder.load_state_dict(base.state_dict(), strict=False)
        assert not unexpected and all(key.startswith("pooler.") for key in missing), (missing, unexpected)
        with torch.no_grad():  # the same pooler at every export, whatever the class (BertModel draws it at random)
            encoder.pooler.dense.weight.copy_(fixed_normal(encoder.pooler.dense.weight.shape,
                                                           encoder.config.initializer_range))
            encoder.pooler.dense.bias.zero_()
    # A stock BertModel where one holds the arch as is (pruned heads would come back as zero heads, full size).
    if getattr(encoder.config, "is_bert_shaped", False) and not getattr(encoder.config, "prunes_heads", False):
        encoder = to_bert(encoder)
    return encoder


def write_sentence_transformer(folder: Path, encoder: PreTrainedModel, tokenizer, model_card: bool = True) -> None:
    """Fill ``folder`` with ``encoder`` (from :func:`sentence_encoder`), ``tokenizer`` and mean pooling, as
    ``SentenceTransformer.save`` writes them (with its model card when ``model_card``)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformer = Transformer(str(folder))  # sentence-transformers' own loading of the checkpoint just written
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder), create_model_card=model_card)
    tokenizer.save_pretrained(folder)  # the tokenizer as given, not as re-saved by sentence-transformers' processor


def save_sentence_transformer(model: PreTrainedModel, tokenizer, output_dir: str | Path,
                              overwrite_output_dir: bool = False) -> Path:
    """Write ``model`` (a fixed child or a BERT, any head: its encoder is kept) and ``tokenizer`` as a
    sentence-transformers folder with mean pooling in ``output_dir``, published whole; returns it.

    ``SentenceTransformer(output_dir).encode(texts)`` then equals :func:`magic_bert.distillation.mean_pool` of the
    encoder's last hidden state. Every input is checked before anything is written.
    """
    require_sentence_transformers()
    if not callable(getattr(tokenizer, "save_pretrained", None)):
        raise InputError(f"`tokenizer` must be a transformers tokenizer, got {type(tokenizer).__name__}.")
    output = check_output_dir(output_dir, overwrite_output_dir)
    encoder = sentence_encoder(model)
    return publish_dir(output, lambda staging: write_sentence_transformer(staging, encoder, tokenizer))


__all__ = ["SENTENCE_EXTRA", "require_sentence_transformers", "save_sentence_transformer", "sentence_encoder",
           "write_sentence_transformer"]
