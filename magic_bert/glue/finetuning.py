"""GLUE fine-tuning under Accelerate, as transformers' ``run_glue_no_trainer.py`` does it, plus the paper's practice:
distillation from a fine-tuned teacher (its logits, optionally its hidden states: ``task_distillation``), starting
RTE/MRPC/STS-B from an MNLI checkpoint, and a small learning-rate grid keeping the best dev score.
``glue.command.main`` (``recipes/finetune_glue.py``) is the command line.

One run = one task × one learning rate: train for the epochs, score the dev set(s) after each, keep the best epoch's
model (saved) and its test predictions. ``finetune_glue`` runs the grid and the tasks and writes the tables. A
user's own files (no ``task_name``) become a task record (:func:`~magic_bert.glue.custom.task_from_files`) that runs
through the same code.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
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

from ..data import fit_batch_size, fit_tokenizer_to_model
from ..errors import InputError, check_tokenizer_folder, check_weight_files, load_user_file
from ..io_utils import publish_dir, write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..optim import (
    NonFiniteLossError,
    adamw_parameter_groups,
    check_finite_weights,
    stop_if_not_finite,
    stop_if_weights_not_finite,
)
from ..output_folder import RunFolder, locked_output_dir
from .arguments import FinetuneArguments, glue_inputs, writes_into_model
from .augmentation import DISTILL_ONLY, augment, build_augmenter
from .custom import task_from_files
from .metrics import glue_average, load_glue_metric, score_note, task_score
from .report import results_table, update_model_card, write_submission
from .task_distillation import (
    TaskDistillation,
    check_hidden_distillation,
    distillation_loss,
    labelled_task_loss,
    load_task_distillation,
)
from .tasks import TASKS, GlueTask, get_task, load_glue


@dataclass
class RunResult:
    task: str
    learning_rate: float
    best_epoch: int
    dev_metrics: dict[str, float]  # the best epoch's (MNLI: matched_/mismatched_ prefixes)
    score: float
    history: list[dict]
    test_predictions: dict[str, list] = field(default_factory=dict)  # split -> predictions of the best epoch


def resolve_tasks(args: FinetuneArguments) -> list[GlueTask]:
    """The task records to run: GLUE's, or the one a user's training file describes."""
    if args.is_custom:
        return [task_from_files(args.train_file, args.text_columns, args.label_column)]
    return [get_task(name) for name in args.task_names()]


def prepare_data(args: FinetuneArguments, task: GlueTask, tokenizer):
    return tokenize_data(args, task, tokenizer, load_raw_data(args, task))


def load_raw_data(args: FinetuneArguments, task: GlueTask) -> datasets.DatasetDict:
    """The task's splits as read (every row and label checked), cut to ``max_*_samples``."""
    raw = load_glue(task, args.train_file, args.validation_file, args.test_file, args.data_dir)
    if args.max_train_samples is not None:
        raw["train"] = raw["train"].select(range(min(args.max_train_samples, len(raw["train"]))))
    if args.max_eval_samples is not None:
        for split in task.dev_splits:
            raw[split] = raw[split].select(range(min(args.max_eval_samples, len(raw[split]))))
    if args.swap_pairs:  # checked: a symmetric pair task
        first, second = task.keys
        swapped = raw["train"].map(lambda example: {first: example[second], second: example[first]},
                                   desc=f"Swapping {task.name}'s pairs")
        raw["train"] = datasets.concatenate_datasets([raw["train"], swapped])
    return raw


def augment_training_data(args: FinetuneArguments, tasks: list[GlueTask], tokenizer, raw: dict, log) -> None:
    """``--augment_copies``: each task's training split followed by its augmented copies (in place in ``raw``), the
    replacement words chosen by the fine-tuned teacher's input embeddings (indexed by the student's tokenizer: the
    teacher's vocabulary size was checked to fit it, as task KD needs)."""
    name = args.teacher_name_or_path
    teacher = load_user_file(f"`teacher_name_or_path` {name!r}",
                             partial(AutoModelForSequenceClassification.from_pretrained, name))
    embeddings = teacher.get_input_embeddings().weight
    for task in tasks:
        train = raw[task.name]["train"]
        augmenter = build_augmenter(tokenizer, embeddings, (text for key in task.keys for text in train[key]),
                                    args.augment_neighbours, args.augment_probability)
        if not augmenter.neighbours:  # e.g. a SentencePiece or byte-level vocabulary: the copies would be duplicates
            raise InputError(f"`augment_copies` {args.augment_copies}: no word of {task.name}'s training texts is a "
                             f"whole word of `model_name_or_path` {args.model_name_or_path!r}'s vocabulary "
                             "(alphabetic, not a '##' piece), so none could be replaced: augmentation needs a "
                             "WordPiece vocabulary.")
        raw[task.name]["train"], counts = augment(train, task.keys, args.augment_copies, augmenter, args.seed)
        share = counts["replaced_words"] / max(counts["replaceable_words"], 1)
        log(f"{task.name}: {counts['examples']:,} training examples and {counts['copies']:,} augmented copies "
            f"(distillation only); {len(augmenter.neighbours):,} distinct words have neighbours, {share:.0%} of "
            "their occurrences in the copies were replaced.")


def tokenize_data(args: FinetuneArguments, task: GlueTask, tokenizer, raw: datasets.DatasetDict):
    def tokenize(examples):
        texts = [examples[key] for key in task.keys]
        return tokenizer(*texts, truncation=True, max_length=args.max_seq_length,
                         padding="max_length" if args.pad_to_max_length else False)

    return raw.map(tokenize, batched=True, remove_columns=list(task.keys), desc=f"Tokenising {task.name}")


def _model_source(args: FinetuneArguments, task: GlueTask) -> tuple[str, str]:
    """(the parameter, the checkpoint) a task's model starts from."""
    if args.init_from_mnli and task.mnli_transfer:
        return "init_from_mnli", args.init_from_mnli
    return "model_name_or_path", args.model_name_or_path


def check_models(args: FinetuneArguments, tasks: list[GlueTask], tokenizer) -> None:
    """Every model a run will load fits the tokenizer and ``max_seq_length``, has readable, finite weights and loads
    with only a new pooler and classifier (the teacher: fits the task too), checked before any work and before the
    output folder is touched. Each starting checkpoint is loaded once here, with its first task's head."""
    first_task = {}
    for task in tasks:
        first_task.setdefault(_model_source(args, task), task)
    students = [_check_student(args, task, tokenizer, parameter, source)
                for (parameter, source), task in first_task.items()]
    if args.teacher_name_or_path is not None:
        _check_teacher(args, tasks, tokenizer, students)


MNLI_LABELS = TASKS["mnli"].num_labels


def _check_student(args: FinetuneArguments, task: GlueTask, tokenizer, parameter: str, source: str):
    """The config of a starting checkpoint (``parameter`` ``source``), once the checkpoint has loaded for ``task``."""
    config = load_user_file(f"`{parameter}` {source!r}", partial(AutoConfig.from_pretrained, source))
    if getattr(config, "arch", "") is None:  # a MagicBert supernet: every child at once, no classifier
        raise InputError(f"`{parameter}` {source!r} is a supernet; export one child first (magic-bert-export "
                         "--supernet ... --arch ...) and fine-tune that.")
    if parameter == "init_from_mnli" and config.num_labels != MNLI_LABELS:
        raise InputError(f"`init_from_mnli` {source!r} is not an MNLI classifier: it has {config.num_labels} "
                         f"label(s), MNLI's has {MNLI_LABELS}; pass a model fine-tuned on mnli.")
    if len(tokenizer) > config.vocab_size:
        raise InputError(f"The tokenizer has {len(tokenizer)} tokens but `{parameter}` {source!r} has embeddings "
                         f"for {config.vocab_size}: they do not belong together.")
    _check_positions(args.max_seq_length, config, parameter, source)
    load_model(args, task, tokenizer)
    return config


def _check_teacher(args: FinetuneArguments, tasks: list[GlueTask], tokenizer, students: list) -> None:
    """The teacher's outputs fit the tasks, its vocabulary the tokenizer; its weights are whole and finite."""
    name = args.teacher_name_or_path
    what = f"`teacher_name_or_path` {name!r}"
    config = load_user_file(what, partial(AutoConfig.from_pretrained, name))
    needed = {t.num_labels for t in tasks}
    if len(tokenizer) > config.vocab_size or needed != {config.num_labels}:
        raise InputError(f"{what} has {config.num_labels} outputs and a vocabulary of {config.vocab_size}; the "
                         f"task(s) need {sorted(needed)} outputs and the tokenizer has {len(tokenizer)} tokens.")
    _check_positions(args.max_seq_length, config, "teacher_name_or_path", name)
    check_weight_files(name, what)
    check_finite_weights(load_user_file(what, partial(AutoModelForSequenceClassification.from_pretrained, name)),
                         what)
    for student in students:
        check_hidden_distillation(args, student, config)


def _check_positions(max_seq_length: int, config, parameter: str, source: str) -> None:
    """Inputs truncated to ``max_seq_length`` must fit the model's position embeddings."""
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_seq_length > positions:
        raise InputError(f"`max_seq_length` {max_seq_length} exceeds the max_position_embeddings {positions} of "
                         f"`{parameter}` {source!r}; pass at most {positions}.")


def load_model(args: FinetuneArguments, task: GlueTask, tokenizer):
    """The task's classifier from its starting checkpoint. A head of another size (MNLI's 3 classes for RTE's 2, a
    masked-LM checkpoint's missing classifier) is new; any other weight that would be new or dropped (a config.json
    whose arch no longer matches the weights) is refused."""
    parameter, source = _model_source(args, task)
    what = f"`{parameter}` {source!r}"
    check_weight_files(source, what)
    # problem_type too: a start saved by another task (STS-B's regression model as MRPC's) keeps its own otherwise,
    # and transformers would then train the classifier with a mean-squared error on class ids.
    labels = {"num_labels": task.num_labels,
              "problem_type": "regression" if task.is_regression else "single_label_classification"}
    if not task.is_regression:  # the names are saved in the model's config
        labels |= {"id2label": dict(enumerate(task.labels)), "label2id": {n: i for i, n in enumerate(task.labels)}}
    model, info = load_user_file(what, partial(AutoModelForSequenceClassification.from_pretrained, source,
                                               ignore_mismatched_sizes=True, output_loading_info=True, **labels))
    _check_only_head_is_new(model, info, what)
    check_finite_weights(model, what)
    return model


def _check_only_head_is_new(model, info: dict, what: str) -> None:
    """transformers re-initialises mismatched and missing weights with a warning table only: refuse that for any
    weight of the base model but its pooler (the embeddings and the encoder must load as saved)."""
    prefix = f"{model.base_model_prefix}."

    def in_encoder(key: str) -> bool:
        return key.startswith(prefix) and not key.startswith(f"{prefix}pooler.")

    problems = [f"{key} (saved {list(saved)}, config {list(now)})" for key, saved, now in
                sorted(info.get("mismatched_keys", [])) if in_encoder(key)]
    problems += [f"{key} (missing)" for key in sorted(info.get("missing_keys", [])) if in_encoder(key)]
    problems += [f"{key} (unused)" for key in sorted(info.get("unexpected_keys", [])) if in_encoder(key)]
    if problems:
        raise InputError(f"{what}: its config.json does not match its weights; {len(problems)} encoder weight(s) "
                         f"would be re-initialised or dropped: {', '.join(problems[:3])}"
                         f"{', ...' if len(problems) > 3 else ''}; only the pooler and the classifier may be new: "
                         "fix config.json (e.g. its arch) or pass the checkpoint it was saved with.")


@torch.no_grad()
def predict(model, dataloader, accelerator, task: GlueTask, desc: str = "Predicting",
            metric=None) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) over a dev/test loader, gathered across processes (``gather_for_metrics``: the
    sampler's padding dropped); each gathered batch also goes to ``metric.add_batch`` when a metric is given. A
    transient progress bar (local main process only) shows the batches."""
    model.eval()
    predictions, labels = [], []
    for batch in tqdm(dataloader, desc=desc, leave=False, disable=not accelerator.is_local_main_process):
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "idx")}).logits
        out = logits.squeeze(-1) if task.is_regression else logits.argmax(-1)
        out, ref = accelerator.gather_for_metrics((out, batch["labels"]))
        predictions.append(out.float().cpu().numpy() if task.is_regression else out.cpu().numpy())
        labels.append(ref.cpu().numpy())
        if metric is not None:
            metric.add_batch(predictions=predictions[-1], references=labels[-1])
    model.train()
    return np.concatenate(predictions), np.concatenate(labels)


def dev_metrics(model, dev_loaders: dict, accelerator, task: GlueTask) -> dict[str, float]:
    """The task's ``evaluate`` metric of each dev split (MNLI: prefixed ``matched_`` / ``mismatched_``). Every rank
    holds the gathered predictions; all use the main process's result, so they decide alike."""
    metric = load_glue_metric(task)
    metrics = {}
    for split, loader in dev_loaders.items():
        predict(model, loader, accelerator, task, desc=f"{task.name} {split}", metric=metric)
        metrics |= {task.metric_prefix(split) + k: v for k, v in metric.compute().items()}
    return broadcast_object_list([metrics])[0] if accelerator.num_processes > 1 else metrics


@dataclass
class _Run:
    """What one run trains with, prepared by Accelerate."""
    model: torch.nn.Module
    distillation: TaskDistillation | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: DataLoader
    dev_loaders: dict[str, DataLoader]
    test_loaders: dict[str, DataLoader]
    max_steps: int
    epochs: int


def _prepare_run(args: FinetuneArguments, task: GlueTask, learning_rate: float, tokenizer, data, accelerator) -> _Run:
    set_seed(args.seed)
    model = load_model(args, task, tokenizer)
    kd = load_task_distillation(args, model.config, args.seed) if args.teacher_name_or_path else None
    collator = default_data_collator if args.pad_to_max_length else DataCollatorWithPadding(tokenizer)

    def loader(split: str, shuffle: bool = False) -> DataLoader:
        dataset = data[split].rename_column("label", "labels")
        # No batch larger than the data (torch allocates a list of the batch size up front), with a warning.
        name = "per_device_train_batch_size" if shuffle else "per_device_eval_batch_size"
        what = f"{task.name} {'training' if shuffle else split} examples"
        batch_size = fit_batch_size(getattr(args, name), len(dataset), what, accelerator.print, name)
        return DataLoader(dataset, shuffle=shuffle, collate_fn=collator, batch_size=batch_size,
                          generator=torch.Generator().manual_seed(args.seed))

    train_loader = loader("train", shuffle=True)
    dev_loaders = {split: loader(split) for split in task.dev_splits}
    test_loaders = {split: loader(split) for split in task.test_splits if split in data}
    groups = adamw_parameter_groups(model, args.weight_decay)
    if kd is not None and kd.projection is not None:  # the hidden-state KD's width map trains with the student
        groups += adamw_parameter_groups(kd.projection, args.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    warmup = args.num_warmup_steps or int(args.warmup_ratio * max_steps)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=warmup * accelerator.num_processes,
                              num_training_steps=max_steps * accelerator.num_processes)
    model, optimizer, train_loader, scheduler, *loaders = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *dev_loaders.values(), *test_loaders.values())
    if kd is not None:
        kd.teacher.to(accelerator.device)
        if kd.projection is not None:
            kd.projection = accelerator.prepare(kd.projection)
    return _Run(model, kd, optimizer, scheduler, train_loader,
                dict(zip(dev_loaders, loaders[:len(dev_loaders)], strict=True)),
                dict(zip(test_loaders, loaders[len(dev_loaders):], strict=True)),
                max_steps, math.ceil(max_steps / steps_per_epoch))


def _train_step(args: FinetuneArguments, task: GlueTask, run: _Run, batch, accelerator) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("idx", DISTILL_ONLY)}
    kd = run.distillation
    # The hidden-state KD's projection trains with the student: accumulated and clipped with it (as pre-training).
    trained = [run.model, *([kd.projection] if kd is not None and kd.projection is not None else [])]
    with accelerator.accumulate(*trained):
        outputs = run.model(**inputs, output_hidden_states=kd is not None and kd.wants_hidden_states)
        task_loss = outputs.loss
        if DISTILL_ONLY in batch:  # augmented copies have no label of their own: the originals' task loss only
            task_loss = labelled_task_loss(outputs.logits, inputs["labels"], batch[DISTILL_ONLY] == 0, task)
        loss = outputs.loss if kd is None else kd.loss(task, inputs, outputs, task_loss)
        accelerator.backward(loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            accelerator.clip_grad_norm_([p for m in trained for p in m.parameters()], args.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
    return loss.detach().float()


def train_one(args: FinetuneArguments, task: GlueTask, learning_rate: float, tokenizer, data, accelerator,
              run_dir: Path | None) -> RunResult:
    """Fine-tune one model on ``task`` at ``learning_rate``; the best epoch's model goes to ``run_dir``."""
    run = _prepare_run(args, task, learning_rate, tokenizer, data, accelerator)
    history, best, step = [], None, 0
    where = f" of {task.name}"
    bar = tqdm(total=run.max_steps, disable=not accelerator.is_local_main_process,
               desc=f"{task.name} lr={learning_rate}")
    run.model.train()
    for epoch in range(run.epochs):
        total = torch.zeros((), device=accelerator.device)
        count = 0
        for batch in run.train_loader:
            total += _train_step(args, task, run, batch, accelerator)
            count += 1
            if accelerator.sync_gradients:
                step += 1
                bar.update(1)
                # The epoch's running sum turns NaN with the first bad loss: stop there, as pre-training does.
                stop_if_not_finite(accelerator, {"loss": total.item() / count}, step, learning_rate, where)
            if step >= run.max_steps:
                break
        stop_if_weights_not_finite(run.model, step, learning_rate, where)  # never scored, kept or saved
        metrics = dev_metrics(run.model, run.dev_loaders, accelerator, task)
        score = task_score(task, metrics)
        record = {"task": task.name, "learning_rate": learning_rate, "epoch": epoch + 1, "step": step,
                  "train_loss": (total / max(count, 1)).item(), "lr": run.scheduler.get_last_lr()[0],
                  **{f"eval_{k}": v for k, v in metrics.items()}, "score": score}
        history.append(record)
        if accelerator.is_local_main_process:  # a line of its own above the bar, not mixed into it
            tqdm.write(json.dumps(record))
        if args.with_tracking:
            accelerator.log({f"{task.name}/{k}": v for k, v in record.items() if isinstance(v, float)}, step=step)
        if best is None or score > best.score:
            tests = {split: predict(run.model, test_loader, accelerator, task, desc=f"{task.name} {split}")[0].tolist()
                     for split, test_loader in run.test_loaders.items()}
            best = RunResult(task.name, learning_rate, epoch + 1, metrics, score, history, tests)
            if run_dir is not None and args.save_best_model:
                _save_model(accelerator, run.model, tokenizer, run_dir)
        if step >= run.max_steps:
            break
    bar.close()
    best.history = history
    return best


def _save_model(accelerator, model, tokenizer, folder: Path) -> None:
    """The best epoch's model, filled into a staging folder that then replaces ``folder`` whole (main process), with
    the tokenizer's ``model_max_length`` capped at the model's positions (as an export does)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        fit_tokenizer_to_model(tokenizer, unwrapped.config)

        def write(staging: Path) -> None:
            unwrapped.save_pretrained(staging)
            tokenizer.save_pretrained(staging)

        publish_dir(folder, write)
    accelerator.wait_for_everyone()


def _start(args: FinetuneArguments) -> tuple[list[GlueTask], Accelerator, object, dict]:
    """Every check that reads the files and models, before any training or writing: the task records, the
    accelerator, the tokenizer and every task's tokenised data."""
    args.check()
    tasks = resolve_tasks(args)
    accelerator = Accelerator(log_with=(args.report_to if args.report_to == "all" else args.report_to.split(","))
                              if args.with_tracking else None, project_dir=args.output_dir,
                              gradient_accumulation_steps=args.gradient_accumulation_steps)
    # The files first (a bad row is one line, not one after a model's load report), then the tokenizer and the
    # models (cheaper than tokenising every task, and max_seq_length is checked there), then the tokenising.
    raw = {task.name: load_raw_data(args, task) for task in tasks}
    name = args.model_name_or_path
    check_tokenizer_folder(name, f"`model_name_or_path` {name!r}")
    tokenizer = load_user_file(f"`model_name_or_path` {name!r} (its tokenizer)",
                               partial(AutoTokenizer.from_pretrained, name))
    check_models(args, tasks, tokenizer)
    if args.augment_copies:
        augment_training_data(args, tasks, tokenizer, raw, accelerator.print)
    data = {task.name: tokenize_data(args, task, tokenizer, raw[task.name]) for task in tasks}
    return tasks, accelerator, tokenizer, data


def finetune_glue(args: FinetuneArguments) -> dict[str, RunResult]:
    """Every task (``all``: the eight; none: the user's files) × every learning rate; the best dev run per task is
    kept. Every input is checked (``args.check()``, then the files and models) before anything is written.

    Output: ``<task>/`` (best model), ``submission/`` (test predictions), ``train_log.jsonl`` (every epoch of every
    run), ``eval_results.json`` (best dev metrics per task), ``all_results.json`` (+ scores, average, every run),
    ``results.md`` (the table).
    """
    tasks, accelerator, tokenizer, data = _start(args)
    output = Path(args.output_dir)
    with locked_output_dir(output, args.overwrite_output_dir, accelerator, inputs=glue_inputs(args)):
        # An old results folder is moved aside and deleted only once this run succeeds; with
        # --update_model_card into the model's own folder, the results are added to it instead.
        run_folder = RunFolder(output)
        if accelerator.is_main_process and writes_into_model(args):
            output.mkdir(parents=True, exist_ok=True)
        elif accelerator.is_main_process:
            run_folder.start()
        accelerator.wait_for_everyone()
        if args.with_tracking:
            accelerator.init_trackers("magic_bert_glue", {k: v for k, v in vars(args).items()
                                                          if isinstance(v, int | float | str | bool)})
        try:
            best, runs = _run_grid(args, tasks, accelerator, tokenizer, data, output)
        except InputError:  # a non-finite loss: a folder without a finished run goes, an old one comes back
            if accelerator.is_main_process and not any(p.is_file() for p in output.rglob("*")):
                run_folder.abandon()
            raise
        if accelerator.is_main_process:
            _write_results(args, output, tasks, best, runs)
            run_folder.commit()
        if args.with_tracking:
            accelerator.end_training()
        accelerator.wait_for_everyone()
    return best


def _run_grid(args: FinetuneArguments, tasks: list[GlueTask], accelerator, tokenizer, data: dict, output: Path
              ) -> tuple[dict[str, RunResult], list[dict]]:
    """Every task × every learning rate; the best run of each task, and a record of every run."""
    rates = args.learning_rate_grid()
    best: dict[str, RunResult] = {}
    runs, log = [], []
    for task in tasks:
        diverged = []
        for rate in rates:
            run_dir = output / task.name / (f"lr_{rate:g}" if len(rates) > 1 else "best_model")
            try:
                result = train_one(args, task, rate, tokenizer, data[task.name], accelerator, run_dir)
            except NonFiniteLossError as error:
                if accelerator.is_main_process:
                    shutil.rmtree(run_dir, ignore_errors=True)  # an epoch saved before it diverged is not kept either
                if len(rates) == 1:
                    raise
                # In a grid a rate that diverges is a result (too high), not the end of the run: recorded, never kept.
                diverged.append(str(error))
                runs.append({"task": task.name, "learning_rate": rate, "best_epoch": None, "score": None,
                             "diverged": str(error)})
                continue
            runs.append({"task": task.name, "learning_rate": rate, "best_epoch": result.best_epoch,
                         "score": result.score, **{f"eval_{k}": v for k, v in result.dev_metrics.items()}})
            log += result.history
            if accelerator.is_main_process:
                write_jsonl_atomic(output / "train_log.jsonl", log)
            if task.name not in best or result.score > best[task.name].score:
                best[task.name] = result
        if task.name not in best:
            raise NonFiniteLossError(f"every learning rate of the grid diverged on {task.name}: {'; '.join(diverged)}")
        winner = output / task.name / f"lr_{best[task.name].learning_rate:g}"
        if accelerator.is_main_process and len(rates) > 1 and args.save_best_model and winner.exists():
            publish_dir(output / task.name / "best_model", partial(shutil.copytree, winner, dirs_exist_ok=True))
    return best, runs


def _write_results(args: FinetuneArguments, output: Path, tasks: list[GlueTask], best: dict[str, RunResult],
                   runs: list[dict]) -> None:
    """eval_results.json, all_results.json, results.md, the submission files and (optionally) the model card."""
    records = {t.name: t for t in tasks}
    scores = {name: r.score for name, r in best.items()}
    eval_results = {name: {**r.dev_metrics, "learning_rate": r.learning_rate, "epoch": r.best_epoch}
                    for name, r in best.items()}
    write_json_atomic(output / "eval_results.json", eval_results)
    for name, r in best.items():
        write_submission(output / "submission", records[name], r.test_predictions)
    custom = args.is_custom
    shown = tasks if custom else list(TASKS.values())  # GLUE: the paper's whole table
    table = results_table(scores, shown)
    title = f"Dev results of {args.model_name_or_path} on {tasks[0].name}" if custom else \
        f"GLUE dev results of {args.model_name_or_path}"
    write_text_atomic(output / "results.md", f"# {title}\n\n{table}\n\nScores × 100: {score_note(shown)}.\n")
    write_json_atomic(output / "all_results.json", {"scores": scores, "average": None if custom else
                                                    glue_average(scores), "eval_results": eval_results, "runs": runs})
    if args.update_model_card:
        card = output / "README.md"
        source = Path(args.model_name_or_path) / "README.md"
        if source.is_file() and source.resolve() != card.resolve():
            shutil.copy(source, card)
        update_model_card(card, {n: {k: v for k, v in m.items() if k not in ("learning_rate", "epoch")}
                                 for n, m in eval_results.items()}, Path(args.model_name_or_path).name, records)
    print(table)


__all__ = ["FinetuneArguments", "RunResult", "distillation_loss", "finetune_glue", "load_model", "resolve_tasks",
           "train_one"]
