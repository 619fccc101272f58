"""magic_bert.data: file checks, raw-text loading, the trained WordPiece tokenizer, blocks and masking (all offline)."""

import json
from itertools import chain

import datasets
import pytest
import torch
from transformers import AutoTokenizer

from magic_bert.data import (
    DATA_FILE_TYPES,
    SPECIAL_TOKENS,
    BatchMasker,
    check_data_file,
    load_text_datasets,
    mask_once,
    mlm_collator,
    synthetic_datasets,
    text_column,
    tokenize_and_group,
    train_wordpiece_tokenizer,
)
from magic_bert.synthetic_corpus import generate_corpus

VOCAB_SIZE = 300
SEQ = 32


@pytest.fixture(autouse=True)
def _datasets_cache_in_tmp(tmp_path, monkeypatch):
    """`load_dataset` caches what it builds: keep that out of the user's cache (and fresh for every test)."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return generate_corpus(120, seed=0)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_wordpiece_tokenizer(corpus, VOCAB_SIZE)


@pytest.fixture(scope="module")
def blocks(corpus, tokenizer) -> datasets.DatasetDict:
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": corpus[:40]}),
                                "validation": datasets.Dataset.from_dict({"text": corpus[40:]})})
    return tokenize_and_group(raw, tokenizer, SEQ)


def _lines(n: int, prefix: str = "line") -> list[str]:
    return [f"{prefix} number {i} says hello" for i in range(n)]


# --------------------------------------------------------------------------------------------------- check_data_file


def test_check_data_file_none_is_fine():
    check_data_file(None, "--train_file")  # nothing given: nothing to check


def test_check_data_file_accepts_every_supported_type(tmp_path):
    for suffix in DATA_FILE_TYPES:
        path = tmp_path / f"data{suffix}"
        path.write_text("x\n")
        check_data_file(str(path), "--train_file")


def test_check_data_file_missing(tmp_path):
    path = str(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="does not exist") as error:
        check_data_file(path, "--train_file")
    assert "--train_file" in str(error.value) and repr(path) in str(error.value)


def test_check_data_file_directory_is_not_a_file(tmp_path):
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(ValueError, match="not a file") as error:
        check_data_file(str(folder), "--validation_file")
    assert "--validation_file" in str(error.value)


def test_check_data_file_empty(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="is empty") as error:
        check_data_file(str(path), "--validation_file")
    assert "--validation_file" in str(error.value) and repr(str(path)) in str(error.value)


@pytest.mark.parametrize("name", ["data.xml", "data.tsv", "data", "data.TXT"])
def test_check_data_file_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("some text\n")
    suffix = path.suffix
    with pytest.raises(ValueError, match="extension") as error:
        check_data_file(str(path), "--train_file")
    message = str(error.value)
    assert repr(suffix) in message and repr(str(path)) in message and "--train_file" in message
    assert "'.parquet'" in message and "'.jsonl'" in message  # lists what is allowed


# ----------------------------------------------------------------------------------------------- load_text_datasets


def _write(tmp_path, name: str, texts: list[str], column: str = "text", extra: bool = False):
    """One data file of `texts`; `extra` adds a leading `id` column (csv/json/parquet)."""
    path = tmp_path / name
    suffix = path.suffix
    if suffix in (".txt", ".text"):
        path.write_text("".join(f"{t}\n" for t in texts))
    else:
        columns = ({"id": list(range(len(texts)))} if extra else {}) | {column: texts}
        dataset = datasets.Dataset.from_dict(columns)
        if suffix == ".csv":
            dataset.to_csv(str(path), index=False)
        elif suffix == ".jsonl":
            dataset.to_json(str(path), lines=True)
        elif suffix == ".json":
            path.write_text(json.dumps([dict(zip(columns, row, strict=True))
                                        for row in zip(*columns.values(), strict=True)]))
        elif suffix == ".parquet":
            dataset.to_parquet(str(path))
        else:
            raise AssertionError(suffix)
    check_data_file(str(path), "--train_file")
    return str(path)


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".json", ".jsonl", ".parquet"])
def test_load_with_validation_file(tmp_path, suffix):
    train, validation = _lines(7, "train"), _lines(3, "valid")
    raw = load_text_datasets(train_file=_write(tmp_path, f"train{suffix}", train),
                             validation_file=_write(tmp_path, f"valid{suffix}", validation))
    assert set(raw) == {"train", "validation"}
    assert list(raw["train"]["text"]) == train
    assert list(raw["validation"]["text"]) == validation


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize(("percentage", "expected_cut"), [(10, 2), (25, 5), (1, 1)])
def test_validation_carved_from_the_start_of_train(tmp_path, suffix, percentage, expected_cut):
    texts = _lines(20)
    raw = load_text_datasets(train_file=_write(tmp_path, f"train{suffix}", texts),
                             validation_split_percentage=percentage)
    validation, train = list(raw["validation"]["text"]), list(raw["train"]["text"])
    assert validation == texts[:expected_cut]  # the first N% (at least one example)
    assert train == texts[expected_cut:]  # the rest, disjoint
    assert not set(validation) & set(train)


@pytest.mark.parametrize("percentage", [0, 100, -5])
def test_validation_split_percentage_out_of_range(tmp_path, percentage):
    path = _write(tmp_path, "train.txt", _lines(10))
    with pytest.raises(ValueError, match="validation_split_percentage") as error:
        load_text_datasets(train_file=path, validation_split_percentage=percentage)
    assert str(percentage) in str(error.value)


def test_load_keeps_other_columns(tmp_path):
    texts = _lines(6)
    raw = load_text_datasets(train_file=_write(tmp_path, "train.csv", texts, column="body", extra=True),
                             validation_file=_write(tmp_path, "valid.csv", texts[:2], column="body", extra=True))
    assert raw["train"].column_names == ["id", "body"]
    assert list(raw["train"]["body"]) == texts
    assert text_column(raw["train"], None) == "id"  # no `text` column: the first one, as run_mlm does
    assert text_column(raw["train"], "body") == "body"


def test_synthetic_default():
    raw = load_text_datasets(synthetic_documents=40, seed=3)
    assert set(raw) == {"train", "validation"}
    assert list(raw["train"]["text"]) == generate_corpus(40, seed=3)
    assert list(raw["validation"]["text"]) == generate_corpus(2, seed=4)  # 5% of 40, another seed
    assert not set(raw["train"]["text"]) & set(raw["validation"]["text"])


def test_synthetic_datasets_at_least_one_validation_document():
    raw = synthetic_datasets(num_documents=5, seed=0)
    assert len(raw["train"]) == 5 and len(raw["validation"]) == 1


def test_validation_file_of_another_type_is_parsed_with_its_own_reader(tmp_path):
    train = _write(tmp_path, "train.txt", _lines(4))
    validation = _write(tmp_path, "valid.jsonl", ["alpha beta", "gamma delta"])
    raw = load_text_datasets(train_file=train, validation_file=validation)
    assert list(raw["validation"]["text"]) == ["alpha beta", "gamma delta"]


# ------------------------------------------------------------------------------------------------------ text_column


def test_text_column():
    with_text = datasets.Dataset.from_dict({"id": [1], "text": ["a"], "body": ["b"]})
    without_text = datasets.Dataset.from_dict({"body": ["b"], "id": [1]})
    assert text_column(with_text, None) == "text"
    assert text_column(with_text, "body") == "body"
    assert text_column(without_text, None) == "body"
    assert text_column(without_text, "id") == "id"


def test_text_column_bad_name_lists_columns():
    dataset = datasets.Dataset.from_dict({"body": ["b"], "id": [1]})
    with pytest.raises(ValueError, match="text_column_name") as error:
        text_column(dataset, "text")
    message = str(error.value)
    assert "'text'" in message and "['body', 'id']" in message


# ---------------------------------------------------------------------------------------- train_wordpiece_tokenizer


def test_tokenizer_special_tokens_first(tokenizer):
    assert [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
            tokenizer.mask_token_id) == (0, 1, 2, 3, 4)


def test_tokenizer_vocab_size_and_contiguous_ids(tokenizer, corpus):
    assert len(tokenizer) <= VOCAB_SIZE
    assert len(tokenizer) > 100  # the target was actually used (well beyond the character alphabet)
    assert sorted(tokenizer.get_vocab().values()) == list(range(len(tokenizer)))
    # More room than the text has pieces: a smaller vocabulary, never a larger one.
    roomy = train_wordpiece_tokenizer(corpus[:20], 100_000)
    assert len(roomy) < 100_000
    assert sorted(roomy.get_vocab().values()) == list(range(len(roomy)))


def test_tokenizer_covers_unseen_synthetic_text(tokenizer):
    texts = generate_corpus(30, seed=12345)  # other documents of the same grammar
    encoded = tokenizer(texts)["input_ids"]
    assert all(tokenizer.unk_token_id not in ids for ids in encoded)
    assert all(ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id for ids in encoded)
    # The most frequent words are whole tokens.
    assert tokenizer.tokenize("the a") == ["the", "a"]


def test_tokenizer_unknown_characters_are_unk(tokenizer):
    assert tokenizer.unk_token_id in tokenizer("the dog ☃")["input_ids"]


def test_tokenizer_lowercases(tokenizer):
    assert tokenizer("The DOGS Run.")["input_ids"] == tokenizer("the dogs run.")["input_ids"]


def test_tokenizer_save_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    texts = generate_corpus(10, seed=99) + ["The DOGS Run ☃."]
    assert loaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.mask_token_id == 4 and loaded.pad_token_id == 0


@pytest.mark.parametrize("vocab_size", [0, 5])
def test_tokenizer_vocab_size_too_small(corpus, vocab_size):
    with pytest.raises(ValueError, match="vocab_size") as error:
        train_wordpiece_tokenizer(corpus[:5], vocab_size)
    assert str(vocab_size) in str(error.value)


def test_a_vocab_size_below_the_alphabet_is_refused(corpus):
    with pytest.raises(ValueError, match="`vocab_size` 20 is too small"):
        train_wordpiece_tokenizer(corpus[:20], 20)


# ----------------------------------------------------------------------------------------------- tokenize_and_group


def _stream(texts, tokenizer, key="input_ids"):
    return list(chain.from_iterable(tokenizer(texts, return_special_tokens_mask=True)[key]))


def test_blocks_are_full_length_prefix_of_the_stream(blocks, corpus, tokenizer):
    for split, texts in (("train", corpus[:40]), ("validation", corpus[40:])):
        dataset = blocks[split]
        assert set(dataset.column_names) == {"input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"}
        for key in dataset.column_names:
            assert all(len(row) == SEQ for row in dataset[key]), (split, key)
        stream = _stream(texts, tokenizer)
        assert len(dataset) == len(stream) // SEQ  # only the remainder shorter than a block is dropped
        assert len(dataset) >= 2
        assert list(chain.from_iterable(dataset["input_ids"])) == stream[: len(dataset) * SEQ]
        special = _stream(texts, tokenizer, "special_tokens_mask")
        assert list(chain.from_iterable(dataset["special_tokens_mask"])) == special[: len(dataset) * SEQ]


def test_blocks_from_an_explicit_text_column(tokenizer):
    texts = generate_corpus(6, seed=5)
    raw = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({"id": list(range(len(part))), "body": part})
        for split, part in (("train", texts[:4]), ("validation", texts[4:]))
    })
    grouped = tokenize_and_group(raw, tokenizer, 16, text_column_name="body")
    assert "body" not in grouped["train"].column_names and "id" not in grouped["train"].column_names
    assert list(chain.from_iterable(grouped["train"]["input_ids"])) == _stream(texts[:4], tokenizer)[
        : len(grouped["train"]) * 16]
    with pytest.raises(ValueError, match="'text'"):
        tokenize_and_group(raw, tokenizer, 16, text_column_name="text")


def test_split_too_small_for_one_block(tokenizer, corpus):
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": corpus[:10]}),
                                "validation": datasets.Dataset.from_dict({"text": ["the dog runs ."]})})
    with pytest.raises(ValueError, match="max_seq_length=64") as error:
        tokenize_and_group(raw, tokenizer, 64)
    assert "validation" in str(error.value)


# -------------------------------------------------------------------------------------------------------- mask_once


def test_mask_once_is_deterministic_per_seed(blocks, tokenizer):
    first = mask_once(blocks["train"], tokenizer, 0.15, seed=0)
    again = mask_once(blocks["train"], tokenizer, 0.15, seed=0)
    other = mask_once(blocks["train"], tokenizer, 0.15, seed=1)
    assert first["labels"] == again["labels"] and first["input_ids"] == again["input_ids"]
    assert first["labels"] != other["labels"]
    assert "special_tokens_mask" not in first.column_names
    assert set(first.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}


@pytest.mark.parametrize("probability", [0.15, 0.5])
def test_mask_once_labels_and_inputs(blocks, tokenizer, probability):
    original = blocks["train"]
    masked = mask_once(original, tokenizer, probability, seed=0)
    ids = torch.tensor(original["input_ids"])
    special = torch.tensor(original["special_tokens_mask"]).bool()
    new_ids, labels = torch.tensor(masked["input_ids"]), torch.tensor(masked["labels"])
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])  # labels hold the original ids where masked
    assert torch.equal(new_ids[~chosen], ids[~chosen])  # everything else is untouched
    assert not chosen[special].any()  # [CLS]/[SEP] are never masked
    assert special.any() and torch.isin(ids[special], torch.tensor([2, 3])).all()
    # Masked fraction of the maskable tokens near the probability (binomial std < 0.01 here: 0.05 cannot flake).
    maskable = (~special).sum().item()
    assert maskable > 2500
    assert abs(chosen.sum().item() / maskable - probability) < 0.05
    # 80/10/10: most chosen tokens became [MASK], and [MASK] appears nowhere else.
    is_mask = new_ids == tokenizer.mask_token_id
    assert not is_mask[~chosen].any()
    assert 0.65 < is_mask[chosen].float().mean().item() < 0.95
    assert torch.equal(torch.tensor(masked["attention_mask"]), torch.tensor(original["attention_mask"]))


# -------------------------------------------------------------------------------------------------------- BatchMasker


def _batch(blocks, rows=8):
    part = blocks["train"].select(range(rows))
    return {key: torch.tensor(part[key]) for key in ("input_ids", "attention_mask", "special_tokens_mask")}


def test_batch_masker_state_round_trip(blocks, tokenizer):
    batch = _batch(blocks)
    masker = BatchMasker(tokenizer, 0.3, seed=7)
    masker(batch)  # advance the generator
    state = masker.state_dict()
    expected = masker(batch)
    assert not torch.equal(expected["labels"], masker(batch)["labels"])  # the generator moves on
    masker.load_state_dict(state)
    again = masker(batch)
    assert torch.equal(again["labels"], expected["labels"]) and torch.equal(again["input_ids"], expected["input_ids"])
    # A fresh masker (another seed) resumed from the state masks the same way too.
    resumed = BatchMasker(tokenizer, 0.3, seed=123)
    resumed.load_state_dict(state)
    third = resumed(batch)
    assert torch.equal(third["labels"], expected["labels"]) and torch.equal(third["input_ids"], expected["input_ids"])


def test_batch_masker_seeded_and_leaves_the_batch_alone(blocks, tokenizer):
    batch = _batch(blocks)
    before = {key: value.clone() for key, value in batch.items()}
    out_a = BatchMasker(tokenizer, 0.15, seed=0)(batch)
    out_b = BatchMasker(tokenizer, 0.15, seed=0)(batch)
    out_c = BatchMasker(tokenizer, 0.15, seed=1)(batch)
    assert torch.equal(out_a["labels"], out_b["labels"]) and not torch.equal(out_a["labels"], out_c["labels"])
    assert set(batch) == set(before) and all(torch.equal(batch[key], before[key]) for key in before)
    assert "special_tokens_mask" not in out_a and set(out_a) == {"input_ids", "attention_mask", "labels"}
    special = before["special_tokens_mask"].bool()
    assert (out_a["labels"][special] == -100).all()
    assert torch.equal(out_a["input_ids"][special], before["input_ids"][special])


@pytest.mark.parametrize("probability", [0.0, 1.0, -0.1, 1.5])
def test_mlm_probability_must_be_in_open_unit_interval(tokenizer, probability):
    with pytest.raises(ValueError, match="mlm_probability") as error:
        mlm_collator(tokenizer, probability)
    assert str(probability) in str(error.value)
    with pytest.raises(ValueError, match="mlm_probability"):
        BatchMasker(tokenizer, probability)


def test_mlm_collator_valid(tokenizer):
    collator = mlm_collator(tokenizer, 0.2, seed=3)
    assert collator.mlm_probability == 0.2 and collator.mlm and collator.return_tensors == "pt"
