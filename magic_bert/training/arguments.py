"""The options of ``recipes/pretrain.py``: transformers' ``run_mlm_no_trainer.py`` names plus the NAS ones.

One dataclass, parsed with ``HfArgumentParser``; ``--config FILE`` (YAML or JSON) holds the same options as keys,
and flags given on the command line win over the file.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from transformers import HfArgumentParser
from transformers.trainer_utils import SchedulerType

from ..configuration_magic_bert import PRESETS
from .samplers import SAMPLERS


def _opt(default, help: str, **metadata):
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class PretrainArguments:
    # Data
    dataset_name: str | None = _opt(None, "Dataset on the Hub (e.g. wikitext).")
    dataset_config_name: str | None = _opt(None, "Its configuration (e.g. wikitext-103-raw-v1).")
    train_file: str | None = _opt(None, "Local training text: .txt, .csv, .json/.jsonl or .parquet.")
    validation_file: str | None = _opt(None, "Local held-out text (same formats).")
    text_column_name: str | None = _opt(None, "Column holding the text (default: 'text', else the first column).")
    validation_split_percentage: int = _opt(5, "Percent of the training data held out when there is no validation "
                                               "split.")
    synthetic_documents: int = _opt(2000, "Documents of the embedded synthetic corpus (used when no data is given).")
    max_seq_length: int | None = _opt(None, "Block length after grouping (default: min(128, the model's maximum)).")
    mlm_probability: float = _opt(0.15, "Fraction of tokens masked.")
    preprocessing_num_workers: int | None = _opt(None, "Processes for tokenisation.")
    overwrite_cache: bool = _opt(False, "Recompute the tokenised datasets instead of reusing the cache.")
    max_eval_samples: int | None = _opt(None, "Cap on held-out blocks for the final evaluation.")
    # Tokenizer and model
    tokenizer_name: str | None = _opt(None, "BERT-style tokenizer (Hub id or path). Without it, a WordPiece "
                                            "tokenizer of --vocab_size is trained on the training text.")
    vocab_size: int | None = _opt(None, "Size of the trained tokenizer (default: the preset's vocab_size).")
    preset: str = _opt("tiny", "Search space preset.", choices=sorted(PRESETS))
    config_name: str | None = _opt(None, "A MagicBertConfig (path or Hub id) instead of --preset.")
    arch: str | None = _opt(None, "Train this single fixed architecture instead of the supernet: an arch.json file, "
                                  "a JSON list, or op names separated by spaces/commas.")
    init_from_bert: str | None = _opt(None, "Initialise from a BertForMaskedLM (path or Hub id) of the same size.")
    teacher_name_or_path: str | None = _opt(None, "Masked-LM teacher to distil (must share the tokenizer's "
                                                  "vocabulary).")
    kd_weight: float = _opt(0.5, "With a teacher: loss = (1 - kd_weight) * MLM + kd_weight * KD.")
    kd_temperature: float = _opt(1.0, "Softmax temperature of the distillation KL.")
    # Sampling (supernet only)
    sampler: str | None = _opt(None, "Child sampler (default spos).", choices=list(SAMPLERS))
    max_params: float | None = _opt(None, "Sample only children with at most this many parameters (e.g. 60e6).")
    min_params: float | None = _opt(None, "... and at least this many.")
    anchor_arch: str | None = _opt(None, "MAGIC-A/AT initial anchor (same forms as --arch). Default: the BERT-like "
                                         "child [largest mha, largest ffn] * L/2, shrunk into the budget.")
    anchor_eval_steps: int = _opt(50, "MAGIC-A/AT: compare the current child with the anchor every N steps.")
    anchor_eval_samples: int = _opt(256, "Held-out blocks used for anchor comparisons.")
    align_hidden_weight: float = _opt(1.0, "MAGIC-A/AT: weight of the per-layer hidden-state MSE to the anchor.")
    align_logits_weight: float = _opt(1.0, "MAGIC-A/AT: weight of the T^2-scaled KL to the anchor's predictions.")
    align_temperature: float = _opt(1.0, "MAGIC-A/AT: temperature of that KL.")
    # Optimisation (run_mlm_no_trainer names)
    per_device_train_batch_size: int = _opt(16, "Batch size per device for training.")
    per_device_eval_batch_size: int = _opt(32, "Batch size per device for evaluation.")
    learning_rate: float = _opt(5e-4, "Peak learning rate (AdamW).")
    weight_decay: float = _opt(0.01, "AdamW weight decay (not on biases and LayerNorm weights).")
    max_grad_norm: float = _opt(1.0, "Gradient clipping (0 disables).")
    num_train_epochs: int = _opt(3, "Epochs, when --max_train_steps is not given.")
    max_train_steps: int | None = _opt(None, "Total optimizer steps (overrides --num_train_epochs).")
    gradient_accumulation_steps: int = _opt(1, "Micro-batches per optimizer step (one child per optimizer step).")
    lr_scheduler_type: SchedulerType = _opt("linear", "Learning-rate schedule.")
    num_warmup_steps: int = _opt(0, "Warm-up steps.")
    gradient_checkpointing: bool = _opt(False, "Recompute activations in the backward pass to save memory.")
    seed: int = _opt(42, "Seed of initialisation, data order, masking and the child sequence.")
    # Output, checkpoints, tracking
    output_dir: str | None = _opt(None, "Where the model, tokenizer, logs and checkpoints go (required).")
    overwrite_output_dir: bool = _opt(False, "Start afresh in a non-empty --output_dir (removes its old "
                                             "checkpoints and logs).")
    checkpointing_steps: str | None = _opt(None, "Save the training state every N steps, or 'epoch'.")
    checkpoints_total_limit: int | None = _opt(None, "Keep only the newest N checkpoints.")
    resume_from_checkpoint: str | None = _opt(None, "'latest' (newest checkpoint in --output_dir) or a checkpoint "
                                                    "folder.")
    logging_steps: int = _opt(10, "Log to trackers every N steps (train_log.jsonl has every step).")
    with_tracking: bool = _opt(False, "Log to experiment trackers.")
    report_to: str = _opt("all", "Trackers: 'all', or a comma-separated list (tensorboard, wandb, ...).")

    @property
    def is_supernet(self) -> bool:
        return self.arch is None


def _config_file_values(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--config {path!r} does not exist.")
    text = file.read_text()
    if file.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text) or {}
    elif file.suffix == ".json":
        values = json.loads(text)
    else:
        raise ValueError(f"--config {path!r}: use a .yaml, .yml or .json file.")
    if not isinstance(values, dict):
        raise ValueError(f"--config {path!r} must hold a mapping of option names to values.")
    known = {f.name for f in fields(PretrainArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"--config {path!r} has unknown options {unknown}; allowed: {sorted(known)}.")
    return values


def _as_flags(values: dict) -> list[str]:
    """Config-file values as command-line flags, so argparse converts and checks them like typed-in ones."""
    flags = []
    for name, value in values.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        flags += [f"--{name}", text]
    return flags


def parse_pretrain_args(argv: list[str] | None = None) -> PretrainArguments:
    """Parse the command line (and ``--config FILE``; the command line wins)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(PretrainArguments, description="Pre-train a MagicBert supernet or a fixed arch.")
    parser.add_argument("--config", help="YAML/JSON file of these options (command-line flags win).")
    file_flags = []
    if known.config:
        try:
            file_flags = _as_flags(_config_file_values(known.config))
        except ValueError as error:
            parser.error(str(error))
    # File values first: argparse keeps the last occurrence, so flags typed on the command line win.
    args, _ = parser.parse_args_into_dataclasses(args=file_flags + rest)
    return args


__all__ = ["PretrainArguments", "parse_pretrain_args"]
