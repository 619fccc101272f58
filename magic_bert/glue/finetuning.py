"""GLUE fine-tuning under Accelerate, as transformers' ``run_glue_no_trainer.py`` does it, plus the paper's practice:
prediction-layer distillation from a fine-tuned teacher, starting RTE/MRPC/STS-B from an MNLI checkpoint, and a
small learning-rate grid keeping the best dev score. ``recipes/finetune_glue.py`` is the command line.

One run = one task × one learning rate: train for the epochs, score the dev set(s) after each, keep the best epoch's
model (saved) and its test predictions. ``finetune_glue`` runs the grid and the tasks and writes the tables.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    default_data_collator,
    get_scheduler,
)
from transformers.trainer_utils import SchedulerType

from ..cli import arg as _opt
from ..errors import InputError
from ..errors import load_user_file as load_or_explain  # replaced by the GLUE rework
from ..optim import adamw_parameter_groups
from .metrics import compute_glue, glue_average, task_score
from .tasks import PAPER_ORDER, GlueTask, get_task, load_glue

MNLI_TRANSFER = ("rte", "mrpc", "stsb")  # tasks the paper starts from the MNLI checkpoint


@dataclass
class FinetuneArguments:
    model_name_or_path: str = _opt(None, "Our exported checkpoints, plain BERT, anything "
                                         "AutoModelForSequenceClassification loads.")
    task_name: str = _opt("mrpc", "GLUE task, or 'all' for the eight in turn.", choices=[*PAPER_ORDER, "all"])
    train_file: str | None = _opt(None, "Local training file (csv/tsv/json; Hub or original GLUE layout).")
    validation_file: list[str] | None = _opt(None, "Dev file(s); MNLI takes matched then mismatched.")
    test_file: list[str] | None = _opt(None, "Test file(s) for submission predictions (MNLI: two).")
    data_dir: str | None = _opt(None, "A folder with the original GLUE layout (MRPC/train.tsv, ...), for any task.")
    max_seq_length: int = _opt(128, "Longer inputs are truncated.")
    pad_to_max_length: bool = _opt(False, "Pad every batch to --max_seq_length (default: dynamic padding).")
    per_device_train_batch_size: int = _opt(32, "Batch size per device for training.")
    per_device_eval_batch_size: int = _opt(64, "Batch size per device for evaluation.")
    learning_rate: float = _opt(2e-5, "Peak learning rate (AdamW).")
    learning_rates: str | None = _opt(None, "A grid, e.g. '1e-5,2e-5,3e-5': every run recorded, best dev kept.")
    weight_decay: float = _opt(0.0, "AdamW weight decay.")
    num_train_epochs: int = _opt(3, "Epochs.")
    max_train_steps: int | None = _opt(None, "Total steps (overrides --num_train_epochs).")
    gradient_accumulation_steps: int = _opt(1, "Micro-batches per optimizer step.")
    lr_scheduler_type: SchedulerType = _opt("linear", "Learning-rate schedule.")
    num_warmup_steps: int = _opt(0, "Warm-up steps.")
    warmup_ratio: float = _opt(0.0, "Warm-up as a fraction of the steps (used when --num_warmup_steps is 0).")
    max_grad_norm: float = _opt(1.0, "Gradient clipping (0 disables).")
    teacher_name_or_path: str | None = _opt(None, "A fine-tuned teacher for this task (prediction-layer KD).")
    kd_alpha: float = _opt(0.5, "loss = (1 - kd_alpha) * task loss + kd_alpha * KD (KL; MSE for STS-B).")
    kd_temperature: float = _opt(1.0, "Softmax temperature of the KD KL.")
    init_from_mnli: str | None = _opt(None, "An MNLI fine-tuned checkpoint to start RTE, MRPC and STS-B from.")
    max_train_samples: int | None = _opt(None, "Use the first N training examples.")
    max_eval_samples: int | None = _opt(None, "Use the first N examples of each dev set.")
    seed: int = _opt(42, "Seed of the head's initialisation, data order and dropout.")
    output_dir: str | None = _opt(None, "Where results, predictions and the best models go (required).")
    overwrite_output_dir: bool = _opt(False, "Replace a non-empty --output_dir.")
    save_best_model: bool = _opt(True, "Save the best epoch's model of the best learning rate per task.")
    update_model_card: bool = _opt(False, "Add the dev results to the model card (model-index) of "
                                          "--model_name_or_path's README.md in the output.")
    with_tracking: bool = _opt(False, "Log to experiment trackers.")
    report_to: str = _opt("all", "Trackers: 'all' or a comma-separated list.")


@dataclass
class RunResult:
    task: str
    learning_rate: float
    best_epoch: int
    dev_metrics: dict[str, float]  # the best epoch's (MNLI: matched_/mismatched_ prefixes)
    score: float
    history: list[dict]
    test_predictions: dict[str, list] = field(default_factory=dict)  # split -> predictions of the best epoch


def check_finetune_arguments(args: FinetuneArguments) -> list[str]:
    if args.model_name_or_path is None:
        raise InputError("--model_name_or_path is required.")
    if args.output_dir is None:
        raise InputError("--output_dir is required.")
    tasks = list(PAPER_ORDER) if args.task_name == "all" else [args.task_name]
    for task in tasks:
        try:
            get_task(task)
        except ValueError as error:
            raise InputError(str(error)) from None
    if args.task_name == "all" and args.train_file is not None:
        raise InputError("--task_name all reads each task from --data_dir (or the Hub), not --train_file.")
    for name in ("max_seq_length", "per_device_train_batch_size", "per_device_eval_batch_size",
                 "num_train_epochs", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    if not 0 <= args.kd_alpha <= 1 or not 0 <= args.warmup_ratio < 1:
        raise InputError(f"--kd_alpha must be in [0, 1] and --warmup_ratio in [0, 1); got {args.kd_alpha}, "
                         f"{args.warmup_ratio}.")
    learning_rates(args)
    output = Path(args.output_dir)
    if output.is_dir() and any(output.iterdir()) and not args.overwrite_output_dir:
        raise InputError(f"--output_dir {output} exists and is not empty; pass --overwrite_output_dir.")
    return tasks


def learning_rates(args: FinetuneArguments) -> list[float]:
    if args.learning_rates is None:
        return [args.learning_rate]
    try:
        rates = [float(x) for x in args.learning_rates.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--learning_rates {args.learning_rates!r} must be comma-separated numbers.") from None
    if not rates or any(r <= 0 for r in rates):
        raise InputError(f"--learning_rates {args.learning_rates!r} must be positive numbers.")
    return rates


def prepare_data(args: FinetuneArguments, task: GlueTask, tokenizer):
    raw = load_glue(task, args.train_file, args.validation_file, args.test_file, args.data_dir)
    if args.max_train_samples is not None:
        raw["train"] = raw["train"].select(range(min(args.max_train_samples, len(raw["train"]))))
    if args.max_eval_samples is not None:
        for split in task.dev_splits:
            raw[split] = raw[split].select(range(min(args.max_eval_samples, len(raw[split]))))

    def tokenize(examples):
        texts = [examples[key] for key in task.keys]
        return tokenizer(*texts, truncation=True, max_length=args.max_seq_length,
                         padding="max_length" if args.pad_to_max_length else False)

    return raw.map(tokenize, batched=True, remove_columns=list(task.keys), desc=f"Tokenising {task.name}")


def _model_source(args: FinetuneArguments, task: GlueTask) -> str:
    return args.init_from_mnli if (args.init_from_mnli and task.name in MNLI_TRANSFER) else args.model_name_or_path


def check_models(args: FinetuneArguments, tasks: list[str], tokenizer) -> None:
    """Every model a run will load fits the tokenizer (and the teacher the task), checked before any work."""
    sources = {_model_source(args, get_task(t)) for t in tasks}
    for source in sources:
        config = load_or_explain(f"model {source!r}", lambda s=source: AutoConfig.from_pretrained(s))
        if len(tokenizer) > config.vocab_size:
            raise InputError(f"The tokenizer has {len(tokenizer)} tokens but {source!r} has embeddings for "
                             f"{config.vocab_size}: they do not belong together.")
    if args.teacher_name_or_path is not None:
        name = args.teacher_name_or_path
        config = load_or_explain(f"--teacher_name_or_path {name!r}", lambda: AutoConfig.from_pretrained(name))
        needed = {get_task(t).num_labels for t in tasks}
        if len(tokenizer) > config.vocab_size or needed != {config.num_labels}:
            raise InputError(f"--teacher_name_or_path {name!r} has {config.num_labels} outputs and a vocabulary of "
                             f"{config.vocab_size}; the task(s) need {sorted(needed)} outputs and the tokenizer has "
                             f"{len(tokenizer)} tokens.")


def load_model(args: FinetuneArguments, task: GlueTask, tokenizer):
    source = _model_source(args, task)
    labels = {"num_labels": task.num_labels}
    if not task.is_regression:
        labels |= {"id2label": dict(enumerate(task.labels)), "label2id": {n: i for i, n in enumerate(task.labels)}}
    # A head of another size (MNLI's 3 classes for RTE's 2) is re-initialised; the encoder is kept.
    return AutoModelForSequenceClassification.from_pretrained(source, ignore_mismatched_sizes=True, **labels)


def load_teacher(args: FinetuneArguments):
    name = args.teacher_name_or_path
    teacher = load_or_explain(f"--teacher_name_or_path {name!r}",
                              lambda: AutoModelForSequenceClassification.from_pretrained(name))
    return teacher.eval().requires_grad_(False)


def distillation_loss(student_logits, teacher_logits, task: GlueTask, temperature: float) -> torch.Tensor:
    """Prediction-layer KD: T²·KL(teacher ‖ student) for classification, MSE for regression (STS-B)."""
    if task.is_regression:
        return F.mse_loss(student_logits.float().squeeze(-1), teacher_logits.float().squeeze(-1))
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, -1), F.log_softmax(teacher_logits.float() / t, -1),
                    log_target=True, reduction="batchmean") * t * t


@torch.no_grad()
def predict(model, dataloader, accelerator, task: GlueTask) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) over a dev/test loader, gathered across processes."""
    model.eval()
    predictions, labels = [], []
    for batch in dataloader:
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "idx")}).logits
        out = logits.squeeze(-1) if task.is_regression else logits.argmax(-1)
        out, ref = accelerator.gather_for_metrics((out, batch["labels"]))
        predictions.append(out.float().cpu().numpy() if task.is_regression else out.cpu().numpy())
        labels.append(ref.cpu().numpy())
    model.train()
    return np.concatenate(predictions), np.concatenate(labels)


def dev_metrics(model, dev_loaders: dict, accelerator, task: GlueTask) -> dict[str, float]:
    metrics = {}
    for split, loader in dev_loaders.items():
        predictions, labels = predict(model, loader, accelerator, task)
        result = compute_glue(task.name, predictions, labels)
        prefix = {"validation_matched": "matched_", "validation_mismatched": "mismatched_"}.get(split, "")
        metrics |= {prefix + k: v for k, v in result.items()}
    return metrics


def train_one(args: FinetuneArguments, task: GlueTask, learning_rate: float, tokenizer, data, accelerator,
              run_dir: Path | None) -> RunResult:
    """Fine-tune one model on ``task`` at ``learning_rate``; the best epoch's model goes to ``run_dir``."""
    set_seed(args.seed)
    model = load_model(args, task, tokenizer)
    teacher = load_teacher(args) if args.teacher_name_or_path else None
    collator = default_data_collator if args.pad_to_max_length else DataCollatorWithPadding(tokenizer)

    def loader(split: str, shuffle: bool = False) -> DataLoader:
        dataset = data[split].rename_column("label", "labels")
        return DataLoader(dataset, shuffle=shuffle, collate_fn=collator, generator=torch.Generator().manual_seed(
            args.seed), batch_size=args.per_device_train_batch_size if shuffle else args.per_device_eval_batch_size)

    train_loader = loader("train", shuffle=True)
    dev_loaders = {split: loader(split) for split in task.dev_splits}
    test_loaders = {split: loader(split) for split in task.test_splits if split in data}
    optimizer = torch.optim.AdamW(adamw_parameter_groups(model, args.weight_decay), lr=learning_rate)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    epochs = math.ceil(max_steps / steps_per_epoch)
    warmup = args.num_warmup_steps or int(args.warmup_ratio * max_steps)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=warmup * accelerator.num_processes,
                              num_training_steps=max_steps * accelerator.num_processes)
    model, optimizer, train_loader, scheduler, *loaders = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *dev_loaders.values(), *test_loaders.values())
    dev_loaders = dict(zip(dev_loaders, loaders[:len(dev_loaders)], strict=True))
    test_loaders = dict(zip(test_loaders, loaders[len(dev_loaders):], strict=True))
    if teacher is not None:
        teacher.to(accelerator.device)

    history, best, step = [], None, 0
    bar = tqdm(total=max_steps, disable=not accelerator.is_local_main_process, desc=f"{task.name} lr={learning_rate}")
    model.train()
    for epoch in range(epochs):
        total = torch.zeros((), device=accelerator.device)
        count = 0
        for batch in train_loader:
            inputs = {k: v for k, v in batch.items() if k != "idx"}
            with accelerator.accumulate(model):
                outputs = model(**inputs)
                loss = outputs.loss
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
                    kd = distillation_loss(outputs.logits, teacher_logits, task, args.kd_temperature)
                    loss = (1 - args.kd_alpha) * loss + args.kd_alpha * kd
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            total += loss.detach().float()
            count += 1
            if accelerator.sync_gradients:
                step += 1
                bar.update(1)
            if step >= max_steps:
                break
        metrics = dev_metrics(model, dev_loaders, accelerator, task)
        score = task_score(task.name, metrics)
        record = {"task": task.name, "learning_rate": learning_rate, "epoch": epoch + 1, "step": step,
                  "train_loss": (total / max(count, 1)).item(), "lr": scheduler.get_last_lr()[0],
                  **{f"eval_{k}": v for k, v in metrics.items()}, "score": score}
        history.append(record)
        accelerator.print(json.dumps(record))
        if args.with_tracking:
            accelerator.log({f"{task.name}/{k}": v for k, v in record.items() if isinstance(v, float)}, step=step)
        if best is None or score > best.score:
            tests = {split: predict(model, test_loader, accelerator, task)[0].tolist()
                     for split, test_loader in test_loaders.items()}
            best = RunResult(task.name, learning_rate, epoch + 1, metrics, score, history, tests)
            if run_dir is not None and args.save_best_model:
                _save_model(accelerator, model, tokenizer, run_dir)
        if step >= max_steps:
            break
    bar.close()
    best.history = history
    return best


def _save_model(accelerator, model, tokenizer, folder: Path) -> None:
    """The best epoch's model, written to a staging folder and renamed into place (main process)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = folder.with_name(f".tmp-{folder.name}")
        if staging.exists():
            shutil.rmtree(staging)
        accelerator.unwrap_model(model).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    accelerator.wait_for_everyone()


def finetune_glue(args: FinetuneArguments) -> dict[str, RunResult]:
    """Every task (``all``: the eight) × every learning rate; the best dev run per task is kept.

    Output: ``<task>/`` (best model), ``submission/`` (test predictions), ``train_log.jsonl`` (every epoch of every
    run), ``eval_results.json`` (best dev metrics per task), ``all_results.json`` (+ scores, average, every run),
    ``results.md`` (the paper's table).
    """
    from .report import dump_json, results_table, update_model_card, write_submission

    tasks = check_finetune_arguments(args)
    rates = learning_rates(args)
    accelerator = Accelerator(log_with=(args.report_to if args.report_to == "all" else args.report_to.split(","))
                              if args.with_tracking else None, project_dir=args.output_dir,
                              gradient_accumulation_steps=args.gradient_accumulation_steps)
    tokenizer = load_or_explain(f"--model_name_or_path {args.model_name_or_path!r} (tokenizer)",
                                lambda: AutoTokenizer.from_pretrained(args.model_name_or_path))
    # Every task's data is read and checked before any training or writing.
    data = {}
    for name in tasks:
        task = get_task(name)
        try:
            data[name] = prepare_data(args, task, tokenizer)
        except ValueError as error:
            raise InputError(str(error)) from None
    check_models(args, tasks, tokenizer)
    output = Path(args.output_dir)
    if accelerator.is_main_process:
        if output.exists() and args.overwrite_output_dir:
            shutil.rmtree(output)
        output.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    if args.with_tracking:
        accelerator.init_trackers("magic_bert_glue", {k: v for k, v in vars(args).items()
                                                      if isinstance(v, int | float | str | bool)})
    best: dict[str, RunResult] = {}
    runs = []
    for name in tasks:
        task = get_task(name)
        for rate in rates:
            run_dir = output / name / (f"lr_{rate:g}" if len(rates) > 1 else "best_model")
            result = train_one(args, task, rate, tokenizer, data[name], accelerator, run_dir)
            runs.append({"task": name, "learning_rate": rate, "best_epoch": result.best_epoch, "score": result.score,
                         **{f"eval_{k}": v for k, v in result.dev_metrics.items()}})
            if accelerator.is_main_process:
                with open(output / "train_log.jsonl", "a") as log:
                    log.write("".join(json.dumps(r) + "\n" for r in result.history))
            if name not in best or result.score > best[name].score:
                best[name] = result
        if accelerator.is_main_process and len(rates) > 1 and args.save_best_model:
            winner = output / name / f"lr_{best[name].learning_rate:g}"
            if winner.exists():
                shutil.copytree(winner, output / name / "best_model", dirs_exist_ok=True)

    if accelerator.is_main_process:
        scores = {name: r.score for name, r in best.items()}
        eval_results = {name: {**r.dev_metrics, "learning_rate": r.learning_rate, "epoch": r.best_epoch}
                        for name, r in best.items()}
        dump_json(output / "eval_results.json", eval_results)
        for name, r in best.items():
            write_submission(output / "submission", get_task(name), r.test_predictions)
        table = results_table(scores)
        (output / "results.md").write_text(f"# GLUE dev results of {args.model_name_or_path}\n\n{table}\n\n"
                                           "Scores × 100: CoLA Matthews corr., STS-B Spearman, MRPC/QQP F1, MNLI "
                                           "matched accuracy, the rest accuracy.\n")
        dump_json(output / "all_results.json", {"scores": scores, "average": glue_average(scores),
                                                "eval_results": eval_results, "runs": runs})
        if args.update_model_card:
            card = output / "README.md"
            source = Path(args.model_name_or_path) / "README.md"
            if source.is_file():
                shutil.copy(source, card)
            update_model_card(card, {n: {k: v for k, v in m.items() if k not in ("learning_rate", "epoch")}
                                     for n, m in eval_results.items()}, Path(args.model_name_or_path).name)
        print(table)
    if args.with_tracking:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return best


__all__ = ["FinetuneArguments", "RunResult", "check_finetune_arguments", "distillation_loss", "finetune_glue",
           "train_one"]
