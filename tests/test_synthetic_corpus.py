import random

from magic_bert.synthetic_corpus import (
    ADJECTIVES,
    ADVERBS,
    INTRANSITIVE,
    NOUNS,
    TRANSITIVE,
    clause,
    generate_corpus,
    vocabulary,
)

SINGULAR = {s for s, _ in NOUNS} - {"sheep"}  # "sheep" is both numbers
PLURAL = {p for _, p in NOUNS} - {"sheep"}
THIRD_PERSON = {v[0] for v in INTRANSITIVE + TRANSITIVE}
BASE = {v[1] for v in INTRANSITIVE + TRANSITIVE}


def _main_verb_agrees(words: list[str]) -> bool | None:
    """True/False for a present-tense clause whose subject number is known; None when it cannot be told."""
    if words[0] in ("he", "she", "it"):
        number, rest = "singular", words[1:]
    elif words[0] in ("they", "we"):
        number, rest = "plural", words[1:]
    else:
        position = 2 if words[1] in ADJECTIVES else 1
        noun = words[position]
        if noun not in SINGULAR | PLURAL:
            return None
        number, rest = ("singular" if noun in SINGULAR else "plural"), words[position + 1:]
        if rest and rest[0] == "that":  # skip the relative clause up to and including its verb
            rest = rest[next(i for i, w in enumerate(rest) if w in THIRD_PERSON | BASE) + 1:]
    if rest and rest[0] in ADVERBS:
        rest = rest[1:]
    return rest[0] in (THIRD_PERSON if number == "singular" else BASE)


def test_corpus_is_deterministic_and_english_sized():
    assert generate_corpus(50, seed=1) == generate_corpus(50, seed=1)
    assert generate_corpus(50, seed=1) != generate_corpus(50, seed=2)
    words = {w.strip(".").lower() for line in generate_corpus(400, seed=0) for w in line.split()}
    assert words <= vocabulary()
    assert 200 <= len(vocabulary()) <= 600 and len(words) > 200


def test_present_tense_verbs_agree_with_their_subject_across_relative_clauses():
    rng = random.Random(0)
    verdicts = [_main_verb_agrees(clause(rng, "present")) for _ in range(3000)]
    checked = [v for v in verdicts if v is not None]
    assert len(checked) > 2000 and all(checked)


def test_agreement_check_can_fail():
    assert _main_verb_agrees(["the", "dogs", "runs"]) is False
    assert _main_verb_agrees(["the", "dog", "that", "the", "children", "see", "run"]) is False
