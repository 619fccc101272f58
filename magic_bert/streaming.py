"""Streaming corpora for pre-training (``--streaming``), as run_mlm_no_trainer's: the training text is a ``datasets``
:class:`~datasets.IterableDataset` that is never loaded whole. It is shuffled with a buffer (``seed + pass``), split
across ranks with :func:`datasets.distributed.split_dataset_by_node` (disjoint documents), tokenised and grouped into
blocks lazily, and read pass after pass until ``max_train_steps``. The held-out text is never streamed: a
``validation_file``, the dataset's ``validation`` split, or the first ``held_out_documents`` documents of the stream
(which training skips).

Resume is exact: each rank's position (complete passes, micro-batches of the current pass) is saved in the training
state, and a resumed rank re-reads its current pass up to that position (reading and tokenising, not training) before
it trains on the next unseen batch. ``IterableDataset.state_dict()`` is not used because it does not keep the shuffle
buffer's content, so the batches after a resume would differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from itertools import islice
from pathlib import Path

import datasets
import torch
from datasets.distributed import split_dataset_by_node
from transformers import PreTrainedTokenizerBase, default_data_collator

from .data import DATA_FILE_TYPES, group_into_blocks, load_held_out_text, pick_text_column
from .errors import InputError, load_user_file

UNIGRAM_BLOCKS = 10_000  # training blocks whose token counts give the unigram baseline of a streamed run


def open_stream(dataset_name: str | None, dataset_config_name: str | None,
                train_file: str | None) -> datasets.IterableDatasetDict:
    """The corpus as iterable splits (nothing is downloaded or read beyond what is iterated)."""
    if dataset_name is not None:
        return load_user_file(f"`dataset_name` {dataset_name!r}", lambda: datasets.load_dataset(
            dataset_name, dataset_config_name, streaming=True))
    return load_user_file(f"`train_file` {train_file!r}", lambda: datasets.IterableDatasetDict(
        train=datasets.load_dataset(DATA_FILE_TYPES[Path(train_file).suffix], data_files={"train": train_file},
                                    streaming=True)["train"]))


def first_documents(stream: datasets.IterableDataset, n: int, what: str) -> list[dict]:
    """The first ``n`` documents of ``stream`` (a bad file fails here, named by ``what``)."""
    return load_user_file(what, lambda: list(islice(iter(stream), n)))


def stream_columns(stream: datasets.IterableDataset, what: str) -> list[str]:
    """The stream's columns: text and some json streams know them only once read, so the first document is read."""
    if stream.column_names is not None:
        return stream.column_names
    first = first_documents(stream, 1, what)
    if not first:
        raise InputError(f"{what} has no documents.")
    return list(first[0])


def load_streaming_text(data) -> dict:
    """``train``: the documents to train on (an IterableDataset); ``validation``: the held-out text (a Dataset);
    ``column``: the text column, ``columns``: all of them, ``split``: how ranks share the stream (by shards when
    its shards divide among them, else by examples). ``data`` is the recipe's DataArguments."""
    splits = open_stream(data.dataset_name, data.dataset_config_name, data.train_file)
    what = f"`dataset_name` {data.dataset_name!r}" if data.dataset_name else f"`train_file` {data.train_file!r}"
    if "train" not in splits:
        raise InputError(f"{what} has no train split; splits: {sorted(splits)}.")
    train = splits["train"]
    columns = stream_columns(train, what)
    column = pick_text_column(columns, data.text_column_name)
    if data.validation_file is not None:
        validation = load_held_out_text(validation_file=data.validation_file)
        pick_text_column(validation.column_names, data.text_column_name)
    elif data.held_out_documents is not None:
        held_out = first_documents(train, data.held_out_documents, what)
        if len(held_out) == data.held_out_documents:
            validation = datasets.Dataset.from_dict({column: [doc[column] for doc in held_out]})
            train = train.skip(data.held_out_documents)
        else:
            raise InputError(f"`held_out_documents` {data.held_out_documents} leaves nothing to train on: {what} "
                             f"has {len(held_out)} documents.")
    elif "validation" in splits:
        validation = datasets.Dataset.from_list(first_documents(splits["validation"], None, what))
        pick_text_column(validation.column_names, data.text_column_name)
    else:
        raise InputError(f"{what} has no validation split: pass `validation_file` or `held_out_documents`.")
    # Held-out documents are skipped from the stream's start only when every rank reads the whole stream.
    split = "auto" if data.validation_file is not None or data.held_out_documents is None else "examples"
    return {"train": train, "validation": validation, "column": column, "columns": columns, "split": split}


def tokenizer_texts(raw: dict, n: int) -> list[str]:
    """The first ``n`` training documents (after any held-out ones, before shuffling): what a tokenizer trained for a
    streamed run sees."""
    return [doc[raw["column"]] for doc in first_documents(raw["train"], n, "the training stream")]


def _tokenize_and_group(examples: dict, tokenizer: PreTrainedTokenizerBase, column: str, max_seq_length: int) -> dict:
    # verbose=False: a text longer than the model is cut into blocks, so transformers' length warning is harmless.
    tokenized = tokenizer(examples[column], return_special_tokens_mask=True, return_token_type_ids=False,
                          verbose=False)
    return group_into_blocks(dict(tokenized), max_seq_length)


def rank_blocks(raw: dict, tokenizer: PreTrainedTokenizerBase, max_seq_length: int, seed: int,
                shuffle_buffer_size: int, rank: int, world_size: int) -> datasets.IterableDataset:
    """This rank's share of the training blocks: documents shuffled (buffer, ``seed + pass``), split across ranks
    (disjoint), then tokenised and grouped into blocks of ``max_seq_length`` lazily."""
    documents = raw["train"].shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    documents = split_dataset_by_node(documents, rank=rank, world_size=world_size, strategy=raw["split"])
    return documents.map(partial(_tokenize_and_group, tokenizer=tokenizer, column=raw["column"],
                                 max_seq_length=max_seq_length), batched=True, remove_columns=raw["columns"])


class StreamingBatches:
    """Endless micro-batches of one rank's blocks, pass after pass (each pass reshuffled), resumable exactly.

    ``passes`` (complete passes) and ``batches`` (micro-batches handed out in the current pass) are the rank's
    position; the recipe trains every batch it takes, so a checkpoint after a step records what was trained on.
    """

    def __init__(self, blocks: datasets.IterableDataset, batch_size: int):
        self.blocks, self.batch_size = blocks, batch_size
        self.passes, self.batches = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Passes are counted per rank (ranks' shares differ in length); the recipe's epoch stays 0."""

    def resume_at(self, passes: int, batches: int) -> None:
        self.passes, self.batches = passes, batches

    def __iter__(self) -> Iterator[dict]:
        while True:
            self.blocks.set_epoch(self.passes)  # the shuffle buffer is seeded with seed + pass
            rows = islice(iter(self.blocks), self.batches * self.batch_size, None)  # what this pass already trained
            while chunk := list(islice(rows, self.batch_size)):
                self.batches += 1
                yield default_data_collator(chunk)
            if self.batches == 0:
                raise InputError("A process's share of the stream has no block of the `max_seq_length` "
                                 "(pass more text, fewer processes or a smaller `max_seq_length`).")
            self.passes, self.batches = self.passes + 1, 0


def gather_positions(accelerator, batches: StreamingBatches) -> tuple[list[int], list[int]]:
    """Every rank's (passes, batches), in rank order (all ranks call this: it is a collective)."""
    local = torch.tensor([[batches.passes, batches.batches]], device=accelerator.device)
    every = accelerator.gather(local).tolist()
    return [passes for passes, _ in every], [count for _, count in every]


def unigram_sample(train_blocks):
    """The training blocks whose token counts make the unigram baseline: all of a map-style set, the first
    :data:`UNIGRAM_BLOCKS` of a stream (this rank's share; the main process's is reported)."""
    if not isinstance(train_blocks, datasets.IterableDataset):
        return train_blocks
    return datasets.Dataset.from_dict({"input_ids": [row["input_ids"] for row in train_blocks.take(UNIGRAM_BLOCKS)]})


__all__ = ["StreamingBatches", "first_documents", "gather_positions", "load_streaming_text", "open_stream",
           "rank_blocks", "stream_columns", "tokenizer_texts", "unigram_sample"]
