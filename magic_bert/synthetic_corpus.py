"""The embedded default text: an English-like corpus from a small probabilistic grammar, generated deterministically.

It has structure a masked-LM can learn: subject-verb agreement in number (present tense), determiners that agree
with their noun (``a``/``this`` + singular, ``these``/``many`` + plural), transitive verbs with objects, adjectives,
prepositional phrases, relative clauses (``the dogs that the child sees run``: the verb agrees with the head noun,
not the nearest one) and coordinated clauses, over a few hundred words. It lets every recipe run offline; real runs
pass ``--dataset_name`` or ``--train_file``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# The embedded default corpus, the same in every command: pre-training trains on ``DEFAULT_DOCUMENTS`` documents drawn
# with its seed and holds out ``validation_documents(DEFAULT_DOCUMENTS)`` drawn with seed + 1; search and the analysis
# commands score on those held-out documents (see magic_bert.data.synthetic_datasets).
DEFAULT_DOCUMENTS = 16_000
VALIDATION_FRACTION = 0.05

# (singular, plural)
NOUNS = [
    ("dog", "dogs"), ("cat", "cats"), ("child", "children"), ("teacher", "teachers"), ("farmer", "farmers"),
    ("bird", "birds"), ("horse", "horses"), ("doctor", "doctors"), ("student", "students"), ("king", "kings"),
    ("queen", "queens"), ("man", "men"), ("woman", "women"), ("mouse", "mice"), ("wolf", "wolves"),
    ("fox", "foxes"), ("baker", "bakers"), ("sailor", "sailors"), ("painter", "painters"), ("writer", "writers"),
    ("neighbor", "neighbors"), ("friend", "friends"), ("soldier", "soldiers"), ("driver", "drivers"),
    ("singer", "singers"), ("girl", "girls"), ("boy", "boys"), ("goose", "geese"), ("sheep", "sheep"),
    ("rabbit", "rabbits"),
]
THINGS = [
    ("book", "books"), ("letter", "letters"), ("apple", "apples"), ("song", "songs"), ("house", "houses"),
    ("boat", "boats"), ("car", "cars"), ("key", "keys"), ("box", "boxes"), ("cake", "cakes"), ("map", "maps"),
    ("picture", "pictures"), ("ball", "balls"), ("story", "stories"), ("window", "windows"), ("door", "doors"),
    ("garden", "gardens"), ("bridge", "bridges"), ("road", "roads"), ("river", "rivers"), ("hat", "hats"),
    ("coat", "coats"), ("stone", "stones"), ("flower", "flowers"), ("tree", "trees"), ("cup", "cups"),
]
PLACES = ["the market", "the river", "the forest", "the village", "the school", "the city", "the hill",
          "the kitchen", "the garden", "the station", "the harbor", "the library", "the field", "the castle"]
# (third person singular, plural/base, past)
INTRANSITIVE = [
    ("runs", "run", "ran"), ("sleeps", "sleep", "slept"), ("sings", "sing", "sang"), ("laughs", "laugh", "laughed"),
    ("waits", "wait", "waited"), ("works", "work", "worked"), ("walks", "walk", "walked"),
    ("dances", "dance", "danced"), ("smiles", "smile", "smiled"), ("cries", "cry", "cried"),
    ("swims", "swim", "swam"), ("arrives", "arrive", "arrived"), ("falls", "fall", "fell"),
    ("rests", "rest", "rested"), ("listens", "listen", "listened"),
]
TRANSITIVE = [
    ("sees", "see", "saw"), ("finds", "find", "found"), ("likes", "like", "liked"), ("carries", "carry", "carried"),
    ("reads", "read", "read"), ("holds", "hold", "held"), ("paints", "paint", "painted"),
    ("builds", "build", "built"), ("opens", "open", "opened"), ("wants", "want", "wanted"),
    ("buys", "buy", "bought"), ("sells", "sell", "sold"), ("writes", "write", "wrote"), ("takes", "take", "took"),
    ("loses", "lose", "lost"), ("keeps", "keep", "kept"), ("brings", "bring", "brought"),
]
ADJECTIVES = ["old", "young", "small", "big", "happy", "quiet", "brave", "tired", "clever", "kind", "red", "green",
              "little", "tall", "strange", "gentle", "busy", "proud", "hungry", "wise", "bright", "heavy"]
ADVERBS = ["slowly", "quickly", "often", "never", "always", "sometimes", "quietly", "happily", "early", "again"]
PREPOSITIONS = ["near", "behind", "under", "beside", "across", "inside", "outside", "toward"]
TIMES = ["in the morning", "at night", "every day", "after dinner", "before noon", "in the spring", "last week",
         "on sunday"]
CONJUNCTIONS = ["and", "but", "because", "while", "so"]
# determiner -> which number it takes
DETERMINERS = {"singular": ["the", "a", "this", "that", "every", "one"],
               "plural": ["the", "these", "those", "many", "some", "two", "three", "all the"]}
PRONOUNS = {"singular": ["he", "she", "it"], "plural": ["they", "we"]}


@dataclass(frozen=True)
class Phrase:
    words: list[str]
    number: str  # "singular" | "plural": the number the verb must agree with


def noun_phrase(rng: random.Random, nouns=NOUNS, allow_relative: bool = True, tense: str = "present") -> Phrase:
    number = rng.choice(("singular", "plural"))
    determiner = rng.choice(DETERMINERS[number])
    noun = rng.choice(nouns)[0 if number == "singular" else 1]
    words = [determiner]
    if rng.random() < 0.4:
        words.append(rng.choice(ADJECTIVES))
    words.append(noun)
    if determiner == "a" and words[1][0] in "aeiou":  # "an old dog", "an apple"
        words[0] = "an"
    if allow_relative and rng.random() < 0.2:
        # "the dog that the children see": the inner subject has its own number; the head keeps `number`.
        inner = noun_phrase(rng, NOUNS, allow_relative=False)
        words += ["that", *inner.words, verb_form(rng.choice(TRANSITIVE), inner.number, tense)]
    return Phrase(words, number)


def verb_form(verb: tuple[str, str, str], number: str, tense: str) -> str:
    if tense == "past":
        return verb[2]
    return verb[0] if number == "singular" else verb[1]


def clause(rng: random.Random, tense: str) -> list[str]:
    """One clause whose main verb agrees with its subject (pronoun or noun phrase)."""
    if rng.random() < 0.2:
        number = rng.choice(("singular", "plural"))
        pronoun = rng.choice(PRONOUNS[number])
        subject = Phrase([pronoun], "plural" if pronoun in ("they", "we") else number)
    else:
        subject = noun_phrase(rng, NOUNS, tense=tense)
    words = list(subject.words)
    if rng.random() < 0.2:
        words.append(rng.choice(ADVERBS))
    if rng.random() < 0.55:
        words.append(verb_form(rng.choice(TRANSITIVE), subject.number, tense))
        words += noun_phrase(rng, THINGS + NOUNS, allow_relative=False).words
    else:
        words.append(verb_form(rng.choice(INTRANSITIVE), subject.number, tense))
    if rng.random() < 0.35:
        words += [rng.choice(PREPOSITIONS), *rng.choice(PLACES).split()]
    if rng.random() < 0.15:
        words += rng.choice(TIMES).split()
    return words


def sentence(rng: random.Random) -> str:
    tense = "past" if rng.random() < 0.3 else "present"
    words = clause(rng, tense)
    if rng.random() < 0.3:
        words += [rng.choice(CONJUNCTIONS), *clause(rng, tense)]
    return " ".join(words).capitalize() + "."


def validation_documents(num_documents: int = DEFAULT_DOCUMENTS) -> int:
    """How many documents the embedded corpus of ``num_documents`` holds out for validation (at least 1)."""
    return max(1, int(num_documents * VALIDATION_FRACTION))


def generate_corpus(num_documents: int = DEFAULT_DOCUMENTS, seed: int = 0,
                    sentences_per_document: tuple[int, int] = (3, 8)) -> list[str]:
    """``num_documents`` lines of text, each a paragraph of a few sentences; identical for the same seed."""
    rng = random.Random(f"magic_bert-corpus-{seed}")
    low, high = sentences_per_document
    return [" ".join(sentence(rng) for _ in range(rng.randint(low, high))) for _ in range(num_documents)]


def vocabulary() -> set[str]:
    """Every word the grammar can produce (lower case, punctuation excluded)."""
    words = {"that", "an", *ADJECTIVES, *ADVERBS, *PREPOSITIONS, *CONJUNCTIONS}
    for pairs in (NOUNS, THINGS):
        words.update(w for pair in pairs for w in pair)
    for verbs in (INTRANSITIVE, TRANSITIVE):
        words.update(w for verb in verbs for w in verb)
    for phrases in (PLACES, TIMES, *DETERMINERS.values(), *PRONOUNS.values()):
        words.update(w for phrase in phrases for w in phrase.split())
    return words


__all__ = ["DEFAULT_DOCUMENTS", "VALIDATION_FRACTION", "generate_corpus", "validation_documents",
           "vocabulary"]
