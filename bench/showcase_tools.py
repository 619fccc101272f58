"""The pieces of bench/compression_showcase.py that are more than a command call: the --quick inputs (a tiny BERT,
the embedded corpus, GLUE-layout task files), fixed-arch distillation that starts from a supernet's child,
fine-tuning that keeps each dev prediction, and the Hub-ready export of the distilled student."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import torch

from magic_bert.io_utils import publish_dir, write_json_atomic, write_text_atomic
from magic_bert.training.recipe import PretrainRecipe, PretrainResult, run_recipe

# Card metadata the export command cannot set yet (see the report of issue 18): the data and its licence.
CARD_DATASETS = ["Salesforce/wikitext", "nyu-mll/glue"]
LICENCES = ("## Licences\n\nThe weights derive from the teacher ({teacher}, Apache-2.0) and were distilled on "
            "WikiText-2 (Wikipedia text, CC BY-SA 3.0); the GLUE numbers come from the GLUE dev sets, each under its "
            "own terms. This model is released under Apache-2.0.\n")


# ------------------------------------------------------------------------------------------------- quick inputs
def make_quick_inputs(root: Path, seed: int = 0) -> Path:
    """A tiny BERT encoder (no MLM head, like all-MiniLM-L6-v2) with a word-level tokenizer of the embedded corpus,
    that corpus as valid.txt / test.txt, and small MRPC / STS-B / CoLA / SST-2 files in the original GLUE layouts."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from magic_bert.synthetic_corpus import generate_corpus, sentence, vocabulary

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *sorted(vocabulary())]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})
    torch.manual_seed(seed)
    teacher = BertModel(BertConfig(vocab_size=len(tokens), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                   intermediate_size=128, max_position_embeddings=128))
    teacher.save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    for name, documents, corpus_seed in (("valid.txt", 200, seed), ("test.txt", 30, seed + 1)):
        write_text_atomic(root / "corpus" / name, "\n".join(generate_corpus(documents, corpus_seed)) + "\n")
    rng = random.Random(f"showcase-quick-{seed}")
    for split, count in (("train", 32), ("dev", 16)):
        _write_glue_split(root / "glue", split, [(sentence(rng), sentence(rng)) for _ in range(count)], rng)
    return root


def _write_glue_split(glue: Path, split: str, pairs: list[tuple[str, str]], rng: random.Random) -> None:
    """Learnable toy labels: MRPC a sentence and itself (equivalent) or another; STS-B word overlap x 5; CoLA a
    sentence or its shuffled words; SST-2 whether the sentence is longer than ten words."""
    mrpc, stsb, cola, sst2 = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"], [], [], ["sentence\tlabel"]
    stsb.append("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore")
    for i, (first, other) in enumerate(pairs):
        same = i % 2 == 0
        mrpc.append(f"{int(same)}\t{i}\t{i + 1000}\t{first}\t{first if same else other}")
        a, b = set(first.lower().split()), set(other.lower().split())
        stsb.append(f"{i}\tmain\ttoy\t2024\t{i}\tnone\tnone\t{first}\t{other}\t{5 * len(a & b) / len(a | b):.3f}")
        words = first.split()
        if i % 2:
            rng.shuffle(words)
        cola.append(f"toy\t{int(i % 2 == 0)}\t\t{' '.join(words)}")
        sst2.append(f"{first}\t{int(len(first.split()) > 10)}")
    for folder, lines in (("MRPC", mrpc), ("STS-B", stsb), ("CoLA", cola), ("SST-2", sst2)):
        write_text_atomic(glue / folder / f"{split}.tsv", "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------- distillation of a student
class ChildStartRecipe(PretrainRecipe):
    """Fixed-arch pre-training whose model starts from a child exported from a supernet (weights and MLM head),
    instead of fresh weights. Weights are copied in place after ``prepare``, so the optimizer holds them."""

    def __init__(self, args, start: str | Path | None):
        super().__init__(args)
        self.start = start

    def setup_training(self) -> None:
        super().setup_training()
        if self.start is not None and self.resume is None:  # a resumed run has its own weights
            from magic_bert import MagicBertForMaskedLM

            child = MagicBertForMaskedLM.from_pretrained(self.start)
            if child.config.arch != self.unwrapped.config.arch:
                raise ValueError(f"{self.start} holds arch {child.config.arch}, not {self.unwrapped.config.arch}.")
            self.unwrapped.load_state_dict(child.state_dict())


def distil_from_child(args, start: str | Path | None) -> PretrainResult:
    """Every phase of the pre-training recipe, the model starting from ``start`` when given."""
    return run_recipe(ChildStartRecipe(args, start))


# ------------------------------------------------------------------------------------------------- fine-tuning
def finetune_and_predict(flags: list[str], folder: Path, keep_model: bool = False,
                         dev_data_dir: Path | None = None) -> dict:
    """GLUE fine-tuning (the command, in-process), then the best model's prediction on every dev example, saved as
    dev_predictions.json (a rerun reuses it); the models are deleted afterwards, but for the best one with
    ``keep_model``. The dev
    examples are the run's validation split, or GLUE dev from ``dev_data_dir`` when the run chose its model on
    another (held-out) file."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from magic_bert.cli import parse_one, run
    from magic_bert.glue.arguments import FinetuneArguments
    from magic_bert.glue.command import main as glue_main
    from magic_bert.glue.finetuning import predict, prepare_data
    from magic_bert.glue.metrics import compute_glue, task_score
    from magic_bert.glue.tasks import get_task

    saved = folder / "dev_predictions.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    args = parse_one(FinetuneArguments, flags)
    task = get_task(args.task_name)
    if not (folder / "all_results.json").is_file():
        run(glue_main, flags)
    best = folder / task.name / "best_model"
    model = AutoModelForSequenceClassification.from_pretrained(best).eval()
    tokenizer = AutoTokenizer.from_pretrained(best)
    if dev_data_dir is not None:
        args = dataclasses.replace(args, data_dir=str(dev_data_dir), train_file=None, validation_file=None,
                                   max_train_samples=1)
    dev = prepare_data(args, task, tokenizer)["validation"].rename_column("label", "labels")
    loader = DataLoader(dev, batch_size=args.per_device_eval_batch_size, collate_fn=DataCollatorWithPadding(tokenizer))
    predictions, labels = predict(model, loader, Accelerator(), task)
    metrics = compute_glue(task, predictions, labels)
    run_results = json.loads((folder / "all_results.json").read_text())
    chosen = run_results["eval_results"][task.name]
    # reported_score: the run's own validation score (dev, or the held-out slice that chose the model)
    result = {"metrics": metrics, "score": task_score(task, metrics),
              "reported_score": run_results["scores"][task.name],
              "learning_rate": chosen["learning_rate"], "epoch": chosen["epoch"], "runs": run_results["runs"],
              "predictions": predictions.tolist(), "labels": labels.tolist()}
    write_json_atomic(saved, result)
    for run_dir in (folder / task.name).iterdir():  # best_model/ and, with a grid, every lr_<rate>/
        if not (keep_model and run_dir.name == "best_model"):
            shutil.rmtree(run_dir)
    return result


# ----------------------------------------------------------------------------------------------- the model card
def export_student_card(plan, glue: dict[str, dict[str, float]]) -> dict:
    """The MAGIC-AT student after its distillation as a Hub-ready folder, through the export command: its weights are
    written into a copy of its supernet (the ops of its arch), exported with ``--glue_results``, and the card gets
    ``base_model``, the datasets and the licences. Checked: it loads with ``trust_remote_code`` and equals the
    student."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from magic_bert import MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
    from magic_bert.cli import run
    from magic_bert.search.command import main_export

    out = plan.out
    arch = plan.result("search_magic")["arch"]  # the stage result, not search_magic/: it may come from --results_from
    student = MagicBertForMaskedLM.from_pretrained(out / "student_magic").eval()
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(out / "supernet_magic")
    supernet.load_child_state_dict(arch, student.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(out / "student_magic")

    def write(staging: Path) -> None:
        supernet.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.copy(out / "student_magic" / "all_results.json", staging / "all_results.json")  # the card's record

    publish_dir(out / "card_supernet", write)
    write_json_atomic(out / "card_glue.json", glue)
    name = "magic-bert-minilm-half" if not plan.args.quick else "magic-bert-quick"
    folder = out / "hub_model"
    base_model = plan.result("teacher")["base_model"] or "tiny-bert-built-on-the-fly"
    run(main_export, ["--supernet", str(out / "card_supernet"), "--arch", json.dumps(arch), "--output_dir", str(folder),
                      "--overwrite_output_dir", "--glue_results", str(out / "card_glue.json"), "--model_name", name,
                      "--base_model", base_model, "--datasets", ",".join(CARD_DATASETS), "--license", "apache-2.0"])
    metadata = add_licences(folder / "README.md", base_model)
    loaded = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
    ids = torch.randint(5, student.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (loaded(ids).logits - student(ids).logits).abs().max().item()
    return {"folder": str(folder), "model_name": name, "arch": arch, "glue": glue, "card": metadata,
            "max_abs_logit_diff_vs_student": diff}


def add_licences(card_path: Path, base_model: str) -> dict:
    """A section on what the weights derive from and under which licences (the metadata comes from the export
    command's --base_model, --datasets and --license)."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    card.text = card.text.rstrip() + "\n\n" + LICENCES.format(teacher=base_model)
    write_text_atomic(card_path, str(card))
    return {"base_model": base_model, "datasets": CARD_DATASETS, "license": "apache-2.0"}


__all__ = ["ChildStartRecipe", "add_licences", "distil_from_child", "export_student_card", "finetune_and_predict",
           "make_quick_inputs"]
