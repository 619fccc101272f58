"""PEFT out of the box: LoRA without `target_modules` adapts `query` / `value`, trains, saves, reloads and merges."""

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForSequenceClassification

import magic_bert.modeling_magic_bert as modeling
from magic_bert import MagicBertForSequenceClassification, MagicBertSupernetForMaskedLM

from .conftest import TOLERANCE, make_batch, max_diff

ARCH = ["mha:2", "ffn:256", "conv:3", "mha:1"]


def lora_module_names(model) -> list[str]:
    return sorted(name for name, module in model.named_modules() if hasattr(module, "lora_A"))


def test_default_targets_are_registered_for_both_model_types():
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    for mapping in (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
                    TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING):
        assert mapping["magic_bert"] == mapping["magic_bert_supernet"] == ["query", "value"]


def test_registration_is_skipped_without_peft(monkeypatch):
    monkeypatch.setattr(modeling, "is_peft_available", lambda: False)
    assert modeling.register_peft_target_modules() is False
    monkeypatch.undo()
    assert modeling.register_peft_target_modules() is True  # idempotent


def logits_of(model, input_ids, attention_mask):
    with torch.no_grad():
        return model(input_ids, attention_mask=attention_mask).logits


def test_lora_trains_saves_reloads_and_merges(tiny_config, tmp_path):
    config = tiny_config.with_arch(ARCH)
    config.num_labels = 3
    torch.manual_seed(0)
    MagicBertForSequenceClassification(config).save_pretrained(tmp_path / "base")
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    frozen = base.bert.encoder.layer[1].output.weight.clone()
    query = base.bert.encoder.layer[0].query.weight.clone()
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, init_lora_weights="gaussian"))
    # Only the attention layers' query and value (layers 0 and 3), never the `output` of attention or FFN.
    assert lora_module_names(model) == [f"base_model.model.bert.encoder.layer.{i}.{name}"
                                        for i in (0, 3) for name in ("query", "value")]
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable and all("lora_" in name or ".classifier." in name for name in trainable)

    input_ids, attention_mask = make_batch()
    labels = torch.tensor([0, 2, 1])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    model.train()
    for _ in range(8):
        loss = model(input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.8 * losses[0], losses
    assert torch.equal(model.base_model.model.bert.encoder.layer[1].output.weight, frozen)
    model.eval()
    expected = logits_of(model, input_ids, attention_mask)

    model.save_pretrained(tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert sorted(saved["target_modules"]) == ["query", "value"]
    reloaded = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tmp_path / "base"),
                                         tmp_path / "adapter").eval()
    assert max_diff(expected, logits_of(reloaded, input_ids, attention_mask)) <= TOLERANCE

    merged = reloaded.merge_and_unload()
    assert type(merged) is MagicBertForSequenceClassification and not lora_module_names(merged)
    assert (merged.bert.encoder.layer[0].query.weight - query).abs().max() > 1e-4  # the update is in the weights
    assert max_diff(expected, logits_of(merged, input_ids, attention_mask)) <= TOLERANCE
    merged.save_pretrained(tmp_path / "merged")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert max_diff(expected, logits_of(again, input_ids, attention_mask)) <= TOLERANCE


def test_lora_on_the_supernet_adapts_every_attention_op(tiny_config, batch):
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(tiny_config).eval()
    input_ids, attention_mask = batch
    arch = ["mha:2", "ffn:256", "conv:3", "mha:1"]
    plain = logits_of(supernet.export(arch).eval(), input_ids, attention_mask)
    model = get_peft_model(supernet, LoraConfig(r=2))
    with torch.no_grad():  # as if trained: LoRA starts with B = 0, an exact no-op
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    names = lora_module_names(model)
    # 4 layers x (mha:1, mha:2) x (query, value)
    assert len(names) == 16 and all(n.rsplit(".", 2)[-2] in ("mha_1", "mha_2") for n in names)
    with torch.no_grad():
        adapted = model(input_ids, attention_mask=attention_mask, arch=arch).logits
        with model.disable_adapter():
            assert max_diff(plain, model(input_ids, attention_mask=attention_mask, arch=arch).logits) <= TOLERANCE
    assert max_diff(adapted, plain) > 1e-4  # the adapters are in the path
    # Children are exported from the merged supernet (export copies plain weights, not adapter layers).
    child = model.merge_and_unload().export(arch).eval()
    assert max_diff(adapted, logits_of(child, input_ids, attention_mask)) <= TOLERANCE


@pytest.mark.parametrize("task_type", ["TOKEN_CLS", "QUESTION_ANS"])
def test_lora_task_types_of_the_new_heads(tiny_config, task_type):
    from magic_bert import MagicBertForQuestionAnswering, MagicBertForTokenClassification

    model_class = MagicBertForTokenClassification if task_type == "TOKEN_CLS" else MagicBertForQuestionAnswering
    model = get_peft_model(model_class(tiny_config.with_arch(ARCH)), LoraConfig(task_type=task_type, r=2))
    assert len(lora_module_names(model)) == 4


def _train_briefly(model, steps: int = 3) -> None:
    """A few optimizer steps, so the adapters, the classifier and any `modules_to_save` leave their initial values."""
    input_ids, attention_mask = make_batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.mark.parametrize("fmt", ["magic_bert", "bert"])
def test_lora_on_an_exported_masked_lm_child_reloads_identically(tiny_config, tmp_path, fmt):
    """docs/models.md's snippet on a masked-LM export (no pooler in the checkpoint): the classifier's fresh pooler is
    the same at every load (magic_bert), or saved with the adapter via `modules_to_save=["pooler"]` (a stock BERT)."""
    from safetensors.torch import load_file

    from magic_bert import MagicBertForMaskedLM, to_bert

    torch.manual_seed(0)
    child = MagicBertForMaskedLM(tiny_config.with_arch(["mha:2", "ffn:256"] * 2))
    (child if fmt == "magic_bert" else to_bert(child)).save_pretrained(tmp_path / "my-child")
    assert not any("pooler" in key for key in load_file(tmp_path / "my-child" / "model.safetensors"))  # as BERT's
    extra = {} if fmt == "magic_bert" else {"modules_to_save": ["pooler"]}

    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "my-child", num_labels=2)
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=8, **extra))
    _train_briefly(model)
    input_ids, attention_mask = make_batch()
    expected = logits_of(model, input_ids, attention_mask)
    model.save_pretrained(tmp_path / "my-adapter")

    torch.manual_seed(1234)  # another global RNG state at reload time
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "my-child", num_labels=2)
    model = PeftModel.from_pretrained(base, tmp_path / "my-adapter")
    assert max_diff(expected, logits_of(model.eval(), input_ids, attention_mask)) <= 1e-6
    merged = model.merge_and_unload()
    assert max_diff(expected, logits_of(merged, input_ids, attention_mask)) <= 1e-6


def test_a_fresh_pooler_is_the_same_at_every_construction(tiny_config):
    config = tiny_config.with_arch(ARCH)
    poolers = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        poolers.append(MagicBertForSequenceClassification(config).bert.pooler.dense.weight)
    assert torch.equal(*poolers) and poolers[0].std().item() == pytest.approx(config.initializer_range, rel=0.2)
