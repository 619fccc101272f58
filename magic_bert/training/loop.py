"""Masked-LM pre-training of a supernet (SPOS / MAGIC-T / MAGIC-A / MAGIC-AT) or of one fixed arch, under Accelerate.

``recipes/pretrain.py`` is a thin command line over :func:`pretrain`; the analysis code calls it too (fixed-arch
runs), so there is one training loop. ``pretrain`` reads straight down like ``run_mlm_no_trainer.py``:
check inputs (``pretraining_inputs``) → accelerator → data and tokenizer → model → optimizer → ``prepare`` → loop →
save.

Per optimizer step, one child: ``sampler.next_arch(step)`` is a pure function of seed, step and the previous child,
so every rank trains the same child without communicating. MAGIC-A/AT add an alignment term to the anchor child
(anchor forward under ``no_grad`` with the shared weights, in eval mode) and compare the child with the anchor on
a fixed, pre-masked held-out set every ``anchor_eval_steps`` steps; the scores are gathered, so every rank decides
the same swap.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs, skip_first_batches
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import default_data_collator, get_scheduler

from ..data import BatchMasker, load_text_datasets, mask_once, text_column, tokenize_and_group
from ..evaluation import MLMScore, evaluate_mlm
from ..optim import adamw_parameter_groups
from ..search_space import load_arch
from .arguments import PretrainArguments
from .checkpointing import TrainingState, list_checkpoints, save_checkpoint
from .samplers import Anchor, alignment_loss, build_sampler, default_anchor_arch, masked_kl
from .setup import (
    InputError,
    build_config,
    build_model,
    build_tokenizer,
    check_arguments,
    check_init_from_bert,
    check_resume_settings,
    load_or_explain,
    load_teacher,
    main_process_first,
    run_settings,
)

TRAIN_LOG, ANCHOR_LOG, RESULTS = "train_log.jsonl", "anchor_history.jsonl", "all_results.json"


@dataclass
class PretrainResult:
    model: torch.nn.Module  # the trained supernet or fixed model (unwrapped, fp32)
    results: dict  # what all_results.json holds
    archs: list = field(default_factory=list)  # the child trained at each step of this run (supernet)
    anchor_history: list = field(default_factory=list)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _prepare_output_dir(output: Path, resume: Path | None, completed_steps: int) -> None:
    """Fresh run: drop old checkpoints and logs. Resume: keep the log up to the checkpoint (taken from the
    checkpoint's own run when that is another folder) and drop checkpoints of the abandoned steps after it."""
    output.mkdir(parents=True, exist_ok=True)
    if resume is None:
        for old in list_checkpoints(output) + [p for p in output.glob(".tmp-*") if p.is_dir()]:
            shutil.rmtree(old)
        for name in (TRAIN_LOG, ANCHOR_LOG, RESULTS):
            (output / name).unlink(missing_ok=True)
        return
    (output / RESULTS).unlink(missing_ok=True)
    source = resume.parent / TRAIN_LOG if (resume.parent / TRAIN_LOG).is_file() else output / TRAIN_LOG
    _write_jsonl(output / TRAIN_LOG, [r for r in _read_jsonl(source) if r["step"] <= completed_steps])
    for later in list_checkpoints(output):
        info = later / "checkpoint.json"
        if info.is_file() and json.loads(info.read_text())["completed_steps"] > completed_steps:
            shutil.rmtree(later)


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
    if not accelerator.is_local_main_process:  # one set of progress bars and warnings, as run_mlm_no_trainer
        datasets.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()
    set_seed(args.seed)

    # Data, tokenizer, config, arch / sampler / anchor, teacher: everything that can fail, before anything is written.
    try:
        raw = load_or_explain("loading the training text", lambda: load_text_datasets(
            args.dataset_name, args.dataset_config_name, args.train_file, args.validation_file,
            args.validation_split_percentage, args.synthetic_documents, seed=args.seed))
        text_column(raw["train"], args.text_column_name)
        tokenizer = build_tokenizer(args, raw, accelerator, resume)
        config = build_config(args, tokenizer)
        space = config.search_space
        max_seq_length = args.max_seq_length or min(128, config.max_position_embeddings)
        if max_seq_length > config.max_position_embeddings:
            raise InputError(f"--max_seq_length {max_seq_length} exceeds the model's max_position_embeddings "
                             f"{config.max_position_embeddings}.")
        settings = run_settings(args, accelerator.num_processes, max_seq_length)
        if resume is not None:
            check_resume_settings(resume, settings)
        arch = None if args.arch is None else space.validate(load_arch(args.arch))
        sampler = anchor = None
        if arch is None:
            sampler, uses_anchor = build_sampler(args.sampler or "spos", space, seed=args.seed,
                                                 max_params=args.max_params, min_params=args.min_params)
            if uses_anchor:
                anchor = Anchor(space.validate(load_arch(args.anchor_arch)) if args.anchor_arch is not None
                                else default_anchor_arch(space, args.max_params, args.min_params))
        teacher = None if args.teacher_name_or_path is None else load_teacher(args, tokenizer)
        if args.init_from_bert is not None:
            check_init_from_bert(args, tokenizer)

        def blocks_and_held_out():
            blocks = tokenize_and_group(raw, tokenizer, max_seq_length, args.text_column_name,
                                        args.preprocessing_num_workers, not args.overwrite_cache)
            return blocks, mask_once(blocks["validation"], tokenizer, args.mlm_probability, seed=args.seed)

        blocks, held_out = main_process_first(accelerator, blocks_and_held_out)
    except InputError:
        raise
    except ValueError as error:  # from the package's own checks (arch, budget, data): same one-message treatment
        raise InputError(str(error)) from None

    if teacher is not None:
        teacher.to(accelerator.device).eval().requires_grad_(False)
    train_set = blocks["train"].remove_columns([c for c in blocks["train"].column_names if c == "token_type_ids"])
    if args.max_eval_samples is not None:
        held_out = held_out.select(range(min(args.max_eval_samples, len(held_out))))

    model = build_model(args, config, arch)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()

    # Masking is reseeded per micro-batch from (seed, rank, epoch, position), so it needs no saved state and a
    # resumed run masks exactly as an uninterrupted one on every rank. Dropout alone uses the global RNG (saved
    # per rank by accelerate); the loaders get generators of their own so that creating an iterator draws nothing.
    masker = BatchMasker(tokenizer, args.mlm_probability, seed=args.seed)
    train_dataloader = DataLoader(train_set, shuffle=True, collate_fn=default_data_collator,
                                  batch_size=args.per_device_train_batch_size,
                                  generator=torch.Generator().manual_seed(args.seed))
    eval_dataloader = DataLoader(held_out, collate_fn=default_data_collator,
                                 batch_size=args.per_device_eval_batch_size, generator=torch.Generator())
    anchor_dataloader = DataLoader(held_out.select(range(min(args.anchor_eval_samples, len(held_out)))),
                                   collate_fn=default_data_collator, batch_size=args.per_device_eval_batch_size,
                                   generator=torch.Generator())

    optimizer = torch.optim.AdamW(adamw_parameter_groups(model, args.weight_decay), lr=args.learning_rate)
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

    state = TrainingState(sampler=sampler, anchor=anchor)
    accelerator.register_for_checkpointing(state)
    if resume is not None:
        accelerator.print(f"Resuming from {resume}")
        accelerator.load_state(str(resume))
    if accelerator.is_main_process:
        _prepare_output_dir(output, resume, state.completed_steps)
        _write_jsonl(output / ANCHOR_LOG, [] if anchor is None else anchor.history)
    accelerator.wait_for_everyone()
    if args.with_tracking:
        accelerator.init_trackers("magic_bert_pretrain", {k: v for k, v in asdict(args).items()
                                                          if isinstance(v, int | float | str | bool)})
    local_tokens = 0  # non-padding tokens this rank trained on since the last checkpoint

    def checkpoint(name: str) -> None:
        nonlocal local_tokens  # every rank calls this: fold the tokens of all ranks into the saved (rank 0) state
        state.train_tokens += int(accelerator.reduce(torch.tensor(local_tokens, device=accelerator.device),
                                                     reduction="sum").item())
        local_tokens = 0
        save_checkpoint(accelerator, output, name, state.completed_steps, tokenizer.save_pretrained,
                        args.checkpoints_total_limit, settings)

    mode = "fixed arch " + " ".join(arch) if arch is not None else f"supernet, sampler {sampler.name}"
    accelerator.print(f"Pre-training ({mode}): {len(train_set)} blocks of {max_seq_length} tokens, "
                      f"{max_train_steps} steps, {accelerator.num_processes} process(es)")
    progress = tqdm(range(max_train_steps), initial=state.completed_steps,
                    disable=not accelerator.is_local_main_process)
    archs: list[list[str]] = []
    step_arch, arch_of_step = None, None
    running: dict[str, torch.Tensor] = {}
    micro_batches = 0
    train_log = open(output / TRAIN_LOG, "a") if accelerator.is_main_process else None  # noqa: SIM115
    model.train()
    while state.completed_steps < max_train_steps:
        train_dataloader.set_epoch(state.epoch)
        active = (skip_first_batches(train_dataloader, state.batches_in_epoch) if state.batches_in_epoch
                  else train_dataloader)
        tick = time.perf_counter()
        for batch in active:
            masker.reseed(args.seed, accelerator.process_index, state.epoch, state.batches_in_epoch)
            local_tokens += int(batch["attention_mask"].sum())  # on the CPU batch: no device sync
            batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in masker(batch).items()}
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
            micro_batches += 1
            for key, value in losses.items():  # summed on the device; read once per optimizer step
                running[key] = running.get(key, 0.0) + value.detach().float()
            if not accelerator.sync_gradients:
                continue
            state.completed_steps += 1
            state.train_seconds += time.perf_counter() - tick
            progress.update(1)
            if sampler is not None:
                archs.append(list(step_arch))
            values = torch.stack(list(running.values())).div(micro_batches).tolist()
            record = {"step": state.completed_steps, "epoch": state.epoch, "lr": lr_scheduler.get_last_lr()[0],
                      **dict(zip(running, values, strict=True)), "arch": step_arch}
            running, micro_batches = {}, 0
            if anchor is not None and state.completed_steps % args.anchor_eval_steps == 0:
                record |= _anchor_check(unwrapped, anchor_dataloader, accelerator, anchor, step_arch,
                                        state.completed_steps, output)
            if train_log is not None:
                train_log.write(json.dumps(record) + "\n")
                train_log.flush()
            if args.with_tracking and state.completed_steps % args.logging_steps == 0:
                accelerator.log({k: v for k, v in record.items() if isinstance(v, float)}, step=state.completed_steps)
            progress.set_postfix(loss=f"{record['loss']:.3f}")
            if state.batches_in_epoch == len(train_dataloader):  # the epoch is done, even if training is too
                state.epoch += 1
                state.batches_in_epoch = 0
                if args.checkpointing_steps == "epoch":
                    checkpoint(f"epoch_{state.epoch}")
            if args.checkpointing_steps not in (None, "epoch") and (
                    state.completed_steps % int(args.checkpointing_steps) == 0):
                checkpoint(f"step_{state.completed_steps}")
            tick = time.perf_counter()
            if state.completed_steps >= max_train_steps:
                break
        else:  # resumed exactly at an epoch's end: nothing left to skip into
            if state.batches_in_epoch:
                state.epoch += 1
                state.batches_in_epoch = 0
    progress.close()
    if train_log is not None:
        train_log.close()

    # Final held-out score: the fixed model, or the anchor (MAGIC-A/AT) / the default anchor arch (SPOS, MAGIC-T).
    eval_arch = None if sampler is None else (anchor.arch if anchor is not None else default_anchor_arch(
        space, args.max_params, args.min_params))
    score: MLMScore = evaluate_mlm(unwrapped, eval_dataloader, accelerator, arch=eval_arch)
    tokens = state.train_tokens + int(accelerator.reduce(torch.tensor(local_tokens, device=accelerator.device),
                                                         reduction="sum").item())
    results = {**score.as_dict(), "eval_arch": eval_arch or arch, "train_steps": state.completed_steps,
               "train_tokens": tokens, "train_seconds": state.train_seconds,
               "train_tokens_per_second": tokens / state.train_seconds if state.train_seconds else None,
               "num_processes": accelerator.num_processes, "sampler": None if sampler is None else sampler.name,
               "num_parameters": unwrapped.num_parameters(),
               "anchor_swaps": None if anchor is None else len(anchor.history)}
    if args.with_tracking:
        accelerator.log({k: v for k, v in results.items() if isinstance(v, float)}, step=state.completed_steps)
        accelerator.end_training()
    final = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # no autocast wrapper on what we return/save
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_final(final, tokenizer, output, results, anchor)
    accelerator.wait_for_everyone()
    accelerator.print(_results_table(results))
    return PretrainResult(final, results, archs, [] if anchor is None else list(anchor.history))


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
            # The anchor's targets: eval mode (no dropout noise), no grad, and its MLM head only at the masked
            # positions, the only ones the KL uses (the head over the vocabulary is most of a small model's cost).
            masked = batch["labels"] != -100
            unwrapped.eval()
            with torch.no_grad(), accelerator.autocast():
                target = unwrapped.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                        arch=anchor.arch, output_hidden_states=True)
                target_logits = unwrapped.cls(target.last_hidden_state[masked])
            unwrapped.train()
            losses["align_loss"] = alignment_loss(
                outputs.hidden_states, target.hidden_states, outputs.logits[masked], target_logits,
                batch["labels"][masked], args.align_hidden_weight, args.align_logits_weight, args.align_temperature)
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
    _write_jsonl(output / ANCHOR_LOG, [] if anchor is None else anchor.history)
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


__all__ = ["InputError", "PretrainResult", "check_arguments", "pretrain", "step_losses"]
