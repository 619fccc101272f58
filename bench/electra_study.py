"""ELECTRA vs masked-LM at equal training FLOPs (issue 32; design in docs/electra_study/design.md, written before the
runs): one small BERT-shaped arch pre-trained from scratch on WikiText-2 with each objective, then fine-tuned on
STS-B and SST-2 and scored on held-out slices of their training files (dev is never read).

    python bench/electra_study.py --stages splits,pretrain_mlm_s42    # stages by name or prefix; a rerun skips them
    python bench/electra_study.py                                     # every stage not done yet, then the report
    python bench/electra_study.py --quick --output_dir /tmp/electra   # a tiny arch and generated data (a minute)

On a new machine, copy the committed docs/results/electra_study/ into <output_dir>/results/: a stage counts as done
when its result is there and so are the files later stages read (the held-out slices and the encoders are not
committed); name the stages you need, since 'all' would also remake files no pending stage reads.

Stages: splits; pretrain_<objective>_s<seed> (checkpoints every 250 steps: an interrupted stage resumes);
finetune_<objective>_s<seed> (each task recorded as it finishes); report (docs/electra_study.md and
docs/results/electra_study/).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from proxy_study import finetune_on_held_out  # noqa: E402
from stages import SHARED, StageResults, run_selected  # noqa: E402
from student_ladder import Stage, write_splits  # noqa: E402

from magic_bert.cli import arg, parse_one, run  # noqa: E402
from magic_bert.errors import InputError  # noqa: E402
from magic_bert.io_utils import write_json_atomic, write_text_atomic  # noqa: E402

TASKS = ("stsb", "sst2")
OBJECTIVES = ("mlm", "electra")
MASKED = 0.15  # --mlm_probability, the default


@dataclass
class ElectraStudyArguments:
    output_dir: str = arg("outputs/electra_study", "Pre-trained encoders, fine-tuning runs and results/*.json.")
    docs_dir: str | None = arg(None, "Where the report goes (default: docs; with --quick, <output_dir>/docs).")
    stages: str = arg("all", "Comma-separated stage names or prefixes; 'all'.")
    glue_dir: str = arg(str(SHARED / "glue"), "Original GLUE folders STS-B/ and SST-2/ (train files only used).")
    corpus_dir: str = arg(str(SHARED / "corpus" / "wikitext-2"), "valid.txt (trained on) and test.txt (held out).")
    quick: bool = arg(False, "A tiny arch, the embedded corpus and generated task files, a few steps.")
    seeds: str = arg("42,43", "Pre-training (and fine-tuning) seeds.")
    mlm_steps: int = arg(1500, "Masked-LM steps; ELECTRA gets the same training FLOPs.")
    learning_rate: float = arg(5e-4, "Pre-training learning rate (both objectives).")
    split_seed: int = arg(0, "Seed of the held-out slices (the ablation ladder's).")


@dataclass(frozen=True)
class Model:
    hidden: int
    layers: int
    heads: int
    inner: int
    vocab: int
    batch: int
    seq: int

    @property
    def arch(self) -> list[str]:
        return [f"mha:{self.heads}", f"ffn:{self.inner}"] * self.layers


MODEL = Model(hidden=256, layers=4, heads=4, inner=1024, vocab=8000, batch=32, seq=128)
QUICK_MODEL = Model(hidden=32, layers=2, heads=2, inner=64, vocab=300, batch=4, seq=32)


@dataclass
class Plan(StageResults):
    args: ElectraStudyArguments
    out: Path
    glue: Path
    corpus: Path
    model: Model
    seeds: list[int]

    def done(self, stage: str) -> bool:
        """Its result is there and so is what later stages read from it (results committed from another machine
        come without the slices or the encoders: those stages run again)."""
        if not self.has_result(stage):
            return False
        if stage == "splits":
            return all((self.data(task) / "held_out.jsonl").is_file() for task in TASKS)
        if stage.startswith("pretrain_"):
            objective, _, seed = stage.removeprefix("pretrain_").rpartition("_s")
            return (self.encoder(objective, int(seed)) / "config.json").is_file()
        return True

    def data(self, task: str) -> Path:
        return self.out / "data" / task

    def encoder(self, objective: str, seed: int) -> Path:
        return self.out / "encoders" / f"{objective}_s{seed}"


def make_plan(args: ElectraStudyArguments) -> Plan:
    items = [s.strip() for s in args.seeds.split(",") if s.strip()]
    if not items or not all(s.isdigit() for s in items):
        raise InputError(f"`seeds` must be comma-separated non-negative integers, got {args.seeds!r}.")
    out = Path(args.output_dir)
    if not args.quick:
        return Plan(args, out, Path(args.glue_dir), Path(args.corpus_dir), MODEL, [int(s) for s in items])
    from showcase_tools import make_quick_inputs

    inputs = out / "quick_inputs"
    if not (inputs / "corpus" / "valid.txt").is_file():
        make_quick_inputs(inputs)
    return Plan(args, out, inputs / "glue", inputs / "corpus", QUICK_MODEL, [1, 2])


# ------------------------------------------------------------------------------------------------------ compute
def training_flops(model: Model, objective: str) -> float:
    """3 × the forward FLOPs of one step: the encoder(s) at every token, the masked-LM heads at the masked 15 %
    (transform + decoder), ELECTRA's detection head at every token."""
    from magic_bert.training.electra import default_generator_arch, generator_config

    config = _config(model)
    tokens, sequences = model.batch * model.seq, model.batch
    mlm_head = MASKED * tokens * 2 * model.hidden * (model.hidden + model.vocab)
    encoder = sequences * config.search_space.flops(model.arch, model.seq)
    if objective == "mlm":
        return 3 * (encoder + mlm_head)
    generator = generator_config(config, default_generator_arch(config))
    generator_encoder = sequences * generator.search_space.flops(generator.arch, model.seq)
    detection_head = tokens * 2 * (model.hidden * model.hidden + model.hidden)
    return 3 * (encoder + generator_encoder + mlm_head + detection_head)


def _config(model: Model):
    from magic_bert import MagicBertConfig

    return MagicBertConfig(vocab_size=model.vocab, hidden_size=model.hidden, num_hidden_layers=2 * model.layers,
                           candidate_ops=list(dict.fromkeys(model.arch)), max_position_embeddings=model.seq)


def steps(plan: Plan, objective: str) -> int:
    mlm = 4 if plan.args.quick else plan.args.mlm_steps
    if objective == "mlm":
        return mlm
    return max(1, round(mlm * training_flops(plan.model, "mlm") / training_flops(plan.model, "electra")))


# ---------------------------------------------------------------------------------------------------------- stages
def splits_stage(plan: Plan) -> dict:
    return write_splits(plan.glue, TASKS, plan.args.split_seed, plan.data)


def pretrain_stage(objective: str, seed: int, plan: Plan) -> dict:
    """The arch from scratch with ``objective`` on WikiText-2, for its share of the compute; resumes if cut short."""
    from magic_bert.training.command import main as pretrain_main

    output, model = plan.encoder(objective, seed), plan.model
    space = plan.out / "data" / "space"
    if not (space / "config.json").is_file():
        _config(model).with_arch(None).save_pretrained(space)
    flags = ["--config_name", str(space), "--arch", " ".join(model.arch), "--objective", objective,
             "--vocab_size", str(model.vocab), "--train_file", str(plan.corpus / "valid.txt"), "--validation_file",
             str(plan.corpus / "test.txt"), "--max_seq_length", str(model.seq), "--per_device_train_batch_size",
             str(model.batch), "--learning_rate", str(plan.args.learning_rate), "--max_train_steps",
             str(steps(plan, objective)), "--seed", str(seed), "--max_eval_samples", "64",
             "--checkpointing_steps", "250", "--checkpoints_total_limit", "1", "--output_dir", str(output)]
    flags += ["--resume_from_checkpoint", "latest"] if any(output.glob("step_*")) else ["--overwrite_output_dir"]
    run(pretrain_main, flags)
    return {"objective": objective, "seed": seed, "steps": steps(plan, objective),
            "training_flops_per_step": training_flops(model, objective),
            "results": json.loads((output / "all_results.json").read_text())}


def finetune_stage(objective: str, seed: int, plan: Plan) -> dict:
    """STS-B and SST-2 on the ladder's training parts, scored on its held-out slices (× 100)."""
    encoder = plan.encoder(objective, seed)
    tasks = {task: plan.task_result(f"finetune_{objective}_s{seed}", task,
                                    lambda t=task: finetune_on_held_out(plan, encoder, t, seed))
             for task in TASKS}
    return {"objective": objective, "seed": seed, "tasks": tasks,
            "score": statistics.mean(tasks[t]["score"] for t in TASKS)}


def report_stage(plan: Plan) -> dict:
    docs = Path(plan.args.docs_dir or (plan.out / "docs" if plan.args.quick else "docs"))
    rows = {o: [plan.result(f"finetune_{o}_s{s}") for s in plan.seeds if plan.has_result(f"finetune_{o}_s{s}")]
            for o in OBJECTIVES}
    pretrained = {o: [plan.result(f"pretrain_{o}_s{s}") for s in plan.seeds if plan.has_result(f"pretrain_{o}_s{s}")]
                  for o in OBJECTIVES}
    summary = {o: _summary(rows[o], pretrained[o]) for o in OBJECTIVES}
    both = all(summary[o]["score"] for o in OBJECTIVES)
    difference = summary["electra"]["score"]["mean"] - summary["mlm"]["score"]["mean"] if both else None
    lines = ["# ELECTRA vs masked-LM at equal training FLOPs", "",
             "Design written before the runs: [electra_study/design.md](electra_study/design.md). Generated by "
             "`python bench/electra_study.py --stages report`; held-out slices of the STS-B and SST-2 training files "
             "(× 100), never dev.", "",
             "| objective | steps | training FLOPs | held-out pre-training loss (its baseline) | STS-B Spearman | "
             "SST-2 acc | score | seeds | training loop |", "|---|---|---|---|---|---|---|---|---|"]
    for objective, s in summary.items():
        if s["steps"]:
            lines.append(f"| {objective} | {s['steps']} | {s['flops']:.3g} | {_loss_cell(s)} | {_cell(s['stsb'])} | "
                         f"{_cell(s['sst2'])} | **{_cell(s['score'])}** | {s['seeds']} | {s['wall_minutes']:.0f} min |")
    lines += ["", "The pre-training loss is masked-LM's over the masked tokens (baseline: the unigram model) or "
              "ELECTRA's detection loss over every real token (baseline: the constant answer \"kept\", the binary "
              "entropy of the replaced share); mean over the seeds pre-trained so far.", "",
              f"ELECTRA − masked-LM: {difference:+.1f} points (mean over seeds)." if both else
              "Not every run has finished yet."]
    write_text_atomic(docs / "electra_study.md", "\n".join(lines) + "\n")
    target = docs / "results" / "electra_study"
    target.mkdir(parents=True, exist_ok=True)
    for path in [*plan.results.glob("*.json"), *plan.results.glob("tasks/*/*.json")]:
        if path.stem != "report":
            (target / path.relative_to(plan.results)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.relative_to(plan.results))
    write_json_atomic(target / "summary.json", {"summary": summary, "electra_minus_mlm": difference})
    return {"page": str(docs / "electra_study.md"), "electra_minus_mlm": difference}


def _summary(rows: list[dict], pretrained: list[dict]) -> dict:
    def stat(values: list[float]) -> dict | None:
        return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else None} \
            if values else None

    scores = [p["results"] for p in pretrained]
    return {"score": stat([r["score"] for r in rows]), "seeds": len(rows),
            **{t: stat([r["tasks"][t]["score"] for r in rows]) for t in TASKS},
            "steps": pretrained[0]["steps"] if pretrained else None,
            "flops": pretrained[0]["steps"] * pretrained[0]["training_flops_per_step"] if pretrained else 0.0,
            "pretrain_loss": stat([r["eval_loss"] for r in scores]),
            # masked-LM's unigram model, or ELECTRA's base rate (absent from runs made before it was recorded)
            "baseline_loss": stat([r[k] for r in scores for k in ("unigram_loss", "base_rate_loss") if k in r]),
            # the training loop's own clock, summed over resumed parts (a stage's seconds count its last part only)
            "wall_minutes": sum(r["train_seconds"] for r in scores) / 60}


def _loss_cell(summary: dict) -> str:
    loss, baseline = summary["pretrain_loss"], summary["baseline_loss"]
    return "–" if loss is None else f"{loss['mean']:.3f}" + (f" ({baseline['mean']:.3f})" if baseline else "")


def _cell(stat: dict | None) -> str:
    if stat is None:
        return "–"
    return f"{stat['mean']:.1f}" + (f" ± {stat['sd']:.1f}" if stat["sd"] is not None else "")


# ------------------------------------------------------------------------------------------------------- runner
def all_stages(plan: Plan) -> list[Stage]:
    stages = [Stage("splits", splits_stage)]
    for objective in OBJECTIVES:
        for seed in plan.seeds:
            stages.append(Stage(f"pretrain_{objective}_s{seed}",
                                lambda p, o=objective, s=seed: pretrain_stage(o, s, p)))
            stages.append(Stage(f"finetune_{objective}_s{seed}", lambda p, o=objective, s=seed: finetune_stage(o, s, p),
                                ("splits", f"pretrain_{objective}_s{seed}")))
    return [*stages, Stage("report", report_stage)]


def run_study(args: ElectraStudyArguments) -> dict[str, float]:
    plan = make_plan(args)
    return run_selected(plan, all_stages(plan), args.stages)


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run(run_study, parse_one(ElectraStudyArguments, argv, __doc__))


if __name__ == "__main__":
    main()
