"""Operator kinds of the search space (one registry) and op names parsed once into small typed specs.

An op name is a kind and, for kinds that take one, a size: ``identity``, ``mha:<heads>``, ``heads:<kept heads>``,
``ffn:<inner_size>``, ``conv:<odd kernel>``. ``mha:<h>`` re-splits full-width projections into ``h`` heads;
``heads:<k>`` is attention with ``k`` heads of the config's ``attention_head_size`` (projections ``k × head size``
wide: a teacher's attention with only ``k`` of its heads kept, so parameters and FLOPs shrink with ``k``).

Everything about a kind lives in one :class:`OpKind` entry of :data:`OP_KINDS`: how its size is checked, its exact
parameter and FLOP counts, and (attached by ``modeling_magic_bert.register_op_module`` where the class is defined)
its torch module. Everything else in the package works on :class:`OpSpec` and never parses names
again. This module has no torch dependency and only same-folder imports: it is copied next to exported checkpoints
for ``trust_remote_code`` loading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache


def _no_error(*_: int) -> str | None:
    return None


@dataclass(frozen=True)
class OpKind:
    """One kind of op: the name, what its size means, how to check and count it, and its module class.

    ``num_params(hidden_size, size)`` is the exact parameter count of the module (its LayerNorm included);
    ``flops(hidden_size, seq_len, size)`` counts the matmul FLOPs of one sequence (2 per multiply-add; norms, softmax
    and activations excluded). ``size_error(size)`` / ``hidden_size_error(size, hidden_size)`` return why a size is
    invalid, or ``None``. Kinds without a size (``size_name=None``) are written by their bare name and have size 0.
    Kinds with ``uses_head_size`` take the config's ``attention_head_size`` as one more last argument of all three.
    """

    name: str
    size_name: str | None
    num_params: Callable[[int, int], int]
    flops: Callable[[int, int, int], int]
    size_error: Callable[[int], str | None] = _no_error
    hidden_size_error: Callable[[int, int], str | None] = _no_error
    module: type | None = None  # the torch module (``module(config, size)``), set by register_op_module
    uses_head_size: bool = False

    @property
    def form(self) -> str:
        """How names of this kind are written, e.g. ``'mha:<heads>'``."""
        return f"'{self.name}'" if self.size_name is None else f"'{self.name}:<{self.size_name}>'"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0][:8]


def _heads_error(heads: int, hidden_size: int) -> str | None:
    if hidden_size % heads == 0:
        return None
    return (f"{heads} heads do not divide hidden_size={hidden_size}; allowed head counts divide {hidden_size} "
            f"(e.g. {_divisors(hidden_size)}).")


def _kept_heads_error(heads: int, hidden_size: int, head_size: int | None) -> str | None:
    if head_size is None:
        return ("heads:<k> ops need the config's attention_head_size (the teacher's hidden_size / "
                "num_attention_heads); it is not set.")
    if heads * head_size > hidden_size:
        return (f"{heads} heads of attention_head_size={head_size} are wider than hidden_size={hidden_size}; "
                f"keep at most {hidden_size // head_size} heads.")
    return None


def _pruned_attention_params(h: int, heads: int, head_size: int) -> int:
    width = heads * head_size  # query, key, value (h -> width), output (width -> h), LayerNorm
    return 3 * (h * width + width) + (width * h + h) + 2 * h


def _kernel_error(kernel: int) -> str | None:
    return None if kernel % 2 else "convolution kernels must be odd (3, 5, 7, ...) so the sequence length is kept."


# Every op is its module, dropout, a residual connection and a post-LayerNorm (2h parameters), except identity.
OP_KINDS: dict[str, OpKind] = {
    kind.name: kind for kind in (
        OpKind("identity", None, num_params=lambda h, _: 0, flops=lambda h, s, _: 0),
        OpKind(  # query, key, value, output projections; FLOPs add QK^T and AV
            "mha", "heads", num_params=lambda h, _: 4 * (h * h + h) + 2 * h,
            flops=lambda h, s, _: 2 * 4 * s * h * h + 2 * 2 * s * s * h, hidden_size_error=_heads_error,
        ),
        OpKind(  # k heads of attention_head_size: projections k * head_size wide; FLOPs add QK^T and AV
            "heads", "kept heads", num_params=_pruned_attention_params,
            flops=lambda h, s, k, d: 2 * 4 * s * h * k * d + 2 * 2 * s * s * k * d,
            hidden_size_error=_kept_heads_error, uses_head_size=True,
        ),
        OpKind(  # two dense layers
            "ffn", "inner_size", num_params=lambda h, i: (h * i + i) + (i * h + h) + 2 * h,
            flops=lambda h, s, i: 2 * 2 * s * h * i,
        ),
        OpKind(  # depthwise conv (h * k weights + h biases) + pointwise linear
            "conv", "odd kernel", num_params=lambda h, k: (h * k + h) + (h * h + h) + 2 * h,
            flops=lambda h, s, k: 2 * s * h * k + 2 * s * h * h, size_error=_kernel_error,
        ),
    )
}


ATTENTION_KINDS = ("mha", "heads")


def register_op_kind(kind: OpKind) -> OpKind:
    """Add (or replace) an op kind; its names parse, count and, once a module is attached, build."""
    OP_KINDS[kind.name] = kind
    _parse_op_name.cache_clear()  # names of a replaced or new kind must be parsed again
    return kind


def unregister_op_kind(name: str) -> None:
    """Remove an op kind (tests that register toy kinds clean up with this)."""
    OP_KINDS.pop(name, None)
    _parse_op_name.cache_clear()


def attach_op_module(name: str, module: type) -> None:
    """Record ``module`` as the torch module of kind ``name`` (called by ``modeling_magic_bert.register_op_module``)."""
    if name not in OP_KINDS:
        raise ValueError(f"Cannot attach a module to unknown op kind {name!r}; known kinds: {list(OP_KINDS)}. "
                         "Register the kind first (op_specs.register_op_kind).")
    OP_KINDS[name] = replace(OP_KINDS[name], module=module)


def op_name_forms() -> str:
    """The allowed op name forms, for messages: ``'identity', 'mha:<heads>', ...``."""
    return ", ".join(kind.form for kind in OP_KINDS.values())


def op_kind(name: str) -> OpKind:
    """The registered kind ``name``; a ``ValueError`` names the unknown kind and the known ones."""
    kind = OP_KINDS.get(name)
    if kind is None:
        raise ValueError(f"Unknown op kind {name!r}; allowed kinds: {list(OP_KINDS)}.")
    return kind


@dataclass(frozen=True)
class OpSpec:
    """One candidate operator: its kind and its size (heads, inner size or kernel; 0 for kinds without a size)."""

    kind: str
    size: int = 0

    @property
    def name(self) -> str:
        return self.kind if op_kind(self.kind).size_name is None else f"{self.kind}:{self.size}"

    @property
    def key(self) -> str:
        """Module name inside a supernet layer (``nn.ModuleDict`` keys may not contain ``.``; we also avoid ``:``)."""
        return self.kind if op_kind(self.kind).size_name is None else f"{self.kind}_{self.size}"

    def _head_size(self, head_size: int | None) -> tuple[int, ...]:
        """The extra argument of kinds that use the head size (checked to be set), else nothing."""
        if not op_kind(self.kind).uses_head_size:
            return ()
        if head_size is None:
            raise ValueError(f"Op '{self.name}' needs attention_head_size (the config's); it is not set.")
        return (head_size,)

    def check_hidden_size(self, hidden_size: int, head_size: int | None = None) -> None:
        kind = op_kind(self.kind)
        extra = (head_size,) if kind.uses_head_size else ()
        error = kind.hidden_size_error(self.size, hidden_size, *extra)
        if error is not None:
            raise ValueError(f"Op '{self.name}': {error}")

    def num_params(self, hidden_size: int, head_size: int | None = None) -> int:
        """Exact parameter count of this op's module (including its LayerNorm) at ``hidden_size`` (``head_size``:
        the config's ``attention_head_size``, read by ``heads:<k>`` only)."""
        return op_kind(self.kind).num_params(hidden_size, self.size, *self._head_size(head_size))

    def flops(self, hidden_size: int, seq_len: int, head_size: int | None = None) -> int:
        """Multiply-add FLOPs (2 per MAC) of one sequence through this op; norms, softmax, activations excluded."""
        return op_kind(self.kind).flops(hidden_size, seq_len, self.size, *self._head_size(head_size))

    def attention_width(self, hidden_size: int, head_size: int | None = None) -> int:
        """The query/key/value width of an attention op: ``hidden_size`` for ``mha``, ``k × head_size`` for
        ``heads:<k>``."""
        if not self.is_attention:
            raise ValueError(f"Op '{self.name}' is not self-attention.")
        return self.size * self._head_size(head_size)[0] if self.kind == "heads" else hidden_size

    @property
    def is_attention(self) -> bool:
        """Self-attention (``mha`` or ``heads``): what attention floors and attention-relation KD look for."""
        return self.kind in ATTENTION_KINDS


def parse_op(name: str) -> OpSpec:
    """Parse an op name such as ``"mha:12"`` into an :class:`OpSpec`; a ``ValueError`` names what is allowed."""
    if isinstance(name, OpSpec):
        return name
    if not isinstance(name, str):
        raise ValueError(
            f"Op name must be a string, got {name!r} ({type(name).__name__}). Allowed: {op_name_forms()}."
        )
    return _parse_op_name(name)


@cache
def _parse_op_name(name: str) -> OpSpec:
    text = name.strip().lower()
    kind_name, sep, size_text = text.partition(":")
    kind = OP_KINDS.get(kind_name)
    if kind is None or (kind.size_name is None) == bool(sep):
        raise ValueError(f"Unknown op {name!r}. Allowed op names: {op_name_forms()}.")
    if kind.size_name is None:
        return OpSpec(kind.name)
    try:
        size = int(size_text)
    except ValueError:
        raise ValueError(
            f"Op {name!r} has a non-integer size {size_text!r}. Allowed op names: {op_name_forms()}."
        ) from None
    if size <= 0:
        raise ValueError(f"Op {name!r} needs a positive size. Allowed op names: {op_name_forms()}.")
    error = kind.size_error(size)
    if error is not None:
        raise ValueError(f"Op {name!r}: {error}")
    return OpSpec(kind.name, size)


def parse_arch(arch, candidate_ops, num_layers: int) -> list[OpSpec]:
    """Parse and check an arch (op names, one per layer) against the candidate ops and the number of layers."""
    if isinstance(arch, str):
        arch = [part for part in arch.replace(",", " ").split() if part]
    if not isinstance(arch, (list, tuple)):
        raise ValueError(f"An arch is a list of op names, one per layer; got {arch!r}.")
    parsed = [parse_op(op) for op in arch]  # a misspelt op first: the more specific mistake than the layer count
    if len(arch) != num_layers:
        raise ValueError(
            f"Arch has {len(arch)} layers but the search space has num_hidden_layers={num_layers}: {list(arch)}."
        )
    allowed = {parse_op(op) for op in candidate_ops}
    specs = []
    for index, spec in enumerate(parsed):
        if spec not in allowed:
            raise ValueError(
                f"Layer {index}: op {spec.name!r} is not in candidate_ops; allowed: {list(candidate_ops)}."
            )
        specs.append(spec)
    return specs
