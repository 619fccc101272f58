"""Task-specific data augmentation (``--augment_copies``): the neighbours are the nearest whole words by cosine, the
copies are drawn per example from the seed, they get the distillation terms only, and bad values are refused."""

import random

import datasets
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from magic_bert.errors import InputError
from magic_bert.glue import finetuning
from magic_bert.glue.augmentation import DISTILL_ONLY, Augmenter, augment, build_augmenter, whole_word_ids
from magic_bert.glue.finetuning import finetune_glue
from magic_bert.glue.task_distillation import labelled_task_loss
from magic_bert.glue.tasks import TASKS

from .test_finetuning import args_for, bert_dirs, glue_dir, log  # noqa: F401 - fixtures

VECTORS = {"the": (0.0, 1.0), "cat": (1.0, 0.05), "dog": (1.0, 0.1), "sat": (-1.0, 0.0), "ran": (-1.0, 0.2),
           "##s": (1.0, 0.06), "1": (1.0, 0.07)}


def small_vocabulary() -> tuple[BertTokenizer, torch.Tensor]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "!", *VECTORS]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(tokens)})
    embeddings = torch.tensor([VECTORS.get(token, (0.3, -0.2)) for token in tokens])
    return tokenizer, embeddings


def test_a_word_is_replaced_by_its_nearest_whole_words_by_cosine():
    tokenizer, embeddings = small_vocabulary()
    assert sorted(tokenizer.convert_ids_to_tokens(whole_word_ids(tokenizer))) == ["cat", "dog", "ran", "sat", "the"]
    text = "The cat sat, 2 cats!"
    augmenter = build_augmenter(tokenizer, embeddings, [text], neighbours=1, probability=1.0)
    # "cats" is two pieces (cat ##s) and "2" no word: neither has neighbours; "##s" and "1" are nobody's neighbour.
    assert augmenter.neighbours == {"The": ("ran",), "cat": ("dog",), "sat": ("ran",)}
    assert augmenter.replace(text, random.Random(0)) == ("ran dog ran, 2 cats!", 3)
    two = build_augmenter(tokenizer, embeddings, ["dog"], neighbours=2, probability=1.0)
    assert two.neighbours == {"dog": ("cat", "the")}  # best first
    never = Augmenter({"cat": ("dog",)}, probability=1e-12)
    assert never.replace("cat cat", random.Random(0)) == ("cat cat", 0)


def _pairs(n: int) -> datasets.Dataset:
    words = ["the cat sat", "the dog ran", "cat and dog", "a sat cat"]
    return datasets.Dataset.from_dict({"sentence1": [words[i % 4] for i in range(n)],
                                       "sentence2": [words[(i + 1) % 4] for i in range(n)],
                                       "label": [i % 2 for i in range(n)]})


def test_the_copies_follow_the_originals_and_are_drawn_per_example_from_the_seed():
    tokenizer, embeddings = small_vocabulary()
    train = _pairs(6)
    augmenter = build_augmenter(tokenizer, embeddings, [*train["sentence1"], *train["sentence2"]], 3, 0.5)
    keys = TASKS["mrpc"].keys
    data, counts = augment(train, keys, 2, augmenter, seed=7)
    assert len(data) == 18 and list(data[DISTILL_ONLY]) == [0] * 6 + [1] * 12
    assert data.select(range(6)).remove_columns(DISTILL_ONLY).to_list() == train.to_list()
    copies = data.select(range(6, 18)).to_list()
    assert [row["label"] for row in copies] == [i // 2 % 2 for i in range(12)]  # each original's label, twice
    assert counts["examples"] == 6 and counts["copies"] == 12
    assert 0 < counts["replaced_words"] < counts["replaceable_words"] == 2 * 31  # "a" and "and" have none
    again, _ = augment(train, keys, 2, augmenter, seed=7)
    assert again.to_list() == data.to_list()
    other, _ = augment(train, keys, 2, augmenter, seed=8)
    assert other.to_list() != data.to_list()
    # Example i's copies depend on (seed, i) only, not on the examples after it.
    head, _ = augment(train.select(range(3)), keys, 2, augmenter, seed=7)
    assert head.select(range(3, 9)).to_list() == data.select(range(6, 12)).to_list()
    none, counts = augment(train, keys, 0, augmenter, seed=7)
    assert list(none[DISTILL_ONLY]) == [0] * 6 and counts["copies"] == 0


@pytest.mark.parametrize("task", ["mrpc", "stsb"])
def test_the_task_loss_is_the_heads_over_the_labelled_examples_only(word_tokenizer_dir, task):
    glue = TASKS[task]
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     num_labels=glue.num_labels)).eval()
    ids = torch.randint(5, 40, (4, 6))
    labels = torch.tensor([0.5, 3.0, 1.5, 4.0]) if glue.is_regression else torch.tensor([0, 1, 1, 0])
    everything = model(input_ids=ids, labels=labels)
    assert labelled_task_loss(everything.logits, labels, torch.ones(4, dtype=torch.bool), glue).item() == \
        pytest.approx(everything.loss.item(), abs=1e-6)
    keep = torch.tensor([True, False, True, False])
    part = model(input_ids=ids[keep], labels=labels[keep])
    assert labelled_task_loss(everything.logits, labels, keep, glue).item() == pytest.approx(part.loss.item(), abs=1e-6)
    zero = labelled_task_loss(everything.logits, labels, torch.zeros(4, dtype=torch.bool), glue)
    assert zero.item() == 0 and zero.requires_grad


def test_a_run_trains_on_the_copies_with_the_teacher_only(bert_dirs, glue_dir, tmp_path, monkeypatch):  # noqa: F811
    bert_dir, magic_dir = bert_dirs
    seen = []

    def recording(logits, labels, labelled, task):
        seen.append((int(labelled.sum()), int((~labelled).sum())))
        return labelled_task_loss(logits, labels, labelled, task)

    monkeypatch.setattr(finetuning, "labelled_task_loss", recording)
    flags = dict(task_name="mrpc", data_dir=str(glue_dir), num_train_epochs=1, teacher_name_or_path=str(bert_dir),
                 augment_copies=2)
    finetune_glue(args_for(magic_dir, tmp_path / "a", **flags))
    assert log(tmp_path / "a")[0]["step"] == 9  # (24 pairs + 48 copies) / batch 8
    assert sum(n for n, _ in seen) == 24 and sum(n for _, n in seen) == 48
    finetune_glue(args_for(magic_dir, tmp_path / "b", **flags))
    assert log(tmp_path / "b") == log(tmp_path / "a")  # the same copies and order: the same run
    plain = tmp_path / "plain"
    finetune_glue(args_for(magic_dir, plain, **{**flags, "augment_copies": 0}))
    assert log(plain)[0]["step"] == 3 and log(plain)[0]["train_loss"] != log(tmp_path / "a")[0]["train_loss"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"augment_copies": 2}, r"`augment_copies` 2 adds copies without labels .* give `teacher_name_or_path` too"),
    ({"augment_copies": -1, "teacher": True}, r"`augment_copies` must be at least 0, got -1"),
    ({"augment_copies": 2, "augment_probability": 0.0, "teacher": True},
     r"`augment_probability` must be in \(0, 1\], got 0.0"),
    ({"augment_copies": 2, "augment_probability": 1.5, "teacher": True},
     r"`augment_probability` must be in \(0, 1\], got 1.5"),
    ({"augment_copies": 2, "augment_neighbours": 0, "teacher": True}, r"`augment_neighbours` must be at least 1"),
    ({"augment_copies": 2, "kd_alpha": 0.0, "teacher": True},
     r"`augment_copies` 2 adds copies that learn from the teacher's distillation terms only, and `kd_alpha` and "
     r"`kd_hidden_weight` are both 0"),
])
def test_bad_augmentation_values_are_refused_before_anything_is_written(bert_dirs, glue_dir, tmp_path,  # noqa: F811
                                                                        overrides, message):
    bert_dir, magic_dir = bert_dirs
    overrides = dict(overrides)
    if overrides.pop("teacher", False):
        overrides["teacher_name_or_path"] = str(bert_dir)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        finetune_glue(args_for(magic_dir, out, task_name="mrpc", data_dir=str(glue_dir), **overrides))
    assert not out.exists()


def test_a_vocabulary_without_a_replaceable_word_is_refused_before_anything_is_written(bert_dirs, glue_dir,  # noqa: F811
                                                                                      tmp_path, monkeypatch):
    from magic_bert.glue import augmentation

    bert_dir, magic_dir = bert_dirs
    monkeypatch.setattr(augmentation, "whole_word_ids", lambda tokenizer: [])  # as a SentencePiece vocabulary
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"`augment_copies` 2: no word of mrpc's training texts is a whole word of "
                                         r"`model_name_or_path` .* augmentation needs a WordPiece vocabulary"):
        finetune_glue(args_for(magic_dir, out, task_name="mrpc", data_dir=str(glue_dir), augment_copies=2,
                               teacher_name_or_path=str(bert_dir)))
    assert not out.exists()
