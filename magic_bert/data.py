"""Masked-LM data: raw text (Hub, local files or the embedded synthetic corpus), a WordPiece tokenizer trained on it
when none is given, tokenisation into fixed-length blocks, and a held-out set masked once so every evaluation of every
child sees the same masked positions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from itertools import chain
from pathlib import Path

import datasets
import torch
from transformers import BertTokenizer, DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from .errors import InputError, as_flags, invalid_value, load_user_file
from .synthetic_corpus import DEFAULT_DOCUMENTS, generate_corpus, validation_documents
from .wordpiece import count_words, learn_vocabulary

DATA_FILE_TYPES = {".txt": "text", ".text": "text", ".csv": "csv", ".json": "json", ".jsonl": "json",
                   ".parquet": "parquet"}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def check_data_file(path: str | None, param: str) -> None:
    """One clear error for a data file that is missing, empty or of an unsupported type (before any work is done)."""
    if path is None:
        return
    file = Path(path)
    if not file.is_file():
        raise InputError(f"`{param}` {path!r} does not exist or is not a file.")
    if file.suffix not in DATA_FILE_TYPES:
        raise InputError(f"`{param}` {path!r} has extension {file.suffix!r}; allowed: {sorted(DATA_FILE_TYPES)}.")
    if file.stat().st_size == 0:
        raise InputError(f"`{param}` {path!r} is empty.")


def synthetic_datasets(num_documents: int = DEFAULT_DOCUMENTS, seed: int = 0) -> datasets.DatasetDict:
    """The embedded default: the package's grammar corpus (train and validation drawn with different seeds)."""
    return datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": generate_corpus(num_documents, seed=seed)}),
        "validation": synthetic_validation(num_documents, seed),
    })


def synthetic_validation(num_documents: int = DEFAULT_DOCUMENTS, seed: int = 0) -> datasets.Dataset:
    """The held-out documents of :func:`synthetic_datasets` alone (without generating the training ones)."""
    return datasets.Dataset.from_dict({"text": generate_corpus(validation_documents(num_documents), seed=seed + 1)})


def describe_synthetic(num_documents: int, seed: int) -> str:
    """The embedded corpus's held-out text, in words (for messages)."""
    return (f"the embedded synthetic text ({validation_documents(num_documents):,} held-out documents of a "
            f"{num_documents:,}-document corpus, seed {seed})")


def load_text_datasets(dataset_name: str | None = None, dataset_config_name: str | None = None,
                       train_file: str | None = None, validation_file: str | None = None,
                       validation_split_percentage: int = 5, synthetic_documents: int = DEFAULT_DOCUMENTS,
                       seed: int = 0) -> datasets.DatasetDict:
    """``train`` and ``validation`` splits of raw text, as ``run_mlm_no_trainer.py`` builds them.

    Without a validation split, the first ``validation_split_percentage`` % of the training data is held out.
    With neither a dataset nor files, the embedded synthetic corpus.
    """
    if dataset_name is not None:
        raw = load_user_file(f"`dataset_name` {dataset_name!r}",
                             lambda: datasets.load_dataset(dataset_name, dataset_config_name))
    elif train_file is not None:
        # Each file with its own reader: a .txt training file may come with a .jsonl validation file.
        files = {"train": train_file} | ({"validation": validation_file} if validation_file else {})
        raw = datasets.DatasetDict({
            split: load_user_file(f"`{split}_file` {path!r}", lambda split=split, path=path: datasets.load_dataset(
                DATA_FILE_TYPES[Path(path).suffix], data_files={split: path})[split])
            for split, path in files.items()})
    else:
        return synthetic_datasets(synthetic_documents, seed=seed)
    if "validation" not in raw:
        if not 0 < validation_split_percentage < 100:
            raise InputError(f"`validation_split_percentage` must be in (0, 100), got {validation_split_percentage}.")
        train = raw["train"]
        cut = max(1, len(train) * validation_split_percentage // 100)
        if cut >= len(train):  # else the training split is empty (or the held-out one cannot be cut)
            source = f"`train_file` {train_file!r}" if train_file is not None else f"`dataset_name` {dataset_name!r}"
            raise InputError(f"{source} has {len(train)} row(s): holding out {validation_split_percentage}% "
                             "(`validation_split_percentage`) of them leaves none to train on; pass a "
                             "`validation_file` or more rows.")
        raw = datasets.DatasetDict({"train": train.select(range(cut, len(train))),
                                    "validation": train.select(range(cut))})
    return datasets.DatasetDict({"train": raw["train"], "validation": raw["validation"]})


def load_held_out_text(dataset_name: str | None = None, dataset_config_name: str | None = None,
                       validation_file: str | None = None, split: str = "validation",
                       synthetic_documents: int = DEFAULT_DOCUMENTS, seed: int = 0) -> datasets.Dataset:
    """Held-out text only (for search and analysis): a local file, a Hub dataset's ``split``, or the embedded
    synthetic corpus's validation documents (the same ones pre-training with that seed held out).
    """
    if validation_file is not None:
        check_data_file(validation_file, "validation_file")
        suffix = Path(validation_file).suffix
        return load_user_file(f"`validation_file` {validation_file!r}", lambda: datasets.load_dataset(
            DATA_FILE_TYPES[suffix], data_files={"validation": validation_file})["validation"])
    if dataset_name is not None:
        with invalid_value(f"`validation_split` {split!r}"):  # datasets' "Unknown split" is a ValueError
            return load_user_file(f"`dataset_name` {dataset_name!r}",
                                  lambda: datasets.load_dataset(dataset_name, dataset_config_name, split=split))
    return synthetic_validation(synthetic_documents, seed)


def held_out_blocks(text: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_seq_length: int,
                    mlm_probability: float = 0.15, seed: int = 0, text_column_name: str | None = None,
                    source: str = "validation") -> datasets.Dataset:
    """Held-out text → blocks of ``max_seq_length`` tokens, masked once (what every scorer of children uses);
    ``source`` names the text in errors (e.g. ``"`validation_file` 'dev.txt'"``)."""
    blocks = tokenize_and_group(datasets.DatasetDict({source: text}), tokenizer, max_seq_length, text_column_name)
    return mask_once(blocks[source], tokenizer, mlm_probability, seed=seed)


def text_column(dataset: datasets.Dataset, name: str | None) -> str:
    """``name`` if given (checked), else ``text`` if present, else the first column (as run_mlm does)."""
    return pick_text_column(dataset.column_names, name)


def pick_text_column(columns: list[str], name: str | None) -> str:
    """:func:`text_column` from the column names alone (a stream knows them only once it has been read)."""
    if name is not None:
        if name not in columns:
            raise InputError(f"`text_column_name` {name!r} is not a column of the data; columns: {columns}.")
        return name
    return "text" if "text" in columns else columns[0]


def check_has_text(dataset: datasets.Dataset, column: str, source: str) -> None:
    """``dataset[column]`` holds some non-blank text (stops at the first batch that does, so a real corpus costs
    one batch); only blank rows would tokenise to special tokens alone."""
    for batch in dataset.select_columns([column]).iter(batch_size=1000):
        if any(isinstance(text, str) and text.strip() for text in batch[column]):
            return
    raise InputError(f"{source} holds no text (only {len(dataset)} blank row(s)): it would tokenise to special "
                     "tokens alone; pass a file with text.")


def train_wordpiece_tokenizer(texts, vocab_size: int, model_max_length: int | None = None) -> BertTokenizer:
    """A lower-casing BERT WordPiece tokenizer of at most ``vocab_size`` tokens, trained on ``texts``.

    Special tokens come first ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4). The vocabulary depends only on the text
    and the size (:mod:`magic_bert.wordpiece`), so the same command gives the same tokenizer and model. It can be
    smaller than ``vocab_size`` when the text has fewer distinct pieces. ``model_max_length`` is what the tokenizer
    truncates to (the model's ``max_position_embeddings``).
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise InputError(f"`vocab_size` must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}.")
    vocab = learn_vocabulary(count_words(texts), vocab_size, SPECIAL_TOKENS)
    if len(vocab) > vocab_size:  # every character (and its ## form) is kept whatever the size
        raise InputError(f"`vocab_size` {vocab_size} is too small for this text: its characters alone need "
                         f"{len(vocab)} tokens.")
    kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
    return BertTokenizer(vocab={token: index for index, token in enumerate(vocab)}, **kwargs)


def fit_tokenizer_to_model(tokenizer, config) -> None:
    """Cap ``tokenizer.model_max_length`` at the model's ``max_position_embeddings`` (in place).

    Tokenizers made without a length (ours, most trained ones) carry transformers' "unset" value 1e30, so
    ``truncation=True`` cut nothing and long inputs overflowed the position embeddings.
    """
    limit = getattr(config, "max_position_embeddings", None)
    current = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit > 0 and (current is None or current > limit):
        tokenizer.model_max_length = limit


def group_into_blocks(examples: dict, max_seq_length: int) -> dict:
    """A batch of tokenised texts concatenated and cut into blocks of exactly ``max_seq_length`` (the remainder
    shorter than one block is dropped), as run_mlm's ``group_texts``."""
    concatenated = {key: list(chain.from_iterable(examples[key])) for key in examples}
    total = len(concatenated["input_ids"]) // max_seq_length * max_seq_length
    return {key: [values[i:i + max_seq_length] for i in range(0, total, max_seq_length)]
            for key, values in concatenated.items()}


def tokenize_and_group(raw: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase, max_seq_length: int,
                       text_column_name: str | None = None, num_proc: int | None = None,
                       load_from_cache_file: bool = True) -> datasets.DatasetDict:
    """Tokenise every split and concatenate into blocks of exactly ``max_seq_length`` tokens (run_mlm's default).

    The remainder shorter than one block is dropped; a split too small for one block is an error.
    """
    columns = {split: text_column(dataset, text_column_name) for split, dataset in raw.items()}
    group = partial(group_into_blocks, max_seq_length=max_seq_length)

    # Each split with its own text column and extra columns (a .txt train file may come with a .jsonl validation).
    grouped = datasets.DatasetDict()
    for split, dataset in raw.items():
        column = columns[split]
        # verbose=False: texts longer than the model are cut into blocks below, so transformers' "Token indices
        # sequence length is longer than the specified maximum" warning is harmless here (run_mlm silences it too).
        tokenized = dataset.map(lambda examples, c=column: tokenizer(examples[c], return_special_tokens_mask=True,
                                                                     verbose=False),
                                batched=True, num_proc=num_proc, remove_columns=dataset.column_names,
                                load_from_cache_file=load_from_cache_file, desc=f"Tokenising {split}")
        grouped[split] = tokenized.map(group, batched=True, num_proc=num_proc,
                                       load_from_cache_file=load_from_cache_file,
                                       desc=f"Grouping {split} into blocks of {max_seq_length}")
    for split, dataset in grouped.items():
        if len(dataset) == 0:
            name = f"The {split} split" if split in ("train", "validation") else split  # else it names its file
            raise InputError(f"{name} has fewer than max_seq_length={max_seq_length} tokens: pass more text or a "
                             "smaller `max_seq_length`.")
    return grouped


def mlm_collator(tokenizer: PreTrainedTokenizerBase, mlm_probability: float = 0.15,
                 seed: int | None = None) -> DataCollatorForLanguageModeling:
    if not 0 < mlm_probability < 1:
        raise InputError(f"`mlm_probability` must be in (0, 1), got {mlm_probability}.")
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed,
                                           return_tensors="pt")


class BatchMasker:
    """BERT masking (transformers' 80/10/10 rule) of collated CPU batches, from a generator of its own.

    Masking happens in the training loop rather than in the data loader (which collates one batch ahead), reseeded
    per micro-batch from its position (``reseed``): a resumed run masks exactly as an uninterrupted one.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, mlm_probability: float = 0.15, seed: int = 0):
        self.collator = mlm_collator(tokenizer, mlm_probability)
        self.generator = torch.Generator().manual_seed(seed)
        self.collator.generator = self.generator

    def __call__(self, batch: dict) -> dict:
        batch = dict(batch)
        special_tokens_mask = batch.pop("special_tokens_mask", None)
        batch["input_ids"], batch["labels"] = self.collator.torch_mask_tokens(
            batch["input_ids"].clone(), special_tokens_mask=special_tokens_mask)
        return batch

    def reseed(self, *keys) -> None:
        """Seed the generator from ``keys`` (e.g. seed, rank, epoch, batch index): masks then depend on the batch's
        position alone, so a resumed run needs no saved masking state."""
        self.generator.manual_seed(seed_from_keys(*keys))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def seed_from_keys(*keys) -> int:
    """A 63-bit seed that depends on ``keys`` alone (e.g. seed, rank, epoch, batch index), the same in every process."""
    digest = hashlib.sha256("-".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def mask_once(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, mlm_probability: float = 0.15,
              seed: int = 0) -> datasets.Dataset:
    """The held-out set with its masking fixed (``input_ids`` masked, ``labels`` = originals at masked positions).

    Scores of different children, anchors and checkpoints are then comparable: same tokens, same masks, independent
    of batch size and number of processes.
    """
    masker = BatchMasker(tokenizer, mlm_probability, seed=seed)

    def mask(examples):
        batch = masker({key: torch.tensor(values) for key, values in examples.items()})
        return {key: value.tolist() for key, value in batch.items()}

    # The masking function holds a generator that datasets cannot hash: name the result from its inputs instead.
    fingerprint = hashlib.md5(f"{dataset._fingerprint}-{mlm_probability}-{seed}".encode()).hexdigest()
    masked = dataset.map(mask, batched=True, batch_size=256, new_fingerprint=fingerprint,
                         remove_columns=["special_tokens_mask"], desc="Masking the held-out set once")
    return masked


def eval_batch_size(batch_size: int, examples: int) -> int:
    """An evaluation batch no larger than the data (the same batches; torch allocates a list of the batch size)."""
    return min(batch_size, max(examples, 1))


def fit_batch_size(batch_size: int, examples: int, what: str, say: Callable[[str], object] = print,
                   name: str = "per_device_train_batch_size") -> int:
    """``batch_size``, or ``examples`` (with a warning through ``say`` naming the parameter ``name``) when the batch is
    larger than the data: a batch cannot hold more than every example, and torch's sampler allocates a list of
    ``batch_size`` up front (``--per_device_train_batch_size 100000000000`` was killed for memory)."""
    if batch_size <= examples or examples < 1:
        return batch_size
    say(as_flags(f"warning: `{name}` {batch_size} is larger than the {examples} {what}; each batch holds all "
                 f"{examples}."))
    return examples


__all__ = [
    "BatchMasker",
    "check_data_file",
    "check_has_text",
    "describe_synthetic",
    "eval_batch_size",
    "fit_batch_size",
    "group_into_blocks",
    "held_out_blocks",
    "load_held_out_text",
    "load_text_datasets",
    "mask_once",
    "mlm_collator",
    "pick_text_column",
    "seed_from_keys",
    "synthetic_datasets",
    "synthetic_validation",
    "text_column",
    "tokenize_and_group",
    "train_wordpiece_tokenizer",
]
