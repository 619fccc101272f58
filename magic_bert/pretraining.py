"""Masked-LM pre-training of a supernet (SPOS / MAGIC-T / MAGIC-A / MAGIC-AT) or of one fixed arch, under Accelerate.

``recipes/pretrain.py`` is a thin command line over :func:`pretrain`; the analysis code calls it too (fixed-arch
runs), so there is one training loop. ``pretrain`` reads straight down like ``run_mlm_no_trainer.py``:
check inputs → accelerator → data and tokenizer → model → optimizer → ``prepare`` → loop → save.

Per optimizer step, one child: ``sampler.next_arch(step)`` is a pure function of seed, step and the previous child,
so every rank trains the same child without communicating. MAGIC-A/AT add an alignment term to the anchor child
(anchor forward under ``no_grad`` with the shared weights, in eval mode) and compare the child with the anchor on
a fixed, pre-masked held-out set every ``anchor_eval_steps`` steps; the scores are gathered, so every rank decides
the same swap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs, skip_first_batches
from accelerate.utils import broadcast_object_list, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer, default_data_collator, get_scheduler

from .checkpointing import TrainingState, list_checkpoints, resolve_resume_path, save_checkpoint
from .configuration_magic_bert import MagicBertConfig
from .data import (
    BatchMasker,
    check_data_file,
    load_text_datasets,
    mask_once,
    text_column,
    tokenize_and_group,
    train_wordpiece_tokenizer,
)
from .evaluation import MLMScore, evaluate_mlm
from .modeling_magic_bert import MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from .pretraining_args import PretrainArguments
from .samplers import Anchor, alignment_loss, build_sampler, default_anchor_arch, masked_kl
from .search_space import load_arch

logger = logging.getLogger(__name__)

TRAIN_LOG, ANCHOR_LOG, RESULTS = "train_log.jsonl", "anchor_history.jsonl", "all_results.json"


@dataclass
class PretrainResult:
    model: torch.nn.Module  # the trained supernet or fixed model (unwrapped)
    results: dict  # what all_results.json holds
    archs: list = field(default_factory=list)  # the child trained at each step of this run (supernet)
    anchor_history: list = field(default_factory=list)


def check_arguments(args: PretrainArguments) -> Path | None:
    """Cheap checks of every input that can be wrong, before any work; returns the checkpoint to resume from."""
    if args.output_dir is None:
        raise ValueError("--output_dir is required.")
    if args.dataset_name is not None and args.train_file is not None:
        raise ValueError("Pass either --dataset_name or --train_file, not both.")
    if args.validation_file is not None and args.train_file is None:
        raise ValueError("--validation_file needs --train_file.")
    check_data_file(args.train_file, "--train_file")
    check_data_file(args.validation_file, "--validation_file")
    if args.arch is not None and (args.sampler is not None or args.anchor_arch is not None):
        raise ValueError("--arch trains one fixed architecture; --sampler and --anchor_arch apply to supernets only.")
    positive = {"per_device_train_batch_size": args.per_device_train_batch_size,
                "per_device_eval_batch_size": args.per_device_eval_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "anchor_eval_steps": args.anchor_eval_steps, "anchor_eval_samples": args.anchor_eval_samples,
                "logging_steps": args.logging_steps, "learning_rate": args.learning_rate,
                "kd_temperature": args.kd_temperature, "align_temperature": args.align_temperature}
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f"--{name} must be positive, got {value}.")
    if not 0 <= args.kd_weight <= 1:
        raise ValueError(f"--kd_weight must be in [0, 1], got {args.kd_weight}.")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"--max_train_steps must be at least 1, got {args.max_train_steps}.")
    if args.checkpointing_steps is not None and args.checkpointing_steps != "epoch" and not (
            args.checkpointing_steps.isdigit() and int(args.checkpointing_steps) > 0):
        raise ValueError(f"--checkpointing_steps must be a positive integer or 'epoch', got "
                         f"{args.checkpointing_steps!r}.")
    resume = resolve_resume_path(args.resume_from_checkpoint, args.output_dir)
    output = Path(args.output_dir)
    if resume is None and output.is_dir() and any(output.iterdir()) and not args.overwrite_output_dir:
        raise ValueError(f"--output_dir {output} exists and is not empty; pass --overwrite_output_dir to start "
                         "afresh there or --resume_from_checkpoint latest to continue.")
    return resume


def build_tokenizer(args: PretrainArguments, raw, accelerator: Accelerator, resume: Path | None):
    """The given tokenizer, the one saved in the checkpoint, or a WordPiece trained on the main process."""
    if args.tokenizer_name is not None:
        return AutoTokenizer.from_pretrained(args.tokenizer_name)
    if resume is not None and (resume / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(resume)
    vocab_size = args.vocab_size or _base_config(args).vocab_size
    vocab = [None]
    if accelerator.is_main_process:
        texts = raw["train"][text_column(raw["train"], args.text_column_name)]
        vocab = [train_wordpiece_tokenizer(texts, vocab_size).get_vocab()]
    broadcast_object_list(vocab)  # one vocabulary on every rank (training order may break ties differently)
    from transformers import BertTokenizer

    return BertTokenizer(vocab=dict(sorted(vocab[0].items(), key=lambda item: item[1])))


def _base_config(args: PretrainArguments) -> MagicBertConfig:
    if args.config_name is not None:
        return MagicBertConfig.from_pretrained(args.config_name)
    return MagicBertConfig.from_preset(args.preset)


def build_config(args: PretrainArguments, tokenizer) -> MagicBertConfig:
    """The supernet config: preset (or --config_name) with the tokenizer's vocabulary and padding id."""
    config = _base_config(args).with_arch(None)
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    return config


def check_teacher(teacher, tokenizer, name: str) -> None:
    """The teacher predicts over the same vocabulary as our tokenizer, or distillation is meaningless."""
    if teacher.config.vocab_size != len(tokenizer):
        raise ValueError(f"--teacher_name_or_path {name!r} predicts over {teacher.config.vocab_size} tokens but the "
                         f"tokenizer has {len(tokenizer)}; pass --tokenizer_name {name} so both share a vocabulary.")
    try:
        teacher_vocab = AutoTokenizer.from_pretrained(name).get_vocab()
    except (OSError, ValueError):
        return  # no tokenizer next to the teacher: the size check is all we can do
    if teacher_vocab != tokenizer.get_vocab():
        raise ValueError(f"--teacher_name_or_path {name!r} has a different vocabulary from the tokenizer in use; "
                         f"pass --tokenizer_name {name}.")


def build_model(args: PretrainArguments, config: MagicBertConfig, arch: list[str] | None):
    if args.init_from_bert is not None:
        supernet = MagicBertSupernetForMaskedLM.from_bert(args.init_from_bert, config=config)
        return supernet if arch is None else supernet.export(arch)
    return MagicBertSupernetForMaskedLM(config) if arch is None else MagicBertForMaskedLM(config.with_arch(arch))


def _grouped_parameters(model, weight_decay: float):
    no_decay = ("bias", "LayerNorm.weight")
    params = list(model.named_parameters())
    return [{"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": weight_decay},
            {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0}]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _prepare_output_dir(output: Path, resume: Path | None, completed_steps: int) -> None:
    """Fresh run: drop old checkpoints and logs. Resume: keep logged steps up to the checkpoint only."""
    output.mkdir(parents=True, exist_ok=True)
    if resume is None:
        for old in list_checkpoints(output) + [p for p in output.glob(".tmp-*") if p.is_dir()]:
            shutil.rmtree(old)
        for name in (TRAIN_LOG, ANCHOR_LOG, RESULTS):
            (output / name).unlink(missing_ok=True)
    else:
        (output / RESULTS).unlink(missing_ok=True)
        _write_jsonl(output / TRAIN_LOG, [r for r in _read_jsonl(output / TRAIN_LOG) if r["step"] <= completed_steps])


def pretrain(args: PretrainArguments) -> PretrainResult:  # noqa: C901 (reads straight down, like run_mlm)
    resume = check_arguments(args)
    output = Path(args.output_dir)

    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=args.report_to.split(",") if args.with_tracking and args.report_to != "all" else (
            "all" if args.with_tracking else None),
        project_dir=str(output),
        # Data order is a function of (seed, epoch): a resumed run sees the same batches as an uninterrupted one.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # A step trains one child: the other ops get no gradient.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    set_seed(args.seed)

    # Data, tokenizer, config, arch / sampler / anchor, teacher: everything that can fail, before anything is written.
    raw = load_text_datasets(args.dataset_name, args.dataset_config_name, args.train_file, args.validation_file,
                             args.validation_split_percentage, args.synthetic_documents, seed=args.seed)
    text_column(raw["train"], args.text_column_name)
    tokenizer = build_tokenizer(args, raw, accelerator, resume)
    config = build_config(args, tokenizer)
    space = config.search_space
    max_seq_length = args.max_seq_length or min(128, config.max_position_embeddings)
    if max_seq_length > config.max_position_embeddings:
        raise ValueError(f"--max_seq_length {max_seq_length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}.")
    arch = None if args.arch is None else space.validate(load_arch(args.arch))
    sampler = anchor = None
    uses_anchor = False
    if arch is None:
        sampler, uses_anchor = build_sampler(args.sampler or "spos", space, seed=args.seed,
                                             max_params=args.max_params, min_params=args.min_params)
        if uses_anchor:
            initial = (space.validate(load_arch(args.anchor_arch)) if args.anchor_arch is not None
                       else default_anchor_arch(space, args.max_params, args.min_params))
            anchor = Anchor(initial)
    teacher = None
    if args.teacher_name_or_path is not None:
        teacher = AutoModelForMaskedLM.from_pretrained(args.teacher_name_or_path)
        check_teacher(teacher, tokenizer, args.teacher_name_or_path)
        teacher.to(accelerator.device).eval().requires_grad_(False)

    with accelerator.main_process_first():
        blocks = tokenize_and_group(raw, tokenizer, max_seq_length, args.text_column_name,
                                    args.preprocessing_num_workers, not args.overwrite_cache)
        held_out = mask_once(blocks["validation"], tokenizer, args.mlm_probability, seed=args.seed)
    train_set = blocks["train"].remove_columns([c for c in blocks["train"].column_names if c == "token_type_ids"])
    if args.max_eval_samples is not None:
        held_out = held_out.select(range(min(args.max_eval_samples, len(held_out))))

    model = build_model(args, config, arch)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()

    # Masking draws from its own generator (one stream per rank) in the loop; dropout alone uses the global RNG,
    # and the loaders get generators of their own so that creating an iterator does not draw from it either.
    masker = BatchMasker(tokenizer, args.mlm_probability, seed=args.seed + accelerator.process_index)
    train_dataloader = DataLoader(train_set, shuffle=True, collate_fn=default_data_collator,
                                  batch_size=args.per_device_train_batch_size,
                                  generator=torch.Generator().manual_seed(args.seed))
    eval_dataloader = DataLoader(held_out, collate_fn=default_data_collator,
                                 batch_size=args.per_device_eval_batch_size, generator=torch.Generator())
    anchor_dataloader = DataLoader(held_out.select(range(min(args.anchor_eval_samples, len(held_out)))),
                                   collate_fn=default_data_collator, batch_size=args.per_device_eval_batch_size,
                                   generator=torch.Generator())

    optimizer = torch.optim.AdamW(_grouped_parameters(model, args.weight_decay), lr=args.learning_rate)
    steps_per_epoch = math.ceil(
        math.ceil(len(train_set) / (args.per_device_train_batch_size * accelerator.num_processes))
        / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    lr_scheduler = get_scheduler(args.lr_scheduler_type, optimizer,
                                 num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
                                 num_training_steps=max_train_steps * accelerator.num_processes)
    model, optimizer, eval_dataloader, anchor_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, eval_dataloader, anchor_dataloader, lr_scheduler)
    # Training batches stay on the CPU for masking; the loop moves them to the device.
    train_dataloader = accelerator.prepare_data_loader(train_dataloader, device_placement=False)
    unwrapped = accelerator.unwrap_model(model)

    state = TrainingState(sampler=sampler, anchor=anchor, masker=masker)
    accelerator.register_for_checkpointing(state)
    if resume is not None:
        accelerator.print(f"Resuming from {resume}")
        accelerator.load_state(str(resume))
    if accelerator.is_main_process:
        _prepare_output_dir(output, resume, state.completed_steps)
        if anchor is not None:
            _write_jsonl(output / ANCHOR_LOG, anchor.history)
    accelerator.wait_for_everyone()
    if args.with_tracking:
        accelerator.init_trackers("magic_bert_pretrain", {k: v for k, v in asdict(args).items()
                                                          if isinstance(v, int | float | str | bool)})

    def save_extra(folder: Path) -> None:
        tokenizer.save_pretrained(folder)

    def checkpoint(name: str) -> None:
        save_checkpoint(accelerator, output, name, state.completed_steps, save_extra, args.checkpoints_total_limit)

    mode = "fixed arch " + " ".join(arch) if arch is not None else f"supernet, sampler {sampler.name}"
    accelerator.print(f"Pre-training ({mode}): {len(train_set)} blocks of {max_seq_length} tokens, "
                      f"{max_train_steps} steps, {accelerator.num_processes} process(es)")
    progress = tqdm(range(max_train_steps), initial=state.completed_steps,
                    disable=not accelerator.is_local_main_process)
    archs: list[list[str]] = []
    step_arch, arch_of_step = None, None
    running: dict[str, float] = {}
    train_log = open(output / TRAIN_LOG, "a") if accelerator.is_main_process else None  # noqa: SIM115
    model.train()
    while state.completed_steps < max_train_steps:
        train_dataloader.set_epoch(state.epoch)
        active = (skip_first_batches(train_dataloader, state.batches_in_epoch) if state.batches_in_epoch
                  else train_dataloader)
        tick = time.perf_counter()
        for batch in active:
            batch = {key: value.to(accelerator.device) for key, value in masker(batch).items()}
            if arch_of_step != state.completed_steps:  # one child per optimizer step, drawn at its first micro-batch
                step_arch = arch if sampler is None else sampler.next_arch(state.completed_steps)
                arch_of_step = state.completed_steps
            with accelerator.accumulate(model):
                losses = step_losses(model, unwrapped, batch, step_arch, sampler, anchor, teacher, args, accelerator)
                accelerator.backward(losses["loss"])
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            state.train_tokens += int(batch["attention_mask"].sum())
            running["micro_batches"] = running.get("micro_batches", 0) + 1
            for key, value in losses.items():
                running[key] = running.get(key, 0.0) + value.detach().float().item()
            if not accelerator.sync_gradients:
                continue
            state.completed_steps += 1
            state.train_seconds += time.perf_counter() - tick
            progress.update(1)
            if sampler is not None:
                archs.append(list(step_arch))
            micro_batches = running.pop("micro_batches")
            record = {"step": state.completed_steps, "epoch": state.epoch, "lr": lr_scheduler.get_last_lr()[0],
                      **{key: value / micro_batches for key, value in running.items()}, "arch": step_arch}
            running = {}
            if anchor is not None and state.completed_steps % args.anchor_eval_steps == 0:
                record |= _anchor_check(unwrapped, anchor_dataloader, accelerator, anchor, step_arch,
                                        state.completed_steps, output)
            if train_log is not None:
                train_log.write(json.dumps(record) + "\n")
                train_log.flush()
            if args.with_tracking and state.completed_steps % args.logging_steps == 0:
                accelerator.log({k: v for k, v in record.items() if isinstance(v, float)}, step=state.completed_steps)
            progress.set_postfix(loss=f"{record['loss']:.3f}")
            if args.checkpointing_steps not in (None, "epoch") and (
                    state.completed_steps % int(args.checkpointing_steps) == 0):
                checkpoint(f"step_{state.completed_steps}")
            tick = time.perf_counter()
            if state.completed_steps >= max_train_steps:
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
            if args.checkpointing_steps == "epoch":
                checkpoint(f"epoch_{state.epoch}")
    progress.close()
    if train_log is not None:
        train_log.close()

    # Final held-out score: the fixed model, or the anchor (MAGIC-A/AT) / the default anchor arch (SPOS, MAGIC-T).
    eval_arch = None if sampler is None else (anchor.arch if anchor is not None else default_anchor_arch(
        space, args.max_params, args.min_params))
    score: MLMScore = evaluate_mlm(unwrapped, eval_dataloader, accelerator, arch=eval_arch)
    tokens = accelerator.reduce(torch.tensor(state.train_tokens, device=accelerator.device), reduction="sum").item()
    results = {**score.as_dict(), "eval_arch": eval_arch or arch, "train_steps": state.completed_steps,
               "train_tokens": tokens, "train_seconds": state.train_seconds,
               "train_tokens_per_second": tokens / state.train_seconds if state.train_seconds else None,
               "num_processes": accelerator.num_processes, "sampler": None if sampler is None else sampler.name,
               "num_parameters": unwrapped.num_parameters(),
               "anchor_swaps": None if anchor is None else len(anchor.history)}
    if args.with_tracking:
        accelerator.log({k: v for k, v in results.items() if isinstance(v, float)}, step=state.completed_steps)
        accelerator.end_training()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_final(unwrapped, tokenizer, output, results, anchor)
    accelerator.wait_for_everyone()
    accelerator.print(_results_table(results))
    return PretrainResult(unwrapped, results, archs, [] if anchor is None else list(anchor.history))


def step_losses(model, unwrapped, batch, arch, sampler, anchor, teacher, args,
                accelerator) -> dict[str, torch.Tensor]:
    """MLM loss of the step's child, plus alignment to the anchor (MAGIC-A/AT) and distillation (teacher)."""
    align = anchor is not None and arch != anchor.arch  # aligning a child with itself is a no-op
    extra = {} if sampler is None else {"arch": arch}
    outputs = model(**batch, output_hidden_states=align, **extra)
    losses = {"mlm_loss": outputs.loss}
    loss = outputs.loss
    if teacher is not None:
        with torch.no_grad(), accelerator.autocast():
            teacher_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        losses["kd_loss"] = masked_kl(outputs.logits, teacher_logits, batch["labels"], args.kd_temperature)
        loss = (1 - args.kd_weight) * loss + args.kd_weight * losses["kd_loss"]
    if anchor is not None:
        if align:
            unwrapped.eval()  # the anchor's targets without dropout noise
            with torch.no_grad(), accelerator.autocast():
                target = unwrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   arch=anchor.arch, output_hidden_states=True)
            unwrapped.train()
            losses["align_loss"] = alignment_loss(
                outputs.hidden_states, target.hidden_states, outputs.logits, target.logits, batch["labels"],
                args.align_hidden_weight, args.align_logits_weight, args.align_temperature)
        else:
            losses["align_loss"] = torch.zeros((), device=loss.device)
        loss = loss + losses["align_loss"]
    return {"loss": loss, **losses}


def _anchor_check(unwrapped, anchor_dataloader, accelerator, anchor: Anchor, arch, step: int, output: Path) -> dict:
    """Score the child just trained and the anchor on the same held-out blocks; the child replaces the anchor when
    its MLM accuracy is higher, or equal with a lower loss (early in training many children tie on accuracy).
    """
    child = evaluate_mlm(unwrapped, anchor_dataloader, accelerator, arch=arch)
    current = child if arch == anchor.arch else evaluate_mlm(unwrapped, anchor_dataloader, accelerator,
                                                             arch=anchor.arch)
    event = anchor.consider(step, arch, (child.accuracy, -child.loss), (current.accuracy, -current.loss))
    if event is not None:
        event |= {"old_accuracy": current.accuracy, "new_accuracy": child.accuracy, "old_loss": current.loss,
                  "new_loss": child.loss}
    if event is not None and accelerator.is_main_process:
        with open(output / ANCHOR_LOG, "a") as log:
            log.write(json.dumps(event) + "\n")
    return {"child_accuracy": child.accuracy, "child_eval_loss": child.loss, "anchor_accuracy": current.accuracy,
            "anchor_eval_loss": current.loss, "anchor_swapped": event is not None}


def _save_final(model, tokenizer, output: Path, results: dict, anchor: Anchor | None) -> None:
    """Model and tokenizer into a staging folder, moved in when complete; all_results.json last (the done marker)."""
    staging = output / ".tmp-final"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for file in staging.iterdir():
        os.replace(file, output / file.name)
    staging.rmdir()
    if anchor is not None:
        _write_jsonl(output / ANCHOR_LOG, anchor.history)
    tmp = output / f".{RESULTS}.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, output / RESULTS)


def _results_table(results: dict) -> str:
    rows = [("held-out MLM loss", f"{results['eval_loss']:.4f}"), ("MLM accuracy", f"{results['eval_accuracy']:.4f}"),
            ("perplexity", f"{results['eval_perplexity']:.2f}"), ("steps", str(results["train_steps"])),
            ("train tokens/s", f"{results['train_tokens_per_second'] or 0:,.0f}"),
            ("scored arch", " ".join(results["eval_arch"] or []))]
    if results["anchor_swaps"] is not None:
        rows.append(("anchor swaps", str(results["anchor_swaps"])))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


__all__ = ["PretrainResult", "check_arguments", "pretrain", "step_losses"]
