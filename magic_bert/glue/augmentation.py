"""Task-specific data augmentation for distilling a fine-tuned teacher (TinyBERT, Jiao et al. 2020, §3.2):
every training example also as ``copies`` variants in which each word is replaced, with a probability, by one of its
nearest words. The variants carry no label of their own; fine-tuning gives them the distillation terms only.

TinyBERT takes a single-piece word's candidates from BERT's masked-LM and the others' from GloVe. A teacher here may
have no masked-LM head and no word vectors come with it, so the candidates are the nearest whole words (alphabetic
vocabulary entries, not ``##`` pieces) by cosine of the teacher's input word embeddings, and only words the tokenizer
keeps as one such entry are replaced (a choice: most frequent words are one piece).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

import datasets
import torch
import torch.nn.functional as F

DISTILL_ONLY = "distill_only"  # the column that marks an augmented copy (1): no task loss, distillation only
WORD = re.compile(r"[^\W\d_]+")  # a run of letters (any script); digits and punctuation are never replaced
CHUNK = 1024  # rows of the similarity matrix computed at once


@dataclass(frozen=True)
class Augmenter:
    """Each replaceable word (as it is written) and its nearest words, best first."""
    neighbours: dict[str, tuple[str, ...]]
    probability: float

    def replace(self, text: str, rng: random.Random) -> tuple[str, int]:
        """``text`` with each replaceable word swapped for a random neighbour with ``probability``; the number
        swapped. One draw per replaceable word (two when swapped), in order: the same text and generator state give
        the same copy."""
        replaced = 0

        def swap(match: re.Match) -> str:
            nonlocal replaced
            options = self.neighbours.get(match.group())
            if options is None or rng.random() >= self.probability:
                return match.group()
            replaced += 1
            return options[rng.randrange(len(options))]

        return WORD.sub(swap, text), replaced


def whole_word_ids(tokenizer) -> list[int]:
    """The vocabulary entries a word can be replaced by: alphabetic, not a continuation piece, not special."""
    special = set(tokenizer.all_special_ids)
    return [i for token, i in tokenizer.get_vocab().items()
            if i not in special and token.isalpha() and not token.startswith("##")]


def build_augmenter(tokenizer, embeddings: torch.Tensor, texts: Iterable[str], neighbours: int,
                    probability: float) -> Augmenter:
    """The ``neighbours`` nearest whole words (cosine of ``embeddings``, the teacher's input word embeddings) of
    every word of ``texts`` that the tokenizer keeps as one whole word."""
    words = sorted({word for text in texts for word in WORD.findall(text)})
    candidates = sorted(whole_word_ids(tokenizer))
    allowed = set(candidates)
    encoded = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    single = [(word, ids[0]) for word, ids in zip(words, encoded, strict=True) if len(ids) == 1 and ids[0] in allowed]
    if not single or len(candidates) < 2:
        return Augmenter({}, probability)
    pool = F.normalize(embeddings.detach().float()[candidates], dim=-1)
    column = {token_id: j for j, token_id in enumerate(candidates)}
    k = min(neighbours, len(candidates) - 1)
    vocab = tokenizer.convert_ids_to_tokens(candidates)
    table = {}
    for start in range(0, len(single), CHUNK):
        chunk = single[start:start + CHUNK]
        rows = torch.tensor([column[token_id] for _, token_id in chunk])
        similarity = pool[rows] @ pool.T
        similarity[torch.arange(len(chunk)), rows] = -float("inf")  # never the word itself
        top = similarity.topk(k, dim=-1).indices.tolist()
        table.update({word: tuple(vocab[j] for j in best) for (word, _), best in zip(chunk, top, strict=True)})
    return Augmenter(table, probability)


def augment(train: datasets.Dataset, keys: tuple[str, ...], copies: int, augmenter: Augmenter, seed: int
            ) -> tuple[datasets.Dataset, dict[str, int]]:
    """``train`` (``distill_only`` 0) followed by ``copies`` augmented copies of each example (``distill_only`` 1,
    the original's label kept but unused). Example ``i``'s copies are drawn from a generator seeded with
    ``(seed, i)``, so they do not depend on the other examples or on the process. Also the counts: examples, copies,
    words replaceable in the copies and words replaced."""
    counts = {"examples": len(train), "copies": copies * len(train), "replaceable_words": 0, "replaced_words": 0}
    originals = train.add_column(DISTILL_ONLY, [0] * len(train))
    if copies == 0:
        return originals, counts

    def expand(batch: dict, indices: list[int]) -> dict:
        out = {name: [] for name in batch}
        for row, index in enumerate(indices):
            rng = random.Random(f"{seed}/{index}")  # str seeds hash the same in every process (unlike hash())
            for _ in range(copies):
                for name, values in batch.items():
                    value = values[row]
                    if name in keys:
                        counts["replaceable_words"] += sum(w in augmenter.neighbours for w in WORD.findall(value))
                        value, replaced = augmenter.replace(value, rng)
                        counts["replaced_words"] += replaced
                    out[name].append(value)
        out[DISTILL_ONLY] = [1] * (len(indices) * copies)
        return out

    # In memory and uncached: the copies depend on the teacher, which a cache fingerprint would not see.
    variants = train.map(expand, batched=True, with_indices=True, features=originals.features,
                         load_from_cache_file=False, keep_in_memory=True, desc="Augmenting")
    return datasets.concatenate_datasets([originals, variants]), counts


__all__ = ["DISTILL_ONLY", "Augmenter", "augment", "build_augmenter", "whole_word_ids"]
