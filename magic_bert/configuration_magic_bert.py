"""MagicBertConfig: a BERT config plus the search space (candidate ops per layer) and, for a fixed model, its arch."""

from __future__ import annotations

import copy

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .op_specs import OpSpec, parse_arch, parse_op

# NAS-BERT's op set at hidden 512 (`60m`) and 768 (`110m`), 24 layers each; `tiny` is for tests and the default run.
PRESETS: dict[str, dict] = {
    "tiny": {
        "vocab_size": 1000,
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "max_position_embeddings": 128,
        "candidate_ops": ["identity", "mha:1", "mha:2", "ffn:128", "ffn:256", "conv:3", "conv:5", "conv:7"],
    },
    "60m": {
        "vocab_size": 30522,
        "hidden_size": 512,
        "num_hidden_layers": 24,
        "max_position_embeddings": 512,
        "candidate_ops": [
            "identity", "mha:4", "mha:8", "ffn:1024", "ffn:2048", "ffn:3072", "conv:3", "conv:5", "conv:7",
        ],
    },
    "110m": {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 24,
        "max_position_embeddings": 512,
        "candidate_ops": [
            "identity", "mha:6", "mha:12", "ffn:1536", "ffn:3072", "ffn:4096", "conv:3", "conv:5", "conv:7",
        ],
    },
}


# The task heads live in a module of their own, copied next to a checkpoint only when a head model is saved.
HEADS_MODULE = "modeling_magic_bert_heads"
HEAD_AUTO_CLASSES = {
    "AutoModelForTokenClassification": "MagicBertForTokenClassification",
    "AutoModelForQuestionAnswering": "MagicBertForQuestionAnswering",
    "AutoModelForMultipleChoice": "MagicBertForMultipleChoice",
}


def default_auto_map(supernet: bool, heads: bool = False) -> dict[str, str]:
    """Where each Auto class finds our code next to a checkpoint (for ``trust_remote_code`` loading).

    ``heads`` adds the token-classification / question-answering / multiple-choice classes, whose file is saved
    only with those models (so other checkpoints keep the four core files and never point at a missing one).
    """
    if supernet:
        return {
            "AutoConfig": "configuration_magic_bert.MagicBertSupernetConfig",
            "AutoModel": "modeling_magic_bert.MagicBertSupernetModel",
            "AutoModelForMaskedLM": "modeling_magic_bert.MagicBertSupernetForMaskedLM",
        }
    auto_map = {
        "AutoConfig": "configuration_magic_bert.MagicBertConfig",
        "AutoModel": "modeling_magic_bert.MagicBertModel",
        "AutoModelForMaskedLM": "modeling_magic_bert.MagicBertForMaskedLM",
        "AutoModelForSequenceClassification": "modeling_magic_bert.MagicBertForSequenceClassification",
    }
    if heads:
        auto_map.update({auto: f"{HEADS_MODULE}.{name}" for auto, name in HEAD_AUTO_CLASSES.items()})
    return auto_map


def default_candidate_ops(hidden_size: int) -> list[str]:
    """The NAS-BERT op list scaled to ``hidden_size`` (used when neither ``candidate_ops`` nor ``arch`` is given).

    Head counts are ``hidden/128`` and ``hidden/64`` where they divide ``hidden_size`` (else one head).
    """
    heads = sorted({h for h in (hidden_size // 128, hidden_size // 64) if h >= 1 and hidden_size % h == 0} or {1})
    return ["identity", *(f"mha:{h}" for h in heads), f"ffn:{2 * hidden_size}", f"ffn:{4 * hidden_size}",
            "conv:3", "conv:5", "conv:7"]


class MagicBertConfig(PreTrainedConfig):
    r"""
    Configuration of a MagicBert model: a BERT whose encoder is a chain of ``num_hidden_layers`` searchable layers,
    each running one operator from ``candidate_ops``. With ``arch=None`` it describes a supernet (every candidate op
    in every layer); with ``arch`` (one op name per layer) a fixed child model.

    Op names: ``identity``, ``mha:<heads>``, ``heads:<kept heads>`` (attention with that many heads of
    ``attention_head_size``, which such ops need), ``ffn:<inner_size>``, ``conv:<odd kernel>``. Each op is its module,
    dropout, a residual connection and a post-LayerNorm (``identity`` passes its input through), so
    ``["mha:12", "ffn:3072"] * 12`` at hidden size 768 is BERT-base weight for weight.

    Examples:

    ```python
    >>> from magic_bert import MagicBertConfig, MagicBertModel
    >>> config = MagicBertConfig.from_preset("tiny", arch=["mha:2", "ffn:256", "conv:3", "identity"])
    >>> config.search_space.num_params(config.arch) == MagicBertModel(config).num_parameters()
    True
    ```
    """

    model_type = "magic_bert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 24
    candidate_ops: list[str] | None = None
    arch: list[str] | None = None
    attention_head_size: int | None = None
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The class says what this is (supernet or fixed child); a model_type read from an older folder must not.
        self.__dict__.pop("model_type", None)
        if not isinstance(self.num_hidden_layers, int) or self.num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be a positive integer, got {self.num_hidden_layers!r}.")
        if isinstance(self.hidden_act, str) and self.hidden_act not in ACT2FN:
            raise ValueError(f"Unknown hidden_act {self.hidden_act!r}; allowed: {sorted(ACT2FN)}.")
        if self.candidate_ops is None:
            # A checkpoint that only names its arch: its own ops are the candidates.
            self.candidate_ops = (default_candidate_ops(self.hidden_size) if self.arch is None
                                  else list(dict.fromkeys(parse_op(op).name for op in self.arch)))
        if isinstance(self.candidate_ops, str) or not isinstance(self.candidate_ops, (list, tuple)):
            raise ValueError(f"candidate_ops must be a list of op names, got {self.candidate_ops!r}.")
        ops = [parse_op(op) for op in self.candidate_ops]
        if not ops:
            raise ValueError("candidate_ops is empty; give at least one op name.")
        head_size = self.attention_head_size
        if head_size is not None and (isinstance(head_size, bool) or not isinstance(head_size, int) or head_size < 1):
            raise ValueError(f"attention_head_size must be a positive integer or None, got {head_size!r}.")
        for spec in ops:
            spec.check_hidden_size(self.hidden_size, head_size)
        if len(set(ops)) != len(ops):
            raise ValueError(f"candidate_ops has duplicates: {list(self.candidate_ops)}.")
        self.candidate_ops = [spec.name for spec in ops]  # canonical names, JSON-friendly
        if self.arch is not None:
            self.arch = [spec.name for spec in parse_arch(self.arch, self.candidate_ops, self.num_hidden_layers)]
        # Hub users load our checkpoints with trust_remote_code: point every Auto class at the saved code (the heads
        # too when this config comes from a folder that holds their file).
        saved = getattr(self, "auto_map", None)
        heads = isinstance(saved, dict) and any(str(ref).startswith(f"{HEADS_MODULE}.") for ref in saved.values())
        self.auto_map = default_auto_map(self.arch is None, heads=heads and self.arch is not None)

    @property
    def op_specs(self) -> list[OpSpec]:
        return [parse_op(op) for op in self.candidate_ops]

    @property
    def arch_specs(self) -> list[OpSpec] | None:
        return None if self.arch is None else [parse_op(op) for op in self.arch]

    @property
    def search_space(self):
        from .search_space import SearchSpace

        return SearchSpace(self)

    @property
    def is_bert_shaped(self) -> bool:
        """True when a plain BERT encoder holds the arch (see :attr:`bert_num_attention_heads`)."""
        return self.bert_num_attention_heads is not None

    @property
    def bert_num_attention_heads(self) -> int | None:
        """The ``num_attention_heads`` of the BERT that holds this arch, or ``None`` when none does.

        A BERT holds ``[attention, ffn:i] * n`` with one inner size ``i`` and one head size: every attention op is
        ``mha:H`` (the same ``H`` in every layer) or ``heads:k`` with ``attention_head_size = hidden_size / H``. A
        ``heads:k`` layer is a BERT layer with ``H - k`` zero heads (transformers v5 has no ``pruned_heads``), which
        add exactly nothing to its output."""
        specs = self.arch_specs
        if not specs or len(specs) % 2 or any(s != specs[1] or s.kind != "ffn" for s in specs[1::2]):
            return None
        counts = set()
        for spec in specs[0::2]:
            if spec.kind == "mha":
                counts.add(spec.size)
            elif spec.kind == "heads" and self.hidden_size % self.attention_head_size == 0:
                counts.add(self.hidden_size // self.attention_head_size)
            else:
                return None
        return counts.pop() if len(counts) == 1 else None

    @property
    def prunes_heads(self) -> bool:
        """A BERT-shaped arch with a ``heads:<k>`` layer that keeps fewer heads than its BERT has: ``to_bert`` can
        only hold it with zero heads (a model as large as the unpruned one)."""
        heads = self.bert_num_attention_heads
        return heads is not None and any(s.kind == "heads" and s.size < heads for s in self.arch_specs[0::2])

    @property
    def attention_widths(self) -> list[int]:
        """The query/key/value width of every attention candidate op (``hidden_size``, or ``k × head size``)."""
        return [op.attention_width(self.hidden_size, self.attention_head_size) for op in self.op_specs
                if op.is_attention]

    def with_arch(self, arch) -> MagicBertConfig:
        """A copy of this config describing the fixed child ``arch`` (a :class:`MagicBertConfig`), or with ``None``
        the supernet (a :class:`MagicBertSupernetConfig`)."""
        config = copy.deepcopy(self)
        config.arch = None if arch is None else [
            spec.name for spec in parse_arch(arch, self.candidate_ops, self.num_hidden_layers)
        ]
        # The two classes share every field; only model_type (what the Auto classes dispatch on) differs.
        config.__class__ = MagicBertSupernetConfig if arch is None else MagicBertConfig
        config.auto_map = default_auto_map(config.arch is None)
        return config

    @classmethod
    def from_preset(cls, name: str, **overrides) -> MagicBertConfig:
        """Build the config of a named search space (``tiny``, ``60m``, ``110m``), with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; allowed presets: {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})


class MagicBertSupernetConfig(MagicBertConfig):
    r"""
    The configuration of a supernet checkpoint: a :class:`MagicBertConfig` with ``arch=None`` under its own
    ``model_type``, so that ``AutoModelForMaskedLM.from_pretrained`` returns a
    :class:`~magic_bert.MagicBertSupernetForMaskedLM` for a pre-training output folder (and
    :class:`~magic_bert.MagicBertForMaskedLM` for a fixed child). ``with_arch(arch)`` gives a child's config.
    """

    model_type = "magic_bert_supernet"

    def __post_init__(self, **kwargs):
        if self.arch is not None:
            raise ValueError(f"A supernet config has arch=None, got arch={self.arch}; a fixed child is a "
                             "MagicBertConfig (config.with_arch(arch)).")
        super().__post_init__(**kwargs)


__all__ = ["HEADS_MODULE", "HEAD_AUTO_CLASSES", "MagicBertConfig", "MagicBertSupernetConfig", "PRESETS",
           "default_auto_map", "default_candidate_ops"]
MagicBertConfig.register_for_auto_class()
MagicBertSupernetConfig.register_for_auto_class()
