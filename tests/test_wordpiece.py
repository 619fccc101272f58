"""The WordPiece trainer: equal to a brute-force reference, a canonical tie-break, the same files in every process."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from safetensors.torch import load_file

from magic_bert.data import SPECIAL_TOKENS, train_wordpiece_tokenizer
from magic_bert.synthetic_corpus import generate_corpus
from magic_bert.wordpiece import count_words, learn_vocabulary

REPO = Path(__file__).resolve().parent.parent


def brute_force_vocabulary(word_counts: dict[str, int], vocab_size: int) -> list[str]:
    """The definition, recounting every pair at every step: merge the most frequent pair, ties to the smallest."""
    words = {word: [word[0], *("##" + c for c in word[1:])] for word in word_counts}
    alphabet = sorted({s for w in words.values() for s in w if not s.startswith("##")})
    vocab = [*SPECIAL_TOKENS, *alphabet, *sorted({s for w in words.values() for s in w if s.startswith("##")})]
    while len(vocab) < vocab_size:
        pairs = Counter()
        for word, symbols in words.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += word_counts[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        new = best[0] + best[1].removeprefix("##")
        for word, symbols in words.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            words[word] = merged
        if new not in vocab:
            vocab.append(new)
    return vocab


@pytest.mark.parametrize("vocab_size", [120, 300, 700])
def test_equal_to_the_brute_force_definition(vocab_size):
    counts = count_words(generate_corpus(150, seed=3) + ["aaaa aaaaa banana bandana", "#hash ##tag ab-ab"])
    assert learn_vocabulary(counts, vocab_size, SPECIAL_TOKENS) == brute_force_vocabulary(counts, vocab_size)


def test_ties_go_to_the_smallest_pair_and_words_are_bert_normalised():
    counts = count_words(["Cd ab cd AB", "Éb"])  # lower-cased, accents stripped: ab ×2, cd ×2, eb
    assert counts == {"cd": 2, "ab": 2, "eb": 1}
    vocab = learn_vocabulary(counts, len(SPECIAL_TOKENS) + 5 + 1, SPECIAL_TOKENS)
    assert vocab[len(SPECIAL_TOKENS):] == ["a", "c", "e", "##b", "##d", "ab"]  # (a, ##b) ties (c, ##d): a first
    assert vocab[:len(SPECIAL_TOKENS)] == SPECIAL_TOKENS


def test_the_tokenizer_round_trips_and_names_its_length():
    tokenizer = train_wordpiece_tokenizer(generate_corpus(100), 300, model_max_length=64)
    assert tokenizer.model_max_length == 64 and len(tokenizer) == 300
    ids = tokenizer("The dogs that the child sees run.")["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the dogs that the child sees run."


_TRAIN = """
import sys
from magic_bert.training.command import main
main(["--output_dir", sys.argv[1], "--max_train_steps", "3", "--synthetic_documents", "200", "--vocab_size", "400",
      "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_eval_samples", "4", "--seed", "0"])
"""


@pytest.mark.slow
def test_two_fresh_processes_give_the_same_tokenizer_files_and_weights(tmp_path):
    """Different hash seeds in two processes: byte-identical tokenizer files, bit-identical weights."""
    for run, hash_seed in (("a", "1"), ("b", "2")):
        env = {"PYTHONHASHSEED": hash_seed, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin"}
        done = subprocess.run([sys.executable, "-c", _TRAIN, str(tmp_path / run)], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.name.startswith(("tokenizer", "vocab", "special")))
    assert "tokenizer.json" in names and names == sorted(
        p.name for p in (tmp_path / "b").iterdir() if p.name.startswith(("tokenizer", "vocab", "special")))
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert json.loads((tmp_path / "a" / "tokenizer_config.json").read_text())["model_max_length"] == 128
    a, b = (load_file(tmp_path / run / "model.safetensors") for run in ("a", "b"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
