"""Seed archs (``--seed_archs``): hand-designed students of a space around a BERT, or the user's, scored first."""

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from magic_bert.compression import hand_designed_archs, space_from_bert, supernet_from_bert
from magic_bert.errors import InputError
from magic_bert.evaluation import MLMScore
from magic_bert.search.algorithms import CandidateScorer, Constraints, evolution_search, random_search
from magic_bert.search.seeds import resolve_seed_archs

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "recipes"))
import search as search_recipe  # noqa: E402

BERT = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, word_tokenizer_dir):
    folder = tmp_path_factory.mktemp("seeds") / "bert"
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), **BERT)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def supernet_dir(bert_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds") / "supernet"
    supernet = supernet_from_bert(str(bert_dir), space_from_bert(bert_dir), method="magnitude")
    supernet.save_pretrained(folder)
    AutoTokenizer.from_pretrained(bert_dir).save_pretrained(folder)
    return folder


def test_hand_designs_of_a_space_around_a_bert(supernet_dir):
    from magic_bert import MagicBertSupernetForMaskedLM

    config = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir).config
    own, skip = ["mha:4", "ffn:64"], ["identity", "identity"]
    assert hand_designed_archs(config) == {"every_other_layer": own + skip + own + skip,
                                           "first_half": own + own + skip + skip,
                                           "width_half": ["heads:2", "ffn:32"] * 4}
    assert hand_designed_archs(config.__class__(**{**config.to_dict(), "inherited": None})) == {}
    # a supernet inherited before `teacher_ops` was recorded: BERT's FFN by its record, H from its widest mha
    older = {"method": "magnitude", "ops": config.inherited["ops"]}
    assert hand_designed_archs(config.__class__(**{**config.to_dict(), "inherited": older})) == \
        hand_designed_archs(config)


def test_hand_designs_are_distinct_and_never_the_teacher():
    config = space_from_bert(BertConfig(vocab_size=100, **{**BERT, "num_hidden_layers": 2}))
    config.inherited = {"teacher_ops": ["mha:4", "ffn:64"]}
    designs = hand_designed_archs(config)  # two layers: every other layer == the first half
    assert designs == {"every_other_layer": ["mha:4", "ffn:64", "identity", "identity"],
                       "width_half": ["heads:2", "ffn:32"] * 2}
    one_layer = space_from_bert(BertConfig(vocab_size=100, **{**BERT, "num_hidden_layers": 1}))
    one_layer.inherited = {"teacher_ops": ["mha:4", "ffn:64"]}
    assert list(hand_designed_archs(one_layer)) == ["width_half"]  # the others are the teacher itself


def fake_scorer(space, constraints=None):
    score = {op.name: random.Random(op.name).random() for op in space.ops}  # a fixed score per op
    return CandidateScorer(space, constraints or Constraints(),
                           lambda arch: MLMScore(loss=sum(score[op] for op in arch), accuracy=0.0, num_tokens=1))


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_seeds_come_first_in_the_first_generation(strategy):
    space = space_from_bert(BertConfig(vocab_size=100, **BERT)).search_space
    seeds = {"a": ["mha:4", "ffn:64"] * 4, "b": ["heads:1", "ffn:16"] * 4}
    scorer = fake_scorer(space)
    if strategy == "evolution":
        result = evolution_search(scorer, random.Random(0), population_size=4, generations=3, seed_archs=seeds)
        assert len(result.candidates) == 12 and sum(c.generation == 0 for c in result.candidates) == 4
    else:
        result = random_search(scorer, 5, random.Random(0), seed_archs=seeds)
        assert len(result.candidates) == 5
    assert [(c.seed, c.arch, c.generation) for c in result.candidates[:2]] == [
        ("a", seeds["a"], 0), ("b", seeds["b"], 0)]
    assert all(c.seed is None for c in result.candidates[2:])
    assert [c.order for c in result.candidates[:2]] == [0, 1]


def test_auto_seeds_are_the_hand_designs_in_budget(supernet_dir):
    from magic_bert import MagicBertSupernetForMaskedLM

    config = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir).config
    space = config.search_space
    designs = hand_designed_archs(config)
    budget = space.encoder_params(designs["width_half"])  # width_half is the largest of the three
    seeds, notes = resolve_seed_archs("auto", config, Constraints(max_encoder_params=budget - 1))
    assert sorted(seeds) == ["every_other_layer", "first_half"]
    assert notes == [f"hand-designed width_half ({space.num_params(designs['width_half']):,} parameters) does not "
                     "meet the constraints: not seeded"]
    assert resolve_seed_archs("none", config, Constraints()) == ({}, [])
    plain = config.__class__(**{**config.to_dict(), "inherited": None})
    assert resolve_seed_archs("auto", plain, Constraints())[1][0].startswith("no seed archs: the supernet was not "
                                                                            "built around a BERT")


def test_user_seeds_from_text_and_file(supernet_dir, tmp_path):
    from magic_bert import MagicBertSupernetForMaskedLM

    config = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir).config
    arch = ["mha:4", "ffn:64"] + ["identity"] * 6
    assert resolve_seed_archs(json.dumps([arch, " ".join(arch)]), config, Constraints())[0] == {
        "seed_1": arch, "seed_2": arch}
    long_text = json.dumps({f"name_{i}": arch for i in range(8)})  # longer than a file name may be
    assert len(long_text) > 255 and len(resolve_seed_archs(long_text, config, Constraints())[0]) == 8
    (tmp_path / "seeds.json").write_text(json.dumps({"mine": arch}))
    assert resolve_seed_archs(str(tmp_path / "seeds.json"), config, Constraints())[0] == {"mine": arch}


@pytest.mark.parametrize("value, message", [
    ('{"x": "mha:4 lstm:3 mha:4 ffn:64 mha:4 ffn:64 mha:4 ffn:64"}', r"`seed_archs` 'x': Unknown op 'lstm:3'"),
    ('[["mha:4", "ffn:64"]]', r"`seed_archs` 'seed_1': Arch has 2 layers but the search space has "
                              "num_hidden_layers=8"),
    ('{"big": "mha:4 ffn:64 mha:4 ffn:64 mha:4 ffn:64 mha:4 ffn:64"}', r"`seed_archs` 'big' \(params 49,152, .*\) does "
                                                                          r"not meet the constraints \(.*max_encoder_"
                                                                          "params=20,000"),
    ("[]", "must hold a non-empty list of archs"),
    ("best", r"`seed_archs` 'best' is not 'auto', 'none', a JSON file or JSON text"),
    ("missing.json", r"`seed_archs` file 'missing.json' does not exist"),
])
def test_bad_seeds_are_refused_by_name_before_any_search(supernet_dir, tmp_path, value, message):
    out = tmp_path / "out"
    args = ["--supernet", str(supernet_dir), "--output_dir", str(out), "--seed_archs", value,
            "--max_encoder_params", "20000"]
    with pytest.raises(InputError, match=message):
        search_recipe.search(search_recipe.parse_args(args))
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_the_search_seeds_a_space_around_a_bert_and_reports_them(supernet_dir, tmp_path, capsys):
    from magic_bert import MagicBertSupernetForMaskedLM

    config = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir).config
    out = tmp_path / "search"
    search_recipe.search(search_recipe.parse_args([
        "--supernet", str(supernet_dir), "--output_dir", str(out), "--population_size", "4", "--generations", "2",
        "--num_eval_batches", "1", "--max_seq_length", "32"]))
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    designs = hand_designed_archs(config)
    assert [(row["seed"], row["arch"]) for row in rows[:3]] == list(designs.items())
    assert json.loads((out / "arch.json").read_text())["seed_archs"] == designs
    printed = capsys.readouterr().out
    assert all(f"seed {name}: rank " in printed for name in designs)
