"""Everything pre-training needs before its first step, checked: arguments, resume point, tokenizer, config, arch,
sampler and anchor, teacher. Any bad input raises :class:`InputError` (one message) before anything is written, on
every rank (an error found on the main process alone is broadcast, so no rank is left waiting in a collective).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from accelerate.utils import broadcast_object_list
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer, BertTokenizer

from ..configuration_magic_bert import MagicBertConfig
from ..data import SPECIAL_TOKENS, check_data_file, text_column, train_wordpiece_tokenizer
from ..modeling_magic_bert import MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from .arguments import PretrainArguments
from .checkpointing import resolve_resume_path

T = TypeVar("T")

# What must not change between a checkpoint and the run that resumes it (or batches, masks and children differ).
RESUME_SETTINGS = ("arch", "preset", "config_name", "sampler", "seed", "per_device_train_batch_size",
                   "gradient_accumulation_steps", "max_seq_length", "mlm_probability", "max_params", "min_params",
                   "num_processes")


class InputError(ValueError):
    """Bad input: the recipe prints the message alone (no traceback) and has written nothing."""


def load_or_explain(what: str, load: Callable[[], T]) -> T:
    """Run a Hub/local load; turn "not found"-style failures into one clear :class:`InputError`."""
    try:
        return load()
    except (OSError, ConnectionError, FileNotFoundError, ValueError) as error:
        raise InputError(f"{what}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def main_process_first(accelerator, fn: Callable[[], T]) -> T:
    """``fn()`` on the main process, then on the others; an :class:`InputError` on the main process is re-raised
    on every rank (instead of leaving them in a barrier)."""
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = fn()
        except ValueError as exc:
            error = str(exc)
    shared = [error]
    broadcast_object_list(shared)
    if shared[0] is not None:
        raise InputError(shared[0])
    return result if accelerator.is_main_process else fn()


def check_arguments(args: PretrainArguments) -> Path | None:
    """Cheap checks of every option that can be wrong; returns the checkpoint to resume from."""
    if args.output_dir is None:
        raise InputError("--output_dir is required.")
    if args.dataset_name is not None and args.train_file is not None:
        raise InputError("Pass either --dataset_name or --train_file, not both.")
    if args.validation_file is not None and args.train_file is None:
        raise InputError("--validation_file needs --train_file.")
    for flag, path in (("--train_file", args.train_file), ("--validation_file", args.validation_file)):
        try:
            check_data_file(path, flag)
        except ValueError as error:
            raise InputError(str(error)) from None
    if args.arch is not None and (args.sampler is not None or args.anchor_arch is not None):
        raise InputError("--arch trains one fixed architecture; --sampler and --anchor_arch apply to supernets only.")
    if args.anchor_arch is not None and args.sampler not in ("magic-a", "magic-at"):
        raise InputError(f"--anchor_arch needs --sampler magic-a or magic-at (got {args.sampler or 'spos'}).")
    at_least_one = {"per_device_train_batch_size": args.per_device_train_batch_size,
                    "per_device_eval_batch_size": args.per_device_eval_batch_size,
                    "gradient_accumulation_steps": args.gradient_accumulation_steps,
                    "anchor_eval_steps": args.anchor_eval_steps, "anchor_eval_samples": args.anchor_eval_samples,
                    "logging_steps": args.logging_steps, "num_train_epochs": args.num_train_epochs,
                    "max_train_steps": args.max_train_steps, "max_eval_samples": args.max_eval_samples,
                    "checkpoints_total_limit": args.checkpoints_total_limit,
                    "validation_split_percentage": args.validation_split_percentage,
                    "synthetic_documents": args.synthetic_documents}
    for name, value in at_least_one.items():
        if value is not None and value < 1:
            raise InputError(f"--{name} must be at least 1, got {value}.")
    positive = {"learning_rate": args.learning_rate, "kd_temperature": args.kd_temperature,
                "align_temperature": args.align_temperature}
    for name, value in positive.items():
        if not value > 0:
            raise InputError(f"--{name} must be positive, got {value}.")
    if args.max_seq_length is not None and args.max_seq_length < 8:
        raise InputError(f"--max_seq_length must be at least 8, got {args.max_seq_length}.")
    if args.vocab_size is not None and args.vocab_size <= len(SPECIAL_TOKENS):
        raise InputError(f"--vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {args.vocab_size}.")
    if not 0 < args.mlm_probability < 1:
        raise InputError(f"--mlm_probability must be in (0, 1), got {args.mlm_probability}.")
    if not 0 <= args.kd_weight <= 1:
        raise InputError(f"--kd_weight must be in [0, 1], got {args.kd_weight}.")
    if args.checkpointing_steps is not None and args.checkpointing_steps != "epoch" and not (
            str(args.checkpointing_steps).isdigit() and int(args.checkpointing_steps) > 0):
        raise InputError(f"--checkpointing_steps must be a positive integer or 'epoch', got "
                         f"{args.checkpointing_steps!r}.")
    try:
        resume = resolve_resume_path(args.resume_from_checkpoint, args.output_dir)
    except ValueError as error:
        raise InputError(str(error)) from None
    output = Path(args.output_dir)
    if resume is None and output.is_dir() and any(output.iterdir()) and not args.overwrite_output_dir:
        raise InputError(f"--output_dir {output} exists and is not empty; pass --overwrite_output_dir to start "
                         "afresh there or --resume_from_checkpoint latest to continue.")
    return resume


def run_settings(args: PretrainArguments, num_processes: int, max_seq_length: int) -> dict:
    settings = {name: getattr(args, name, None) for name in RESUME_SETTINGS}
    return settings | {"num_processes": num_processes, "max_seq_length": max_seq_length,
                       "sampler": None if args.arch is not None else (args.sampler or "spos")}


def check_resume_settings(resume: Path, settings: dict) -> None:
    """A checkpoint resumes only under the settings that produced it (else batches, masks and children differ)."""
    info = resume / "checkpoint.json"
    recorded = json.loads(info.read_text()).get("settings", {}) if info.is_file() else {}
    changed = [f"{key}: checkpoint {recorded[key]!r}, now {value!r}" for key, value in settings.items()
               if key in recorded and recorded[key] != value]
    if changed:
        raise InputError(f"Cannot resume {resume} with different settings ({'; '.join(changed)}); rerun with the "
                         "checkpoint's settings.")


def base_config(args: PretrainArguments) -> MagicBertConfig:
    if args.config_name is not None:
        return load_or_explain(f"--config_name {args.config_name!r}",
                               lambda: MagicBertConfig.from_pretrained(args.config_name))
    return MagicBertConfig.from_preset(args.preset)


def build_tokenizer(args: PretrainArguments, raw, accelerator, resume: Path | None):
    """The given tokenizer, the one saved in the checkpoint, or a WordPiece trained on the main process and shared."""
    if args.tokenizer_name is not None:
        return load_or_explain(f"--tokenizer_name {args.tokenizer_name!r}",
                               lambda: AutoTokenizer.from_pretrained(args.tokenizer_name))
    if resume is not None and (resume / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(resume)
    vocab_size = args.vocab_size or base_config(args).vocab_size

    vocab, error = None, None
    if accelerator.is_main_process:
        try:
            vocab = train_wordpiece_tokenizer(raw["train"][text_column(raw["train"], args.text_column_name)],
                                              vocab_size).get_vocab()
        except ValueError as exc:
            error = str(exc)
    shared = [error, vocab]
    broadcast_object_list(shared)  # one vocabulary on every rank (the trainer breaks ties in hash order)
    if shared[0] is not None:
        raise InputError(shared[0])
    vocab = shared[1]
    return BertTokenizer(vocab=dict(sorted(vocab.items(), key=lambda item: item[1])))


def build_config(args: PretrainArguments, tokenizer) -> MagicBertConfig:
    """The supernet config: preset (or --config_name) with the tokenizer's vocabulary and padding id."""
    config = base_config(args).with_arch(None)
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    return config


def check_same_vocabulary(vocab_size: int, name: str, tokenizer, flag: str) -> None:
    """A model to distil or import must predict over the tokenizer's vocabulary (size, and ids when it has one)."""
    if vocab_size != len(tokenizer):
        raise InputError(f"{flag} {name!r} has a vocabulary of {vocab_size} tokens but the tokenizer has "
                         f"{len(tokenizer)}; pass --tokenizer_name {name} so both share a vocabulary.")
    try:
        other = AutoTokenizer.from_pretrained(name).get_vocab()
    except (OSError, ValueError):
        return  # no tokenizer next to it: the size check is all we can do
    if other != tokenizer.get_vocab():
        raise InputError(f"{flag} {name!r} has a different vocabulary from the tokenizer in use; "
                         f"pass --tokenizer_name {name}.")


def load_teacher(args: PretrainArguments, tokenizer):
    name = args.teacher_name_or_path
    teacher = load_or_explain(f"--teacher_name_or_path {name!r}", lambda: AutoModelForMaskedLM.from_pretrained(name))
    check_same_vocabulary(teacher.config.vocab_size, name, tokenizer, "--teacher_name_or_path")
    return teacher


def check_init_from_bert(args: PretrainArguments, tokenizer) -> None:
    name = args.init_from_bert
    bert_config = load_or_explain(f"--init_from_bert {name!r}", lambda: AutoConfig.from_pretrained(name))
    check_same_vocabulary(bert_config.vocab_size, name, tokenizer, "--init_from_bert")


def build_model(args: PretrainArguments, config: MagicBertConfig, arch: list[str] | None):
    if args.init_from_bert is not None:
        supernet = MagicBertSupernetForMaskedLM.from_bert(args.init_from_bert, config=config)
        return supernet if arch is None else supernet.export(arch)
    return MagicBertSupernetForMaskedLM(config) if arch is None else MagicBertForMaskedLM(config.with_arch(arch))


__all__ = [
    "InputError",
    "build_config",
    "build_model",
    "build_tokenizer",
    "check_arguments",
    "check_init_from_bert",
    "check_resume_settings",
    "check_same_vocabulary",
    "load_or_explain",
    "load_teacher",
    "main_process_first",
    "run_settings",
]
