"""What the commands that read a trained supernet share (search, export, interference, rank correlation): loading the
supernet and its tokenizer, and the held-out text options with their blocks, masked once."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from .cli import arg, at_least, in_range
from .configuration_magic_bert import MagicBertSupernetConfig
from .data import (
    check_data_file,
    check_has_text,
    describe_synthetic,
    held_out_blocks,
    load_held_out_text,
    text_column,
)
from .errors import InputError, as_flags, check_tokenizer_folder, check_weight_files, invalid_value, load_user_file
from .held_out_record import CHECKPOINT_SCORING, RESULTS_KEY, describe, is_record, load_recorded
from .modeling_magic_bert import MagicBertSupernetForMaskedLM
from .optim import check_finite_weights
from .synthetic_corpus import DEFAULT_DOCUMENTS

DEFAULT_BLOCK_LENGTH = 128  # held-out blocks of a supernet that records no block length


@dataclass
class HeldOutArguments:
    """The held-out text children are scored on (default: the supernet's own, as pre-training recorded it)."""

    validation_file: str | None = arg(None, "Local held-out text (.txt, .csv, .json/.jsonl, .parquet). Default: the "
                                            "text the supernet held out in pre-training (all_results.json "
                                            "held_out_text), e.g. the embedded synthetic corpus's held-out documents.")
    dataset_name: str | None = arg(None, "A Hub dataset (e.g. wikitext).")
    dataset_config_name: str | None = arg(None, "Its configuration.")
    validation_split: str = arg("validation", "The dataset's split to score on.")
    text_column_name: str | None = arg(None, "Column holding the text (default: 'text', else the first column).")
    tokenizer_name: str | None = arg(None, "Default: the tokenizer saved with the supernet.")
    max_seq_length: int | None = arg(None, "Block length of the held-out text (default: the supernet's, as "
                                           f"pre-training recorded it, else {DEFAULT_BLOCK_LENGTH}).")
    mlm_probability: float = arg(0.15, "Fraction of tokens masked (once, with the seed).")
    skip_held_out_blocks: int | None = arg(None, "Skip the first N held-out blocks. Default: the validation blocks "
                                                 "the supernet's MAGIC-A/AT anchor checks used (all_results.json "
                                                 "held_out_skipped_blocks; the most over several supernets), so "
                                                 "children are not scored on the blocks that chose the anchor.")

    def check(self) -> None:
        at_least(8, max_seq_length=self.max_seq_length)
        at_least(0, skip_held_out_blocks=self.skip_held_out_blocks)
        in_range("mlm_probability", self.mlm_probability, 0, 1, "()")
        check_data_file(self.validation_file, "validation_file")

    def check_fits(self, config) -> None:
        """The blocks fit the supernet's position embeddings (checked once it is loaded, before any scoring)."""
        if self.max_seq_length is not None and self.max_seq_length > config.max_position_embeddings:
            raise InputError(f"`max_seq_length` {self.max_seq_length} exceeds the supernet's max_position_embeddings "
                             f"{config.max_position_embeddings}; pass at most that.")


def held_out(args: HeldOutArguments, tokenizer, seed: int, supernets: Sequence[str | Path] = ()) -> datasets.Dataset:
    """Held-out blocks, masked once with ``seed``: the same blocks and masks on every call and every rank. The text is
    ``validation_file`` / ``dataset_name``, else what the first of ``supernets`` that records it held out in
    pre-training (:func:`held_out_source`). The first ``skip_held_out_blocks`` are skipped (default: the most any of
    ``supernets`` reserved for its anchor checks); masks are drawn before skipping, so the blocks kept are masked as
    pre-training masked them."""
    skip = blocks_to_skip(args, supernets)
    source = held_out_source(args, seed, supernets)
    if source.note is not None:
        _note(source.note)
    text = source.load()
    explicit = _explicit_source(args)  # the user's text, named in errors (blank, or shorter than one block)
    if explicit is not None:
        check_has_text(text, text_column(text, source.text_column_name), explicit)
    blocks = held_out_blocks(text, tokenizer, source.max_seq_length, args.mlm_probability, seed,
                             source.text_column_name, explicit or "validation")
    if skip >= len(blocks):
        raise InputError(f"Skipping {skip} held-out blocks (`skip_held_out_blocks`, by default the supernet's anchor "
                         f"blocks) leaves none of the {len(blocks)} blocks of {source.description}; pass more "
                         "held-out text (`validation_file`) or a lower `skip_held_out_blocks`.")
    return blocks.select(range(skip, len(blocks))) if skip else blocks


@dataclass(frozen=True)
class HeldOutSource:
    """Where the held-out text comes from, before it is loaded."""

    description: str  # in words, for messages
    load: Callable[[], datasets.Dataset]
    max_seq_length: int  # the arguments', else the supernet's recorded block length, else DEFAULT_BLOCK_LENGTH
    text_column_name: str | None  # the arguments', else (for the supernet's own text) the recorded one
    recorded: dict | None = None  # the supernet's record, when that is the source
    note: str | None = None  # a line to show when the text is not one the user named


def held_out_source(args: HeldOutArguments, seed: int, supernets: Sequence[str | Path] = ()) -> HeldOutSource:
    """``validation_file`` / ``dataset_name``; else the text the first of ``supernets`` that records one held out in
    pre-training (all_results.json ``held_out_text``); else, said in a note, the embedded corpus's held-out
    documents for ``seed``."""
    explicit = _explicit_source(args)
    if explicit is not None:  # the user's text: no record is read (a bad one must not stop this)
        return HeldOutSource(explicit, lambda: load_held_out_text(args.dataset_name, args.dataset_config_name,
                                                                  args.validation_file, args.validation_split),
                             args.max_seq_length or _recorded_length(supernets), args.text_column_name)
    found = [(str(folder), record) for folder in supernets if (record := recorded_held_out(folder)) is not None]
    recorded = found[0][1] if found else {}
    length = args.max_seq_length or recorded.get("max_seq_length") or DEFAULT_BLOCK_LENGTH
    if found:
        folder, description = found[0][0], describe(recorded)
        others = sorted({describe(record) for _, record in found[1:]} - {description})
        note = (f"Held-out text: {description}, which `supernet` {folder!r} held out in pre-training"
                + (f" (other supernets held out {'; '.join(others)}; pass `validation_file` to choose)" if others
                   else "") + ".")
        return HeldOutSource(description, lambda: load_recorded(recorded, f"`supernet` {folder!r}"), length,
                             args.text_column_name or recorded.get("text_column_name"), recorded, note)
    description = describe_synthetic(DEFAULT_DOCUMENTS, seed)
    why = ("no `supernet` records its held-out text (all_results.json held_out_text, written by pre-training)"
           if supernets else "no `supernet` is given")
    return HeldOutSource(description, lambda: load_held_out_text(synthetic_documents=DEFAULT_DOCUMENTS, seed=seed),
                         length, args.text_column_name, note=f"Held-out text: {description}, as {why}; pass "
                                                             "`validation_file` to score on other text.")


def _recorded_length(supernets: Sequence[str | Path]) -> int:
    """The block length the first supernet recorded (a record that is not one is skipped here), else the default."""
    for folder in supernets:
        record = _results(folder).get(RESULTS_KEY)
        if is_record(record):
            return record["max_seq_length"]
    return DEFAULT_BLOCK_LENGTH


def _explicit_source(args: HeldOutArguments) -> str | None:
    if args.validation_file is not None:
        return f"`validation_file` {args.validation_file!r}"
    if args.dataset_name is not None:
        config = f" ({args.dataset_config_name})" if args.dataset_config_name else ""
        return f"`dataset_name` {args.dataset_name!r}{config}, split {args.validation_split!r}"
    return None


def _note(line: str) -> None:
    """One line on stderr, from the first process of each machine only."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        print(as_flags(line), file=sys.stderr)


def blocks_to_skip(args: HeldOutArguments, supernets: Sequence[str | Path] = ()) -> int:
    """``skip_held_out_blocks``, else the most validation blocks any of ``supernets`` gave its anchor checks."""
    if args.skip_held_out_blocks is not None:
        return args.skip_held_out_blocks
    return max((anchor_blocks_skipped(folder) for folder in supernets), default=0)


def anchor_blocks_skipped(folder: str | Path) -> int:
    """The validation blocks a supernet's anchor checks used, as its all_results.json records them (0 without one:
    SPOS, ``anchor_eval_file``, or runs from before the anchor had blocks of its own)."""
    skipped = _results(folder).get("held_out_skipped_blocks")
    return skipped if isinstance(skipped, int) else 0


def recorded_held_out(folder: str | Path) -> dict | None:
    """The held-out text a supernet's pre-training recorded (:mod:`magic_bert.held_out_record`), or None (runs from
    before the record, or a folder without all_results.json)."""
    record = _results(folder).get(RESULTS_KEY)
    if record is None:
        return None
    if not is_record(record):
        raise InputError(f"`supernet` {str(folder)!r}: all_results.json {RESULTS_KEY} is not a record pre-training "
                         "writes; pass `validation_file` (or `dataset_name`) and `max_seq_length`.")
    return record


def _results(folder: str | Path) -> dict:
    """A pre-training output folder's all_results.json, or a checkpoint's held_out.json ({} without either)."""
    results = Path(folder) / "all_results.json"
    if not results.is_file():
        results = Path(folder) / CHECKPOINT_SCORING
    if not results.is_file():
        return {}
    fields = load_user_file(f"`supernet` {str(folder)!r}: {str(results)!r}",
                            lambda: json.loads(results.read_text(encoding="utf-8")))
    return fields if isinstance(fields, dict) else {}


def check_supernet_dir(path: str | Path, param: str = "supernet") -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise InputError(f"`{param}` {str(path)!r} is not a saved supernet (no config.json there).")
    return folder


def load_supernet_config(path: str | Path, param: str = "supernet") -> MagicBertSupernetConfig:
    """The config of a saved supernet; a config.json that is not JSON, not an object or not a supernet's (a fixed
    child, a bad field) is refused naming the file."""
    file = check_supernet_dir(path, param) / "config.json"
    what = f"`{param}` {str(path)!r}: {str(file)!r}"
    fields = load_user_file(what, lambda: json.loads(file.read_text(encoding="utf-8")))
    if not isinstance(fields, dict):
        raise InputError(f"{what} must hold a JSON object of config fields, got {type(fields).__name__}.")
    if isinstance(fields.get("arch"), list):
        raise InputError(f"{what} is a fixed child (arch {fields['arch']}), not a supernet: pass a pre-training "
                         "output folder.")
    with invalid_value(what):  # the config's own checks (search space, ops, sizes) raise ValueError
        return load_user_file(what, lambda: MagicBertSupernetConfig.from_pretrained(file.parent))


def load_supernet(path: str | Path, param: str = "supernet") -> MagicBertSupernetForMaskedLM:
    """A supernet saved by pre-training; a fixed model or an unreadable folder is refused by name."""
    config = load_supernet_config(path, param)
    check_weight_files(path, f"`{param}` {str(path)!r}")
    try:
        supernet = load_user_file(f"`{param}` {str(path)!r}",
                                  lambda: MagicBertSupernetForMaskedLM.from_pretrained(path, config=config))
    except RuntimeError as error:  # weights of other shapes than its config.json says (transformers' size check)
        raise InputError(f"`{param}` {str(path)!r}: its weights do not fit its config.json (another hidden size, "
                         "vocabulary or ops); pass the folder pre-training wrote.") from error
    check_finite_weights(supernet, f"`{param}` {str(path)!r}")
    return supernet


def load_tokenizer(name_or_path: str | Path, param: str = "tokenizer_name"):
    from transformers import AutoTokenizer

    check_tokenizer_folder(name_or_path, f"`{param}` {str(name_or_path)!r}")
    return load_user_file(f"`{param}` {str(name_or_path)!r}", lambda: AutoTokenizer.from_pretrained(name_or_path))


__all__ = ["DEFAULT_BLOCK_LENGTH", "HeldOutArguments", "HeldOutSource", "anchor_blocks_skipped", "blocks_to_skip",
           "check_supernet_dir", "held_out", "held_out_source", "load_supernet", "load_supernet_config",
           "load_tokenizer", "recorded_held_out"]
