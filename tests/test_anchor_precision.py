"""--anchor_precision: the anchor's forward (the alignment targets) in bf16 or in the training precision; `auto` picks
bf16 where the device has bf16 kernels. The alignment terms equal the ones computed by hand from an anchor forward in
that precision, the child's gradients stay fp32, and the choice is refused when unknown and recorded when used."""

import contextlib

import pytest
import torch

import magic_bert.training.losses as losses
import magic_bert.training.recipe as pretraining
from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.errors import InputError
from magic_bert.training.arguments import LossArguments, PretrainArguments
from magic_bert.training.losses import (
    AnchorAlignment,
    StepContext,
    build_loss_terms,
    hidden_alignment,
    masked_kl,
    resolve_anchor_precision,
)

from .conftest import make_batch

ANCHOR = ["mha:2", "ffn:256", "mha:2", "ffn:256"]
CHILD = ["conv:3", "ffn:128", "identity", "mha:2"]


@pytest.mark.parametrize(("device", "bf16_kernels", "expected"), [
    ("cpu", True, "bf16"), ("cpu", False, "training"), ("meta", True, "training")])
def test_auto_is_bf16_only_where_the_device_has_bf16_kernels(monkeypatch, device, bf16_kernels, expected):
    monkeypatch.setattr(losses, "cpu_runs_bf16", lambda: bf16_kernels)
    assert resolve_anchor_precision("auto", device) == expected
    assert resolve_anchor_precision("bf16", device) == "bf16"  # explicit choices are kept
    assert resolve_anchor_precision("training", device) == "training"
    args = LossArguments(anchor_precision="auto")
    assert build_loss_terms(args, lambda: ANCHOR, device=device).anchor_precision == expected
    assert build_loss_terms(args, None, device=device).anchor_precision is None  # no anchor, no alignment term


def test_auto_on_cuda_asks_cuda(monkeypatch):
    for supported, expected in ((True, "bf16"), (False, "training")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, supported=supported:
                            supported and not including_emulation)
        assert resolve_anchor_precision("auto", "cuda") == expected


def _anchor_targets(model, batch, autocast):
    model.eval()
    with torch.no_grad(), autocast:
        target = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], arch=ANCHOR,
                            output_hidden_states=True)
        logits = model.cls(target.last_hidden_state[batch["labels"] != -100])
    model.train()
    return target.hidden_states, logits


@pytest.mark.parametrize("precision", ["training", "bf16"])
def test_alignment_terms_equal_a_hand_computation_with_the_anchor_in_that_precision(tiny_config, precision):
    torch.manual_seed(0)
    model = MagicBertSupernetForMaskedLM(tiny_config).train()
    ids, mask = make_batch()
    labels = ids.masked_fill(torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) > 0.3, -100)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    term = AnchorAlignment(lambda: ANCHOR, precision=precision)
    outputs = model(**batch, arch=CHILD, output_hidden_states=True)
    got = term(StepContext(batch, outputs, model, CHILD, contextlib.nullcontext))

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    hidden, logits = _anchor_targets(model, batch, autocast)
    assert (logits.dtype == torch.bfloat16) == (precision == "bf16")
    expected_hidden = hidden_alignment(outputs.hidden_states, hidden)
    expected_logits = masked_kl(outputs.logits[labels != -100], logits, labels[labels != -100])
    assert torch.equal(got["align_hidden_loss"], expected_hidden)
    assert torch.equal(got["align_logits_loss"], expected_logits)

    # The child's side stays fp32 (gradients too); bf16 only rounds the targets: close to the fp32 values.
    fp32_hidden, fp32_logits = _anchor_targets(model, batch, torch.autocast("cpu", enabled=False))
    assert torch.equal(hidden[-1].float(), fp32_hidden[-1]) == (precision == "training")
    reference = hidden_alignment(outputs.hidden_states, fp32_hidden)
    assert got["align_hidden_loss"].dtype == torch.float32
    assert got["align_hidden_loss"].item() == pytest.approx(reference.item(), rel=2e-2)
    assert got["align_logits_loss"].item() == pytest.approx(
        masked_kl(outputs.logits[labels != -100], fp32_logits, labels[labels != -100]).item(), rel=5e-2, abs=1e-3)
    (got["align_hidden_loss"] + got["align_logits_loss"]).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_an_unknown_precision_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "o"
    args = PretrainArguments(sampler="magic-a", anchor_precision="fp8", synthetic_documents=200,
                             output_dir=str(out))
    with pytest.raises(InputError, match=r"`anchor_precision` 'fp8' is not a precision; choose one of \['auto', "):
        pretraining.pretrain(args)
    assert not out.exists()
