"""Architecture search on a trained supernet: random or evolutionary, under parameter / FLOPs / latency budgets.

Candidates are scored with the supernet's inherited weights on the held-out masked-LM set by
:func:`magic_bert.evaluation.evaluate_mlm` (the helper pre-training uses for anchors). Every arch is scored once
(cached). All randomness comes from one seeded ``random.Random`` and scores are gathered across processes, so under
``accelerate launch`` every rank proposes and keeps the same archs.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import InputError, invalid_value, load_user_file
from ..io_utils import save_figure
from ..op_specs import parse_op
from ..search_space import SearchSpace
from ..timing import interleaved_medians

STRATEGIES = ("evolution", "random")
# Held-out masked-LM loss / accuracy, and the proxies of `search.proxies` / `search.task_probe`.
METRICS = ("loss", "accuracy", "distill", "embedding", "task")
LOWER_IS_BETTER = ("loss", "distill")


# ------------------------------------------------------------------------------------------------------- latency
@dataclass
class LatencyTable:
    """Seconds per forward of each candidate op (one layer) and of the rest of the model, on one device.

    An arch's latency is ``base + sum of its layers' op latencies`` (NAS-BERT's lookup-table estimate).
    """

    ops: dict[str, float]
    base: float = 0.0
    device: str = "cpu"
    batch_size: int = 1
    seq_len: int = 128
    # "stack": ops timed in a stack, base = the empty encoder without head (measure_latency); tables written before
    # the field existed timed each op alone with the masked-LM head in the base ("op-alone")
    method: str = "stack"

    def latency(self, arch) -> float:
        missing = sorted({op for op in arch if op not in self.ops})
        if missing:
            raise InputError(f"The latency table has no entry for ops {missing}; it covers {sorted(self.ops)}. "
                             "Measure it again for this search space (`measure_latency`).")
        return self.base + sum(self.ops[op] for op in arch)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        file = Path(path)
        if not file.is_file():
            raise InputError(f"`latency_table` {str(path)!r} does not exist.")
        values = load_user_file(f"`latency_table` {str(path)!r}", lambda: json.loads(file.read_text()))
        if isinstance(values, dict) and "method" not in values:
            warnings.warn(f"`latency_table` {str(path)!r} was measured before ops were timed in stacks (each op alone, "
                          "the masked-LM head in its base): it predicted 0.91-1.02 x the measured forwards on "
                          "all-MiniLM-L6-v2's space; `measure_latency` again for the current table.", stacklevel=2)
            values = {**values, "method": "op-alone"}
        try:
            return cls(**values)
        except TypeError as error:
            raise InputError(f"`latency_table` {str(path)!r} is not a latency table written by `measure_latency` "
                             "(an object with 'ops' {op: seconds} and 'base', 'device', 'batch_size', 'seq_len', "
                             "'method').") from error


@torch.no_grad()
def measure_latency(supernet, seq_len: int = 128, batch_size: int = 1, repeats: int = 20,
                    device: str | torch.device = "cpu") -> LatencyTable:
    """Each candidate op's forward time in a stack: the encoder (no masked-LM head: a deployed classifier or sentence
    encoder does not run it) with that op in every layer, less the all-``identity`` encoder (embeddings, the table's
    ``base``; a supernet's encoder has no pooler, a matmul of hidden² a deployed model adds), over the number of
    layers; medians of interleaved rounds on ``device``.

    Timed inside a whole forward, an op pays what it pays in a child (dispatch, its weights leaving the cache between
    layers), which an op timed alone on one layer misses: on all-MiniLM-L6-v2's space (12 archs, 2 CPU cores) ops timed
    alone predicted 0.91-1.02 × the measured forwards, stacks 0.95-1.02 × (``bench/latency_model.py``).
    Without ``identity`` in the space the base is 0 and each entry a stack's time over its layers."""
    supernet = supernet.to(device).eval()
    config = supernet.config
    layers = config.num_hidden_layers
    ids = torch.randint(0, config.vocab_size, (batch_size, seq_len), device=device)
    encoder = supernet.bert  # unpadded sequences: no mask, as in deployment with one sequence per batch
    times = interleaved_medians({op: (lambda arch=[op] * layers: encoder(ids, arch=arch))
                                 for op in config.candidate_ops}, repeats, device=device)
    base = times.get("identity", 0.0)
    ops = {op: max(0.0, (seconds - base) / layers) for op, seconds in times.items()}
    return LatencyTable(ops=ops, base=base, device=str(device), batch_size=batch_size, seq_len=seq_len)


# ---------------------------------------------------------------------------------------------------- constraints
@dataclass
class Constraints:
    max_params: float | None = None
    min_params: float | None = None
    max_flops: float | None = None
    seq_len: int = 128
    max_latency: float | None = None
    latency_table: LatencyTable | None = None
    max_encoder_params: float | None = None  # parameters of the layers alone (no embeddings, pooler or head)
    min_encoder_params: float | None = None
    # A floor on self-attention layers (mha:*, heads:*): sentence-pair tasks need attention, and the showcase's search
    # without one kept a single attention layer (docs/compression.md).
    min_attention_layers: int = 0

    def _total_budget(self, space: SearchSpace) -> tuple[float | None, float | None]:
        return space.total_budget(self.max_params, self.min_params, self.max_encoder_params, self.min_encoder_params)

    def check(self, space: SearchSpace) -> None:
        """An infeasible budget fails now, naming the smallest and largest achievable sizes."""
        with invalid_value("`max_encoder_params` / `min_encoder_params`"):
            space.total_budget(None, None, self.max_encoder_params, self.min_encoder_params)
        with invalid_value("`max_params` / `min_params`" if self.max_encoder_params is None and
                           self.min_encoder_params is None else "The parameter and encoder budgets together"):
            max_params, min_params = self._total_budget(space)
            space.sample(random.Random(0), max_params=max_params, min_params=min_params)
        if self.max_flops is not None:
            smallest = min(space.flops([op.name] * space.num_layers, self.seq_len) for op in space.ops)
            if self.max_flops < smallest:
                largest = max(space.flops([op.name] * space.num_layers, self.seq_len) for op in space.ops)
                raise InputError(f"Infeasible FLOPs budget {self.max_flops:,.0f} at seq_len {self.seq_len}: archs "
                                 f"of this space need between {smallest:,} (smallest) and {largest:,} (largest).")
        if self.max_latency is not None and self.latency_table is None:
            raise InputError("A latency budget needs a latency table (`latency_table` or `measure_latency`).")
        if self.min_attention_layers:
            self._check_attention(space)

    def _check_attention(self, space: SearchSpace) -> None:
        """The floor fits the layers, the space has attention ops, and the parameter budget leaves room for it."""
        n, attention = self.min_attention_layers, [op for op in space.ops if op.is_attention]
        allowed = space.num_layers if attention else 0
        if not 0 <= n <= allowed:
            raise InputError(f"`min_attention_layers` {n} is not achievable: allowed 0 to {allowed} (this space has "
                             f"{space.num_layers} layers and attention ops {[op.name for op in attention]}).")
        params = {op: space.op_params(op) for op in space.ops}
        others = space.num_layers - n
        smallest = space.base_params + n * min(params[op] for op in attention) + others * min(params.values())
        largest = space.base_params + n * max(params[op] for op in attention) + others * max(params.values())
        max_params, min_params = self._total_budget(space)
        if (max_params is not None and smallest > max_params) or (min_params is not None and largest < min_params):
            raise InputError(f"`min_attention_layers` {n} does not fit the parameter budget: archs with {n} "
                             f"attention layers have {smallest:,} to {largest:,} parameters, the budget allows "
                             f"[{min_params or 0:,.0f}, {max_params or math.inf:,.0f}].")

    def measure(self, space: SearchSpace, arch) -> dict:
        out = {"params": space.num_params(arch), "flops": space.flops(arch, self.seq_len),
               "encoder_params": space.encoder_params(arch)}
        if self.latency_table is not None:
            out["latency"] = self.latency_table.latency(arch)
        return out

    def allows(self, space: SearchSpace, arch) -> bool:
        m = self.measure(space, arch)
        return ((self.max_params is None or m["params"] <= self.max_params)
                and (self.min_params is None or m["params"] >= self.min_params)
                and (self.max_encoder_params is None or m["encoder_params"] <= self.max_encoder_params)
                and (self.min_encoder_params is None or m["encoder_params"] >= self.min_encoder_params)
                and (self.max_flops is None or m["flops"] <= self.max_flops)
                and (self.max_latency is None or m["latency"] <= self.max_latency)
                and sum(parse_op(op).is_attention for op in arch) >= self.min_attention_layers)

    def sample(self, space: SearchSpace, rng: random.Random, tries: int = 10_000) -> list[str]:
        # Rejection: a latency cap with an attention floor accepts ~0.6 % of in-budget draws (the showcase).
        max_params, min_params = self._total_budget(space)
        for _ in range(tries):
            arch = space.sample(rng, max_params=max_params, min_params=min_params)
            if self.allows(space, arch):
                return arch
        raise InputError(f"No architecture met every constraint in {tries:,} draws ({self.describe()}); "
                         "loosen the FLOPs or latency budget, or `min_attention_layers`.")

    def describe(self) -> str:
        """The constraints that are set, for messages."""
        parts = {k: v for k, v in asdict(self).items()
                 if v is not None and k != "latency_table" and not (k == "min_attention_layers" and v == 0)}
        return ", ".join(f"{k}={v:,.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in parts.items())


# -------------------------------------------------------------------------------------------------- scoring/cache
@dataclass
class Candidate:
    arch: list[str]
    loss: float
    accuracy: float
    params: int
    flops: int
    latency: float | None = None
    generation: int = 0
    order: int = 0  # evaluation order (0 = first scored)
    encoder_params: int | None = None  # params of the layers alone
    seed: str | None = None  # the name of a seed arch (e.g. a hand-designed student) that started the search
    proxies: dict[str, float] = field(default_factory=dict)  # the proxy scores computed for it
    screened: bool = False  # scored on the screening batches only (``screen_fn``): never a parent or the best

    def value(self, metric: str) -> float:
        """The metric as measured (a loss, an accuracy, a proxy)."""
        return {"loss": self.loss, "accuracy": self.accuracy}.get(metric, self.proxies.get(metric, math.nan))

    def score(self, metric: str) -> float:
        """Higher is better."""
        return -self.value(metric) if metric in LOWER_IS_BETTER else self.value(metric)


class CandidateScorer:
    """Scores archs with ``score_fn(arch) -> MLMScore`` once each; ``history`` keeps every evaluation in order.

    With ``screen_fn`` (the same score on the first few held-out batches: racing), a new child is screened first and
    scored in full only if its screened ``metric`` ranks among the best ``keep`` screened scores of the children
    scored in full so far (seeds and the first ``keep`` always are); the others stay ``screened``, at a fraction of
    the cost, and never become parents or the best."""

    def __init__(self, space: SearchSpace, constraints: Constraints, score_fn, screen_fn=None, keep: int = 0,
                 metric: str = "loss"):
        self.space, self.constraints, self.score_fn = space, constraints, score_fn
        self.screen_fn, self.keep, self.metric = screen_fn, keep, metric
        self.cache: dict[tuple[str, ...], Candidate] = {}
        self.history: list[Candidate] = []
        self.screen_scores: list[float] = []  # the screened score of every child scored in full

    @property
    def scored(self) -> list[Candidate]:
        """The children scored in full, in order."""
        return [c for c in self.history if not c.screened]

    def __contains__(self, arch) -> bool:
        return tuple(arch) in self.cache

    def __call__(self, arch, generation: int = 0, seed: str | None = None) -> Candidate:
        key = tuple(arch)
        if key not in self.cache:
            screen = None
            if self.screen_fn is not None and seed is None:
                screen = self.screen_fn(list(arch))
                if not self._promising(_higher_is_better(screen, self.metric)):
                    return self._record(arch, screen, generation, seed, screened=True)
            candidate = self._record(arch, self.score_fn(list(arch)), generation, seed)
            if self.screen_fn is not None:
                self.screen_scores.append(_higher_is_better(screen or self.screen_fn(list(arch)), self.metric))
            return candidate
        return self.cache[key]

    def _promising(self, value: float) -> bool:
        best = sorted(self.screen_scores, reverse=True)[:self.keep]
        return len(best) < self.keep or value >= best[-1]

    def _record(self, arch, result, generation: int, seed: str | None, screened: bool = False) -> Candidate:
        candidate = Candidate(list(arch), result.loss, result.accuracy, generation=generation,
                              order=len(self.history), seed=seed, proxies=dict(getattr(result, "proxies", {})),
                              screened=screened, **self.constraints.measure(self.space, arch))
        self.cache[tuple(arch)] = candidate
        self.history.append(candidate)
        return candidate

    def score_seeds(self, seeds: dict[str, list[str]] | None) -> int:
        """Score the seed archs first (generation 0); returns how many were new."""
        before = len(self.history)
        for name, arch in (seeds or {}).items():
            self(arch, generation=0, seed=name)
        return len(self.history) - before


@dataclass
class SearchResult:
    best: Candidate
    candidates: list[Candidate] = field(default_factory=list)  # every evaluated arch, in evaluation order
    metric: str = "loss"

    def top(self, k: int = 10) -> list[Candidate]:
        """The best ``k`` of the children scored in full."""
        scored = [c for c in self.candidates if not c.screened]
        return sorted(scored, key=lambda c: c.score(self.metric), reverse=True)[:k]


# ------------------------------------------------------------------------------------------------------ strategies
def _higher_is_better(result, metric: str) -> float:
    value = {"loss": result.loss, "accuracy": result.accuracy}[metric]
    return -value if metric in LOWER_IS_BETTER else value


def _new_feasible(propose: Callable[[], list[str]], scorer: CandidateScorer, tries: int = 200) -> list[str] | None:
    """A proposal that meets the constraints and has not been scored yet (None when the neighbourhood is used up)."""
    for _ in range(tries):
        arch = propose()
        if arch not in scorer and scorer.constraints.allows(scorer.space, arch):
            return arch
    return None


def random_search(scorer: CandidateScorer, num_evaluations: int, rng: random.Random, metric: str = "loss",
                  progress: Callable[[int], None] | None = None,
                  seed_archs: dict[str, list[str]] | None = None) -> SearchResult:
    """``num_evaluations`` distinct archs that meet every constraint: the ``seed_archs`` first, then uniform draws
    (inside the parameter budget)."""
    seeded = scorer.score_seeds(seed_archs)
    if progress is not None and seeded:
        progress(seeded)
    for _ in range(num_evaluations - seeded):
        arch = _new_feasible(lambda: scorer.constraints.sample(scorer.space, rng), scorer)
        if arch is None:
            break
        scorer(arch)
        if progress is not None:
            progress(1)
    return _result(scorer, metric)


def mutate_layers(arch, space: SearchSpace, rng: random.Random, mutation_prob: float) -> list[str]:
    """Each layer re-drawn with probability ``mutation_prob``; at least one layer changes."""
    names = [op.name for op in space.ops]
    child = [rng.choice([n for n in names if n != op]) if rng.random() < mutation_prob else op for op in arch]
    if child == list(arch):
        layer = rng.randrange(len(arch))
        child[layer] = rng.choice([n for n in names if n != arch[layer]])
    return child


def crossover(a, b, rng: random.Random) -> list[str]:
    """Uniform crossover: each layer's op from either parent."""
    return [x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True)]


def evolution_search(scorer: CandidateScorer, rng: random.Random, population_size: int = 16, generations: int = 6,
                     parents: int | None = None, mutation_prob: float = 0.1, crossover_prob: float = 0.5,
                     metric: str = "loss", progress: Callable[[int, int], None] | None = None,
                     seed_archs: dict[str, list[str]] | None = None) -> SearchResult:
    """Evolutionary search as in SPOS / NAS-BERT: keep the best ``parents`` archs; each new generation is
    ``population_size`` unseen feasible children made by crossover of two parents (with ``crossover_prob``) or by
    mutating one. The first generation is the ``seed_archs`` (checked by the caller), then uniform draws up to
    ``population_size``. Evaluations = ``population_size * generations`` (fewer if the space runs out of unseen archs;
    more if there are more seeds than ``population_size``).
    """
    if population_size < 2 or generations < 1:
        raise InputError(f"`population_size` must be >= 2 and `generations` >= 1, got {population_size}, "
                         f"{generations}.")
    if not 0 < mutation_prob <= 1 or not 0 <= crossover_prob <= 1:
        raise InputError(f"`mutation_prob` must be in (0, 1] and `crossover` probability in [0, 1], got "
                         f"{mutation_prob}, {crossover_prob}.")
    parents = parents or max(2, population_size // 2)
    space = scorer.space
    seeded = scorer.score_seeds(seed_archs)
    population = seeded
    for _ in range(population_size - seeded):
        arch = _new_feasible(lambda: scorer.constraints.sample(space, rng), scorer)
        if arch is None:
            break
        scorer(arch, generation=0)
        population += 1
    if progress is not None:
        progress(0, population)
    for generation in range(1, generations):
        elite = sorted(scorer.scored, key=lambda c: c.score(metric), reverse=True)[:parents]

        def propose(elite=elite) -> list[str]:
            if len(elite) > 1 and rng.random() < crossover_prob:
                a, b = rng.sample(elite, 2)
                return crossover(a.arch, b.arch, rng)
            return mutate_layers(rng.choice(elite).arch, space, rng, mutation_prob)

        made = 0
        for _ in range(population_size):
            arch = _new_feasible(propose, scorer)
            if arch is None:
                break
            scorer(arch, generation=generation)
            made += 1
        if progress is not None:
            progress(generation, made)
    return _result(scorer, metric)


def _result(scorer: CandidateScorer, metric: str) -> SearchResult:
    scored = scorer.scored
    if not scored:
        raise InputError("No architecture could be evaluated under these constraints.")
    best = max(scored, key=lambda c: c.score(metric))
    if len(scored) > 1 and len({c.score(metric) for c in scored}) == 1:
        warnings.warn(f"All {len(scored)} children scored the same held-out {metric} "
                      f"({abs(best.score(metric)):.4f}): the supernet does not tell them apart (it has learned too "
                      "little; train it longer), so the chosen arch is arbitrary.", stacklevel=3)
    return SearchResult(best=best, candidates=list(scorer.history), metric=metric)


# ----------------------------------------------------------------------------------------------------- reporting
def pareto_front(candidates: list[Candidate], metric: str = "loss") -> list[Candidate]:
    """Candidates no other candidate beats on both fewer-or-equal params and a better-or-equal score."""
    ordered = sorted(candidates, key=lambda c: (c.params, -c.score(metric)))
    front, best = [], -math.inf
    for candidate in ordered:
        if candidate.score(metric) > best:
            front.append(candidate)
            best = candidate.score(metric)
    return front


def plot_pareto(candidates: list[Candidate], path: str | Path, metric: str = "loss") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(candidates, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([c.params / 1e6 for c in candidates], [c.value(metric) for c in candidates], s=14, alpha=0.5,
               label="evaluated")
    ax.plot([c.params / 1e6 for c in front], [c.value(metric) for c in front], "o-", color="C3", ms=5,
            label="Pareto front")
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(f"held-out MLM {metric}" if metric in ("loss", "accuracy") else f"held-out {metric} (proxy)")
    ax.set_title("Supernet children: size vs inherited-weight score")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def format_table(candidates: list[Candidate], metric: str = "loss") -> str:
    """The candidates as a text table: the MLM loss and accuracy, or the proxy ``metric`` they were ranked by."""
    names = ("loss", "accuracy") if metric in ("loss", "accuracy") else (metric,)
    rows = [("#", *names, "params", "FLOPs", "arch")]
    rows += [(str(i + 1), *(f"{c.value(name):.4f}" for name in names), f"{c.params:,}", f"{c.flops:,}",
              " ".join(c.arch)) for i, c in enumerate(candidates)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)


__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "STRATEGIES",
    "Candidate",
    "CandidateScorer",
    "Constraints",
    "LatencyTable",
    "SearchResult",
    "crossover",
    "evolution_search",
    "format_table",
    "measure_latency",
    "mutate_layers",
    "pareto_front",
    "plot_pareto",
    "random_search",
]
