"""The SPOS vs MAGIC study: one space, one dataset, one budget; a supernet per (sampler, seed), all trained for the
same steps; each measured for rank correlation (against one shared set of standalone children) and for gradient
interference at every m. ``bench/magic_study.py`` is its command line; ``docs/magic_study.md`` reports a run.

Every run is a call of :func:`magic_bert.training.recipe.pretrain` (supernets, and the standalone children through the
cache), so there is no second training loop. A supernet whose folder already holds a finished run with the same
settings is reused, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator

from ..configuration_magic_bert import MagicBertConfig
from ..data import held_out_blocks, load_held_out_text, synthetic_datasets, train_wordpiece_tokenizer
from ..errors import InputError
from ..evaluation import evaluate_mlm
from ..io_utils import write_json_atomic, write_text_atomic
from ..modeling_magic_bert import MagicBertSupernetForMaskedLM
from ..training.arguments import PretrainArguments
from ..training.strategies import SAMPLERS
from .interference import KINDS, sample_sharing_children, shared_op, similarity_matrix, similarity_vs_m
from .rank_bootstrap import informative_pairs, paired_tau_difference, sign_matrix, weighted_tau
from .ranking import StandaloneCache, rank_correlation, sample_children
from .study_reference import add_others, file_digest, load_reference, save_reference, standalone_entry
from .study_report import anchor_text, format_summary, intervention_text, primary_text, write_figures
from .study_runs import measure_or_reuse, train_or_reuse_supernet


@dataclass
class StudySettings:
    output_dir: str = "outputs/magic_study"
    # Where the tokenizer, config, data and standalone cache live (default: output_dir). Point a variant of the study
    # (other samplers or alignment settings) at the main study's folder to reuse its standalone set.
    shared_dir: str | None = None
    train_file: str | None = None  # real text; None: the embedded synthetic corpus, written out once
    validation_file: str | None = None
    samplers: list[str] = field(default_factory=lambda: list(SAMPLERS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # Samplers run with fewer seeds, reported apart as exploratory (study v2: MAGIC-T and MAGIC-A).
    exploratory_samplers: list[str] = field(default_factory=list)
    exploratory_seeds: list[int] = field(default_factory=list)
    # The one pre-registered comparison: τ of the first minus τ of the second, paired by seed, with a bootstrap
    # interval over children and seeds (both must be in `samplers`).
    primary: list[str] = field(default_factory=lambda: ["magic-at", "spos"])
    bootstrap_samples: int = 2000
    hidden_size: int = 64
    num_layers: int = 6
    candidate_ops: list[str] = field(default_factory=lambda: [
        "identity", "mha:2", "mha:4", "ffn:128", "ffn:256", "conv:3", "conv:7"])
    vocab_size: int = 2000
    max_seq_length: int = 64
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    supernet_steps: int = 2000
    standalone_steps: int = 1000
    max_params: float | None = None  # default: 60% of the way from the smallest to the largest child
    num_children: int = 16
    # The reference is the mean over these seeds. Empty: no standalone reference and no τ (the alignment intervention
    # measures similarity only); primary, standalone_lengths and reference_file must then be empty too.
    standalone_seeds: list[int] = field(default_factory=lambda: [0, 1])
    standalone_lengths: list[int] = field(default_factory=list)  # also scored on checkpoints: seed agreement by length
    reference_file: str | None = None  # the reference as a committed JSON: used when it matches, else built there
    children_seed: int = 1234  # the standalone set and the interference pairs: the same for every supernet
    eval_blocks: int = 256
    interference_layer: int = 2
    interference_op: str = "ffn:256"
    interference_batches: int = 4
    pairs_per_m: int = 8
    matrix_children: int = 8
    anchor_eval_steps: int = 50
    anchor_eval_samples: int = 64
    anchor_swap_margin: float = 0.0  # the first study's rule had no margin (it compared accuracy, then loss)
    # MAGIC-A/AT keep their initial anchor: no anchor check during training (anchor_eval_steps past the last step).
    # A margin cannot promise that (the swap rule's paired standard error may be 0); no check can. MAGIC-A then is
    # exactly SPOS plus alignment toward one fixed child (its draws are SPOS's draws for the same seed).
    fixed_anchor: bool = False
    probe_interference_steps: int = 0  # MAGIC-T's claim during training (gradient cosine of consecutive steps)
    align_hidden_weight: float = 1.0
    align_logits_weight: float = 1.0
    # The anchor's forward precision (--anchor_precision). The studies so far ran it like the child (fp32); the
    # anchor-precision design repeats study v2's MAGIC-AT runs with bf16 to show the cheaper anchor ranks the same.
    anchor_precision: str = "training"
    synthetic_documents: int = 2000

    def check(self) -> None:
        """Every bad value in one message, before anything is trained or written."""
        problems = [f"unknown sampler {s!r} (allowed: {list(SAMPLERS)})"
                    for s in (*self.samplers, *self.exploratory_samplers) if s not in SAMPLERS]
        if not self.seeds:
            problems.append("no seeds (seeds needs at least one)")
        needs_reference = [name for name in ("primary", "standalone_lengths", "reference_file") if getattr(self, name)]
        if not self.standalone_seeds and needs_reference:
            problems.append(f"standalone_seeds is empty (no standalone reference, so no τ) but {needs_reference} "
                            "need one: give standalone_seeds or leave those empty")
        if self.exploratory_samplers and not self.exploratory_seeds:
            problems.append("exploratory_samplers without exploratory_seeds")
        if self.primary and (len(self.primary) != 2 or not set(self.primary) <= set(self.samplers)):
            problems.append(f"primary={self.primary} must name two of samplers {self.samplers} (or be empty)")
        bad_lengths = [n for n in self.standalone_lengths if not 0 < n <= self.standalone_steps]
        if bad_lengths:
            problems.append(f"standalone_lengths {bad_lengths} must lie in [1, standalone_steps="
                            f"{self.standalone_steps}]")
        if self.num_children < 3:
            problems.append(f"num_children={self.num_children}: rank correlation needs at least 3")
        for name in ("supernet_steps", "standalone_steps", "eval_blocks", "interference_batches", "pairs_per_m",
                     "batch_size", "matrix_children", "bootstrap_samples"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        for flag in ("train_file", "validation_file"):
            path = getattr(self, flag)
            if path is not None and not Path(path).is_file():
                problems.append(f"{flag} {path!r} does not exist")
        if (self.train_file is None) != (self.validation_file is None):
            problems.append("give both train_file and validation_file, or neither (embedded data)")
        if problems:
            raise InputError("Bad study settings: " + "; ".join(problems) + ".")


QUICK = {"hidden_size": 32, "num_layers": 4, "candidate_ops": ["identity", "mha:2", "ffn:64", "conv:3"],
         "vocab_size": 400, "max_seq_length": 32, "batch_size": 8, "supernet_steps": 30, "standalone_steps": 20,
         "warmup_steps": 0, "num_children": 4, "seeds": [0, 1], "standalone_seeds": [0, 1], "eval_blocks": 16,
         "interference_layer": 1, "interference_op": "ffn:64", "interference_batches": 2, "pairs_per_m": 2,
         "matrix_children": 3, "anchor_eval_steps": 10, "anchor_eval_samples": 8, "synthetic_documents": 300,
         "bootstrap_samples": 200}

# Study v2 (issue 16): sizes from the power calculation (bench/study_power.py), the robust anchor rule, the package's
# default alignment, a committed reference; `bench/magic_study.py --design v2`.
V2 = {"output_dir": "outputs/magic_study_v2", "samplers": ["spos", "magic-at"], "seeds": list(range(8)),
      "exploratory_samplers": ["magic-t", "magic-a"], "exploratory_seeds": [0, 1, 2], "num_children": 96,
      "eval_blocks": 1024, "standalone_lengths": [250, 500, 1000], "anchor_swap_margin": 2.0,
      "align_hidden_weight": 0.1, "align_logits_weight": 0.1, "probe_interference_steps": 50}

# The alignment intervention (issue 16, item 5): the same children sequence trained by SPOS and by MAGIC-A with a
# fixed anchor (= SPOS plus paper-mode alignment of every layer's output, hidden states only, weight 1.0), then the
# paired by seed change in similarity at the same op and pairs (`intervention` in study.json). No τ, no reference.
INTERVENTION = {"output_dir": "outputs/alignment_intervention", "samplers": ["spos", "magic-a"],
                "seeds": list(range(5)), "primary": [], "standalone_seeds": [], "fixed_anchor": True,
                "align_hidden_weight": 1.0, "align_logits_weight": 0.0}


def _data_files(settings: StudySettings, output: Path) -> tuple[str, str, str]:
    """(train, held-out, description): the given text files, or the embedded corpus written out once."""
    if settings.train_file is not None:
        return settings.train_file, settings.validation_file, f"{settings.train_file} | {settings.validation_file}"
    data = output / "data"
    train, valid = data / "train.txt", data / "validation.txt"
    if not valid.is_file():
        data.mkdir(parents=True, exist_ok=True)
        corpus = synthetic_datasets(settings.synthetic_documents, seed=0)
        for path, split in ((train, "train"), (valid, "validation")):
            write_text_atomic(path, "\n".join(corpus[split]["text"]) + "\n")
    return str(train), str(valid), f"embedded synthetic corpus ({settings.synthetic_documents} documents)"


def _tokenizer_and_config(settings: StudySettings, output: Path, train_file: str) -> tuple[str, str]:
    """One tokenizer (trained once: the trainer's ties make fresh vocabularies differ) and one supernet config."""
    tokenizer_dir, config_dir = output / "tokenizer", output / "config"
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        lines = [line for line in Path(train_file).read_text().splitlines() if line.strip()]
        train_wordpiece_tokenizer(lines, settings.vocab_size).save_pretrained(tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = MagicBertConfig(vocab_size=len(tokenizer), hidden_size=settings.hidden_size,
                             num_hidden_layers=settings.num_layers, candidate_ops=settings.candidate_ops,
                             max_position_embeddings=max(128, settings.max_seq_length),
                             pad_token_id=tokenizer.pad_token_id)
    if (config_dir / "config.json").is_file():
        saved = MagicBertConfig.from_pretrained(config_dir)
        differ = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "candidate_ops")
                  if getattr(saved, k) != getattr(config, k)]
        if differ:
            raise InputError(f"{config_dir} holds another search space ({differ} differ): a study that shares a "
                             "folder must use the same space.")
    config.save_pretrained(config_dir)
    return str(tokenizer_dir), str(config_dir)


def _run_args(settings: StudySettings, train_file: str, valid_file: str, tokenizer: str, config: str, seed: int,
              steps: int, output_dir: str, max_params: float) -> PretrainArguments:
    return PretrainArguments(
        train_file=train_file, validation_file=valid_file, tokenizer_name=tokenizer, config_name=config,
        max_seq_length=settings.max_seq_length, per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=32, learning_rate=settings.learning_rate, num_warmup_steps=settings.warmup_steps,
        max_train_steps=steps, seed=seed, output_dir=output_dir, overwrite_output_dir=True,
        max_eval_samples=settings.eval_blocks, max_params=max_params)


def _io_gradient_link(curve: list[dict]) -> dict:
    """The paper's second finding, tested directly: over every measured pair (all m pooled), Spearman's rho between
    the similarity of the shared op's inputs (outputs) and the similarity of its gradients."""
    from scipy import stats

    gradient = [g for row in curve for g in row["gradient"]]
    link = {}
    for kind in ("input", "output"):
        values = [v for row in curve for v in row[kind]]
        link[f"{kind}_gradient_spearman"] = (float(stats.spearmanr(values, gradient).statistic)
                                             if len(values) >= 3 else None)
    return link


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


@dataclass
class _Study:
    """What every run of the study shares: data, tokenizer, space, budget, children, held-out batches."""

    settings: StudySettings
    output: Path
    shared: Path
    train_file: str
    valid_file: str
    data_description: str
    tokenizer_dir: str
    config_dir: str
    space: object
    max_params: float
    children: list
    matrix_children: list
    vocab_digest: str
    eval_loader: DataLoader
    probe_batches: list

    def score(self, model, arch=None):
        return evaluate_mlm(model, self.eval_loader, arch=arch)


def _prepare(settings: StudySettings) -> _Study:
    """Data, tokenizer, config and children; everything that can be refused is checked before the first run."""
    settings.check()
    output = Path(settings.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    shared = Path(settings.shared_dir or settings.output_dir)
    shared.mkdir(parents=True, exist_ok=True)
    train_file, valid_file, data_description = _data_files(settings, shared)
    tokenizer_dir, config_dir = _tokenizer_and_config(settings, shared, train_file)
    config = MagicBertConfig.from_pretrained(config_dir)
    space = config.search_space
    max_params = settings.max_params or space.min_params + 0.6 * (space.max_params - space.min_params)
    layer, op = settings.interference_layer, settings.interference_op
    children = sample_children(space, settings.num_children, settings.children_seed, max_params)
    shared_op(MagicBertSupernetForMaskedLM(config), layer, op)
    matrix_children = sample_sharing_children(space, layer, op, settings.matrix_children,
                                              random.Random(settings.children_seed), max_params)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab_digest = hashlib.sha256(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode()).hexdigest()
    blocks = held_out_blocks(load_held_out_text(validation_file=valid_file), tokenizer, settings.max_seq_length,
                             seed=0)
    eval_loader = DataLoader(blocks.select(range(min(settings.eval_blocks, len(blocks)))), batch_size=32,
                             collate_fn=default_data_collator)
    probe_batches = list(DataLoader(blocks.select(range(min(settings.interference_batches * settings.batch_size,
                                                            len(blocks)))),
                                    batch_size=settings.batch_size, collate_fn=default_data_collator))
    return _Study(settings, output, shared, train_file, valid_file, data_description, tokenizer_dir, config_dir, space,
                  max_params, children, matrix_children, vocab_digest, eval_loader, probe_batches)


def _standalone_reference(study: _Study, log) -> tuple[list[dict], dict | None, dict]:
    """Each child trained alone once per standalone seed (cached by arch and schedule, or read from the committed
    ``reference_file``). The reference is the mean over those seeds; the agreement between two seeds measures the
    reference's own noise, also at each of ``standalone_lengths``."""
    settings = study.settings
    if not settings.standalone_seeds:  # a similarity-only design (the intervention): no reference, no τ
        return [], None, {}
    fingerprint = _reference_fingerprint(study)
    stored = load_reference(settings.reference_file, fingerprint, study.children) if settings.reference_file else None
    if stored is not None:
        log(f"standalone reference read from {settings.reference_file}")
        per_seed = {int(seed): [child["per_seed"][seed] for child in stored["children"]]
                    for seed in stored["children"][0]["per_seed"]}
    else:
        per_seed = _train_reference(study, fingerprint, log)
    standalone = [{"arch": arch, "eval_loss": statistics.fmean(per_seed[s][i]["eval_loss"] for s in per_seed),
                   "per_seed": {str(s): per_seed[s][i] for s in per_seed}} for i, arch in enumerate(study.children)]
    seeds = list(per_seed)
    ceiling = None if len(seeds) < 2 else rank_correlation([e["eval_loss"] for e in per_seed[seeds[0]]],
                                                           [e["eval_loss"] for e in per_seed[seeds[1]]])
    by_length = {} if len(seeds) < 2 else {
        str(n): rank_correlation(*([e["length_losses"][str(n)] for e in per_seed[s]] for s in seeds[:2]))
        for n in settings.standalone_lengths}
    return standalone, ceiling, by_length


def _reference_fingerprint(study: _Study) -> dict:
    """What a standalone score depends on besides the arch and schedule: tokenizer, texts, held-out blocks."""
    settings = study.settings
    return {"vocab_sha256": study.vocab_digest, "train_sha256": file_digest(study.train_file),
            "held_out_sha256": file_digest(study.valid_file), "eval_blocks": settings.eval_blocks,
            "max_seq_length": settings.max_seq_length, "standalone_steps": settings.standalone_steps,
            "learning_rate": settings.learning_rate, "batch_size": settings.batch_size,
            "warmup_steps": settings.warmup_steps,
            "standalone_seeds": list(settings.standalone_seeds),
            "standalone_lengths": list(settings.standalone_lengths),
            "config": {k: getattr(settings, k) for k in ("hidden_size", "num_layers", "candidate_ops", "vocab_size")}}


def _standalone_cache(study: _Study, standalone_seed: int) -> StandaloneCache:
    """The cache of children trained alone with one seed (shared by the reference and the anchors' standings)."""
    settings = study.settings
    template = _run_args(settings, study.train_file, study.valid_file, study.tokenizer_dir, study.config_dir,
                         standalone_seed, settings.standalone_steps, "unused", None)
    return StandaloneCache(study.shared / "standalone_cache", template, study.score,
                           fingerprint={"held_out": study.valid_file, "eval_blocks": settings.eval_blocks,
                                        "max_seq_length": settings.max_seq_length, "vocab": study.vocab_digest},
                           lengths=settings.standalone_lengths)


def _train_reference(study: _Study, fingerprint: dict, log) -> dict[int, list[dict]]:
    settings, per_seed = study.settings, {}
    for standalone_seed in settings.standalone_seeds:
        cache = _standalone_cache(study, standalone_seed)
        t0 = time.perf_counter()
        per_seed[standalone_seed] = cache.scores(study.children)
        log(f"standalone set, seed {standalone_seed}: {len(study.children)} children ({cache.trained} trained now) "
            f"in {time.perf_counter() - t0:.0f} s")
    if settings.reference_file:
        schedule = {k: v for k, v in dataclasses.asdict(cache.template).items() if k in (
            "learning_rate", "num_warmup_steps", "per_device_train_batch_size", "max_train_steps")}
        save_reference(settings.reference_file, fingerprint, study.children, per_seed, schedule)
        log(f"standalone reference written to {settings.reference_file}")
    return per_seed


def _add_anchor_standings(study: _Study, runs: list[dict], standalone: list[dict], log) -> None:
    """For each run with an anchor (MAGIC-A/AT): its final anchor trained alone like the children and its rank among
    the children's reference losses (1 = best). A final anchor that is a child uses the child's reference; the others
    are trained once (the standalone cache) and kept in ``reference_file`` beside the children, so a rerun of the
    study trains none of them again."""
    settings = study.settings
    stored = load_reference(settings.reference_file, _reference_fingerprint(study), study.children) \
        if settings.reference_file else None
    known = {tuple(entry["arch"]): entry["per_seed"] for entry in [*standalone, *(stored or {}).get("others", [])]}
    reference, added = [entry["eval_loss"] for entry in standalone], []
    for run in runs:
        if run["train_results"].get("anchor_swaps") is None:
            continue
        arch = run["train_results"]["eval_arch"]
        if tuple(arch) not in known:
            known[tuple(arch)] = standalone_entry({seed: _standalone_cache(study, seed).score(arch)
                                                   for seed in settings.standalone_seeds})
            added.append({"arch": list(arch), "per_seed": known[tuple(arch)]})
        loss = statistics.fmean(scores["eval_loss"] for scores in known[tuple(arch)].values())
        run["final_anchor"] = {"arch": arch, "standalone_loss": loss, "rank": 1 + sum(x < loss for x in reference),
                               "of": len(reference)}
        log(f"{run['sampler']} seed {run['seed']}: final anchor ranks {run['final_anchor']['rank']} of "
            f"{len(reference)} children (standalone loss {loss:.4f})")
    if added and stored is not None:
        add_others(settings.reference_file, stored, added)


# The settings a supernet's measurements depend on besides its weights, the children and the budget.
_MEASURING = ("validation_file", "eval_blocks", "max_seq_length", "interference_layer", "interference_op",
              "interference_batches", "batch_size", "pairs_per_m", "children_seed")


def _analyse_run(study: _Study, sampler: str, seed: int, standalone_losses: list[float], log) -> dict:
    """Train (or reuse) one supernet, then its rank correlation (when there is a reference) and interference curve
    (and matrix on seed 0)."""
    settings, layer, op = study.settings, study.settings.interference_layer, study.settings.interference_op
    args = _run_args(settings, study.train_file, study.valid_file, study.tokenizer_dir, study.config_dir, seed,
                     settings.supernet_steps, str(study.output / "supernets" / f"{sampler}-seed{seed}"),
                     study.max_params)
    args.sampler = sampler
    args.anchor_eval_steps, args.anchor_eval_samples = settings.anchor_eval_steps, settings.anchor_eval_samples
    if settings.fixed_anchor:  # checks happen at multiples of anchor_eval_steps: none falls inside the run
        args.anchor_eval_steps = settings.supernet_steps + 1
    args.anchor_swap_margin = settings.anchor_swap_margin
    args.probe_interference_steps = settings.probe_interference_steps
    args.align_hidden_weight, args.align_logits_weight = settings.align_hidden_weight, settings.align_logits_weight
    args.anchor_precision = settings.anchor_precision
    folder = train_or_reuse_supernet(args, study.vocab_digest, log)
    with_matrix = seed == settings.seeds[0]

    def measure() -> dict:
        supernet = MagicBertSupernetForMaskedLM.from_pretrained(folder)
        inherited = [study.score(supernet, arch).loss for arch in study.children]
        curve = similarity_vs_m(supernet, study.probe_batches, layer, op, settings.pairs_per_m,
                                settings.children_seed, study.max_params)
        matrix = similarity_matrix(supernet, study.matrix_children, study.probe_batches, layer, op) \
            if with_matrix else None
        return {"inherited_losses": inherited, "similarity_vs_m": curve, "similarity_matrix": matrix}

    measured_with = {"children": study.children, "matrix_children": study.matrix_children if with_matrix else None,
                     "max_params": study.max_params, **{name: getattr(settings, name) for name in _MEASURING}}
    measured = measure_or_reuse(folder, measured_with, measure, log)
    correlation = rank_correlation(measured["inherited_losses"], standalone_losses) if standalone_losses else {}
    curve = measured["similarity_vs_m"]
    run = {"sampler": sampler, "seed": seed, "supernet": str(folder), **correlation,
           "inherited_losses": measured["inherited_losses"], "similarity_vs_m": curve, **_io_gradient_link(curve),
           "train_results": json.loads((folder / "all_results.json").read_text())}
    if with_matrix:
        run["similarity_matrix"] = measured["similarity_matrix"]
    tau = f"tau {correlation['kendall_tau']:+.3f} rho {correlation['spearman_rho']:+.3f} " if correlation else ""
    log(f"{sampler} seed {seed}: {tau}grad sim m=1 {curve[0]['gradient_mean']:.3f} m={curve[-1]['m']} "
        f"{curve[-1]['gradient_mean']:.3f}")
    return run


def run_study(settings: StudySettings, log=print) -> dict:
    """The whole study: the standalone reference, then every sampler × seed, then the report and figures."""
    started = time.perf_counter()
    study = _prepare(settings)
    standalone, ceiling, by_length = _standalone_reference(study, log)
    standalone_losses = [entry["eval_loss"] for entry in standalone]
    runs = [_analyse_run(study, sampler, seed, standalone_losses, log)
            for seed in settings.seeds for sampler in settings.samplers]
    runs += [_analyse_run(study, sampler, seed, standalone_losses, log)
             for seed in settings.exploratory_seeds for sampler in settings.exploratory_samplers]
    pairs = _add_informative_tau(runs, standalone_losses) if standalone else None
    if standalone:
        _add_anchor_standings(study, runs, standalone, log)
    summary = _summarise(runs, settings)
    primary = _primary_comparison(runs, standalone_losses, pairs, settings)
    intervention = _intervention(runs, settings)
    report = {"settings": dataclasses.asdict(settings), "data": study.data_description,
              "max_params": study.max_params, "space_size": study.space.size, "children": study.children,
              "standalone": standalone, "standalone_seed_agreement": ceiling,
              "standalone_seed_agreement_by_length": by_length,
              "informative_pairs": None if pairs is None else int(pairs.sum()) // 2, "primary_comparison": primary,
              "intervention": intervention, "matrix_children": study.matrix_children, "summary": summary,
              "runs": [{k: v for k, v in run.items() if k != "similarity_matrix"} for run in runs],
              "wall_seconds": time.perf_counter() - started}
    write_figures(study.output, runs, summary, settings, standalone_losses, study.matrix_children)
    write_json_atomic(study.output / "study.json", report)
    table = (format_summary(summary, settings) + primary_text(primary, report["informative_pairs"],
                                                                len(study.children)) + intervention_text(intervention)
             + anchor_text(summary, len(study.children)))
    if not standalone:
        table += "\n\nNo standalone reference (`standalone_seeds` empty): no rank correlation (τ, ρ: –)."
    if ceiling is not None:
        table += (f"\n\nTwo standalone seeds agree with Kendall τ {ceiling['kendall_tau']:+.3f}, Spearman ρ "
                  f"{ceiling['spearman_rho']:+.3f}: the noise of the standalone reference itself (the reference used "
                  "is their mean, somewhat less noisy).")
        table += "".join(f" At {n} steps: τ {c['kendall_tau']:+.3f}." for n, c in by_length.items())
    write_text_atomic(study.output / "study.md", table + "\n")
    log(table)
    return report


def _add_informative_tau(runs: list[dict], reference: list[float]) -> np.ndarray:
    """Each run's τ over the pairs that not every run orders like the reference (those tell methods apart)."""
    signs, reference_signs = np.stack([sign_matrix(run["inherited_losses"]) for run in runs]), sign_matrix(reference)
    pairs = informative_pairs(signs, reference_signs)
    taus = (weighted_tau(signs, reference_signs, np.ones((1, len(reference))), pairs)[0] if pairs.any()
            else [None] * len(runs))
    for run, tau in zip(runs, taus, strict=True):
        run["kendall_tau_informative"] = None if tau is None else float(tau)
    return pairs


def _primary_comparison(runs: list[dict], reference: list[float], pairs: np.ndarray | None,
                        settings: StudySettings) -> dict | None:
    """The pre-registered comparison: mean τ of primary[0] minus primary[1], paired by seed, 95 % bootstrap interval
    over children and seeds; on all pairs (the primary result) and on the informative pairs."""
    if not settings.primary or len(settings.seeds) < 2:
        return None
    losses = {(run["sampler"], run["seed"]): run["inherited_losses"] for run in runs}
    a, b = ([losses[(name, seed)] for seed in settings.seeds] for name in settings.primary)
    result = {"a": settings.primary[0], "b": settings.primary[1],
              "all_pairs": paired_tau_difference(a, b, reference, settings.bootstrap_samples)}
    if pairs is not None and pairs.any():
        result["informative_pairs"] = paired_tau_difference(a, b, reference, settings.bootstrap_samples, pairs=pairs)
    return result


def _t_interval(values: list[float]) -> dict:
    """Mean, the per-seed values and a 95 % t interval over them (None with fewer than 2 values)."""
    from scipy import stats

    mean, n = statistics.fmean(values), len(values)
    half = (float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(values) / n ** 0.5) if n > 1 else None
    return {"mean": mean, "low": None if half is None else mean - half, "high": None if half is None else mean + half,
            "values": values}


def _intervention(runs: list[dict], settings: StudySettings) -> dict | None:
    """With no primary τ comparison and exactly two samplers (the intervention design: spos, magic-a with a fixed
    anchor), per m the change second − first in each similarity at the shared op, paired by seed (both runs of a
    seed measure the same pairs), with a 95 % t interval over seeds; "all_m" pools the m of each seed first."""
    if settings.primary or len(settings.samplers) != 2:
        return None
    first, second = settings.samplers
    curves = {(r["sampler"], r["seed"]): r["similarity_vs_m"] for r in runs}
    by_m, pooled = [], {kind: {seed: [] for seed in settings.seeds} for kind in KINDS}
    for index, row in enumerate(curves[(first, settings.seeds[0])]):
        point = {"m": row["m"]}
        for kind in KINDS:
            means = [(curves[(second, s)][index][f"{kind}_mean"], curves[(first, s)][index][f"{kind}_mean"])
                     for s in settings.seeds]
            if any(b is None or a is None for b, a in means):  # no pair at this m
                point[kind] = None
                continue
            point[kind] = _t_interval([b - a for b, a in means])
            for seed, value in zip(settings.seeds, point[kind]["values"], strict=True):
                pooled[kind][seed].append(value)
        by_m.append(point)
    return {"first": first, "second": second, "seeds": list(settings.seeds), "by_m": by_m,
            "all_m": {kind: _t_interval([statistics.fmean(v) for v in per_seed.values()])
                      for kind, per_seed in pooled.items() if all(per_seed.values())}}


def _summarise(runs: list[dict], settings: StudySettings) -> dict:
    """Per sampler, mean ± std over seeds of tau, rho and each similarity at each m."""
    summary = {}
    for sampler in (*settings.samplers, *settings.exploratory_samplers):
        mine = [r for r in runs if r["sampler"] == sampler]
        # Without a standalone reference the runs have no τ / ρ: those fields are None.
        ranked = {key: [r[key] for r in mine if r.get(key) is not None]
                  for key in ("kendall_tau", "kendall_tau_informative", "spearman_rho")}
        entry = {"exploratory": sampler not in settings.samplers,
                 **{key: _mean_std(values) if values else None for key, values in ranked.items()},
                 "final_eval_loss": _mean_std([r["train_results"]["eval_loss"] for r in mine]),
                 "mean_inherited_loss": _mean_std([statistics.fmean(r["inherited_losses"]) for r in mine]),
                 **{key: _mean_std(values) for key in ("probe_grad_cosine_mean", "probe_prev_child_loss_rise_mean")
                    if (values := [r["train_results"][key] for r in mine
                                   if r["train_results"].get(key) is not None])},
                 **{key: _mean_std(values) for key, values in (
                     ("anchor_swap_rate", [r["train_results"]["anchor_swap_rate"] for r in mine
                                           if r["train_results"].get("anchor_swap_rate") is not None]),
                     ("final_anchor_rank", [r["final_anchor"]["rank"] for r in mine if "final_anchor" in r]))
                    if values},
                 "input_gradient_spearman": _mean_std([r["input_gradient_spearman"] for r in mine]),
                 "output_gradient_spearman": _mean_std([r["output_gradient_spearman"] for r in mine]),
                 "similarity_vs_m": []}
        for index, row in enumerate(mine[0]["similarity_vs_m"]):
            point = {"m": row["m"]}
            for kind in ("gradient", "input", "output"):
                stats = _mean_std([r["similarity_vs_m"][index][f"{kind}_mean"] for r in mine])
                point[f"{kind}_mean"], point[f"{kind}_std"] = stats["mean"], stats["std"]
            entry["similarity_vs_m"].append(point)
        summary[sampler] = entry
    return summary


__all__ = ["INTERVENTION", "QUICK", "V2", "StudySettings", "format_summary", "run_study"]
