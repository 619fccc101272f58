import json
import warnings

import pytest
import torch

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.training.arguments import StrategyArguments
from magic_bert.training.losses import alignment_loss
from magic_bert.training.strategies import Anchor, ArchSampler, TopologySampler, build_strategy

from .conftest import make_batch


def test_spos_is_a_pure_function_of_seed_and_step(tiny_config):
    space = tiny_config.search_space
    a, b = ArchSampler(space, seed=3), ArchSampler(space, seed=3)
    first = [a.next_arch(step) for step in range(20)]
    assert first == [b.next_arch(step) for step in range(20)]
    assert first != [ArchSampler(space, seed=4).next_arch(step) for step in range(20)]
    assert len({tuple(x) for x in first}) > 15


def test_budget_is_respected_and_infeasible_budget_fails_at_construction(tiny_config):
    space = tiny_config.search_space
    high = space.min_params + 30_000
    for name in ("spos", "magic-t"):
        sampler = build_strategy(StrategyArguments(sampler=name, max_params=high), space, seed=0)
        assert all(space.num_params(sampler.next_arch(step)) <= high for step in range(30))
    with pytest.raises(ValueError, match="smallest"):
        ArchSampler(space, max_params=10)


def test_magic_t_changes_exactly_one_layer_per_step_and_resumes(tiny_config):
    space = tiny_config.search_space
    sampler = TopologySampler(space, seed=1)
    archs = [sampler.next_arch(step) for step in range(30)]
    assert all(space.distance(x, y) == 1 for x, y in zip(archs, archs[1:], strict=False))
    resumed = TopologySampler(space, seed=99)
    straight = TopologySampler(space, seed=1)
    for step in range(10):
        straight.next_arch(step)
    resumed.load_state_dict(straight.state_dict())
    assert [resumed.next_arch(step) for step in range(10, 30)] == archs[10:]


def test_sampler_state_names_must_match(tiny_config):
    spos, magic_t = ArchSampler(tiny_config.search_space), TopologySampler(tiny_config.search_space)
    with pytest.raises(ValueError, match="Checkpoint sampler is 'spos', this run uses 'magic-t'"):
        magic_t.load_state_dict(spos.state_dict())


def test_build_sampler_flags_and_errors(tiny_config):
    space = tiny_config.search_space
    kinds = {name: build_strategy(StrategyArguments(sampler=name), space, seed=0)
             for name in ("spos", "magic-t", "magic-a", "magic-at")}
    # MAGIC-A samples like SPOS and MAGIC-AT like MAGIC-T; both add the anchor.
    assert [(isinstance(s, TopologySampler), s.uses_anchor) for s in kinds.values()] == [
        (False, False), (True, False), (False, True), (True, True)]
    assert all(isinstance(s, ArchSampler) for s in kinds.values())
    with pytest.raises(ValueError, match=r"Unknown `sampler` 'darts'; allowed: \['spos', 'magic-t'"):
        build_strategy(StrategyArguments(sampler="darts"), space, seed=0)


def test_anchor_swaps_only_on_a_loss_lower_by_the_margin():
    anchor = Anchor(arch=["identity"] * 4, margin=2.0)
    # Threshold 3.0 - 2 * 0.05 = 2.9: equal, a bit lower and exactly at the threshold all keep the anchor.
    assert anchor.consider(5, ["mha:2"] * 4, child_loss=3.0, anchor_loss=3.0, paired_se=0.05) is None
    assert anchor.consider(6, ["mha:2"] * 4, child_loss=2.95, anchor_loss=3.0, paired_se=0.05) is None
    assert anchor.consider(7, ["mha:2"] * 4, child_loss=2.875, anchor_loss=3.0, paired_se=0.0625) is None
    assert anchor.arch == ["identity"] * 4 and anchor.checks == 3
    event = anchor.consider(8, ["mha:2"] * 4, child_loss=2.85, anchor_loss=3.0, paired_se=0.05)
    assert event == {"step": 8, "old_arch": ["identity"] * 4, "new_arch": ["mha:2"] * 4, "old_loss": 3.0,
                     "new_loss": 2.85, "paired_se": 0.05, "margin": 2.0}
    assert anchor.arch == ["mha:2"] * 4 and anchor.loss == 2.85 and anchor.history == [event]
    assert anchor.checks == 4
    restored = Anchor(arch=["identity"] * 4)
    restored.load_state_dict(json.loads(json.dumps(anchor.state_dict())))  # JSON-native, as checkpoints keep it
    assert restored == anchor


def test_alignment_loss_is_zero_for_the_anchor_itself_and_pulls_only_the_child(tiny_config):
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(tiny_config)
    input_ids, attention_mask = make_batch()
    labels = torch.full_like(input_ids, -100)
    labels[:, 2] = input_ids[:, 2]
    anchor_arch, child_arch = ["mha:2", "ffn:256", "conv:3", "ffn:128"], ["conv:5", "ffn:256", "mha:1", "identity"]

    def run(arch):
        return supernet(input_ids, attention_mask=attention_mask, arch=arch, output_hidden_states=True)

    anchor = run(anchor_arch)
    same = alignment_loss(anchor.hidden_states, anchor.hidden_states, anchor.logits, anchor.logits, labels)
    assert same.abs().item() < 1e-6
    with torch.no_grad():
        anchor = run(anchor_arch)
    child = run(child_arch)
    loss = alignment_loss(child.hidden_states, anchor.hidden_states, child.logits, anchor.logits, labels,
                          hidden_weight=1.0, logits_weight=0.0)
    kl_only = alignment_loss(child.hidden_states, anchor.hidden_states, child.logits, anchor.logits, labels,
                             hidden_weight=0.0, logits_weight=1.0, temperature=2.0)
    assert loss.item() > 0 and kl_only.item() > 0
    (loss + kl_only).backward()
    grads = {name for name, p in supernet.named_parameters() if p.grad is not None}
    assert any(".ops.conv_5." in n for n in grads) and not any(".ops.mha_2." in n for n in grads)


def test_alignment_kl_averages_over_masked_positions_only():
    torch.manual_seed(0)
    child, anchor = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 3] = 4, 7
    hidden = [torch.zeros(2, 5, 3)] * 2
    got = alignment_loss(hidden, hidden, child, anchor, labels, hidden_weight=0.0, temperature=2.0)
    keep = labels != -100
    expected = torch.nn.functional.kl_div(torch.log_softmax(child[keep] / 2, -1), torch.softmax(anchor[keep] / 2, -1),
                                          reduction="batchmean") * 4
    assert torch.allclose(got, expected)
    nothing = alignment_loss(hidden, hidden, child, anchor, torch.full((2, 5), -100), hidden_weight=0.0)
    assert nothing.item() == 0.0


def test_default_anchor_is_the_largest_bert_like_child_in_budget(tiny_config):
    from magic_bert.training.strategies import default_anchor_arch

    space = tiny_config.search_space
    assert default_anchor_arch(space) == ["mha:2", "ffn:256"] * 2  # ties in params go to more heads
    smaller = space.num_params(["mha:2", "ffn:128"] * 2)
    assert default_anchor_arch(space, max_params=smaller) == ["mha:2", "ffn:128"] * 2
    # No BERT-like child fits under the smallest one: a seeded draw from the budget instead.
    tight = space.num_params(["mha:1", "ffn:128"] * 2) - 1
    with pytest.warns(UserWarning, match=r"none of its BERT-shaped children \([\d,]+ to [\d,]+ parameters\) fits "
                                         r"the budget, so it is a seeded draw"):
        fallback = default_anchor_arch(space, max_params=tight, warn=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SPOS's evaluation child: the same draw, nothing to say
        assert default_anchor_arch(space, max_params=tight) == fallback
    assert space.num_params(fallback) <= tight and fallback == default_anchor_arch(space, max_params=tight)


def test_sampler_names_are_the_full_choice(tiny_config):
    space = tiny_config.search_space
    sampler = build_strategy(StrategyArguments(sampler="magic-at"), space, seed=0)
    assert sampler.name == "magic-at" and sampler.uses_anchor and isinstance(sampler, TopologySampler)
    other = build_strategy(StrategyArguments(sampler="magic-t"), space, seed=0)
    with pytest.raises(ValueError, match="'magic-at'"):
        other.load_state_dict(sampler.state_dict())


def test_margin_zero_is_the_plain_lower_loss_rule():
    anchor = Anchor(["a"], margin=0.0)
    assert anchor.consider(1, ["b"], 2.0, 2.0, paired_se=0.5) is None  # a tie keeps the anchor
    assert anchor.consider(2, ["b"], 1.999, 2.0, paired_se=0.5) is not None  # any lower loss swaps
    assert anchor.arch == ["b"]
    assert anchor.consider(3, ["b"], 1.0, 2.0, paired_se=0.5) is None  # the anchor itself never swaps


