import pytest

from magic_bert import MagicBertConfig
from magic_bert.configuration_magic_bert import PRESETS, default_candidate_ops


@pytest.mark.parametrize("preset, hidden, layers", [("tiny", 64, 4), ("60m", 512, 24), ("110m", 768, 24)])
def test_presets(preset, hidden, layers):
    config = MagicBertConfig.from_preset(preset)
    assert (config.hidden_size, config.num_hidden_layers, config.arch) == (hidden, layers, None)
    assert config.candidate_ops == PRESETS[preset]["candidate_ops"]
    assert config.model_type == "magic_bert"


def test_design_doc_spaces():
    assert MagicBertConfig.from_preset("60m").candidate_ops == [
        "identity", "mha:4", "mha:8", "ffn:1024", "ffn:2048", "ffn:3072", "conv:3", "conv:5", "conv:7"]
    assert MagicBertConfig.from_preset("110m").candidate_ops == [
        "identity", "mha:6", "mha:12", "ffn:1536", "ffn:3072", "ffn:4096", "conv:3", "conv:5", "conv:7"]


def test_preset_overrides_and_unknown_preset():
    config = MagicBertConfig.from_preset("tiny", vocab_size=500, arch=["identity"] * 4)
    assert config.vocab_size == 500 and config.arch == ["identity"] * 4
    with pytest.raises(ValueError, match=r"Unknown preset 'huge'; allowed presets: \['110m', '60m', 'tiny'\]"):
        MagicBertConfig.from_preset("huge")


def test_default_candidate_ops_follow_hidden_size():
    assert default_candidate_ops(768) == [
        "identity", "mha:6", "mha:12", "ffn:1536", "ffn:3072", "conv:3", "conv:5", "conv:7"]
    assert MagicBertConfig(hidden_size=128).candidate_ops == default_candidate_ops(128)


def test_names_are_canonicalised_and_round_trip_through_dict():
    config = MagicBertConfig.from_preset("tiny", arch=("MHA:2", "ffn:256", " conv:3", "identity"))
    assert config.arch == ["mha:2", "ffn:256", "conv:3", "identity"]
    again = MagicBertConfig.from_dict(config.to_dict())
    assert again.arch == config.arch and again.candidate_ops == config.candidate_ops


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"candidate_ops": ["identity", "rnn:3"]}, "Unknown op 'rnn:3'"),
        ({"candidate_ops": ["identity", "mha:3"]}, "3 heads do not divide hidden_size=64"),
        ({"arch": ["mha:2", "ffn:256"]}, "Arch has 2 layers but the search space has num_hidden_layers=4"),
        ({"arch": ["mha:2", "ffn:512", "identity", "identity"]}, "op 'ffn:512' is not in candidate_ops"),
        ({"candidate_ops": ["identity", "identity"]}, "duplicates"),
        ({"candidate_ops": []}, "candidate_ops is empty"),
    ],
)
def test_bad_config_raises_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        MagicBertConfig.from_preset("tiny", **overrides)


def test_with_arch_copies(tiny_config):
    child = tiny_config.with_arch(["mha:2", "ffn:256", "conv:3", "identity"])
    assert tiny_config.arch is None and child.arch[0] == "mha:2"
    assert child.with_arch(None).arch is None
    assert child.auto_map["AutoModelForMaskedLM"] == "modeling_magic_bert.MagicBertForMaskedLM"


def test_bert_shaped(tiny_config):
    assert tiny_config.with_arch(["mha:2", "ffn:256"] * 2).is_bert_shaped
    assert not tiny_config.with_arch(["mha:2", "ffn:256", "mha:1", "ffn:256"]).is_bert_shaped
    assert not tiny_config.with_arch(["ffn:256", "mha:2"] * 2).is_bert_shaped


def test_arch_without_candidate_ops_uses_the_arch_ops():
    config = MagicBertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=4,
                             arch=["mha:2", "ffn:256", "conv:3", "mha:2"])
    assert config.candidate_ops == ["mha:2", "ffn:256", "conv:3"]


def test_default_ops_only_use_head_counts_that_divide_hidden_size():
    assert MagicBertConfig(hidden_size=200).candidate_ops[:3] == ["identity", "mha:1", "ffn:400"]


def test_auto_map_follows_the_arch_not_a_stale_map(tiny_config):
    supernet_dict = tiny_config.to_dict()
    assert supernet_dict["auto_map"]["AutoModel"] == "modeling_magic_bert.MagicBertSupernetModel"
    child = MagicBertConfig.from_dict({**supernet_dict, "arch": ["identity"] * 4})
    assert child.auto_map["AutoModel"] == "modeling_magic_bert.MagicBertModel"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"arch": [["mha:2"], "ffn:256", "conv:3", "identity"]}, "Op name must be a string, got \\['mha:2'\\]"),
        ({"hidden_act": "foo"}, "Unknown hidden_act 'foo'; allowed: \\["),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer, got 0"),
        ({"candidate_ops": "mha:2"}, "candidate_ops must be a list of op names, got 'mha:2'"),
    ],
)
def test_more_bad_configs(overrides, message):
    with pytest.raises(ValueError, match=message):
        MagicBertConfig.from_preset("tiny", **overrides)
