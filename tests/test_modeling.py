import random

import pytest
import torch

from magic_bert import (
    MagicBertConfig,
    MagicBertForMaskedLM,
    MagicBertForSequenceClassification,
    MagicBertModel,
    MagicBertSupernetForMaskedLM,
)

from .conftest import TOLERANCE, make_batch, max_diff

EVERY_OP_ARCHS = [
    ["mha:2", "ffn:256", "conv:3", "identity"],
    ["conv:7", "mha:1", "conv:5", "ffn:128"],
    ["identity"] * 4,
]


def _with_padding(input_ids, attention_mask, extra: int):
    pad = torch.zeros(input_ids.shape[0], extra, dtype=input_ids.dtype)
    return torch.cat([input_ids, pad], 1), torch.cat([attention_mask, pad], 1)


@pytest.mark.parametrize("arch", EVERY_OP_ARCHS)
def test_padding_never_changes_real_tokens(tiny_config, arch):
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(tiny_config.with_arch(arch)).eval()
    input_ids, attention_mask = make_batch(pad_from=12)  # no padding at all
    padded_ids, padded_mask = _with_padding(input_ids, attention_mask, extra=5)
    with torch.no_grad():
        plain = model(input_ids, attention_mask=attention_mask).logits
        padded = model(padded_ids, attention_mask=padded_mask).logits[:, :12]
    assert max_diff(plain, padded) <= TOLERANCE


def test_conv_without_masking_would_see_padding(tiny_config):
    # The padding test above can fail: without the mask, padded positions leak into real tokens through the conv.
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(tiny_config.with_arch(["conv:7"] * 4)).eval()
    input_ids, attention_mask = make_batch(pad_from=12)
    padded_ids, padded_mask = _with_padding(input_ids, attention_mask, extra=5)
    with torch.no_grad():
        plain = model(input_ids).logits
        leaky = model(padded_ids).logits[:, :12]  # no attention_mask: padding is treated as tokens
    assert max_diff(plain, leaky) > 1e-3


@pytest.mark.parametrize("arch", EVERY_OP_ARCHS[:2])
def test_eager_equals_sdpa(tiny_config, batch, arch):
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(tiny_config.with_arch(arch)).eval()
    assert model.config._attn_implementation == "sdpa"  # the default
    input_ids, attention_mask = batch
    with torch.no_grad():
        sdpa = model(input_ids, attention_mask=attention_mask).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids, attention_mask=attention_mask).logits
    assert max_diff(sdpa, eager, attention_mask) <= TOLERANCE


def test_hidden_states_and_attentions(tiny_config, batch):
    arch = ["mha:2", "ffn:256", "conv:3", "identity"]
    model = MagicBertModel(tiny_config.with_arch(arch)).eval()
    model.set_attn_implementation("eager")
    input_ids, attention_mask = batch
    out = model(input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 5 and len(out.attentions) == 4
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert torch.equal(out.hidden_states[4], out.hidden_states[3])  # identity layer
    assert out.attentions[0].shape == (3, 2, 12, 12) and out.attentions[1] is None
    assert out.pooler_output.shape == (3, 64)
    assert isinstance(model(input_ids, return_dict=False), tuple)


def test_fixed_model_needs_arch(tiny_config):
    for cls in (MagicBertModel, MagicBertForMaskedLM, MagicBertForSequenceClassification):
        with pytest.raises(ValueError, match="needs config.arch .*'identity', 'mha:1'"):
            cls(tiny_config)


def test_supernet_arch_errors(tiny_config, batch):
    supernet = MagicBertSupernetForMaskedLM(tiny_config)
    with pytest.raises(ValueError, match="supernet forward needs `arch="):
        supernet(batch[0])
    with pytest.raises(ValueError, match="op 'ffn:999' is not in candidate_ops"):
        supernet(batch[0], arch=["ffn:999"] * 4)
    with pytest.raises(ValueError, match="must have arch=None"):
        MagicBertSupernetForMaskedLM(tiny_config.with_arch(["identity"] * 4))
    fixed = MagicBertForMaskedLM(tiny_config.with_arch(["identity"] * 4))
    with pytest.raises(ValueError, match="only accepted by supernets"):
        fixed(batch[0], arch=["identity"] * 4)


def _random_archs(config, count, seed=0):
    rng = random.Random(seed)
    return [config.search_space.sample(rng) for _ in range(count)] + [["identity"] * 4]


def test_export_equals_supernet_path(tiny_config, batch):
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(tiny_config).eval()
    input_ids, attention_mask = batch
    for arch in _random_archs(tiny_config, 8):
        child = supernet.export(arch)
        assert isinstance(child, MagicBertForMaskedLM) and child.config.arch == arch
        assert child.num_parameters() == supernet.search_space.num_params(arch) - (64 * 64 + 64) + (
            64 * 64 + 64 + 2 * 64 + tiny_config.vocab_size)  # - pooler + MLM head transform, LN, bias
        with torch.no_grad():
            a = supernet(input_ids, attention_mask=attention_mask, arch=arch).logits
            b = child(input_ids, attention_mask=attention_mask).logits
        assert max_diff(a, b, attention_mask) <= TOLERANCE
        # The export is a copy: changing it leaves the supernet alone.
        first = next(child.parameters())
        before = supernet.bert.embeddings.word_embeddings.weight.clone()
        with torch.no_grad():
            first.add_(1.0)
        assert torch.equal(before, supernet.bert.embeddings.word_embeddings.weight)


def test_only_the_child_gets_gradients(tiny_config, batch):
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(tiny_config)
    arch = ["mha:2", "ffn:256", "conv:3", "identity"]
    input_ids, attention_mask = batch
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    supernet(input_ids, attention_mask=attention_mask, labels=labels, arch=arch).loss.backward()
    used = {name for name, _ in supernet.child_parameters(arch)}
    for name, param in supernet.named_parameters():
        if name in used:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    assert any(".ops.mha_2." in n for n in used) and not any(".ops.mha_1." in n for n in used)


def test_child_state_dict_round_trip(tiny_config):
    torch.manual_seed(0)
    source = MagicBertSupernetForMaskedLM(tiny_config)
    target = MagicBertSupernetForMaskedLM(tiny_config)
    arch = ["mha:1", "ffn:128", "conv:5", "mha:2"]
    target.load_child_state_dict(arch, source.child_state_dict(arch))
    for name, tensor in target.child_state_dict(arch).items():
        assert torch.equal(tensor, source.child_state_dict(arch)[name]), name
    other = ["ffn:256"] * 4  # untouched ops keep their own weights
    assert not torch.equal(target.child_state_dict(other)["bert.encoder.layer.0.output.weight"],
                           source.child_state_dict(other)["bert.encoder.layer.0.output.weight"])
    with pytest.raises(ValueError, match="missing keys"):
        target.load_child_state_dict(arch, {"bert.embeddings.word_embeddings.weight": torch.zeros(1000, 64)})


def test_tied_embeddings(tiny_config):
    model = MagicBertForMaskedLM(tiny_config.with_arch(["identity"] * 4))
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    supernet = MagicBertSupernetForMaskedLM(tiny_config)
    assert supernet.cls.predictions.decoder.weight is supernet.bert.embeddings.word_embeddings.weight


def test_sequence_classification_losses(tiny_config, batch):
    torch.manual_seed(0)
    arch = ["mha:2", "ffn:256", "conv:3", "identity"]
    input_ids, attention_mask = batch
    config = tiny_config.with_arch(arch)
    config.num_labels = 3
    model = MagicBertForSequenceClassification(config).eval()
    labels = torch.tensor([0, 2, 1])
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 3)
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    config = tiny_config.with_arch(arch)
    config.num_labels = 1
    regression = MagicBertForSequenceClassification(config).eval()
    targets = torch.tensor([0.5, 1.5, 4.0])
    out = regression(input_ids, attention_mask=attention_mask, labels=targets)
    assert regression.config.problem_type == "regression"
    assert torch.allclose(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), targets))


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config, batch):
    torch.manual_seed(0)
    arch = ["mha:2", "ffn:256", "conv:3", "identity"]
    model = MagicBertForMaskedLM(tiny_config.with_arch(arch))
    input_ids, attention_mask = batch
    model(input_ids, attention_mask=attention_mask, labels=input_ids).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.activation_checkpointing_enable()
    model(input_ids, attention_mask=attention_mask, labels=input_ids).loss.backward()
    for name, param in model.named_parameters():
        if name in plain:
            assert torch.allclose(param.grad, plain[name], atol=1e-6), name


def _preset_ops_at_tiny_width(preset: str) -> MagicBertConfig:
    """A preset's real op list at hidden 96 (divisible by every preset's head counts), FFNs scaled down 16x."""
    ops = [op if not op.startswith("ffn") else f"ffn:{int(op.split(':')[1]) // 16}"
           for op in MagicBertConfig.from_preset(preset).candidate_ops]
    return MagicBertConfig(hidden_size=96, num_hidden_layers=4, vocab_size=500, max_position_embeddings=64,
                           candidate_ops=ops, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.mark.parametrize("preset", ["tiny", "60m", "110m"])
def test_random_archs_of_every_preset_export_exactly_and_ignore_padding(preset):
    config = MagicBertConfig.from_preset("tiny") if preset == "tiny" else _preset_ops_at_tiny_width(preset)
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(config).eval()
    input_ids, attention_mask = make_batch(vocab_size=config.vocab_size, pad_from=12)
    padded_ids, padded_mask = _with_padding(input_ids, attention_mask, extra=4)
    for arch in _random_archs(config, 4, seed=1):
        child = supernet.export(arch)
        with torch.no_grad():
            path = supernet(padded_ids, attention_mask=padded_mask, arch=arch).logits
            exported = child(padded_ids, attention_mask=padded_mask).logits
            unpadded = child(input_ids, attention_mask=attention_mask).logits
        assert max_diff(path, exported, padded_mask) <= TOLERANCE
        assert max_diff(exported[:, :12], unpadded) <= TOLERANCE


def test_masked_lm_loss_normalises_by_num_items_in_batch(tiny_config, batch):
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(tiny_config.with_arch(["mha:2", "ffn:256", "conv:3", "identity"])).eval()
    input_ids, attention_mask = batch
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask, labels=labels)
        total = torch.nn.functional.cross_entropy(out.logits.view(-1, 1000), labels.view(-1), reduction="sum")
        scaled = model(input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=100).loss
    assert torch.allclose(scaled, total / 100) and torch.allclose(out.loss, total / (labels != -100).sum())


def test_prepared_4d_mask_with_a_conv_arch(tiny_config, batch):
    torch.manual_seed(0)
    model = MagicBertModel(tiny_config.with_arch(["conv:3", "mha:2", "ffn:128", "identity"])).eval()
    input_ids, _ = batch
    full = torch.ones(3, 1, 12, 12, dtype=torch.bool)
    with torch.no_grad():
        assert max_diff(model(input_ids, attention_mask=full).last_hidden_state,
                        model(input_ids).last_hidden_state) <= TOLERANCE


def test_bad_child_weights_leave_the_supernet_untouched(tiny_config):
    supernet = MagicBertSupernetForMaskedLM(tiny_config)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    arch = ["mha:1", "ffn:128", "conv:5", "mha:2"]
    partial = {k: torch.zeros_like(v) for k, v in supernet.child_state_dict(arch).items() if "layer.3" not in k}
    with pytest.raises(ValueError, match="missing keys"):
        supernet.load_child_state_dict(arch, partial)
    wrong = {k: torch.zeros(1) for k in supernet.child_state_dict(arch)}
    with pytest.raises(ValueError, match="wrong shapes"):
        supernet.load_child_state_dict(arch, wrong)
    assert all(torch.equal(v, before[k]) for k, v in supernet.state_dict().items())
