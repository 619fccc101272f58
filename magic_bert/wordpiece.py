"""A WordPiece vocabulary trainer whose result depends only on the text and the size.

The ``tokenizers`` trainer assigns the ids of continuation pieces (``##x``) in the iteration order of a hash map that
Python cannot seed, and breaks ties between equally frequent merges by those ids: two processes trained on the same
text get vocabularies whose ids differ (and, near the size limit, whose tokens differ). This trainer learns the same
kind of vocabulary (BPE-style merges over word counts, as ``tokenizers``' ``WordPieceTrainer`` does) with a canonical
tie-break: the most frequent pair first, ties to the lexicographically smallest pair.

Words come from transformers' BERT normaliser and pre-tokeniser (lower-casing, accents stripped, punctuation split),
so the vocabulary fits ``BertTokenizer``. Ids: the special tokens, the characters (sorted), their ``##`` forms
(sorted), then the merged pieces in the order they were learned.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

PREFIX = "##"


def count_words(texts: Iterable[str]) -> Counter:
    """Word counts after BERT's normalisation and pre-tokenisation (the ``tokenizers`` implementations, in Rust)."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        if text:
            counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def _merged(a: str, b: str) -> str:
    return a + b[len(PREFIX):] if b.startswith(PREFIX) else a + b


def _merge_symbols(symbols: list[str], pair: tuple[str, str], new: str) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class _PairQueue:
    """Pair counts with a lazy max-heap: the best pair is the most frequent, ties to the smallest (a, b).

    A count that grows pushes a fresh entry; one that shrinks pushes nothing, and its stale entry is re-queued at the
    true count when it surfaces. So every pair's true count is in the heap whenever it matters.
    """

    def __init__(self):
        self.counts: dict[tuple[str, str], int] = {}
        self.heap: list[tuple[int, str, str]] = []

    def update(self, deltas: dict[tuple[str, str], int]) -> None:
        for pair, delta in deltas.items():
            if delta == 0:
                continue
            count = self.counts.get(pair, 0) + delta
            if count <= 0:
                self.counts.pop(pair, None)
                continue
            self.counts[pair] = count
            if delta > 0:
                heapq.heappush(self.heap, (-count, *pair))

    def pop_best(self) -> tuple[str, str] | None:
        while self.heap:
            negative, a, b = heapq.heappop(self.heap)
            count = self.counts.get((a, b))
            if count == -negative:
                return a, b
            if count is not None and count < -negative:  # shrank since: queue it again at its true count
                heapq.heappush(self.heap, (-count, a, b))
        return None


def learn_vocabulary(word_counts: dict[str, int], vocab_size: int, special_tokens: list[str]) -> list[str]:
    """The vocabulary, in id order: specials, the alphabet, then merges until ``vocab_size`` tokens (or no pair is
    left). The alphabet is always kept whole, so the result can be longer than ``vocab_size``; callers check."""
    words = [[word[0], *(PREFIX + c for c in word[1:])] for word in word_counts]
    counts = list(word_counts.values())
    alphabet = sorted({s for symbols in words for s in symbols if not s.startswith(PREFIX)})
    continuations = sorted({s for symbols in words for s in symbols if s.startswith(PREFIX)})
    vocab = [*special_tokens, *(t for t in alphabet + continuations if t not in special_tokens)]
    known = set(vocab)

    queue, where = _PairQueue(), defaultdict(set)
    initial: dict[tuple[str, str], int] = defaultdict(int)
    for index, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:], strict=False):
            initial[pair] += counts[index]
            where[pair].add(index)
    queue.update(initial)
    while len(vocab) < vocab_size:
        pair = queue.pop_best()
        if pair is None:
            break
        new = _merged(*pair)
        deltas: dict[tuple[str, str], int] = defaultdict(int)
        for index in sorted(where.pop(pair, ())):
            old = words[index]
            merged = _merge_symbols(old, pair, new)
            if merged == old:
                continue
            for gone in zip(old, old[1:], strict=False):
                deltas[gone] -= counts[index]
            for added in zip(merged, merged[1:], strict=False):
                deltas[added] += counts[index]
                where[added].add(index)
            words[index] = merged
        queue.update(deltas)
        if new not in known:
            vocab.append(new)
            known.add(new)
    return vocab


__all__ = ["count_words", "learn_vocabulary"]
