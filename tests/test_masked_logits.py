"""The masked-LM head on the labelled positions only (``masked_logits_only``) and the teacher's cheaper forward:
the same loss, logits and gradients as the full head, for fixed archs, supernet children, the distillation and
alignment terms and held-out scoring; HF's contract (full logits) kept where no one asks, ``Trainer`` included."""

import contextlib

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertModel,
    BertTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)

from magic_bert import MagicBertConfig, MagicBertForMaskedLM, MagicBertSupernetForMaskedLM
from magic_bert.distillation import soft_target_kl
from magic_bert.training.losses import AnchorAlignment, LogitsDistillation, StepContext, masked_kl
from magic_bert.training.teacher import Teacher

from .conftest import make_batch

ARCH = ["mha:2", "ffn:256", "conv:3", "identity"]
ANCHOR = ["mha:2", "ffn:256", "mha:2", "ffn:256"]


def _labelled_batch(vocab: int = 1000, seed: int = 1) -> dict:
    ids, mask = make_batch(vocab)
    drop = torch.rand(ids.shape, generator=torch.Generator().manual_seed(seed)) > 0.3
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(drop | (mask == 0), -100)}


def _bert_config(vocab: int = 1000) -> BertConfig:
    return BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


@pytest.mark.parametrize("supernet", [False, True])
def test_loss_logits_and_gradients_equal_the_full_head(tiny_config, supernet):
    torch.manual_seed(0)
    model = (MagicBertSupernetForMaskedLM(tiny_config) if supernet
             else MagicBertForMaskedLM(tiny_config.with_arch(ARCH))).train()
    kwargs = {"arch": ARCH} if supernet else {}
    batch = _labelled_batch()
    labelled = batch["labels"] != -100
    full = model(**batch, **kwargs)
    full.loss.backward()
    full_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    head = model(**batch, masked_logits_only=True, **kwargs)
    head.loss.backward()

    assert full.logits.shape == (*batch["input_ids"].shape, tiny_config.vocab_size)  # the HF contract by default
    assert head.logits.shape == (int(labelled.sum()), tiny_config.vocab_size)
    assert torch.allclose(head.logits, full.logits[labelled], atol=1e-5)
    assert abs(head.loss.item() - full.loss.item()) <= 1e-6
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == full_grads.keys()
    assert max((grads[n] - full_grads[n]).abs().max().item() for n in grads) <= 1e-6


def test_masked_logits_need_labels(tiny_config):
    model = MagicBertForMaskedLM(tiny_config.with_arch(ARCH))
    ids, mask = make_batch()
    with pytest.raises(ValueError, match="needs `labels`"):
        model(input_ids=ids, attention_mask=mask, masked_logits_only=True)
    assert model(input_ids=ids, attention_mask=mask).logits.shape == (*ids.shape, tiny_config.vocab_size)


@pytest.mark.parametrize("teacher_class", [BertForMaskedLM, BertForPreTraining])
def test_the_teacher_predicts_at_the_labelled_positions_only_outside_inference_mode(teacher_class):
    torch.manual_seed(0)
    model = teacher_class(_bert_config()).eval()
    batch = _labelled_batch()
    labelled = batch["labels"] != -100
    with torch.no_grad():
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          output_hidden_states=True)
    full_logits = getattr(reference, "logits", None)
    full_logits = reference.prediction_logits if full_logits is None else full_logits
    targets = Teacher(model, "bert", has_mlm_head=True).outputs(batch, contextlib.nullcontext)
    assert torch.allclose(targets.logits, full_logits[labelled], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(targets.hidden_states, reference.hidden_states,
                                                                strict=True))
    # Made in inference mode, handed out as normal tensors: a loss may save them for backward.
    assert not targets.logits.is_inference() and not any(h.is_inference() for h in targets.hidden_states)

    hidden_only = Teacher(model, "bert", has_mlm_head=True, needs_logits=False).outputs(batch,
                                                                                         contextlib.nullcontext)
    assert hidden_only.logits is None and torch.equal(hidden_only.hidden_states[-1], targets.hidden_states[-1])


def test_a_bf16_teacher_rounds_only_its_targets():
    torch.manual_seed(0)
    model = BertForMaskedLM(_bert_config()).eval()
    batch = _labelled_batch()
    exact = Teacher(model, "bert", True, precision="training").outputs(batch, contextlib.nullcontext)
    rounded = Teacher(model, "bert", True, precision="bf16").outputs(batch, contextlib.nullcontext)
    assert rounded.logits.dtype == torch.float32 and rounded.hidden_states[-1].dtype == torch.float32
    assert not torch.equal(rounded.logits, exact.logits)  # it did run in bf16
    assert torch.allclose(rounded.logits, exact.logits, atol=0.1)


def test_a_headless_teacher_runs_its_encoder():
    torch.manual_seed(0)
    model = BertModel(_bert_config(), add_pooling_layer=False).eval()
    batch = _labelled_batch()
    targets = Teacher(model, "encoder", has_mlm_head=False).outputs(batch, contextlib.nullcontext)
    expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert targets.logits is None and torch.allclose(targets.hidden_states[-1], expected, atol=1e-6)


def test_logits_kd_and_alignment_equal_the_full_head_computation(tiny_config):
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(tiny_config).train()
    batch = _labelled_batch()
    labelled = batch["labels"] != -100
    teacher_model = MagicBertForMaskedLM(tiny_config.with_arch(ANCHOR)).eval()
    with torch.no_grad():
        teacher_full = teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    kd = LogitsDistillation(Teacher(teacher_model, "t", True), weight=0.5, temperature=2.0)
    align = AnchorAlignment(lambda: ANCHOR, precision="training")
    full = supernet(**batch, arch=ARCH, output_hidden_states=True)
    head = supernet(**batch, arch=ARCH, output_hidden_states=True, masked_logits_only=True)
    for outputs in (full, head):
        ctx = StepContext(batch, outputs, supernet, ARCH, contextlib.nullcontext)
        expected_kd = masked_kl(full.logits, teacher_full, batch["labels"], 2.0)  # the old, full-head computation
        assert abs(kd(ctx)["kd_loss"].item() - expected_kd.item()) <= 1e-6
        got = align(ctx)["align_logits_loss"]
        anchor = supernet.export(ANCHOR).eval()
        with torch.no_grad():
            anchor_logits = anchor(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert abs(got.item() - soft_target_kl(full.logits[labelled], anchor_logits[labelled]).item()) <= 1e-6


def test_trainer_with_the_mlm_collator_still_sees_full_logits(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[f"w{i}" for i in range(40)]]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(MagicBertConfig.from_preset("tiny", vocab_size=len(tokens)).with_arch(ARCH))
    texts = [" ".join(f"w{(i * 7 + j) % 40}" for j in range(10)) for i in range(8)]
    data = Dataset.from_dict(dict(tokenizer(texts)))
    seen = []

    def compute_metrics(prediction):
        seen.append(prediction.predictions.shape)
        labels = prediction.label_ids
        hits = (np.argmax(prediction.predictions, -1) == labels)[labels != -100]
        return {"accuracy": float(hits.mean())}

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, per_device_eval_batch_size=4,
                             max_steps=2, report_to=[], use_cpu=True, seed=0, save_strategy="no")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, data_collator=collator,
                      compute_metrics=compute_metrics)
    trainer.train()
    metrics = trainer.evaluate()
    assert seen == [(8, 12, len(tokens))] and 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert np.isfinite(metrics["eval_loss"])


def test_a_batch_without_masked_tokens_gives_zero_kd_not_nan(tiny_config):
    torch.manual_seed(0)
    student = MagicBertForMaskedLM(tiny_config.with_arch(ARCH)).train()
    batch = _labelled_batch()
    batch["labels"] = torch.full_like(batch["labels"], -100)
    outputs = student(**batch, masked_logits_only=True)
    assert outputs.logits.shape == (0, tiny_config.vocab_size)
    kd = LogitsDistillation(Teacher(MagicBertForMaskedLM(tiny_config.with_arch(ANCHOR)).eval(), "t", True), 0.5)
    assert kd(StepContext(batch, outputs, student, None, contextlib.nullcontext))["kd_loss"].item() == 0.0
