"""Masked-LM pre-training of a supernet (SPOS / MAGIC-T / MAGIC-A / MAGIC-AT, or any registered strategy) or of one
fixed arch, under Accelerate.

:class:`PretrainRecipe` runs in phases, as torchtune's recipes do: ``setup_inputs`` (everything that can fail on
bad input, before anything is written) → ``setup_training`` (model, data loaders, optimizer, ``prepare``, resume,
output folder) → ``train`` (the loop) → ``finish`` (final score, save, results). The per-step policy lives in two
seams: the sampler strategy (``strategies.py``: which child trains, what happens after a step, which arch is scored)
and the loss terms (``losses.py``: MLM, distillation, alignment, each weighted and logged under its own key).
:func:`pretrain` runs all phases; ``recipes/pretrain.py`` and the analysis code call it, so there is one loop.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import skip_first_batches
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import default_data_collator

from ..data import BatchMasker, eval_batch_size, fit_batch_size, fit_tokenizer_to_model
from ..errors import InputError
from ..evaluation import MLMScore, evaluate_mlm, unigram_baseline
from ..held_out_record import CHECKPOINT_SCORING, record_held_out
from ..held_out_record import RESULTS_KEY as HELD_OUT_RECORD
from ..io_utils import read_jsonl, staging_dir, write_json_atomic, write_jsonl_atomic
from ..optim import NonFiniteLossError, stop_if_not_finite
from ..output_folder import OutputLock, RunFolder, check_output_dir
from ..ranks import computed_on_main
from ..streaming import StreamingBatches, gather_positions, unigram_sample
from .arguments import (
    DataArguments,
    LossArguments,
    ModelArguments,
    OptimizationArguments,
    PretrainArguments,
    StrategyArguments,
)
from .checkpointing import TrainingState, list_checkpoints, load_checkpoint, remove_dead_staging, save_checkpoint
from .electra import (
    GENERATOR_FOLDER,
    DiscriminatorHead,
    ElectraGenerator,
    ElectraObjective,
    base_rate_loss,
    electra_generator_config,
)
from .losses import build_loss_terms, resolve_precision
from .setup import (
    OUTPUT_HINT,
    base_config,
    build_blocks,
    build_config,
    build_model,
    build_optimizer,
    build_tokenizer,
    check_init_from_bert,
    check_inputs,
    check_resume_settings,
    load_teacher,
    load_training_text,
    make_accelerator,
    max_seq_length_for,
    pretrain_inputs,
    run_settings,
    setup_strategy,
    split_anchor_blocks,
)
from .step_probe import InterferenceProbe, probe_batch, probe_means
from .teacher import check_attention_layer, check_relation_heads, kd_projection, layer_map, resolve_kd_weight

TRAIN_LOG, ANCHOR_LOG, RESULTS = "train_log.jsonl", "anchor_history.jsonl", "all_results.json"


@dataclass
class PretrainResult:
    model: torch.nn.Module  # the trained supernet or fixed model (unwrapped, fp32)
    results: dict  # what all_results.json holds
    archs: list = field(default_factory=list)  # the child trained at each step of this run (supernet)
    anchor_history: list = field(default_factory=list)


class PretrainRecipe:
    def __init__(self, args: PretrainArguments):
        self.args = args
        self.lock: OutputLock | None = None  # taken once the arguments are checked
        self.run_folder: RunFolder | None = None  # started by setup_training

    # -- setup -------------------------------------------------------------------------------------------------
    def setup_inputs(self) -> None:
        """Data, tokenizer, config, strategy, teacher: everything that can fail, before anything is written."""
        args = self.args
        self.resume = check_inputs(args)
        self.accelerator = make_accelerator(args.group(OptimizationArguments), args)
        computed_on_main(self.accelerator, self._lock_output_dir)
        set_seed(args.seed)
        data, model = args.group(DataArguments), args.group(ModelArguments)
        raw = load_training_text(data, args.seed)
        self.tokenizer = build_tokenizer(data, raw, self.accelerator, self.resume,
                                         default_vocab_size=base_config(model).vocab_size)
        self.config = build_config(model, self.tokenizer, self.resume)
        fit_tokenizer_to_model(self.tokenizer, self.config)  # truncate to what the model can take, not 1e30
        self.max_seq_length = max_seq_length_for(data, self.config)
        self.settings = run_settings(args, self.accelerator.num_processes, self.max_seq_length,
                                     self.config.candidate_ops)
        # What search and the analysis commands score this run's children on by default (all_results.json).
        self.held_out_text = record_held_out(data, args.seed, self.max_seq_length)
        if self.resume is not None:
            check_resume_settings(self.resume, self.settings)
        self.strategy = setup_strategy(args.group(StrategyArguments), self.config, args.seed)
        self.generator_config = electra_generator_config(args.objective, args.generator_arch, self.config)
        loss = args.group(LossArguments)
        self.teacher = load_teacher(loss, self.tokenizer)
        self.kd_weight = resolve_kd_weight(loss, self.teacher)
        self.layer_pairs = None if self.teacher is None or loss.kd_hidden_weight == 0 else layer_map(
            loss.kd_layer_map, self.config.num_hidden_layers, self.teacher.num_layers,
            arch=None if self.strategy.is_supernet else self.strategy.eval_arch())
        self.relation_heads = self.attention_layer = None
        if self.teacher is not None and loss.kd_attention_weight > 0:
            self.attention_layer = check_attention_layer(loss.kd_attention_layer, self.teacher)
            self.relation_heads = loss.kd_relation_heads or self.teacher.num_attention_heads
            check_relation_heads(self.relation_heads, self.config.attention_widths, self.teacher)
        check_init_from_bert(model, self.tokenizer)
        self.train_set, held_out = build_blocks(data, raw, self.tokenizer, self.max_seq_length, self.accelerator,
                                                args.seed)
        # The anchor checks' own blocks; the final score skips validation blocks they took (all_results.json says so).
        self.anchor_blocks, self.held_out, self.skipped_blocks = split_anchor_blocks(
            args.group(StrategyArguments), data, self.strategy.uses_anchor, held_out, self.tokenizer,
            self.max_seq_length, self.accelerator, args.seed)
        self.probe_batch = probe_batch(self.held_out, args.per_device_eval_batch_size) \
            if args.probe_interference_steps else None

    def _lock_output_dir(self) -> None:
        """One run per output folder (main process), checked again under the lock: another run may have filled it."""
        self.lock = OutputLock(self.args.output_dir)
        self.lock.acquire()  # check_inputs has checked the folder: nothing is written before
        check_output_dir(self.args.output_dir, self.args.overwrite_output_dir or self.resume is not None, OUTPUT_HINT,
                         inputs=None if self.resume is not None else pretrain_inputs(self.args))

    def close(self) -> None:
        """Release the output folder (also after a failure)."""
        if self.lock is not None:
            self.lock.release()

    def abandon(self) -> None:
        """After bad input found part-way (a non-finite loss): a fresh run that saved no checkpoint leaves no trace,
        its folder deleted and an old one (``overwrite_output_dir``) put back; one with checkpoints keeps them and its
        log to resume from. Nothing that looks finished (model, ``all_results.json``) was written either way."""
        if self.run_folder is not None and self.accelerator.is_main_process and not list_checkpoints(self.output):
            self.run_folder.abandon()

    def setup_training(self) -> None:
        """Model, loaders, optimizer and schedule, ``prepare``, the resumed state and a clean output folder."""
        args, accelerator = self.args, self.accelerator
        # Said once; each evaluation loader then takes the smaller of the batch and its blocks.
        fit_batch_size(args.per_device_eval_batch_size, max(len(self.held_out), len(self.anchor_blocks)),
                       f"held-out blocks of {self.max_seq_length} tokens", accelerator.print,
                       "per_device_eval_batch_size")
        # With init_from_bert, FFN neurons are ranked by importance on the held-out blocks (main process, shared).
        model = build_model(args.group(ModelArguments), self.config,
                            None if self.strategy.is_supernet else self.strategy.eval_arch(),
                            batches=self._eval_loader(self.held_out), accelerator=accelerator)
        if self.teacher is not None:
            self.teacher.model.to(accelerator.device)
            # Only logits KD reads the teacher's predictions; hidden-state KD runs its encoder alone.
            self.teacher.needs_logits = self.kd_weight > 0
            self.teacher.precision = resolve_precision(args.teacher_precision, accelerator.device)
            accelerator.print(f"Teacher forward (distillation targets) in {self.teacher.precision} precision "
                              f"(--teacher_precision {args.teacher_precision})")
        # Trained with the run and saved in its checkpoints, never exported.
        projection = kd_projection(self.config.hidden_size, self.teacher,
                                   args.kd_hidden_weight + args.kd_embedding_weight)
        # Masking is reseeded per micro-batch from (seed, rank, epoch, position), so it needs no saved state and a
        # resumed run masks exactly as an uninterrupted one on every rank. Dropout alone uses the global RNG (saved
        # per rank by accelerate); the loaders get generators of their own so that creating an iterator draws nothing.
        self.masker = BatchMasker(self.tokenizer, args.mlm_probability, seed=args.seed)
        self.streaming = args.streaming
        train_dataloader = StreamingBatches(self.train_set, args.per_device_train_batch_size) if self.streaming \
            else DataLoader(self.train_set, shuffle=True, collate_fn=default_data_collator,
                            batch_size=fit_batch_size(args.per_device_train_batch_size, len(self.train_set),
                                                      f"training blocks of {self.max_seq_length} tokens",
                                                      accelerator.print),
                            generator=torch.Generator().manual_seed(args.seed))
        eval_dataloader = self._eval_loader(self.held_out)
        anchor_dataloader = self._eval_loader(self.anchor_blocks)
        # ELECTRA's generator and discriminator head: trained with the run and saved in its checkpoints.
        electra = None if self.generator_config is None else [ElectraGenerator(self.generator_config),
                                                              DiscriminatorHead(self.config)]
        extra_modules = [m for m in (projection, *(electra or [])) if m is not None]
        trained = torch.nn.ModuleList([model, *extra_modules]) if extra_modules else model
        optimizer, scheduler, self.max_train_steps = build_optimizer(
            args.group(OptimizationArguments), trained, 0 if self.streaming else len(self.train_set),
            accelerator.num_processes)
        self.model, self.optimizer, self.eval_dataloader, self.anchor_dataloader, self.lr_scheduler = \
            accelerator.prepare(model, optimizer, eval_dataloader, anchor_dataloader, scheduler)
        self.projection = None if projection is None else accelerator.prepare_model(projection)
        self.electra = None if electra is None else ElectraObjective(
            *(accelerator.prepare_model(module) for module in electra), args.rtd_weight)
        # Training batches stay on the CPU for masking; the loop moves them to the device. A stream is already
        # split across ranks (each rank's batches are its own).
        self.train_dataloader = train_dataloader if self.streaming else accelerator.prepare_data_loader(
            train_dataloader, device_placement=False)
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.loss = build_loss_terms(args.group(LossArguments),
                                     (lambda: self.strategy.anchor_arch) if self.strategy.uses_anchor else None,
                                     self.teacher, self.kd_weight, self.layer_pairs, self.projection,
                                     accelerator.device, self.relation_heads, self.attention_layer,
                                     self.electra)
        if self.loss.anchor_precision is not None:
            accelerator.print(f"Anchor forward (alignment targets) in {self.loss.anchor_precision} precision "
                              f"(--anchor_precision {args.anchor_precision})")

        self._restore_state_and_output_dir()
        if args.with_tracking:
            accelerator.init_trackers("magic_bert_pretrain", {k: v for k, v in asdict(args).items()
                                                              if isinstance(v, int | float | str | bool)})
        self.local_tokens = 0  # non-padding tokens this rank trained on since the last checkpoint
        self.archs: list[list[str]] = []
        # The interference probe scores on the first held-out batch, whole on every rank (same values everywhere).
        self.probe = None if self.probe_batch is None else InterferenceProbe(
            args.probe_interference_steps, self.unwrapped,
            {k: v.to(accelerator.device) for k, v in self.probe_batch.items()})

    def _restore_state_and_output_dir(self) -> None:
        """The training state (a resumed checkpoint's, streams moved on to their next batch) and a clean output folder
        (an old one moved aside until this run succeeds)."""
        accelerator = self.accelerator
        self.state = TrainingState(strategy=self.strategy)
        if self.resume is not None:
            accelerator.print(f"Resuming from {self.resume}")
            load_checkpoint(accelerator, self.resume, self.state)
            if self.streaming:  # this rank continues with the next unseen batch of its share
                rank = accelerator.process_index
                self.train_dataloader.resume_at(self.state.stream_passes[rank], self.state.stream_batches[rank])
        self.output = Path(self.args.output_dir)
        self.run_folder = RunFolder(self.output)
        if accelerator.is_main_process:
            if self.resume is None:
                self.run_folder.start()  # an old folder is moved aside, deleted once this run succeeds
            _prepare_output_dir(self.output, self.resume, self.state.completed_steps)
            write_jsonl_atomic(self.output / ANCHOR_LOG, self.strategy.history)
        accelerator.wait_for_everyone()

    def _eval_loader(self, dataset) -> DataLoader:
        return DataLoader(dataset, collate_fn=default_data_collator, generator=torch.Generator(),
                          batch_size=eval_batch_size(self.args.per_device_eval_batch_size, len(dataset)))

    # -- training ----------------------------------------------------------------------------------------------
    def train(self) -> None:
        accelerator, state = self.accelerator, self.state
        mode = (f"supernet, sampler {self.strategy.name}" if self.strategy.is_supernet
                else "fixed arch " + " ".join(self.strategy.eval_arch()))
        blocks = "streamed" if self.streaming else len(self.train_set)
        accelerator.print(f"Pre-training ({mode}): {blocks} blocks of {self.max_seq_length} tokens, "
                          f"{self.max_train_steps} steps, {accelerator.num_processes} process(es)")
        if self.strategy.uses_anchor and self.args.anchor_eval_steps > self.max_train_steps:
            accelerator.print(f"Note: --anchor_eval_steps {self.args.anchor_eval_steps} is more than the "
                              f"{self.max_train_steps} training steps: no anchor check runs, so the anchor stays "
                              f"{' '.join(self.strategy.anchor_arch)}.")
        progress = tqdm(range(self.max_train_steps), initial=state.completed_steps,
                        disable=not accelerator.is_local_main_process)
        log = open(self.output / TRAIN_LOG, "a") if accelerator.is_main_process else None  # noqa: SIM115
        running: dict[str, torch.Tensor] = {}
        micro_batches, arch = 0, None
        self.model.train()
        while state.completed_steps < self.max_train_steps:
            self.train_dataloader.set_epoch(state.epoch)
            batches = (skip_first_batches(self.train_dataloader, state.batches_in_epoch)
                       if state.batches_in_epoch and not self.streaming else self.train_dataloader)
            tick = time.perf_counter()
            for batch in batches:
                if micro_batches == 0:  # one child per optimizer step, drawn at its first micro-batch
                    arch = self.strategy.next_arch(state.completed_steps)
                for key, value in self.train_micro_batch(batch, arch).items():  # summed on the device
                    running[key] = running.get(key, 0.0) + value.detach().float()
                micro_batches += 1
                state.batches_in_epoch += 1
                if not accelerator.sync_gradients:
                    continue
                state.completed_steps += 1
                state.train_seconds += time.perf_counter() - tick
                record = self.end_step(arch, running, micro_batches)
                running, micro_batches = {}, 0
                if log is not None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                self.stop_if_not_finite(record)
                progress.update(1)
                progress.set_postfix(loss=f"{record['loss']:.3f}")
                self.maybe_checkpoint(epoch_done=not self.streaming
                                      and state.batches_in_epoch == len(self.train_dataloader))
                tick = time.perf_counter()
                if state.completed_steps >= self.max_train_steps:
                    break
            else:  # resumed exactly at an epoch's end: nothing left to skip into
                if state.batches_in_epoch:
                    state.epoch += 1
                    state.batches_in_epoch = 0
        progress.close()
        if log is not None:
            log.close()

    def train_micro_batch(self, batch: dict, arch: list[str]) -> dict[str, torch.Tensor]:
        """Mask, forward the child, compose the loss terms, backward; the optimizer steps at the step's end."""
        accelerator, state = self.accelerator, self.state
        position = (self.args.seed, accelerator.process_index, state.epoch, state.batches_in_epoch)
        self.masker.reseed(*position)
        if self.electra is not None:  # the generator's samples, like the masks, depend on the position alone
            self.electra.reseed(accelerator.device, *position)
        self.local_tokens += int(batch["attention_mask"].sum())  # on the CPU batch: no device sync
        batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in self.masker(batch).items()}
        with accelerator.accumulate(*self.trained_models):
            losses = self.loss.forward(self.model, batch, arch, self.unwrapped, accelerator.autocast,
                                       supernet=self.strategy.is_supernet)
            accelerator.backward(losses["loss"])
            if accelerator.sync_gradients and self.args.max_grad_norm > 0:
                accelerator.clip_grad_norm_([p for m in self.trained_models for p in m.parameters()],
                                            self.args.max_grad_norm)
            with self.probe_update(arch):
                self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad()
        return losses

    def probe_update(self, arch: list[str]) -> AbstractContextManager:
        """Around the optimizer step: the interference probe's measurement at sync steps (nothing otherwise)."""
        if self.probe is None or not self.accelerator.sync_gradients:
            return nullcontext()
        return self.probe.around_update(self.state.completed_steps + 1, arch)

    def stop_if_not_finite(self, record: dict) -> None:
        """Stop on a NaN or infinite loss (every rank alike)."""
        stop_if_not_finite(self.accelerator, {k: v for k, v in record.items() if "loss" in k}, record["step"],
                           self.args.learning_rate)

    def end_step(self, arch: list[str], running: dict[str, torch.Tensor], micro_batches: int) -> dict:
        """The step's log record (mean losses over its micro-batches, lr, arch, the strategy's own fields)."""
        step = self.state.completed_steps
        if self.strategy.is_supernet:
            self.archs.append(list(arch))
        values = torch.stack(list(running.values())).div(micro_batches).tolist()  # one host sync per step
        record = {"step": step, "epoch": self.state.epoch, "lr": self.lr_scheduler.get_last_lr()[0],
                  **dict(zip(running, values, strict=True)), "arch": arch}
        seen = len(self.strategy.history)
        record |= self.strategy.after_step(step, arch, self.score_on_anchor_blocks)
        if self.probe is not None:
            record |= self.probe.record(step)
        if self.accelerator.is_main_process and len(self.strategy.history) > seen:
            with open(self.output / ANCHOR_LOG, "a") as events:
                events.writelines(json.dumps(event) + "\n" for event in self.strategy.history[seen:])
        if self.args.with_tracking and step % self.args.logging_steps == 0:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, float)}, step=step)
        return record

    @property
    def trained_models(self) -> list[torch.nn.Module]:
        electra = [] if self.electra is None else [self.electra.generator, self.electra.head]
        return [m for m in (self.model, self.projection, *electra) if m is not None]

    def score(self, dataloader: DataLoader, arch: list[str] | None, **kwargs) -> MLMScore:
        """Held-out masked-LM loss and accuracy, or with ELECTRA the detection loss and accuracy over real tokens."""
        return evaluate_mlm(self.unwrapped, dataloader, self.accelerator, arch=arch, **kwargs,
                            example_sums=None if self.electra is None else self.electra.example_sums)

    def score_on_anchor_blocks(self, arch: list[str]) -> MLMScore:
        return self.score(self.anchor_dataloader, arch, keep_examples=True)

    def maybe_checkpoint(self, epoch_done: bool) -> None:
        state, every = self.state, self.args.checkpointing_steps
        if epoch_done:  # the epoch is done, even if training is too
            state.epoch += 1
            state.batches_in_epoch = 0
            if every == "epoch":
                self.checkpoint(f"epoch_{state.epoch}")
        if every not in (None, "epoch") and state.completed_steps % int(every) == 0:
            self.checkpoint(f"step_{state.completed_steps}")

    def checkpoint(self, name: str) -> None:
        # Every rank calls this: the tokens of all ranks are folded into the saved (rank 0) state.
        self.state.train_tokens += self._reduce_local_tokens()
        if self.streaming:
            self.state.stream_passes, self.state.stream_batches = gather_positions(self.accelerator,
                                                                                   self.train_dataloader)
        save_checkpoint(self.accelerator, self.output, name, self.state, self._checkpoint_extras,
                        self.args.checkpoints_total_limit, self.settings)

    def _checkpoint_extras(self, folder: Path) -> None:
        """What makes a checkpoint a folder `--supernet` takes (search, export, analysis of a run stopped early):
        the tokenizer, the model's config and what the held-out text and the anchor's blocks were."""
        self.tokenizer.save_pretrained(folder)
        self.unwrapped.config.save_pretrained(folder)
        if self.electra is not None:  # search scores an ELECTRA supernet's children by detection
            self.electra.save(folder / GENERATOR_FOLDER, self.accelerator.unwrap_model)
        write_json_atomic(folder / CHECKPOINT_SCORING, {"held_out_skipped_blocks": self.skipped_blocks,
                                                        HELD_OUT_RECORD: self.held_out_text})

    def _reduce_local_tokens(self) -> int:
        tokens = torch.tensor(self.local_tokens, device=self.accelerator.device)
        self.local_tokens = 0
        return int(self.accelerator.reduce(tokens, reduction="sum").item())

    # -- finish ------------------------------------------------------------------------------------------------
    def _reference_scores(self) -> dict:
        """What the final score is to be read against, on the same masked tokens: a model of token frequencies
        only (the unigram baseline; with ELECTRA the constant answer "kept", the base rate) and, for a supernet, a
        random child inside the budget."""
        if self.electra is None:
            unigram = unigram_baseline(unigram_sample(self.train_set), self.held_out, len(self.tokenizer))
            scores = {"unigram_loss": unigram.loss, "unigram_accuracy": unigram.accuracy}
        else:  # detection's counterpart: the constant answer "kept" on the same corrupted tokens
            share = evaluate_mlm(self.unwrapped, self.eval_dataloader, self.accelerator,
                                 example_sums=self.electra.base_rate_sums)
            scores = {"replaced_share": share.loss, "base_rate_loss": base_rate_loss(share.loss),
                      "base_rate_accuracy": share.accuracy}
        child = self.strategy.random_child()
        if child is not None:
            random_score = self.score(self.eval_dataloader, child)
            scores |= {"random_child_arch": child, "random_child_loss": random_score.loss,
                       "random_child_accuracy": random_score.accuracy}
        return scores

    def finish(self) -> PretrainResult:
        """Score the strategy's final arch on the held-out set, save the model, write ``all_results.json`` last."""
        accelerator, state, strategy = self.accelerator, self.state, self.strategy
        score = self.score(self.eval_dataloader, strategy.eval_arch() if strategy.is_supernet else None,
                           progress=True, desc="Held-out MLM" if self.electra is None else "Held-out detection")
        tokens = state.train_tokens + self._reduce_local_tokens()
        scores = score.as_dict()
        if self.electra is not None:  # a detection loss has no perplexity
            scores.pop("eval_perplexity")
        results = {**scores, "objective": self.args.objective, "eval_arch": strategy.eval_arch(),
                   "train_steps": state.completed_steps,
                   "train_tokens": tokens, "train_seconds": state.train_seconds,
                   "train_tokens_per_second": tokens / state.train_seconds if state.train_seconds else None,
                   "num_processes": accelerator.num_processes,
                   "sampler": strategy.name if strategy.is_supernet else None,
                   "num_parameters": self.unwrapped.num_parameters(),
                   "anchor_swaps": len(strategy.history) if strategy.uses_anchor else None,
                   "anchor_eval_blocks": len(self.anchor_blocks) if strategy.uses_anchor else None,
                   "anchor_precision": self.loss.anchor_precision,
                   "teacher_precision": None if self.teacher is None else self.teacher.precision,
                   "held_out_skipped_blocks": self.skipped_blocks, HELD_OUT_RECORD: self.held_out_text,
                   **strategy.results(),
                   **self._reference_scores()}
        if self.probe is not None:  # over the whole log: a resumed run counts the steps before its checkpoint too
            results |= {"probe_interference_steps": self.args.probe_interference_steps,
                        **computed_on_main(accelerator, lambda: probe_means(read_jsonl(self.output / TRAIN_LOG)))}
        if self.args.with_tracking:
            accelerator.log({k: v for k, v in results.items() if isinstance(v, float)}, step=state.completed_steps)
            accelerator.end_training()
        final = accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)  # no autocast wrapper on the saved
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if self.electra is not None:
                self.electra.save(self.output / GENERATOR_FOLDER, accelerator.unwrap_model)
            _save_final(final, self.tokenizer, self.output, results, strategy.history)
            self.run_folder.commit()
        accelerator.wait_for_everyone()
        accelerator.print(results_table(results))
        return PretrainResult(final, results, self.archs, list(strategy.history))


def pretrain(args: PretrainArguments) -> PretrainResult:
    """Run every phase of :class:`PretrainRecipe`."""
    return run_recipe(PretrainRecipe(args))


def run_recipe(recipe: PretrainRecipe) -> PretrainResult:
    """Every phase of ``recipe`` (a :class:`PretrainRecipe` or a subclass), its output folder released at the end
    even after a failure."""
    try:
        recipe.setup_inputs()
        recipe.setup_training()
        recipe.train()
        return recipe.finish()
    except InputError:
        recipe.abandon()
        raise
    finally:
        recipe.close()


def _prepare_output_dir(output: Path, resume: Path | None, completed_steps: int) -> None:
    """Fresh run: the folder is new (:class:`RunFolder`). Resume: keep the log up to the checkpoint (taken from the
    checkpoint's own run when that is another folder), drop checkpoints of the abandoned steps after it and the
    staging folders of checkpoints a killed run never finished."""
    output.mkdir(parents=True, exist_ok=True)
    if resume is None:
        return
    (output / RESULTS).unlink(missing_ok=True)
    source = resume.parent / TRAIN_LOG if (resume.parent / TRAIN_LOG).is_file() else output / TRAIN_LOG
    write_jsonl_atomic(output / TRAIN_LOG, [r for r in read_jsonl(source) if r["step"] <= completed_steps])
    for later in list_checkpoints(output):
        info = later / "checkpoint.json"
        if info.is_file() and json.loads(info.read_text())["completed_steps"] > completed_steps:
            shutil.rmtree(later)
    remove_dead_staging(output)


def _save_final(model, tokenizer, output: Path, results: dict, history: list[dict]) -> None:
    """Model and tokenizer files, each moved in when complete; all_results.json last (the done marker)."""
    staging = staging_dir(output / "final")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for file in staging.iterdir():
        file.replace(output / file.name)
    staging.rmdir()
    write_jsonl_atomic(output / ANCHOR_LOG, history)
    write_json_atomic(output / RESULTS, results)


def results_table(results: dict) -> str:
    """The first screen: the scored arch against a random child and the unigram baseline on the same tokens."""
    rows = [("", "RTD loss" if results.get("objective") == "electra" else "MLM loss", "accuracy", "arch")]

    def row(name: str, loss: float, accuracy: float, arch) -> None:
        rows.append((name, f"{loss:.4f}", f"{accuracy:.4f}", " ".join(arch or [])))

    scored = "final anchor" if results["anchor_swaps"] is not None else "scored arch"
    row(scored, results["eval_loss"], results["eval_accuracy"], results["eval_arch"])
    if "random_child_arch" in results:
        row("a random child", results["random_child_loss"], results["random_child_accuracy"],
            results["random_child_arch"])
    electra = results.get("objective") == "electra"
    if not electra:
        row("unigram baseline", results["unigram_loss"], results["unigram_accuracy"], ["(token frequencies only)"])
    elif "base_rate_loss" in results:
        row("base rate", results["base_rate_loss"], results["base_rate_accuracy"], ['("kept" for every token)'])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() for r in rows]
    if electra:
        share = results.get("replaced_share")
        first = "replaced-token detection over every real token" + \
            (f" ({share:.1%} replaced by the generator's samples); " if share is not None else "; ")
    else:
        ratio = results["eval_accuracy"] / results["unigram_accuracy"] if results["unigram_accuracy"] else float("inf")
        first = f"accuracy {ratio:.2f}x the unigram baseline; perplexity {results['eval_perplexity']:.2f}; "
    lines.append(first + f"{results['train_steps']} steps, {results['train_tokens_per_second'] or 0:,.0f} train "
                 "tokens/s"
                 + (f"; {results['anchor_swaps']} anchor swaps in {results.get('anchor_checks')} checks, anchor "
                    f"forward in {results.get('anchor_precision')}"
                    if results["anchor_swaps"] is not None else ""))
    return ("held-out detection loss and accuracy\n" if electra else "held-out MLM loss and accuracy\n") + \
        "\n".join(lines)


__all__ = ["NonFiniteLossError", "PretrainRecipe", "PretrainResult", "pretrain", "results_table", "run_recipe"]
