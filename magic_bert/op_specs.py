"""Operator names of the search space, parsed once into small typed specs.

An op name is one of ``identity``, ``mha:<heads>``, ``ffn:<inner_size>`` or ``conv:<kernel>``. Everything else in
the package works on :class:`OpSpec` and never parses names again. This module has no torch dependency and only
same-folder imports: it is copied next to exported checkpoints for ``trust_remote_code`` loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

OP_KINDS = ("identity", "mha", "ffn", "conv")
OP_NAME_FORMS = "'identity', 'mha:<heads>', 'ffn:<inner_size>', 'conv:<odd kernel>'"


@dataclass(frozen=True)
class OpSpec:
    """One candidate operator: its kind and its size (heads, inner size or kernel; 0 for identity)."""

    kind: str
    size: int = 0

    @property
    def name(self) -> str:
        return self.kind if self.kind == "identity" else f"{self.kind}:{self.size}"

    @property
    def key(self) -> str:
        """Module name inside a supernet layer (``nn.ModuleDict`` keys may not contain ``.``; we also avoid ``:``)."""
        return self.kind if self.kind == "identity" else f"{self.kind}_{self.size}"

    def check_hidden_size(self, hidden_size: int) -> None:
        if self.kind == "mha" and hidden_size % self.size != 0:
            raise ValueError(
                f"Op '{self.name}': {self.size} heads do not divide hidden_size={hidden_size}; "
                f"allowed head counts divide {hidden_size} (e.g. {_divisors(hidden_size)})."
            )

    def num_params(self, hidden_size: int) -> int:
        """Exact parameter count of this op's module (including its LayerNorm) at ``hidden_size``."""
        h = hidden_size
        layer_norm = 2 * h
        if self.kind == "identity":
            return 0
        if self.kind == "mha":  # query, key, value, output projections
            return 4 * (h * h + h) + layer_norm
        if self.kind == "ffn":
            return (h * self.size + self.size) + (self.size * h + h) + layer_norm
        # conv: depthwise (h * k weights + h biases) + pointwise linear
        return (h * self.size + h) + (h * h + h) + layer_norm

    def flops(self, hidden_size: int, seq_len: int) -> int:
        """Multiply-add FLOPs (2 per MAC) of one sequence through this op; norms, softmax, activations excluded."""
        h, s = hidden_size, seq_len
        if self.kind == "identity":
            return 0
        if self.kind == "mha":  # 4 projections + QK^T + AV
            return 2 * 4 * s * h * h + 2 * 2 * s * s * h
        if self.kind == "ffn":
            return 2 * 2 * s * h * self.size
        return 2 * s * h * self.size + 2 * s * h * h


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0][:8]


def parse_op(name: str) -> OpSpec:
    """Parse an op name such as ``"mha:12"`` into an :class:`OpSpec`; a ``ValueError`` names what is allowed."""
    if isinstance(name, OpSpec):
        return name
    if not isinstance(name, str):
        raise ValueError(f"Op name must be a string, got {name!r} ({type(name).__name__}). Allowed: {OP_NAME_FORMS}.")
    return _parse_op_name(name)


@cache
def _parse_op_name(name: str) -> OpSpec:
    text = name.strip().lower()
    if text == "identity":
        return OpSpec("identity")
    kind, sep, size_text = text.partition(":")
    if not sep or kind not in OP_KINDS or kind == "identity":
        raise ValueError(f"Unknown op {name!r}. Allowed op names: {OP_NAME_FORMS}.")
    try:
        size = int(size_text)
    except ValueError:
        raise ValueError(
            f"Op {name!r} has a non-integer size {size_text!r}. Allowed op names: {OP_NAME_FORMS}."
        ) from None
    if size <= 0:
        raise ValueError(f"Op {name!r} needs a positive size. Allowed op names: {OP_NAME_FORMS}.")
    if kind == "conv" and size % 2 == 0:
        raise ValueError(f"Op {name!r}: convolution kernels must be odd (3, 5, 7, ...) so the sequence length is kept.")
    return OpSpec(kind, size)


def parse_arch(arch, candidate_ops, num_layers: int) -> list[OpSpec]:
    """Parse and check an arch (op names, one per layer) against the candidate ops and the number of layers."""
    if isinstance(arch, str):
        arch = [part for part in arch.replace(",", " ").split() if part]
    if not isinstance(arch, (list, tuple)):
        raise ValueError(f"An arch is a list of op names, one per layer; got {arch!r}.")
    if len(arch) != num_layers:
        raise ValueError(
            f"Arch has {len(arch)} layers but the search space has num_hidden_layers={num_layers}: {list(arch)}."
        )
    allowed = {parse_op(op) for op in candidate_ops}
    specs = []
    for index, op in enumerate(arch):
        spec = parse_op(op)
        if spec not in allowed:
            raise ValueError(
                f"Layer {index}: op {spec.name!r} is not in candidate_ops; allowed: {list(candidate_ops)}."
            )
        specs.append(spec)
    return specs
