"""Pieces shared by the recipes that read a trained supernet (search, interference analysis, rank correlation):
the held-out text options, the output-folder check, and publishing outputs through a staging folder."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import datasets

from .data import held_out_blocks, load_held_out_text


def add_held_out_arguments(parser: argparse.ArgumentParser) -> None:
    """The held-out text options (default: the embedded synthetic corpus's held-out documents for ``--seed``)."""
    group = parser.add_argument_group("held-out text (default: the embedded corpus's held-out documents)")
    group.add_argument("--validation_file", help="local held-out text (.txt, .csv, .json/.jsonl, .parquet)")
    group.add_argument("--dataset_name", help="a Hub dataset (e.g. wikitext)")
    group.add_argument("--dataset_config_name")
    group.add_argument("--validation_split", default="validation")
    group.add_argument("--text_column_name")
    group.add_argument("--tokenizer_name", help="default: the tokenizer saved with the supernet")
    group.add_argument("--max_seq_length", type=int, default=128)
    group.add_argument("--mlm_probability", type=float, default=0.15)


def held_out_from_args(args: argparse.Namespace, tokenizer) -> datasets.Dataset:
    """Held-out blocks, masked once with ``args.seed``: the same blocks and masks on every call and every rank."""
    text = load_held_out_text(args.dataset_name, args.dataset_config_name, args.validation_file,
                              args.validation_split, seed=args.seed)
    return held_out_blocks(text, tokenizer, args.max_seq_length, args.mlm_probability, args.seed,
                           args.text_column_name)


def check_output_dir(output_dir: str, overwrite: bool) -> Path:
    output = Path(output_dir)
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ValueError(f"--output_dir {output} exists and is not empty; pass --overwrite_output_dir to replace it.")
    return output


def check_supernet_dir(path: str) -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"--supernet {path!r} is not a saved supernet (no config.json there).")
    return folder


def publish(output: Path, write: Callable[[Path], None]) -> None:
    """``write(staging)`` fills a staging folder next to ``output``, which then replaces ``output`` whole."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".tmp-{output.name}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    write(staging)
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)


__all__ = ["add_held_out_arguments", "check_output_dir", "check_supernet_dir", "held_out_from_args", "publish"]
