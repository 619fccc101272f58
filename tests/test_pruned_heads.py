"""Head-pruned attention (``heads:<k>``): counts, inheritance of a teacher's most important heads, BERT interop."""

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from magic_bert import MagicBertConfig, MagicBertModel, MagicBertSupernetForMaskedLM, from_bert, to_bert
from magic_bert.compression import _activation_scores, head_orders, inherit_from_bert, space_from_bert, unit_orders
from magic_bert.errors import InputError
from magic_bert.op_specs import parse_op

from .conftest import TOLERANCE, make_batch, max_diff

HEADS, HEAD_SIZE, HIDDEN = 4, 16, 64


def tiny_bert(cls=BertForMaskedLM, seed: int = 0):
    torch.manual_seed(seed)
    return cls(BertConfig(vocab_size=1000, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=HEADS,
                          intermediate_size=128, max_position_embeddings=128, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)).eval()


def held_out_batches(n: int = 3, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(5, 1000, (4, 16), generator=generator)
        masked = torch.rand(ids.shape, generator=generator) < 0.3
        batches.append({"input_ids": torch.where(masked, torch.full_like(ids, 4), ids),
                        "attention_mask": torch.ones_like(ids), "labels": torch.where(masked, ids, -100)})
    return batches


def pruned_config(**overrides) -> MagicBertConfig:
    fields = dict(vocab_size=1000, hidden_size=HIDDEN, num_hidden_layers=4, max_position_embeddings=128,
                  candidate_ops=["identity", "mha:4", "heads:1", "heads:2", "ffn:128"], attention_head_size=HEAD_SIZE,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return MagicBertConfig(**{**fields, **overrides})


# ------------------------------------------------------------------------------------------------------ counting
@pytest.mark.parametrize("kept", [1, 2, 3, 4])
def test_counts_are_the_module_and_a_hand_count(kept):
    config = pruned_config(candidate_ops=[f"heads:{kept}", "ffn:128"], arch=[f"heads:{kept}", "ffn:128"] * 2)
    width = kept * HEAD_SIZE
    by_hand = 3 * (HIDDEN * width + width) + (width * HIDDEN + HIDDEN) + 2 * HIDDEN
    spec = parse_op(f"heads:{kept}")
    assert spec.num_params(HIDDEN, HEAD_SIZE) == by_hand
    assert config.search_space.num_params(config.arch) == MagicBertModel(config).num_parameters()
    seq = 10  # q, k, v, output projections plus QK^T and AV, 2 FLOPs per multiply-add
    assert spec.flops(HIDDEN, seq, HEAD_SIZE) == 2 * 4 * seq * HIDDEN * width + 2 * 2 * seq * seq * width


def test_all_heads_count_as_the_full_width_attention():
    assert parse_op("heads:4").num_params(HIDDEN, HEAD_SIZE) == parse_op("mha:4").num_params(HIDDEN)
    assert parse_op("heads:4").flops(HIDDEN, 7, HEAD_SIZE) == parse_op("mha:4").flops(HIDDEN, 7)


@pytest.mark.parametrize("overrides, message", [
    ({"attention_head_size": None}, "heads:<k> ops need the config's attention_head_size"),
    ({"attention_head_size": 48}, "2 heads of attention_head_size=48 are wider than hidden_size=64; keep at most 1"),
    ({"attention_head_size": 0}, "attention_head_size must be a positive integer or None, got 0"),
    ({"attention_head_size": "16"}, "attention_head_size must be a positive integer or None, got '16'"),
])
def test_bad_head_sizes_are_refused_by_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        pruned_config(**overrides)


def test_a_count_without_the_head_size_is_refused():
    with pytest.raises(ValueError, match="Op 'heads:2' needs attention_head_size"):
        parse_op("heads:2").num_params(HIDDEN)


# --------------------------------------------------------------------------------------------------- inheritance
def _restricted_attention(bert_layer, kept: list[int], x: torch.Tensor) -> torch.Tensor:
    """BERT's attention sublayer with every head outside ``kept`` silenced (its value rows zero: context 0)."""
    silenced = BertModel(tiny_bert(BertModel).config).encoder.layer[0].eval()
    silenced.load_state_dict(bert_layer.state_dict())
    with torch.no_grad():
        for head in set(range(HEADS)) - set(kept):
            rows = slice(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)
            silenced.attention.self.value.weight[rows] = 0
            silenced.attention.self.value.bias[rows] = 0
        return silenced.attention(x)[0]


@pytest.mark.parametrize("method", ["importance", "magnitude", "first"])
def test_an_inherited_op_is_the_teachers_attention_restricted_to_its_best_heads(method):
    bert = tiny_bert()
    batches = held_out_batches() if method == "importance" else None
    supernet = from_bert(bert, MagicBertSupernetForMaskedLM, config=space_from_bert(bert)).eval()
    inherit_from_bert(supernet, bert, method, batches)
    orders = head_orders(bert, method, batches)
    x = torch.randn(2, 5, HIDDEN)
    for position, layer in enumerate(supernet.bert.encoder.layer):
        bert_layer = bert.bert.encoder.layer[position // 2]
        for kept in (1, 2):
            op = layer.ops[f"heads_{kept}"]
            assert op.query.weight.shape == (kept * HEAD_SIZE, HIDDEN)
            reference = _restricted_attention(bert_layer, orders[position // 2][:kept], x)
            with torch.no_grad():
                assert max_diff(op(x)[0], reference) < TOLERANCE
    assert supernet.config.inherited["ops"]["heads:2"] == f"{method}: 2 of {HEADS} heads"
    if method == "first":
        assert orders == [list(range(HEADS))] * 2


def test_magnitude_ranks_heads_by_value_and_output_norms():
    bert = tiny_bert(BertModel)
    with torch.no_grad():  # head 2 of layer 0 writes nothing: the least important; head 1 doubled: the most
        attention = bert.encoder.layer[0].attention
        attention.output.dense.weight[:, 2 * HEAD_SIZE:3 * HEAD_SIZE] = 0
        attention.output.dense.weight[:, HEAD_SIZE:2 * HEAD_SIZE] *= 10
    order = head_orders(bert, "magnitude")[0]
    assert order[0] == 1 and order[-1] == 2


def test_head_importance_is_the_loss_change_of_a_head_gate():
    """DynaBERT's score: |dL/d gate| of a gate of ones on each head's context, summed over batches."""
    bert, batches = tiny_bert(), held_out_batches()
    _, scores = _activation_scores(bert, batches, max_batches=8)
    layers = bert.bert.encoder.layer
    gates = [torch.ones(HEADS, requires_grad=True) for _ in layers]

    def gated(_module, _inputs, out, gate):
        context = out[0].unflatten(-1, (HEADS, HEAD_SIZE)) * gate[:, None]
        return (context.flatten(-2), *out[1:])

    hooks = [layer.attention.self.register_forward_hook(lambda m, i, o, g=g: gated(m, i, o, g))
             for layer, g in zip(layers, gates, strict=True)]
    direct = [torch.zeros(HEADS, dtype=torch.float64) for _ in layers]
    try:
        for batch in batches:
            for total, grad in zip(direct, torch.autograd.grad(bert(**batch).loss, gates), strict=True):
                total += grad.double().abs()
    finally:
        for hook in hooks:
            hook.remove()
    for ours, reference in zip(scores, direct, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-9)
    assert all(p.grad is None for p in bert.parameters())


def test_one_pass_gives_both_orders_and_two_calls_agree():
    bert, batches = tiny_bert(), held_out_batches()
    ffn, heads = unit_orders(bert, "importance", batches)
    assert (ffn, heads) == unit_orders(bert, "importance", batches)
    assert all(sorted(order) == list(range(HEADS)) for order in heads) and len(ffn[0]) == 128


def test_an_op_wider_than_the_teacher_is_refused():
    bert = tiny_bert()
    config = space_from_bert(bert, ops=["identity", "mha:4", "ffn:128", "heads:2"])
    config.attention_head_size = 32  # 2 heads of 32: not heads of this BERT (4 of 16)
    supernet = MagicBertSupernetForMaskedLM(config)
    with pytest.raises(InputError, match=r"Op heads:2 \(head size 32\) cannot keep heads of a BERT layer with 4"):
        inherit_from_bert(supernet, bert, "first")


# ----------------------------------------------------------------------------------------------- BERT interop
@pytest.mark.parametrize("attention", [["heads:2", "heads:1"], ["mha:4", "heads:2"], ["heads:4", "mha:4"]])
def test_to_bert_holds_pruned_heads_as_zero_heads(attention):
    config = pruned_config(candidate_ops=["mha:4", "heads:1", "heads:2", "heads:4", "ffn:128"],
                           arch=[attention[0], "ffn:128", attention[1], "ffn:128"])
    torch.manual_seed(0)
    model = MagicBertModel(config).eval()
    assert config.is_bert_shaped and config.bert_num_attention_heads == HEADS
    bert = to_bert(model)
    assert isinstance(bert, BertModel) and bert.config.num_attention_heads == HEADS
    ids, mask = make_batch()
    with torch.no_grad():
        ours, theirs = model(ids, attention_mask=mask), bert(ids, attention_mask=mask)
    assert max_diff(ours.last_hidden_state, theirs.last_hidden_state, mask) < TOLERANCE
    assert max_diff(ours.pooler_output, theirs.pooler_output) < TOLERANCE


@pytest.mark.parametrize("arch, why", [
    (["heads:2", "ffn:128", "mha:2", "ffn:128"], "mha:2 has heads of 32, heads:2 of 16"),
    (["heads:2", "ffn:128", "heads:2", "ffn:64"], "two inner sizes"),
    (["heads:2", "heads:2", "ffn:128", "ffn:128"], "not attention then ffn"),
])
def test_archs_no_bert_holds_are_not_bert_shaped(arch, why):
    config = pruned_config(candidate_ops=["mha:2", "heads:2", "ffn:64", "ffn:128"], arch=arch)
    assert not config.is_bert_shaped, why
    with pytest.raises(ValueError, match="to_bert needs a BERT-shaped arch"):
        to_bert(MagicBertModel(config))


def test_a_pruned_child_saves_and_loads_with_the_auto_classes(tmp_path):
    from transformers import AutoModel

    config = pruned_config(arch=["heads:1", "ffn:128", "identity", "heads:2"])
    model = MagicBertModel(config).eval()
    model.save_pretrained(tmp_path / "child")
    loaded = AutoModel.from_pretrained(tmp_path / "child").eval()
    ids, mask = make_batch()
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).last_hidden_state,
                           loaded(ids, attention_mask=mask).last_hidden_state)
    assert loaded.config.attention_head_size == HEAD_SIZE


def test_the_latency_table_times_pruned_heads():
    from magic_bert.search.algorithms import measure_latency

    supernet = MagicBertSupernetForMaskedLM(pruned_config(arch=None))
    table = measure_latency(supernet, seq_len=8, repeats=2)
    assert {"heads:1", "heads:2"} <= set(table.ops) and table.latency(["heads:1"] * 4) > 0


def test_exports_of_pruned_heads_keep_the_small_model_or_say_why_not(tmp_path):
    from magic_bert.sentence_export import sentence_encoder

    config = pruned_config(arch=["heads:2", "ffn:128", "heads:1", "ffn:128"])
    assert config.prunes_heads and not pruned_config(candidate_ops=["heads:4", "ffn:128"],
                                                     arch=["heads:4", "ffn:128"] * 2).prunes_heads
    model = MagicBertModel(config).eval()
    encoder = sentence_encoder(model)
    assert isinstance(encoder, MagicBertModel) and encoder.num_parameters() == model.num_parameters()


def test_an_old_latency_table_loads_with_a_warning(tmp_path):
    import json

    from magic_bert.search.algorithms import LatencyTable

    (tmp_path / "old.json").write_text(json.dumps({"ops": {"identity": 0.0}, "base": 1.0}))
    with pytest.warns(UserWarning, match="measured before ops were timed in stacks"):
        table = LatencyTable.load(tmp_path / "old.json")
    assert table.method == "op-alone"
