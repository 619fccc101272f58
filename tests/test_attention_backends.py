"""Attention back-ends: the declared ones (sdpa, flex_attention) give eager's outputs with padding; the others are
refused. Flash-attention needs a GPU and is not declared; paged attention is for generation."""

import pytest
import torch

from magic_bert import (
    MagicBertForMaskedLM,
    MagicBertForTokenClassification,
    MagicBertPreTrainedModel,
    MagicBertSupernetForMaskedLM,
)

from .conftest import TOLERANCE, max_diff

# Every attention layer has the same shape (2 heads of 32), so flex attention compiles once per process.
ARCH = ["mha:2", "conv:3", "ffn:256", "mha:2"]


def test_declared_backends():
    assert MagicBertPreTrainedModel._supports_sdpa and MagicBertPreTrainedModel._supports_flex_attn
    assert not MagicBertPreTrainedModel._supports_flash_attn


@pytest.mark.parametrize("implementation, message", [
    ("flash_attention_2", "does not support Flash Attention"),
    ("paged|eager", r"does not support attn_implementation='paged\|eager'"),
])
def test_undeclared_backends_are_refused(tiny_config, implementation, message):
    model = MagicBertForMaskedLM(tiny_config.with_arch(ARCH))
    with pytest.raises(ValueError, match=message):
        model.set_attn_implementation(implementation)
    assert model.config._attn_implementation == "sdpa"


def _outputs(model, implementation, batch, **kwargs):
    model.set_attn_implementation(implementation)
    assert model.config._attn_implementation == implementation
    input_ids, attention_mask = batch
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs)
    return out.logits, out.hidden_states


@pytest.mark.slow  # flex attention compiles its kernel on first use (about 10-30 s on 2 CPU cores)
@pytest.mark.parametrize("implementation", ["sdpa", "flex_attention"])
def test_backend_outputs_equal_eager_with_padding(implementation, tiny_config, batch, tmp_path):
    _, attention_mask = batch
    torch.manual_seed(0)
    fixed = MagicBertForMaskedLM(tiny_config.with_arch(ARCH)).eval()
    supernet = MagicBertSupernetForMaskedLM(tiny_config).eval()
    tagger = MagicBertForTokenClassification(tiny_config.with_arch(ARCH)).eval()
    for model, kwargs in ((fixed, {}), (supernet, {"arch": ARCH}), (tagger, {})):
        expected_logits, expected_hidden = _outputs(model, "eager", batch, **kwargs)
        logits, hidden = _outputs(model, implementation, batch, **kwargs)
        assert max_diff(expected_logits, logits, attention_mask) <= TOLERANCE, type(model).__name__
        for expected, got in zip(expected_hidden, hidden, strict=True):
            assert max_diff(expected, got, attention_mask) <= TOLERANCE
    # The back-end chosen at load time.
    fixed.save_pretrained(tmp_path)
    loaded = MagicBertForMaskedLM.from_pretrained(tmp_path, attn_implementation=implementation).eval()
    assert loaded.config._attn_implementation == implementation
    with torch.no_grad():
        got = loaded(batch[0], attention_mask=attention_mask).logits
    assert max_diff(_outputs(fixed, "eager", batch)[0], got, attention_mask) <= TOLERANCE
