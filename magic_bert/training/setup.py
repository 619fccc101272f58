"""The setup phases of pre-training, each given only its own argument group: the accelerator (optimisation, run),
the text, tokenizer and blocks (data), the config and model (model), the strategy (strategy), the teacher (loss),
the optimizer and schedule (optimisation). Everything that can fail on bad input raises
:class:`~magic_bert.errors.InputError` before anything is written, on every rank (an error found on the main process
alone is broadcast, so no rank is left waiting in a collective).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from transformers import AutoConfig, AutoTokenizer, BertTokenizer, get_scheduler

from ..bert_interop import _check_matches_bert
from ..compression import space_from_bert, supernet_from_bert
from ..configuration_magic_bert import MagicBertConfig
from ..data import (
    DATA_FILE_TYPES,
    check_data_file,
    check_has_text,
    held_out_blocks,
    load_text_datasets,
    mask_once,
    text_column,
    tokenize_and_group,
    train_wordpiece_tokenizer,
)
from ..errors import (
    InputError,
    as_flags,
    check_config_json,
    check_local_path,
    check_tokenizer_folder,
    check_weight_files,
    invalid_value,
    load_user_file,
)
from ..io_utils import check_output_dir
from ..modeling_magic_bert import MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from ..optim import adamw_parameter_groups
from ..ranks import computed_on_main, main_process_first
from ..streaming import load_streaming_text, rank_blocks, tokenizer_texts
from .arguments import (
    DataArguments,
    LossArguments,
    ModelArguments,
    OptimizationArguments,
    PretrainArguments,
    RunArguments,
    StrategyArguments,
)
from .checkpointing import resolve_resume_path
from .strategies import SamplerStrategy, build_strategy
from .teacher import Teacher, load_teacher_model

# What must not change between a checkpoint and the run that resumes it (or batches, masks and children differ).
RESUME_SETTINGS = ("arch", "preset", "config_name", "init_from_bert", "sampler", "seed", "per_device_train_batch_size",
                   "gradient_accumulation_steps", "max_seq_length", "mlm_probability", "max_params", "min_params",
                   "max_encoder_params", "min_encoder_params", "teacher_name_or_path", "kd_hidden_weight",
                   "kd_embedding_weight",
                   "num_processes", "streaming", "shuffle_buffer_size", "held_out_documents", "anchor_eval_file",
                   "anchor_eval_samples", "anchor_swap_margin", "objective", "generator_arch", "rtd_weight")


def check_inputs(args: PretrainArguments) -> Path | None:
    """The cheap checks (the arguments' own, data files, the resume point, the output folder); returns the
    checkpoint to resume from."""
    args.check()
    check_data_file(args.train_file, "train_file")
    check_data_file(args.validation_file, "validation_file")
    check_data_file(args.anchor_eval_file, "anchor_eval_file")
    for name in ("tokenizer_name", "config_name", "init_from_bert", "teacher_name_or_path"):
        what = f"`{name}` {getattr(args, name)!r}"
        check_local_path(getattr(args, name), what)  # not "not in the Hub cache"
        if name != "tokenizer_name":  # a config.json holding a list, say
            check_config_json(getattr(args, name), what)
    resume = resolve_resume_path(args.resume_from_checkpoint, args.output_dir)
    if resume is not None:  # a garbage or truncated model.safetensors: one line now, not a traceback in load_state
        check_weight_files(resume, f"`resume_from_checkpoint` {str(resume)!r}")
    check_output_dir(args.output_dir, args.overwrite_output_dir or resume is not None, OUTPUT_HINT,
                     inputs=None if resume is not None else pretrain_inputs(args))
    return resume


OUTPUT_HINT = " (kept aside until the new run succeeds) or `resume_from_checkpoint` latest to continue"


def pretrain_inputs(args: PretrainArguments) -> dict[str, str | None]:
    """The local paths a fresh run reads, which its output folder must not hold (resuming writes there on purpose)."""
    return {name: getattr(args, name) for name in ("train_file", "validation_file", "tokenizer_name", "config_name",
                                                   "init_from_bert", "teacher_name_or_path", "arch", "anchor_arch",
                                                   "anchor_eval_file")}


def make_accelerator(optim: OptimizationArguments, run: RunArguments) -> Accelerator:
    accelerator = Accelerator(
        gradient_accumulation_steps=optim.gradient_accumulation_steps,
        log_with=(None if not run.with_tracking else "all" if run.report_to == "all" else run.report_to.split(",")),
        project_dir=run.output_dir,
        # Data order is a function of (seed, epoch): a resumed run sees the same batches as an uninterrupted one.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=run.seed),
        # A step trains one child: the other ops get no gradient.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if not accelerator.is_local_main_process:  # one set of progress bars and warnings, as run_mlm_no_trainer
        datasets.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()
    return accelerator


def load_training_text(data: DataArguments, seed: int) -> datasets.DatasetDict | dict:
    """The raw splits, each holding some text: blank text would give special tokens only (a 5-token vocabulary and
    a NaN loss), so it is refused naming its file or dataset. With ``streaming``, a dict of the training stream, the
    held-out text and the text column (:func:`magic_bert.streaming.load_streaming_text`)."""
    if data.streaming:
        return load_streaming_text(data)
    raw = load_text_datasets(data.dataset_name, data.dataset_config_name, data.train_file, data.validation_file,
                             data.validation_split_percentage, data.synthetic_documents, seed=seed)
    for split, dataset in raw.items() if data.train_file or data.dataset_name else ():  # the embedded corpus has text
        if data.train_file is None:
            source = f"`dataset_name` {data.dataset_name!r} (its {split} split)"
        elif split == "validation" and data.validation_file is not None:
            source = f"`validation_file` {data.validation_file!r}"
        else:
            source = f"`train_file` {data.train_file!r}" + (
                f" (the {data.validation_split_percentage}% held out for validation)" if split == "validation" else "")
        check_has_text(dataset, text_column(dataset, data.text_column_name), source)
    return raw


def base_config(model: ModelArguments, resume: Path | None = None) -> MagicBertConfig:
    """``config_name``, else ``preset``, else the space around ``init_from_bert`` (resumed: with the ops the checkpoint
    was trained with), else the ``tiny`` preset."""
    if model.config_name is not None:
        return load_user_file(f"`config_name` {model.config_name!r}",
                              lambda: MagicBertConfig.from_pretrained(model.config_name))
    if model.preset is None and model.init_from_bert is not None:
        what = f"`init_from_bert` {model.init_from_bert!r}"
        with invalid_value(what):
            ops = None if resume is None else resumed_space_ops(resume, model.init_from_bert)
            return load_user_file(what, lambda: space_from_bert(model.init_from_bert, ops=ops, what=what))
    return MagicBertConfig.from_preset(model.preset or "tiny")


def resumed_space_ops(resume: Path, bert: str) -> list[str]:
    """The candidate ops of the space a checkpoint was trained in: recorded in its settings; a checkpoint written
    before they were recorded comes from the default space as it was then, without ``heads:<k>``."""
    info = resume / "checkpoint.json"
    recorded = load_user_file(f"`resume_from_checkpoint` {str(resume)!r}",
                              lambda: json.loads(info.read_text())).get("settings", {}) if info.is_file() else {}
    if recorded.get("candidate_ops"):
        return list(recorded["candidate_ops"])
    space = space_from_bert(bert, what=f"`init_from_bert` {bert!r}")
    return [op for op in space.candidate_ops if not op.startswith("heads:")]


def build_tokenizer(data: DataArguments, raw: datasets.DatasetDict, accelerator: Accelerator, resume: Path | None,
                    default_vocab_size: int):
    """The given tokenizer, the one saved in the checkpoint, or a WordPiece trained on the main process and shared."""
    if data.tokenizer_name is not None:
        check_tokenizer_folder(data.tokenizer_name, f"`tokenizer_name` {data.tokenizer_name!r}")
        return load_user_file(f"`tokenizer_name` {data.tokenizer_name!r}",
                              lambda: AutoTokenizer.from_pretrained(data.tokenizer_name))
    if resume is not None and (resume / "tokenizer_config.json").is_file():
        return load_user_file(f"`resume_from_checkpoint` {str(resume)!r} (its tokenizer)",
                              lambda: AutoTokenizer.from_pretrained(resume))

    def train() -> dict:
        texts = (tokenizer_texts(raw, data.tokenizer_train_documents) if data.streaming
                 else raw["train"][text_column(raw["train"], data.text_column_name)])
        return train_wordpiece_tokenizer(texts, data.vocab_size or default_vocab_size).get_vocab()

    vocab = computed_on_main(accelerator, train)  # trained once, on the main process, and sent to every rank
    if data.vocab_size is not None and len(vocab) < data.vocab_size:  # a clamp, said (the default is said nowhere)
        accelerator.print(as_flags(f"warning: `vocab_size` {data.vocab_size} is more than the training text gives: its "
                                   f"characters, words and word pieces make {len(vocab)} tokens, the vocabulary."))
    return BertTokenizer(vocab=dict(sorted(vocab.items(), key=lambda item: item[1])))


def build_config(model: ModelArguments, tokenizer, resume: Path | None = None) -> MagicBertConfig:
    """The supernet config: preset (or ``config_name``) with the tokenizer's vocabulary and padding id."""
    config = base_config(model, resume).with_arch(None)
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    return config


def check_same_vocabulary(vocab_size: int, name: str, tokenizer, param: str) -> None:
    """A model to distil or import must predict over the tokenizer's vocabulary (size, and ids when it has one)."""
    if vocab_size != len(tokenizer):
        raise InputError(f"`{param}` {name!r} has a vocabulary of {vocab_size} tokens but the tokenizer has "
                         f"{len(tokenizer)}; pass `tokenizer_name` {name} so both share a vocabulary.")
    try:
        other = AutoTokenizer.from_pretrained(name).get_vocab()
    except (OSError, ValueError):
        return  # no tokenizer next to it: the size check is all we can do
    if other != tokenizer.get_vocab():
        raise InputError(f"`{param}` {name!r} has a different vocabulary from the tokenizer in use; "
                         f"pass `tokenizer_name` {name}.")


def load_teacher(loss: LossArguments, tokenizer) -> Teacher | None:
    """The teacher (with or without an MLM head), which must share the tokenizer's vocabulary."""
    if loss.teacher_name_or_path is None:
        return None
    check_weight_files(loss.teacher_name_or_path, f"`teacher_name_or_path` {loss.teacher_name_or_path!r}")
    teacher = load_teacher_model(loss.teacher_name_or_path)
    check_same_vocabulary(teacher.model.config.vocab_size, teacher.name, tokenizer, "teacher_name_or_path")
    return teacher


def check_init_from_bert(model: ModelArguments, tokenizer) -> None:
    """The BERT exists, shares the tokenizer's vocabulary and fits the space (sizes, sublayers, its own ops)."""
    name = model.init_from_bert
    if name is None:
        return
    bert_config = load_user_file(f"`init_from_bert` {name!r}", lambda: AutoConfig.from_pretrained(name))
    check_weight_files(name, f"`init_from_bert` {name!r}")  # loaded only after the held-out blocks are built
    check_same_vocabulary(bert_config.vocab_size, name, tokenizer, "init_from_bert")
    with invalid_value(f"`init_from_bert` {name!r} does not fit the search space (drop `preset` / `config_name` "
                       "for a space built around it)"):
        _check_matches_bert(build_config(model, tokenizer), bert_config)


def setup_strategy(strategy: StrategyArguments, config: MagicBertConfig, seed: int) -> SamplerStrategy:
    """The run's sampler strategy (a bad arch, anchor or budget is an InputError naming that value)."""
    return build_strategy(strategy, config.search_space, seed)


def max_seq_length_for(data: DataArguments, config: MagicBertConfig) -> int:
    length = data.max_seq_length or min(128, config.max_position_embeddings)
    if length > config.max_position_embeddings:
        raise InputError(f"`max_seq_length` {length} exceeds the model's max_position_embeddings "
                         f"{config.max_position_embeddings}.")
    return length


def build_blocks(data: DataArguments, raw: datasets.DatasetDict, tokenizer, max_seq_length: int,
                 accelerator: Accelerator, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Training blocks (without token types) and the held-out blocks, masked once with ``seed``. With
    ``streaming`` the training blocks are this rank's share of the stream, made lazily."""
    if data.streaming:
        return streaming_blocks(data, raw, tokenizer, max_seq_length, accelerator, seed)

    def make() -> tuple[datasets.DatasetDict, datasets.Dataset]:
        blocks = tokenize_and_group(raw, tokenizer, max_seq_length, data.text_column_name,
                                    data.preprocessing_num_workers, not data.overwrite_cache)
        return blocks, mask_once(blocks["validation"], tokenizer, data.mlm_probability, seed=seed)

    blocks, held_out = main_process_first(accelerator, make)
    train = blocks["train"].remove_columns([c for c in blocks["train"].column_names if c == "token_type_ids"])
    return train, held_out


def streaming_blocks(data: DataArguments, raw: dict, tokenizer, max_seq_length: int, accelerator: Accelerator,
                     seed: int) -> tuple[datasets.IterableDataset, datasets.Dataset]:
    """This rank's stream of training blocks and the held-out blocks (not streamed; made on the main process
    first, then found in the cache by the others)."""
    held_out = main_process_first(accelerator, lambda: held_out_blocks(
        raw["validation"], tokenizer, max_seq_length, data.mlm_probability, seed, data.text_column_name))
    train = rank_blocks(raw, tokenizer, max_seq_length, seed, data.shuffle_buffer_size, accelerator.process_index,
                        accelerator.num_processes)
    return train, held_out


def split_anchor_blocks(strategy: StrategyArguments, data: DataArguments, uses_anchor: bool,
                        held_out: datasets.Dataset, tokenizer, max_seq_length: int, accelerator: Accelerator,
                        seed: int) -> tuple[datasets.Dataset, datasets.Dataset, int]:
    """``(anchor blocks, final blocks, validation blocks skipped)``: the anchor checks score their own blocks, the
    first ``anchor_eval_samples`` of ``anchor_eval_file``, else of the validation blocks (at most half of them, at
    least 2), which the final score then skips. The final blocks are capped at ``max_eval_samples``. Without an
    anchor, every validation block is final (the anchor loader, never iterated, gets them too)."""
    skipped = 0
    if not uses_anchor:
        anchor = held_out
    elif strategy.anchor_eval_file is not None:
        anchor = main_process_first(accelerator, lambda: anchor_file_blocks(strategy.anchor_eval_file, data,
                                                                            tokenizer, max_seq_length, seed))
        anchor = anchor.select(range(min(strategy.anchor_eval_samples, len(anchor))))
    else:  # at most half of the blocks, but the 2 a paired standard error needs; 1 at least is left to score
        skipped = min(strategy.anchor_eval_samples, max(2, len(held_out) // 2))
        if skipped >= len(held_out):
            raise InputError(f"The validation set has {len(held_out)} block(s): the anchor checks need 2 of their own "
                             "and the final score 1 more; pass more validation text or an `anchor_eval_file`.")
        anchor, held_out = held_out.select(range(skipped)), held_out.select(range(skipped, len(held_out)))
    if uses_anchor:
        _check_anchor_blocks(anchor, strategy, len(held_out) + skipped)
    if data.max_eval_samples is not None:
        held_out = held_out.select(range(min(data.max_eval_samples, len(held_out))))
    return anchor, held_out, skipped


def anchor_file_blocks(path: str, data: DataArguments, tokenizer, max_seq_length: int,
                       seed: int) -> datasets.Dataset:
    """``anchor_eval_file`` as held-out blocks, masked once with ``seed`` (as the validation blocks are)."""
    text = load_user_file(f"`anchor_eval_file` {path!r}", lambda: datasets.load_dataset(
        DATA_FILE_TYPES[Path(path).suffix], data_files={"validation": path})["validation"])
    check_has_text(text, text_column(text, data.text_column_name), f"`anchor_eval_file` {path!r}")
    # Its own split name, so that too short a file is refused naming it.
    blocks = tokenize_and_group(datasets.DatasetDict({f"`anchor_eval_file` {path!r}": text}), tokenizer,
                                max_seq_length, data.text_column_name)
    return mask_once(next(iter(blocks.values())), tokenizer, data.mlm_probability, seed=seed)


def _check_anchor_blocks(anchor: datasets.Dataset, strategy: StrategyArguments, validation_blocks: int) -> None:
    """A paired standard error needs at least 2 anchor blocks with masked tokens."""
    scored = sum(any(label != -100 for label in labels) for labels in anchor["labels"])
    if scored < 2:
        source = (f"`anchor_eval_file` {strategy.anchor_eval_file!r}" if strategy.anchor_eval_file is not None
                  else f"the validation set ({validation_blocks} blocks; the anchor takes at most half, at least 2)")
        raise InputError(f"The anchor checks need at least 2 held-out blocks with masked tokens; {source} gives "
                         f"{scored}. Pass more text (`anchor_eval_file` or `validation_file`) or raise "
                         "`anchor_eval_samples`.")


def build_model(model: ModelArguments, config: MagicBertConfig, arch: list[str] | None,
                batches: Iterable[dict] | None = None, accelerator: Accelerator | None = None) -> torch.nn.Module:
    """The supernet (``arch=None``) or one fixed model, fresh or from ``init_from_bert``: then every candidate op
    starts from the BERT (``inherit`` ranks FFN neurons; ``importance`` on ``batches``, the held-out blocks, ranked
    on the main process of ``accelerator``)."""
    if model.init_from_bert is not None:
        supernet = supernet_from_bert(model.init_from_bert, config, model.inherit, batches, accelerator)
        built = supernet if arch is None else supernet.export(arch)
    else:
        built = MagicBertSupernetForMaskedLM(config) if arch is None else MagicBertForMaskedLM(config.with_arch(arch))
    if model.gradient_checkpointing:
        built.gradient_checkpointing_enable()
    return built


def build_optimizer(optim: OptimizationArguments, model: torch.nn.Module, num_train_blocks: int,
                    num_processes: int) -> tuple[torch.optim.Optimizer, object, int]:
    """AdamW (no decay on biases and LayerNorm), the schedule, and the number of optimizer steps."""
    optimizer = torch.optim.AdamW(adamw_parameter_groups(model, optim.weight_decay), lr=optim.learning_rate)
    steps_per_epoch = math.ceil(math.ceil(num_train_blocks / (optim.per_device_train_batch_size * num_processes))
                                / optim.gradient_accumulation_steps)
    max_train_steps = optim.max_train_steps or optim.num_train_epochs * steps_per_epoch
    # The scheduler is stepped once per process per step under accelerate's prepared scheduler.
    warmup = optim.num_warmup_steps or int(optim.warmup_ratio * max_train_steps)
    scheduler = get_scheduler(optim.lr_scheduler_type, optimizer, num_warmup_steps=warmup * num_processes,
                              num_training_steps=max_train_steps * num_processes)
    return optimizer, scheduler, max_train_steps


def run_settings(args: PretrainArguments, num_processes: int, max_seq_length: int,
                 candidate_ops: list[str] | None = None) -> dict:
    """What a checkpoint may only be resumed under; ``candidate_ops``: the space's (a default space may change)."""
    settings = {name: getattr(args, name, None) for name in RESUME_SETTINGS}
    return settings | {"num_processes": num_processes, "max_seq_length": max_seq_length,
                       "sampler": None if args.arch is not None else (args.sampler or "spos"),
                       "candidate_ops": candidate_ops}


def check_resume_settings(resume: Path, settings: dict) -> None:
    """A checkpoint resumes only under the settings that produced it (else batches, masks and children differ)."""
    info = resume / "checkpoint.json"
    recorded = load_user_file(f"`resume_from_checkpoint` {str(resume)!r}",
                              lambda: json.loads(info.read_text())).get("settings", {}) if info.is_file() else {}
    changed = [f"{key}: checkpoint {recorded[key]!r}, now {value!r}" for key, value in settings.items()
               if key in recorded and recorded[key] != value]
    if changed:
        raise InputError(f"Cannot resume {resume} with different settings ({'; '.join(changed)}); rerun with the "
                         "checkpoint's settings.")


__all__ = ["base_config", "build_blocks", "build_config", "build_model", "build_optimizer", "build_tokenizer",
           "check_init_from_bert", "check_inputs", "check_resume_settings", "check_same_vocabulary", "load_teacher",
           "load_training_text", "make_accelerator", "max_seq_length_for",
           "run_settings", "setup_strategy", "split_anchor_blocks", "streaming_blocks"]
