"""How well a supernet ranks its children: inherited-weight scores against children trained alone.

Each child is scored twice on the same pre-masked held-out blocks with the shared helper
(:func:`magic_bert.evaluation.evaluate_mlm`): once with the weights it inherits from the supernet, once after it was
trained alone from scratch by the fixed-arch mode of :func:`magic_bert.pretraining.pretrain` (the one training loop)
under a fixed schedule. Kendall's tau and Spearman's rho (scipy) of the two loss lists measure the ranking.

Standalone results are cached by arch and schedule (:class:`StandaloneCache`), so several supernets are compared
against one set of standalone runs, and a second call trains nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from ..evaluation import MLMScore
from ..io_utils import write_json_atomic
from ..search_space import SearchSpace
from ..training.arguments import ADDED_LOSS_DEFAULTS, PretrainArguments

# Options of a standalone run that do not change what it learns (left out of the cache key); a fixed arch has no
# anchor and a standalone run no teacher, so their precisions are among them.
_NOT_IN_KEY = {"output_dir", "overwrite_output_dir", "resume_from_checkpoint", "checkpointing_steps",
               "checkpoints_total_limit", "logging_steps", "with_tracking", "report_to", "preprocessing_num_workers",
               "overwrite_cache", "per_device_eval_batch_size", "max_eval_samples", "arch", "anchor_precision",
               "teacher_precision"}


def sample_children(space: SearchSpace, num_children: int, seed: int = 0, max_params: float | None = None,
                    min_params: float | None = None) -> list[list[str]]:
    """``num_children`` distinct children drawn uniformly inside the budget (seeded)."""
    if not isinstance(num_children, int) or num_children < 3:
        raise InputError(f"`num_children` must be at least 3 (a rank correlation needs 3 children), got "
                         f"{num_children!r}.")
    rng = random.Random(seed)
    children: list[list[str]] = []
    for _ in range(100 * num_children):
        arch = space.sample(rng, max_params=max_params, min_params=min_params)  # raises on an empty budget
        if arch not in children:
            children.append(arch)
            if len(children) == num_children:
                return children
    raise InputError(f"Found only {len(children)} distinct children inside the budget, fewer than the "
                     f"{num_children} asked for; widen the budget or ask for fewer.")


def rank_correlation(supernet_losses: list[float], standalone_losses: list[float]) -> dict:
    """Kendall's tau and Spearman's rho (with p-values) between two lists of losses for the same children."""
    from scipy import stats

    if len(supernet_losses) != len(standalone_losses):
        raise ValueError(f"Score lists differ in length: {len(supernet_losses)} vs {len(standalone_losses)}.")
    if len(supernet_losses) < 3:
        raise InputError(f"Rank correlation needs at least 3 children, got {len(supernet_losses)}.")
    tau = stats.kendalltau(supernet_losses, standalone_losses)
    rho = stats.spearmanr(supernet_losses, standalone_losses)
    return {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue), "num_children": len(supernet_losses)}


class StandaloneCache:
    """Children trained alone, one JSON file per (arch, schedule, held-out set) under ``folder``.

    ``template`` holds the schedule (every ``PretrainArguments`` option but ``arch`` and ``output_dir``);
    ``fingerprint`` describes what the score is computed on (held-out set, tokenizer) and is part of the key, so a
    changed schedule or held-out set never reuses a stale result. ``score_fn(model) -> MLMScore`` scores a trained
    model; ``train_fn`` is :func:`magic_bert.pretraining.pretrain` (a parameter only so that tests can count calls).
    ``lengths`` (steps, at most the schedule's) are also scored, on the run's checkpoints at those steps: how the
    ranking changes along one schedule (the learning rate there has not decayed yet).
    """

    def __init__(self, folder: str | Path, template: PretrainArguments, score_fn: Callable[[object], MLMScore],
                 fingerprint: dict | None = None, train_fn: Callable | None = None, lengths: list[int] | None = None):
        self.folder = Path(folder)
        self.lengths = sorted(set(lengths or []))
        if any(not 0 < n <= template.max_train_steps for n in self.lengths):
            raise InputError(f"Standalone lengths {self.lengths} must lie in [1, {template.max_train_steps}] (the "
                             "schedule's steps).")
        self.template = template
        self.score_fn = score_fn
        self.fingerprint = fingerprint or {}
        self.train_fn = train_fn
        self.trained = 0  # runs trained by this object (cache misses)

    def key(self, arch: list[str]) -> str:
        # Loss options added later are left out at their defaults, so runs cached before them keep their keys.
        schedule = {k: v for k, v in dataclasses.asdict(self.template).items() if k not in _NOT_IN_KEY
                    and not (k in ADDED_LOSS_DEFAULTS and v == ADDED_LOSS_DEFAULTS[k])}
        blob = json.dumps({"arch": list(arch), "schedule": schedule, "fingerprint": self.fingerprint},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def get(self, arch: list[str]) -> dict | None:
        file = self.folder / f"{self.key(arch)}.json"
        entry = json.loads(file.read_text()) if file.is_file() else None
        if entry is not None and any(str(n) not in entry.get("length_losses", {}) for n in self.lengths):
            return None  # scored before these lengths were asked for: train again
        return entry

    def score(self, arch: list[str]) -> dict:
        """The cached result for ``arch``, training and scoring it first on a miss."""
        cached = self.get(arch)
        if cached is not None:
            return cached
        if self.train_fn is None:
            from ..training.recipe import pretrain

            self.train_fn = pretrain
        key = self.key(arch)
        self.folder.mkdir(parents=True, exist_ok=True)
        run_dir = self.folder / f".run-{key}"
        # Checkpoints (which change nothing in the run) at every scored length; no limit, all are read below.
        every = {"checkpointing_steps": str(math.gcd(*self.lengths)), "checkpoints_total_limit": None} \
            if self.lengths else {}
        args = dataclasses.replace(self.template, arch=" ".join(arch), output_dir=str(run_dir),
                                   overwrite_output_dir=True, resume_from_checkpoint=None, max_eval_samples=1, **every)
        result = self.train_fn(args)
        self.trained += 1
        score = self.score_fn(result.model)
        entry = {"arch": list(arch), "eval_loss": score.loss, "eval_accuracy": score.accuracy,
                 "num_tokens": score.num_tokens, "train_steps": result.results["train_steps"],
                 "train_seconds": result.results["train_seconds"], "num_parameters": result.results["num_parameters"]}
        if self.lengths:
            entry["length_losses"] = {str(n): score.loss if n == self.template.max_train_steps else
                                      self.score_fn(_weights_at(result.model, run_dir / f"step_{n}")).loss
                                      for n in self.lengths}
        write_json_atomic(self.folder / f"{key}.json", entry)
        shutil.rmtree(run_dir, ignore_errors=True)  # the score is what is kept; runs are cheap to redo
        return entry

    def scores(self, children: list[list[str]], progress: Callable[[int], None] | None = None) -> list[dict]:
        results = []
        for arch in children:
            results.append(self.score(arch))
            if progress is not None:
                progress(1)
        return results


def _weights_at(model, checkpoint: Path):
    """A copy of ``model`` with the weights of a training checkpoint (``accelerator.save_state``'s file)."""
    from safetensors.torch import load_model

    copied = copy.deepcopy(model)
    load_model(copied, str(checkpoint / "model.safetensors"))
    return copied.eval()


__all__ = ["StandaloneCache", "rank_correlation", "sample_children"]
