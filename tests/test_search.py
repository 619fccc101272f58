"""Search: budgets on the big presets (by counting), caching, strategies, latency tables, Pareto front, the recipe."""

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator

from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
from magic_bert.data import held_out_blocks, load_held_out_text
from magic_bert.errors import InputError
from magic_bert.evaluation import MLMScore, evaluate_mlm
from magic_bert.search.algorithms import (
    Candidate,
    CandidateScorer,
    Constraints,
    LatencyTable,
    evolution_search,
    measure_latency,
    mutate_layers,
    pareto_front,
    plot_pareto,
    random_search,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "recipes"))
import search as search_recipe  # noqa: E402


def additive_score(weights: dict[str, float]):
    """A known objective: each layer's op adds its weight (the optimum is every layer at the best op in budget)."""
    return lambda arch: MLMScore(loss=-sum(weights[op] for op in arch), accuracy=0.0, num_tokens=1)


@pytest.mark.parametrize("preset, budget", [("60m", 60e6), ("110m", 110e6)])
def test_paper_budgets_are_respected_by_both_strategies(preset, budget):
    space = MagicBertConfig.from_preset(preset).search_space
    constraints = Constraints(max_params=budget)
    weights = {op.name: float(op.num_params(space.hidden_size)) for op in space.ops}  # bigger looks better
    for strategy in ("evolution", "random"):
        scorer = CandidateScorer(space, constraints, additive_score(weights))
        if strategy == "evolution":
            result = evolution_search(scorer, random.Random(0), population_size=12, generations=4)
        else:
            result = random_search(scorer, 48, random.Random(0))
        assert len(result.candidates) == 48
        assert all(c.params <= budget and c.params == space.num_params(c.arch) for c in result.candidates)
        assert result.best.params <= budget


def test_evolution_beats_random_at_equal_evaluations_on_a_known_objective():
    space = MagicBertConfig.from_preset("60m").search_space
    weights = {op.name: (3.0 if op.name == "ffn:2048" else 2.0 if op.kind == "mha" else 0.0) for op in space.ops}
    best = {}
    for strategy in ("evolution", "random"):
        scores = []
        for seed in range(3):
            scorer = CandidateScorer(space, Constraints(max_params=60e6), additive_score(weights))
            if strategy == "evolution":
                result = evolution_search(scorer, random.Random(seed), population_size=16, generations=8)
            else:
                result = random_search(scorer, 16 * 8, random.Random(seed))
            assert len(scorer.history) == 128
            scores.append(-result.best.loss)
        best[strategy] = sum(scores) / len(scores)
    assert best["evolution"] > best["random"] + 5  # 24 layers: evolution climbs well above the best random draw


def test_every_arch_is_scored_once():
    space = MagicBertConfig.from_preset("tiny").search_space
    calls = []

    def score(arch):
        calls.append(tuple(arch))
        return MLMScore(loss=float(len(set(arch))), accuracy=0.0, num_tokens=1)

    scorer = CandidateScorer(space, Constraints(), score)
    evolution_search(scorer, random.Random(1), population_size=10, generations=6)
    assert len(calls) == len(set(calls)) == len(scorer.history)
    first = scorer.history[0].arch
    assert scorer(first) is scorer.history[0] and len(calls) == len(scorer.history)


def test_a_supernet_that_scores_every_child_the_same_says_so():
    """Search cannot choose when every child ties (a supernet that learned only token frequencies): one warning."""
    import warnings

    space = MagicBertConfig.from_preset("tiny").search_space
    flat = CandidateScorer(space, Constraints(), lambda arch: MLMScore(loss=4.9434, accuracy=0.11, num_tokens=1))
    with pytest.warns(UserWarning, match=r"All 12 children scored the same held-out loss \(4.9434\)"):
        random_search(flat, 12, random.Random(0))
    varied = CandidateScorer(space, Constraints(), additive_score({op.name: i for i, op in enumerate(space.ops)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        random_search(varied, 12, random.Random(0))


def test_flops_and_latency_budgets():
    config = MagicBertConfig.from_preset("tiny")
    space = config.search_space
    max_flops = space.flops(["mha:2", "ffn:256"] * 2)
    table = LatencyTable(ops={op.name: 1.0 + i for i, op in enumerate(space.ops)}, base=0.5)
    constraints = Constraints(max_flops=max_flops, max_latency=12.0, latency_table=table)
    scorer = CandidateScorer(space, constraints, additive_score({op.name: 1.0 for op in space.ops}))
    with pytest.warns(UserWarning, match="All 30 children scored the same"):  # a flat objective: only budgets matter
        result = random_search(scorer, 30, random.Random(0))
    for c in result.candidates:
        assert c.flops <= max_flops and c.latency == pytest.approx(0.5 + sum(table.ops[op] for op in c.arch))
        assert c.latency <= 12.0
    no_identity = MagicBertConfig.from_preset("tiny", candidate_ops=["mha:2", "ffn:128", "conv:3"]).search_space
    smallest = min(no_identity.flops([op] * 4) for op in ("mha:2", "ffn:128", "conv:3"))
    with pytest.raises(ValueError, match=f"Infeasible FLOPs budget.*{smallest:,} \\(smallest\\)"):
        Constraints(max_flops=smallest - 1).check(no_identity)
    Constraints(max_flops=smallest).check(no_identity)
    with pytest.raises(ValueError, match="needs a latency table"):
        Constraints(max_latency=1.0).check(space)


def _attention_layers(arch) -> int:
    return sum(op.startswith("mha:") for op in arch)


def test_attention_floor_holds_in_both_strategies_and_binds_at_the_optimum():
    space = MagicBertConfig.from_preset("tiny").search_space
    weights = {op.name: (-1.0 if op.kind == "mha" else 1.0) for op in space.ops}  # attention scores worst
    unconstrained = evolution_search(CandidateScorer(space, Constraints(), additive_score(weights)),
                                     random.Random(0), population_size=8, generations=4)
    assert _attention_layers(unconstrained.best.arch) == 0
    for strategy in ("evolution", "random"):
        scorer = CandidateScorer(space, Constraints(min_attention_layers=2), additive_score(weights))
        if strategy == "evolution":
            result = evolution_search(scorer, random.Random(0), population_size=8, generations=4)
        else:
            result = random_search(scorer, 32, random.Random(0))
        assert len(result.candidates) == 32
        assert min(_attention_layers(c.arch) for c in result.candidates) == 2  # the floor, and it binds
        assert _attention_layers(result.best.arch) == 2


def test_attention_floor_is_checked_against_layers_ops_and_budget():
    space = MagicBertConfig.from_preset("tiny").search_space
    with pytest.raises(ValueError, match=r"`min_attention_layers` 5 is not achievable: allowed 0 to 4 "):
        Constraints(min_attention_layers=5).check(space)
    no_attention = MagicBertConfig.from_preset("tiny", candidate_ops=["ffn:128", "conv:3", "identity"]).search_space
    with pytest.raises(ValueError, match=r"`min_attention_layers` 1 is not achievable: allowed 0 to 0 .*ops \[\]"):
        Constraints(min_attention_layers=1).check(no_attention)
    smallest = space.num_params(["mha:1", "mha:1", "identity", "identity"])
    with pytest.raises(ValueError, match=f"does not fit the parameter budget: archs with 2 attention layers have "
                                         f"{smallest:,} to "):
        Constraints(max_params=smallest - 1, min_attention_layers=2).check(space)
    Constraints(max_params=smallest, min_attention_layers=2).check(space)
    slow_attention = LatencyTable(ops={op.name: 100.0 if op.kind == "mha" else 1.0 for op in space.ops}, base=0.0)
    feasible_alone = Constraints(max_latency=50.0, latency_table=slow_attention, min_attention_layers=1)
    feasible_alone.check(space)  # each constraint can be met; together they cannot
    with pytest.raises(ValueError, match=r"No architecture met every constraint in 10,000 draws \(seq_len=128, "
                                         r"max_latency=50, min_attention_layers=1\); .* or `min_attention_layers`"):
        feasible_alone.sample(space, random.Random(0))


def test_latency_table_measure_save_load(tmp_path):
    supernet = MagicBertSupernetForMaskedLM(MagicBertConfig.from_preset("tiny"))
    table = measure_latency(supernet, seq_len=32, repeats=3)
    assert set(table.ops) == set(supernet.config.candidate_ops) and all(v >= 0 for v in table.ops.values())
    assert table.ops["identity"] == 0.0
    table.save(tmp_path / "latency.json")
    loaded = LatencyTable.load(tmp_path / "latency.json")
    arch = ["mha:2", "ffn:256", "conv:3", "identity"]
    assert loaded == table and loaded.latency(arch) == pytest.approx(table.base + sum(table.ops[o] for o in arch))
    with pytest.raises(ValueError, match="no entry for ops"):
        LatencyTable(ops={"mha:2": 1.0}).latency(arch)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a latency table"):
        LatencyTable.load(tmp_path / "bad.json")


def test_latency_entries_are_stacks_less_the_empty_encoder(monkeypatch):
    """Each op's entry is (its stack in every layer - the all-identity encoder) / layers; the base is the latter."""
    import magic_bert.search.algorithms as algorithms

    supernet = MagicBertSupernetForMaskedLM(MagicBertConfig.from_preset("tiny"))
    timed = []

    def fake_medians(fns, repeats, device=None):
        for fn in fns.values():
            fn()  # each runs the supernet's encoder without its head
        timed.extend(fns)
        return {op: 1.0 + index for index, op in enumerate(fns)}

    monkeypatch.setattr(algorithms, "interleaved_medians", fake_medians)
    calls = []
    monkeypatch.setattr(supernet.bert.encoder, "forward", lambda *a, arch=None, **k: calls.append(arch) or (
        a[0], None, None))
    table = measure_latency(supernet, seq_len=8, repeats=1)
    ops, layers = supernet.config.candidate_ops, supernet.config.num_hidden_layers
    assert timed == ops and calls == [[op] * layers for op in ops]
    base = 1.0 + ops.index("identity")
    assert table.base == base
    assert table.ops == {op: max(0.0, (1.0 + i - base) / layers) for i, op in enumerate(ops)}


def test_mutation_changes_at_least_one_layer():
    space = MagicBertConfig.from_preset("tiny").search_space
    rng = random.Random(0)
    arch = space.sample(rng)
    for _ in range(50):
        assert mutate_layers(arch, space, rng, mutation_prob=0.01) != arch


def test_pareto_front_and_png(tmp_path):
    c = [Candidate(["a"], loss=3.0, accuracy=0, params=10, flops=0), Candidate(["b"], 2.0, 0, 20, 0),
         Candidate(["c"], 2.5, 0, 30, 0), Candidate(["d"], 1.0, 0, 40, 0), Candidate(["e"], 3.5, 0, 5, 0)]
    assert [x.arch for x in pareto_front(c)] == [["e"], ["a"], ["b"], ["d"]]
    plot_pareto(c, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _scores_on_held_out(supernet_dir, arch, batches: int, batch_size: int = 32):
    tokenizer = AutoTokenizer.from_pretrained(supernet_dir)
    # The supernet's own held-out text, which search reads from its all_results.json (conftest: 300 documents).
    blocks = held_out_blocks(load_held_out_text(synthetic_documents=300, seed=42), tokenizer, 64, 0.15, seed=42)
    blocks = blocks.select(range(min(len(blocks), batches * batch_size)))
    child = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir).export(arch)
    return evaluate_mlm(child, DataLoader(blocks, batch_size=batch_size, collate_fn=default_data_collator))


def test_search_recipe_outputs(trained_supernet_dir, tmp_path):
    space = MagicBertSupernetForMaskedLM.from_pretrained(trained_supernet_dir).config.search_space
    budget = (space.min_params + space.max_params) // 2
    out = tmp_path / "search"
    result = search_recipe.search(search_recipe.parse_args([
        "--supernet", str(trained_supernet_dir), "--output_dir", str(out), "--max_params", str(budget),
        "--population_size", "6", "--generations", "3", "--num_eval_batches", "2", "--max_seq_length", "64",
        "--min_attention_layers", "1"]))
    best = json.loads((out / "arch.json").read_text())
    assert best["arch"] == result.best.arch and best["params"] == space.num_params(best["arch"]) <= budget
    assert best["constraints"]["min_attention_layers"] == 1
    lines = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert len(lines) == 18 and len({tuple(x["arch"]) for x in lines}) == 18
    assert min(_attention_layers(x["arch"]) for x in lines) >= 1
    assert min(x["loss"] for x in lines) == best["eval_loss"]
    # The recorded score is the exported child's score on the same held-out blocks.
    assert _scores_on_held_out(trained_supernet_dir, best["arch"], 2).loss == pytest.approx(best["eval_loss"],
                                                                                            abs=1e-6)
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("case, message", [
    ("budget", "smallest"),
    ("missing", "not a saved supernet"),
    ("non_empty", "`overwrite_output_dir`"),
    ("attention", "`min_attention_layers` 9 is not achievable"),
])
def test_search_bad_input_writes_nothing(trained_supernet_dir, tmp_path, case, message):
    out = tmp_path / "out"
    args = ["--supernet", str(trained_supernet_dir), "--output_dir", str(out)]
    if case == "budget":
        args += ["--max_params", "10"]
    elif case == "attention":
        args += ["--min_attention_layers", "9"]
    elif case == "missing":
        args[1] = str(tmp_path / "nowhere")
    else:
        out.mkdir()
        (out / "keep").write_text("x")
    with pytest.raises(ValueError, match=message):
        search_recipe.search(search_recipe.parse_args(args))
    assert not out.exists() or [p.name for p in out.iterdir()] == ["keep"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_search_scores_match_within_one_process_run(trained_supernet_dir):
    """Scoring through the supernet's arch path equals scoring the exported child (same held-out batches)."""
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(trained_supernet_dir)
    tokenizer = AutoTokenizer.from_pretrained(trained_supernet_dir)
    blocks = held_out_blocks(load_held_out_text(synthetic_documents=2000, seed=0), tokenizer, 64)
    loader = DataLoader(blocks, batch_size=16, collate_fn=default_data_collator)
    arch = supernet.config.search_space.sample(random.Random(3))
    with torch.no_grad():
        a = evaluate_mlm(supernet, loader, arch=arch)
        b = evaluate_mlm(supernet.export(arch), loader)
    assert a.loss == pytest.approx(b.loss, abs=1e-6) and a.accuracy == b.accuracy


def test_racing_scores_in_full_only_children_whose_screen_ranks_among_the_best_so_far():
    """``screen_fn`` (racing): a child is scored in full only if its screened score ranks among the best ``keep``
    screened scores of the children scored in full before it; the others stay screened and are never parents or
    the best. With a screen equal to the full score the best found is the best of every child seen."""
    space = MagicBertConfig.from_preset("60m").search_space
    weights = {op.name: (3.0 if op.name == "ffn:2048" else 2.0 if op.kind == "mha" else 0.0) for op in space.ops}
    full, screens = [], []

    def counted(log, fn):
        def score(arch):
            log.append(tuple(arch))
            return fn(arch)
        return score

    scorer = CandidateScorer(space, Constraints(max_params=60e6), counted(full, additive_score(weights)),
                             counted(screens, additive_score(weights)), keep=4)
    result = evolution_search(scorer, random.Random(0), population_size=16, generations=8, parents=4)
    assert len(scorer.history) == 128 and 0 < sum(c.screened for c in scorer.history) < 128
    kept: list[float] = []
    for candidate in scorer.history:  # the rule, replayed
        value = -candidate.loss
        promising = len(kept) < 4 or value >= sorted(kept, reverse=True)[3]
        assert candidate.screened == (not promising)
        if promising:
            kept.append(value)
    assert len(full) == len(scorer.scored) and len(screens) == len(scorer.history)
    assert result.best.loss == min(c.loss for c in scorer.history) and not result.best.screened
    assert all(not c.screened for c in result.top(10))


@pytest.mark.parametrize(("flags", "message"), [
    (["--screen_batches", "4"], "`screen_batches` 4 screens on fewer batches"),
    (["--screen_batches", "1", "--metric", "distill"], "with `metric` loss or accuracy"),
])
def test_racing_settings_are_checked(trained_supernet_dir, tmp_path, flags, message):
    with pytest.raises(InputError, match=message):
        search_recipe.search(search_recipe.parse_args(["--supernet", str(trained_supernet_dir), "--output_dir",
                                                       str(tmp_path / "out"), *flags]))
    assert not (tmp_path / "out").exists()


def test_a_raced_search_records_screened_children_on_their_screening_batches(trained_supernet_dir, tmp_path):
    out = tmp_path / "raced"
    search_recipe.search(search_recipe.parse_args([
        "--supernet", str(trained_supernet_dir), "--output_dir", str(out), "--population_size", "6", "--generations",
        "3", "--num_eval_batches", "2", "--per_device_eval_batch_size", "4", "--screen_batches", "1",
        "--max_seq_length", "64", "--seed_archs", "none"]))
    lines = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    screened = [x for x in lines if x["screened"]]
    full = [x for x in lines if not x["screened"]]
    assert screened and full and len(lines) == 18
    best = json.loads((out / "arch.json").read_text())
    assert best["eval_loss"] == min(x["loss"] for x in full)
    for record, batches in ((screened[0], 1), (full[-1], 2)):  # each on the batches it was scored on
        assert _scores_on_held_out(trained_supernet_dir, record["arch"], batches, batch_size=4).loss == \
            pytest.approx(record["loss"], abs=1e-6)
