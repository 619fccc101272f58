import random

import pytest

from magic_bert import MagicBertConfig, MagicBertModel, SearchSpace
from magic_bert.op_specs import parse_op


@pytest.mark.parametrize("preset", ["tiny", "60m", "110m"])
def test_num_params_is_exact_for_random_archs_of_every_preset(preset):
    # Real op lists of each preset, built at tiny width so models stay small.
    base = MagicBertConfig.from_preset(preset)
    width = 64 if preset == "tiny" else 96  # divisible by every preset's head counts (1, 2, 4, 6, 8, 12)
    ops = [op for op in base.candidate_ops]
    config = MagicBertConfig(hidden_size=width, num_hidden_layers=4, vocab_size=300, max_position_embeddings=64,
                             candidate_ops=[o if not o.startswith("ffn") else f"ffn:{parse_op(o).size // 16}"
                                            for o in ops])
    space = config.search_space
    rng = random.Random(0)
    for _ in range(4):
        arch = space.sample(rng)
        assert space.num_params(arch) == MagicBertModel(config.with_arch(arch)).num_parameters()


def test_all_identity_and_every_single_op(tiny_config):
    space = tiny_config.search_space
    for op in tiny_config.candidate_ops:
        arch = [op] * 4
        assert space.num_params(arch) == MagicBertModel(tiny_config.with_arch(arch)).num_parameters()
    assert space.num_params(["identity"] * 4) == space.base_params == space.min_params


def test_size_and_distance(tiny_config):
    space = SearchSpace(tiny_config)
    assert space.size == 8**4
    assert space.distance(["identity", "mha:1", "ffn:128", "conv:3"], ["identity", "mha:2", "ffn:128", "conv:5"]) == 2
    assert space.distance(["identity"] * 4, ["identity"] * 4) == 0
    with pytest.raises(ValueError, match="different lengths"):
        space.distance(["identity"] * 4, ["identity"] * 3)


def test_flops_match_hand_count():
    config = MagicBertConfig(hidden_size=64, num_hidden_layers=4, candidate_ops=["identity", "mha:2", "ffn:256",
                                                                                  "conv:3"])
    space, h, s = config.search_space, 64, 10
    mha = 8 * s * h * h + 4 * s * s * h
    ffn = 4 * s * h * 256
    conv = 2 * s * h * 3 + 2 * s * h * h
    assert space.flops(["mha:2", "ffn:256", "conv:3", "identity"], seq_len=s) == mha + ffn + conv
    assert space.flops(["identity"] * 4) == 0


def test_sampling_is_seeded_and_valid(tiny_config):
    space = tiny_config.search_space
    assert space.sample(7) == space.sample(random.Random(7))
    archs = [space.sample(random.Random(i)) for i in range(50)]
    assert all(space.validate(a) == a for a in archs)
    assert len({tuple(a) for a in archs}) > 40  # 4096 archs: 50 draws are almost all distinct


def test_budget_sampling_respects_budget(tiny_config):
    space = tiny_config.search_space
    low, high = space.base_params + 40_000, space.base_params + 60_000
    rng = random.Random(0)
    for _ in range(30):
        arch = space.sample(rng, min_params=low, max_params=high)
        assert low <= space.num_params(arch) <= high


def test_tight_budget_uses_guided_sampling_and_terminates():
    config = MagicBertConfig.from_preset("60m")
    space = config.search_space
    target = space.num_params(["ffn:3072"] * 24)  # rejection sampling essentially never hits the max corner
    arch = space.sample(0, min_params=target - 1_000_000, max_params=target)
    assert target - 1_000_000 <= space.num_params(arch) <= target


def test_infeasible_budget_names_smallest_and_largest(tiny_config):
    space = tiny_config.search_space
    smallest, largest = f"{space.min_params:,}", f"{space.max_params:,}"
    with pytest.raises(ValueError, match=f"between {smallest} \\(smallest\\) and {largest} \\(largest\\)"):
        space.sample(max_params=space.min_params - 1)
    with pytest.raises(ValueError, match="between"):
        space.sample(min_params=space.max_params + 1)
    with pytest.raises(ValueError, match="larger than max_params"):
        space.sample(min_params=10, max_params=5)


def test_budget_between_achievable_sizes_fails_cleanly():
    # Two ops whose sizes leave a gap: no arch has a parameter count strictly between the two corners.
    config = MagicBertConfig(hidden_size=64, num_hidden_layers=2, vocab_size=100, max_position_embeddings=16,
                             candidate_ops=["identity", "ffn:256"])
    space = config.search_space
    gap = space.min_params + 10
    with pytest.raises(ValueError, match="No architecture found with parameters in"):
        space.sample(0, min_params=gap, max_params=gap + 5)


def test_mutate_changes_exactly_one_layer_inside_budget(tiny_config):
    space = tiny_config.search_space
    rng = random.Random(1)
    arch = space.sample(rng)
    for _ in range(50):
        child = space.mutate(arch, rng)
        assert space.distance(arch, child) == 1
        arch = child
    high = space.num_params(arch)
    for _ in range(30):
        child = space.mutate(arch, rng, max_params=high)
        assert space.distance(arch, child) == 1 and space.num_params(child) <= high


def test_mutate_without_a_move_in_budget(tiny_config):
    space = tiny_config.search_space
    arch = ["identity"] * 4
    with pytest.raises(ValueError, match="No single-layer mutation"):
        space.mutate(arch, 0, max_params=space.num_params(arch))


def test_validate_errors(tiny_config):
    space = tiny_config.search_space
    with pytest.raises(ValueError, match="Unknown op 'bogus'"):
        space.validate(["bogus"] * 4)
    with pytest.raises(ValueError, match="num_hidden_layers=4"):
        space.validate(["identity"] * 5)


def test_bert_base_arch_in_the_110m_space_counts_exactly_like_bert_base():
    from transformers import BertConfig, BertModel

    space = MagicBertConfig.from_preset("110m").search_space
    assert space.num_params(["mha:12", "ffn:3072"] * 12) == BertModel(BertConfig()).num_parameters() == 109_482_240


def test_distance_compares_parsed_ops_and_bad_numbers_are_named(tiny_config):
    from magic_bert.op_specs import OpSpec

    space = tiny_config.search_space
    assert space.distance(["MHA:2", OpSpec("ffn", 128)], ["mha:2", "ffn:128"]) == 0
    with pytest.raises(ValueError, match="Budgets must be numbers, got min_params='x'"):
        space.sample(min_params="x")
    with pytest.raises(ValueError, match="min_params=2 is larger than max_params=1"):
        space.sample(min_params="2", max_params="1")
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got -5"):
        space.flops(["identity"] * 4, seq_len=-5)


def test_load_arch_accepts_files_json_and_names(tmp_path):
    import json

    from magic_bert.search_space import load_arch

    arch = ["mha:2", "ffn:256", "conv:3", "identity"]
    (tmp_path / "arch.json").write_text(json.dumps({"arch": arch, "params": 1}))
    (tmp_path / "list.json").write_text(json.dumps(arch))
    assert load_arch(str(tmp_path / "arch.json")) == arch == load_arch(str(tmp_path / "list.json"))
    assert load_arch(json.dumps(arch)) == arch == load_arch("mha:2, ffn:256 conv:3 identity") == load_arch(arch)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_arch(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="does not exist"):
        load_arch(str(tmp_path / "missing.json"))
    (tmp_path / "obj.json").write_text(json.dumps({"layers": arch}))
    with pytest.raises(ValueError, match="'arch' list"):
        load_arch(str(tmp_path / "obj.json"))
