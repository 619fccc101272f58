"""SearchSpace: validate, count, sample and mutate architectures without building models."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path

from .op_specs import OpSpec, parse_arch, parse_op

# How many uniform draws to try before switching to budget-guided sampling (see `SearchSpace.sample`).
_REJECTION_TRIES = 256
_GUIDED_TRIES = 256


def as_rng(rng: random.Random | int | None) -> random.Random:
    """A ``random.Random`` from a generator, a seed, or ``None`` (a fresh, OS-seeded generator)."""
    if isinstance(rng, random.Random):
        return rng
    return random.Random(rng)


class SearchSpace:
    """The architectures of a :class:`MagicBertConfig`: one op from ``candidate_ops`` in each of its layers.

    Parameter counts are exact (they equal ``MagicBertModel(config.with_arch(arch)).num_parameters()``, pooler
    included); FLOPs count the encoder's matmuls for one sequence of ``seq_len`` tokens (2 FLOPs per multiply-add).
    """

    def __init__(self, config):
        self.config = config
        self.ops: list[OpSpec] = config.op_specs
        self.num_layers: int = config.num_hidden_layers
        self.hidden_size: int = config.hidden_size
        self.head_size: int | None = getattr(config, "attention_head_size", None)  # read by heads:<k> ops
        self._op_params = {op: op.num_params(self.hidden_size, self.head_size) for op in self.ops}

    def __repr__(self) -> str:
        return (f"SearchSpace(layers={self.num_layers}, hidden={self.hidden_size}, "
                f"ops={[op.name for op in self.ops]}, size={self.size})")

    @property
    def size(self) -> int:
        """Number of architectures: ``len(candidate_ops) ** num_hidden_layers``."""
        return len(self.ops) ** self.num_layers

    @property
    def base_params(self) -> int:
        """Parameters outside the searchable layers: embeddings (with their LayerNorm) and the pooler."""
        c, h = self.config, self.hidden_size
        embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h
        pooler = h * h + h
        return embeddings + pooler

    @property
    def min_params(self) -> int:
        return self.base_params + self.num_layers * min(self._op_params.values())

    @property
    def max_params(self) -> int:
        return self.base_params + self.num_layers * max(self._op_params.values())

    @property
    def min_encoder_params(self) -> int:
        """Parameters of the searchable layers alone (no embeddings, pooler or head) of the smallest child."""
        return self.min_params - self.base_params

    @property
    def max_encoder_params(self) -> int:
        return self.max_params - self.base_params

    def encoder_params(self, arch) -> int:
        """Parameters of ``arch``'s layers only: ``num_params(arch)`` minus embeddings and pooler."""
        return self.num_params(arch) - self.base_params

    def total_budget(self, max_params: float | None = None, min_params: float | None = None,
                     max_encoder_params: float | None = None,
                     min_encoder_params: float | None = None) -> tuple[float | None, float | None]:
        """One ``(max_params, min_params)`` budget on the whole model meaning both budgets (encoder params = total
        minus the fixed embeddings and pooler, so an encoder bound is a total bound shifted by ``base_params``).

        A ``ValueError`` names an encoder budget that is not a number, is inverted or falls outside the space."""
        if max_encoder_params is None and min_encoder_params is None:
            return max_params, min_params
        low, high = _checked_range(min_encoder_params, max_encoder_params, self.min_encoder_params,
                                   self.max_encoder_params, "min_encoder_params", "max_encoder_params",
                                   "encoder budget", "the layers of this search space")
        shifted_high = None if math.isinf(high) else self.base_params + high
        shifted_low = None if math.isinf(low) else self.base_params + low
        both_high = [v for v in (max_params, shifted_high) if v is not None]
        both_low = [v for v in (min_params, shifted_low) if v is not None]
        return (min(map(float, both_high)) if both_high else None), (max(map(float, both_low)) if both_low else None)

    def validate(self, arch) -> list[str]:
        """Canonical op names of ``arch``; a ``ValueError`` names the bad layer/op and what is allowed."""
        return [spec.name for spec in self._specs(arch)]

    def _specs(self, arch) -> list[OpSpec]:
        return parse_arch(arch, [op.name for op in self.ops], self.num_layers)

    def num_params(self, arch) -> int:
        return self.base_params + sum(self._op_params[spec] for spec in self._specs(arch))

    def flops(self, arch, seq_len: int = 128) -> int:
        if not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}.")
        return sum(spec.flops(self.hidden_size, seq_len, self.head_size) for spec in self._specs(arch))

    def op_params(self, op) -> int:
        """Exact parameters of one op (a name or :class:`OpSpec`) in this space."""
        return parse_op(op).num_params(self.hidden_size, self.head_size)

    @staticmethod
    def distance(a: Sequence, b: Sequence) -> int:
        """Number of layers in which two archs differ (names or OpSpecs, compared after parsing)."""
        if len(a) != len(b):
            raise ValueError(f"Archs of different lengths cannot be compared: {len(a)} vs {len(b)} layers.")
        return sum(parse_op(x) != parse_op(y) for x, y in zip(a, b, strict=True))

    def _check_budget(self, min_params: float | None, max_params: float | None) -> tuple[float, float]:
        return _checked_range(min_params, max_params, self.min_params, self.max_params, "min_params", "max_params",
                              "parameter budget", "architectures of this search space")

    def in_budget(self, arch, min_params: float | None = None, max_params: float | None = None) -> bool:
        n = self.num_params(arch)
        return (min_params is None or n >= min_params) and (max_params is None or n <= max_params)

    def sample(self, rng: random.Random | int | None = None, max_params: float | None = None,
               min_params: float | None = None) -> list[str]:
        """A random arch, uniform over the archs inside the budget when rejection sampling finds one quickly.

        Tight budgets fall back to budget-guided sampling (layers visited in random order, each op drawn among
        those that can still end inside the budget), which always terminates but is not exactly uniform.
        """
        rng = as_rng(rng)
        low, high = self._check_budget(min_params, max_params)
        for _ in range(_REJECTION_TRIES):
            arch = [rng.choice(self.ops) for _ in range(self.num_layers)]
            if low <= self._count(arch) <= high:
                return [op.name for op in arch]
        for _ in range(_GUIDED_TRIES):
            arch = self._guided_sample(rng, low, high)
            if arch is not None:
                return [op.name for op in arch]
        raise ValueError(
            f"No architecture found with parameters in [{_fmt(min_params)}, {_fmt(max_params)}] after "
            f"{_REJECTION_TRIES + _GUIDED_TRIES} attempts; this space spans {self.min_params:,} to "
            f"{self.max_params:,} parameters in discrete steps, so a very narrow budget may hold few or no "
            "architectures. Widen the budget."
        )

    def _count(self, specs: Sequence[OpSpec]) -> int:
        return self.base_params + sum(self._op_params[spec] for spec in specs)

    def _guided_sample(self, rng: random.Random, low: float, high: float) -> list[OpSpec] | None:
        smallest, largest = min(self._op_params.values()), max(self._op_params.values())
        arch: list[OpSpec | None] = [None] * self.num_layers
        total = self.base_params
        order = list(range(self.num_layers))
        rng.shuffle(order)
        for position, layer in enumerate(order):
            remaining = self.num_layers - position - 1
            feasible = [
                op for op in self.ops
                if total + self._op_params[op] + remaining * smallest <= high
                and total + self._op_params[op] + remaining * largest >= low
            ]
            if not feasible:
                return None
            arch[layer] = rng.choice(feasible)
            total += self._op_params[arch[layer]]
        return arch if low <= total <= high else None

    def mutate(self, arch, rng: random.Random | int | None = None, max_params: float | None = None,
               min_params: float | None = None) -> list[str]:
        """``arch`` with exactly one layer's op replaced by another candidate, inside the budget when one is given."""
        rng = as_rng(rng)
        specs = self._specs(arch)
        low, high = self._check_budget(min_params, max_params)
        total = self._count(specs)
        moves = [
            (layer, op) for layer, current in enumerate(specs) for op in self.ops
            if op != current and low <= total - self._op_params[current] + self._op_params[op] <= high
        ]
        if not moves:
            raise ValueError(
                f"No single-layer mutation of {self.validate(specs)} stays inside the budget "
                f"[{_fmt(min_params)}, {_fmt(max_params)}] (or the space has a single candidate op)."
            )
        layer, op = rng.choice(moves)
        names = [spec.name for spec in specs]
        names[layer] = op.name
        return names


def load_arch(value) -> list[str]:
    """An arch from a command-line value: a JSON file (a list, or an object with an ``arch`` key such as
    ``arch.json`` from search), a JSON list, or op names separated by spaces or commas. Checked later against a space.
    """
    if isinstance(value, (list, tuple)):
        return [str(op) for op in value]
    text = str(value).strip()
    path = Path(text)
    if path_is(path, "is_dir"):  # not op names: `--arch data` would read as the one-layer arch ['data']
        raise ValueError(f"{text!r} is a directory, not an arch: pass op names separated by spaces (e.g. "
                         "'mha:2 ffn:256'), a JSON list or an arch .json file such as search's arch.json.")
    if not text.startswith("[") and (text.endswith(".json") or path_is(path, "is_file")):
        if not path.is_file():
            raise ValueError(f"Arch file {text!r} does not exist.")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"Arch file {text!r} is not valid JSON: {error}.") from None
        data = data.get("arch") if isinstance(data, dict) else data
        if not isinstance(data, list) or not all(isinstance(op, str) for op in data):
            raise ValueError(f"Arch file {text!r} must hold a list of op names or an object with an 'arch' list.")
        return data
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Arch {text!r} is not a valid JSON list: {error}.") from None
        if not isinstance(data, list):
            raise ValueError(f"Arch {text!r} must be a list of op names.")
        return [str(op) for op in data]
    return [part for part in text.replace(",", " ").split() if part]


def path_is(path: Path, kind: str) -> bool:
    """``path.is_dir()`` / ``path.is_file()``, False for text no file system takes as a name (op names can be long)."""
    try:
        return len(str(path)) < 4096 and getattr(path, kind)()
    except OSError:
        return False


def _checked_range(low_value, high_value, smallest: int, largest: int, low_name: str, high_name: str,
                   budget: str, what: str) -> tuple[float, float]:
    """``(low, high)`` of a budget (open ends are ∓inf); a ``ValueError`` names a bound that is not a number, an
    inverted pair, or a budget outside ``[smallest, largest]``."""
    try:
        low = -math.inf if low_value is None else float(low_value)
        high = math.inf if high_value is None else float(high_value)
    except (TypeError, ValueError):
        low = high = math.nan
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"Budgets must be numbers, got {low_name}={low_value!r}, {high_name}={high_value!r}.")
    if low > high:
        raise ValueError(f"{low_name}={low:,.0f} is larger than {high_name}={high:,.0f}.")
    if high < smallest or low > largest:
        raise ValueError(f"Infeasible {budget} [{_fmt(low_value)}, {_fmt(high_value)}]: {what} have between "
                         f"{smallest:,} (smallest) and {largest:,} (largest) parameters.")
    return low, high


def _fmt(value: float | str | None) -> str:
    """A budget bound for messages (numbers given as strings too; ``-`` for no bound)."""
    return "-" if value is None or math.isinf(float(value)) else f"{float(value):,.0f}"


__all__ = ["SearchSpace", "as_rng", "load_arch", "path_is"]
