import pytest

from magic_bert.op_specs import OpSpec, parse_arch, parse_op


@pytest.mark.parametrize(
    "name, spec",
    [("identity", OpSpec("identity")), ("mha:12", OpSpec("mha", 12)), ("FFN:3072", OpSpec("ffn", 3072)),
     ("conv:5", OpSpec("conv", 5))],
)
def test_parse_op_round_trip(name, spec):
    assert parse_op(name) == spec
    assert parse_op(spec.name) == spec
    assert "." not in spec.key and ":" not in spec.key


@pytest.mark.parametrize(
    "name, message",
    [("attention", "Unknown op 'attention'"), ("mha", "Unknown op 'mha'"), ("mha:x", "non-integer size 'x'"),
     ("ffn:0", "positive size"), ("conv:4", "must be odd"), ("lstm:3", "Unknown op 'lstm:3'")],
)
def test_parse_op_errors_name_the_value_and_the_allowed_forms(name, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_op(name)
    if "Unknown" in message:
        assert "mha:<heads>" in str(error.value) and "identity" in str(error.value)


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="5 heads do not divide hidden_size=64"):
        parse_op("mha:5").check_hidden_size(64)


def test_parse_arch_checks_length_and_candidates():
    ops = ["identity", "mha:2", "ffn:128"]
    assert parse_arch("mha:2, ffn:128 identity", ops, 3) == [OpSpec("mha", 2), OpSpec("ffn", 128), OpSpec("identity")]
    with pytest.raises(ValueError, match="Arch has 2 layers but the search space has num_hidden_layers=3"):
        parse_arch(["mha:2", "ffn:128"], ops, 3)
    with pytest.raises(ValueError, match=r"Layer 1: op 'conv:3' is not in candidate_ops; allowed: \['identity'"):
        parse_arch(["mha:2", "conv:3", "identity"], ops, 3)


def test_kinds_come_from_one_registry():
    from magic_bert.modeling_magic_bert import MagicBertOp
    from magic_bert.op_specs import OP_KINDS, op_name_forms

    assert list(OP_KINDS) == ["identity", "mha", "heads", "ffn", "conv"]
    assert all(issubclass(kind.module, MagicBertOp) for kind in OP_KINDS.values())
    assert op_name_forms() == ("'identity', 'mha:<heads>', 'heads:<kept heads>', 'ffn:<inner_size>', "
                               "'conv:<odd kernel>'")


def test_unknown_kind_is_refused_by_name_with_the_allowed_kinds(tiny_config):
    from magic_bert.modeling_magic_bert import build_op

    allowed = r"allowed kinds: \['identity', 'mha', 'heads', 'ffn', 'conv'\]"
    with pytest.raises(ValueError, match=rf"Unknown op kind 'lstm'; {allowed}"):
        build_op(OpSpec("lstm", 3), tiny_config)
    with pytest.raises(ValueError, match="Unknown op kind 'lstm'"):
        OpSpec("lstm", 3).num_params(64)


def test_a_kind_without_module_is_refused_when_built(tiny_config):
    from magic_bert.modeling_magic_bert import build_op
    from magic_bert.op_specs import OpKind, register_op_kind, unregister_op_kind

    register_op_kind(OpKind("noop", None, num_params=lambda h, _: 0, flops=lambda h, s, _: 0))
    try:
        with pytest.raises(ValueError, match=r"Op kind 'noop' has no module.*@register_op_module\('noop'\)"):
            build_op(parse_op("noop"), tiny_config)
    finally:
        unregister_op_kind("noop")


@pytest.fixture
def low_rank_kind():
    """A toy kind `lowrank:<rank>` (x -> x A B, residual, LayerNorm): one OpKind entry + one decorated class."""
    from torch import nn

    from magic_bert.modeling_magic_bert import MagicBertOp, register_op_module
    from magic_bert.op_specs import OpKind, register_op_kind, unregister_op_kind

    register_op_kind(OpKind("lowrank", "rank", num_params=lambda h, r: 2 * h * r + 2 * h,
                            flops=lambda h, s, r: 2 * 2 * s * h * r))
    try:
        @register_op_module("lowrank")
        class LowRank(MagicBertOp):
            def __init__(self, config, rank: int):
                super().__init__()
                self.down = nn.Linear(config.hidden_size, rank, bias=False)
                self.up = nn.Linear(rank, config.hidden_size, bias=False)
                self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

            def forward(self, hidden_states, attention_mask=None, padding_mask=None):
                return self.LayerNorm(self.up(self.down(hidden_states)) + hidden_states), None

        yield LowRank
    finally:
        unregister_op_kind("lowrank")
    with pytest.raises(ValueError, match="Unknown op 'lowrank:8'"):  # the parse cache forgot it too
        parse_op("lowrank:8")


def test_adding_an_op_kind_is_one_entry_and_one_class(low_rank_kind, batch):
    import torch

    from magic_bert import MagicBertConfig, MagicBertForMaskedLM, MagicBertSupernetForMaskedLM

    assert parse_op("lowrank:8") == OpSpec("lowrank", 8) and "'lowrank:<rank>'" in str(
        pytest.raises(ValueError, parse_op, "lowrank").value)
    config = MagicBertConfig.from_preset("tiny", candidate_ops=["identity", "mha:2", "lowrank:8"])
    arch = ["lowrank:8", "mha:2", "lowrank:8", "identity"]
    supernet = MagicBertSupernetForMaskedLM(config).eval()
    assert isinstance(supernet.bert.encoder.layer[0].ops["lowrank_8"], low_rank_kind)
    child = supernet.export(arch)
    assert isinstance(child, MagicBertForMaskedLM) and isinstance(child.bert.encoder.layer[0], low_rank_kind)
    # Counting reads the same registry entry: exact parameters, FLOPs of the toy formula.
    assert config.search_space.num_params(arch) == child.bert.num_parameters() + (64 * 64 + 64)  # + pooler
    assert config.search_space.flops(arch, 128) == 2 * (2 * 2 * 128 * 64 * 8) + parse_op("mha:2").flops(64, 128)
    input_ids, attention_mask = batch
    with torch.no_grad():
        expected = supernet(input_ids, attention_mask=attention_mask, arch=arch).logits
        assert torch.allclose(child.eval()(input_ids, attention_mask=attention_mask).logits, expected, atol=1e-5)



@pytest.mark.parametrize(("arch", "built"), [(["mha:2", "ffn:256", "identity", "mha:2"], False),
                                            (["mha:2", "conv:3", "identity", "mha:2"], True),
                                            (["lowrank:8", "mha:2", "identity", "mha:2"], True)])
def test_the_padding_mask_is_built_only_for_paths_that_read_it(low_rank_kind, batch, arch, built):
    """Convolutions and ops registered by users (``uses_padding_mask`` defaults to True) get the 2-D mask of real
    tokens; a path of identity / mha / ffn ops skips building it (one cast less per forward)."""
    import torch

    from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM

    config = MagicBertConfig.from_preset("tiny", candidate_ops=["identity", "mha:2", "ffn:256", "conv:3",
                                                                "lowrank:8"])
    supernet = MagicBertSupernetForMaskedLM(config).eval()
    seen = []
    hooks = [layer.ops[key].register_forward_hook(lambda _m, args, _o: seen.append(args[2]))
             for layer in supernet.bert.encoder.layer for key in layer.ops]
    input_ids, attention_mask = batch
    with torch.no_grad():
        supernet(input_ids, attention_mask=attention_mask, arch=arch)
    for hook in hooks:
        hook.remove()
    masks = [mask for mask in seen if mask is not None]
    assert len(seen) == len(arch) and bool(masks) == built
    assert all(torch.equal(mask, attention_mask.float()) for mask in masks)
