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
