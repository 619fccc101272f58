"""Token-classification, question-answering and multiple-choice heads: BERT parity both ways, Auto classes,
trust_remote_code loading without magic_bert, and export with each head."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForTokenClassification,
)

from magic_bert import (
    MagicBertForMultipleChoice,
    MagicBertForQuestionAnswering,
    MagicBertForTokenClassification,
    from_bert,
    to_bert,
)
from magic_bert.search.export import export_checkpoint

from .conftest import BLOCK_MAGIC_BERT, TOLERANCE, make_batch, max_diff
from .test_bert_interop import BERT_ARCH, tiny_bert_config
from .test_save_load import CODE_FILES

HEADS_FILE = "modeling_magic_bert_heads.py"
ARCH = ["mha:2", "conv:5", "ffn:256", "identity"]
# (our class, BERT's class, config overrides, Auto class)
HEADS = {
    "token": (MagicBertForTokenClassification, BertForTokenClassification, {"num_labels": 5},
              AutoModelForTokenClassification),
    "qa": (MagicBertForQuestionAnswering, BertForQuestionAnswering, {}, AutoModelForQuestionAnswering),
    "choice": (MagicBertForMultipleChoice, BertForMultipleChoice, {}, AutoModelForMultipleChoice),
}


def head_inputs(kind: str, vocab_size: int = 1000) -> dict:
    """A right-padded batch with labels for the head ``kind`` (multiple choice: 2 questions x 3 choices)."""
    input_ids, attention_mask = make_batch(vocab_size, batch=6 if kind == "choice" else 3)
    generator = torch.Generator().manual_seed(1)
    if kind == "token":
        labels = torch.randint(0, 5, input_ids.shape, generator=generator).masked_fill(attention_mask == 0, -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if kind == "qa":  # one end position past the sequence: ignored by the loss, as in BERT
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "start_positions": torch.tensor([1, 3, 2]), "end_positions": torch.tensor([4, 30, 5])}
    return {"input_ids": input_ids.view(2, 3, -1), "attention_mask": attention_mask.view(2, 3, -1),
            "labels": torch.tensor([2, 0])}


def outputs_of(model, inputs: dict) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(**inputs)
    names = ("loss", "start_logits", "end_logits") if "start_positions" in inputs else ("loss", "logits")
    return {name: out[name] for name in names}


def assert_same_outputs(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for name in expected:
        assert max_diff(expected[name], got[name]) <= TOLERANCE, name


def perturbed_bert(bert_class, **overrides):
    torch.manual_seed(0)
    model = bert_class(tiny_bert_config(**overrides)).eval()
    with torch.no_grad():  # non-zero biases and LayerNorms so that a wrong mapping cannot hide
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model


@pytest.mark.parametrize("kind", list(HEADS))
def test_from_bert_and_to_bert_match_bert_heads(kind):
    magic_class, bert_class, overrides, _ = HEADS[kind]
    bert = perturbed_bert(bert_class, **overrides)
    inputs = head_inputs(kind)
    expected = outputs_of(bert, inputs)
    magic = from_bert(bert, magic_class)
    assert type(magic) is magic_class and magic.config.arch == BERT_ARCH and not magic.training
    assert_same_outputs(expected, outputs_of(magic, inputs))
    back = to_bert(magic)
    assert type(back) is bert_class
    assert_same_outputs(expected, outputs_of(back, inputs))
    for name, tensor in bert.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[name]), name
    with pytest.raises(ValueError, match=f"needs a {bert_class.__name__}, got a BertForMaskedLM"):
        from_bert(BertForMaskedLM(tiny_bert_config()), magic_class)


@pytest.mark.parametrize("kind", list(HEADS))
def test_heads_save_and_load_through_the_auto_classes(kind, tiny_config, tmp_path):
    magic_class, _, overrides, auto_class = HEADS[kind]
    config = tiny_config.with_arch(ARCH)
    for name, value in overrides.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    model = magic_class(config).eval()
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.glob("*.py")} == CODE_FILES | {HEADS_FILE}
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForTokenClassification"] == "modeling_magic_bert_heads.MagicBertForTokenClassification"
    assert auto_map["AutoModelForQuestionAnswering"] == "modeling_magic_bert_heads.MagicBertForQuestionAnswering"
    assert auto_map["AutoModelForMultipleChoice"] == "modeling_magic_bert_heads.MagicBertForMultipleChoice"
    loaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(loaded) is magic_class
    inputs = head_inputs(kind)
    assert_same_outputs(outputs_of(model, inputs), outputs_of(loaded, inputs))
    # The encoder of a head checkpoint saved again as a base model: no heads file, so auto_map does not name it.
    loaded.bert.save_pretrained(tmp_path / "base")
    assert {p.name for p in (tmp_path / "base").glob("*.py")} == CODE_FILES
    assert not any("heads" in ref for ref in json.loads((tmp_path / "base" / "config.json").read_text())["auto_map"]
                   .values())
    # ...and, with magic_bert imported, it loads under a head again: the same encoder weights.
    again = auto_class.from_pretrained(tmp_path / "base", **overrides)
    assert type(again) is magic_class
    assert torch.equal(again.bert.encoder.layer[0].query.weight, model.bert.encoder.layer[0].query.weight)


def test_multiple_choice_takes_inputs_embeds(tiny_config):
    model = MagicBertForMultipleChoice(tiny_config.with_arch(ARCH)).eval()
    inputs = head_inputs("choice")
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    with torch.no_grad():
        expected = model(**inputs).logits
        got = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"]).logits
    assert got.shape == (2, 3) and max_diff(expected, got) <= TOLERANCE


REMOTE_HEADS_SCRIPT = BLOCK_MAGIC_BERT + textwrap.dedent(
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForMultipleChoice, AutoModelForQuestionAnswering, AutoModelForTokenClassification

    folder = sys.argv[1]
    inputs = torch.load(folder + "/inputs.pt")
    model = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    # The same folder under the other heads (their head layers have other shapes and start fresh).
    others = [type(auto.from_pretrained(folder, trust_remote_code=True, num_labels=2, ignore_mismatched_sizes=True))
              .__name__ for auto in (AutoModelForQuestionAnswering, AutoModelForMultipleChoice)]
    # peft's default targets come with the remote code: no target_modules given.
    lora = get_peft_model(model, LoraConfig(task_type="TOKEN_CLS", r=2))
    targets = sorted(name for name, _ in lora.named_modules() if name.endswith(("query", "value")) and
                     hasattr(_, "lora_A"))
    torch.save({"logits": logits, "module": type(model).__module__, "others": others, "lora_targets": targets},
               folder + "/remote.pt")
    """
)


@pytest.mark.slow
def test_head_checkpoint_loads_with_trust_remote_code_without_magic_bert(tiny_config, tmp_path):
    import os

    config = tiny_config.with_arch(ARCH)
    config.num_labels = 5
    torch.manual_seed(0)
    model = MagicBertForTokenClassification(config).eval()
    model.save_pretrained(tmp_path / "model")
    inputs = head_inputs("token")
    del inputs["labels"]
    torch.save(inputs, tmp_path / "model" / "inputs.pt")
    (tmp_path / "remote.py").write_text(REMOTE_HEADS_SCRIPT)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": "",
           "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, str(tmp_path / "remote.py"), str(tmp_path / "model")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = torch.load(tmp_path / "model" / "remote.pt")
    assert result["module"].startswith("transformers_modules.") and result["module"].endswith("_heads")
    assert result["others"] == ["MagicBertForQuestionAnswering", "MagicBertForMultipleChoice"]
    # mha:2 is layer 0, the only attention layer of ARCH
    assert result["lora_targets"] == ["base_model.model.bert.encoder.layer.0.query",
                                      "base_model.model.bert.encoder.layer.0.value"]
    with torch.no_grad():
        assert max_diff(model(**inputs).logits, result["logits"]) <= TOLERANCE


@pytest.fixture(scope="module")
def supernet(trained_supernet_dir):
    from magic_bert import MagicBertSupernetForMaskedLM

    return MagicBertSupernetForMaskedLM.from_pretrained(trained_supernet_dir).eval()


@pytest.mark.parametrize("head, auto_class, tag", [
    ("token_classification", AutoModelForTokenClassification, "token-classification"),
    ("question_answering", AutoModelForQuestionAnswering, "question-answering"),
    ("multiple_choice", AutoModelForMultipleChoice, "multiple-choice"),
])
def test_export_with_each_new_head_inherits_the_encoder(trained_supernet_dir, supernet, tmp_path, head, auto_class,
                                                        tag):
    from huggingface_hub import ModelCard

    out = export_checkpoint(trained_supernet_dir, ARCH, tmp_path / head, head=head,
                            num_labels=4 if head == "token_classification" else None)  # the others have no labels
    model = auto_class.from_pretrained(out)
    assert model.config.arch == ARCH and (out / HEADS_FILE).is_file()
    if head == "token_classification":
        assert model.config.num_labels == 4 and model.classifier.out_features == 4
    child = supernet.export(ARCH).state_dict()
    encoder = [name for name in model.state_dict() if name.startswith("bert.") and "pooler" not in name]
    assert len(encoder) > 10
    for name in encoder:
        assert torch.equal(model.state_dict()[name], child[name]), name
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == tag and auto_class.__name__ in card.text


def test_export_token_classification_as_a_stock_bert(trained_supernet_dir, supernet, tmp_path):
    out = export_checkpoint(trained_supernet_dir, BERT_ARCH, tmp_path / "bert", head="token_classification",
                            format="bert", num_labels=3)
    bert = BertForTokenClassification.from_pretrained(out).eval()
    magic = export_checkpoint(trained_supernet_dir, BERT_ARCH, tmp_path / "magic", head="token_classification",
                              num_labels=3)
    inputs = head_inputs("token", supernet.config.vocab_size)
    del inputs["labels"]
    with torch.no_grad():
        expected = AutoModelForTokenClassification.from_pretrained(magic).eval()(**inputs).logits
        assert max_diff(bert(**inputs).logits, expected, inputs["attention_mask"]) <= TOLERANCE
