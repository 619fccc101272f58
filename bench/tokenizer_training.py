"""Time of the deterministic WordPiece trainer (magic_bert.wordpiece) against the `tokenizers` trainer, interleaved.

    python bench/tokenizer_training.py [--train_file ../shared/data/corpus/wikitext-2/valid.txt --vocab_size 2000]

Both learn a lower-casing BERT WordPiece vocabulary of --vocab_size on the same text (default: WikiText-2's
valid.txt when it is there, else 16,000 documents of the embedded corpus). Prints the median seconds of each and their
ratio, and how many token ids of two `tokenizers` runs in this process agree (ours agree always).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from magic_bert.cli import arg, parse_one
from magic_bert.data import SPECIAL_TOKENS
from magic_bert.synthetic_corpus import generate_corpus
from magic_bert.wordpiece import count_words, learn_vocabulary

sys.path.insert(0, str(Path(__file__).parent))
from timing import interleaved_medians, print_table  # noqa: E402

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "wikitext-2" / "valid.txt"


@dataclass
class TokenizerBenchArguments:
    train_file: str = arg(str(WIKITEXT), "Text to train on (default: WikiText-2 valid.txt, else the embedded corpus).")
    vocab_size: int = arg(2000, "Vocabulary size.")
    rounds: int = arg(5, "Timed rounds per trainer.")


def tokenizers_vocab(texts: list[str], vocab_size: int) -> dict[str, int]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(texts, trainer=trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False))
    return backend.get_vocab()


def main(argv: list[str] | None = None) -> None:
    args = parse_one(TokenizerBenchArguments, argv, __doc__)
    source = Path(args.train_file)
    texts = source.read_text().splitlines() if source.is_file() else generate_corpus(16000)
    name = source.name if source.is_file() else "embedded corpus (16,000 documents)"
    times = interleaved_medians({
        "magic_bert.wordpiece": lambda: learn_vocabulary(count_words(texts), args.vocab_size, SPECIAL_TOKENS),
        "tokenizers": lambda: tokenizers_vocab(texts, args.vocab_size)}, rounds=args.rounds, warmup=1)
    a, b = tokenizers_vocab(texts, args.vocab_size), tokenizers_vocab(texts, args.vocab_size)
    same_ids = sum(a[token] == b.get(token) for token in a)
    print(f"{name}, vocab {args.vocab_size}, {args.rounds} rounds")
    print_table([(n, f"{s:.3f}", f"{s / times['tokenizers']:.2f}") for n, s in times.items()],
                ("trainer", "median s", "/ tokenizers"))
    print(f"two tokenizers runs in one process: {same_ids} of {len(a)} ids equal (sets equal: {set(a) == set(b)})")


if __name__ == "__main__":
    main()
