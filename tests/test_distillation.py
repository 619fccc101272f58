"""Distillation from any BERT: hidden-state KD with or without an MLM head, layer maps, the learned projection."""

import json
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

from magic_bert import MagicBertForMaskedLM, from_bert
from magic_bert.errors import InputError
from magic_bert.training import command
from magic_bert.training.arguments import LossArguments, PretrainArguments
from magic_bert.training.losses import HiddenStateDistillation, StepContext, resolve_precision
from magic_bert.training.recipe import pretrain
from magic_bert.training.teacher import layer_map, load_teacher_model, resolve_kd_weight

FIXED_ARCH = ["mha:2", "ffn:256", "conv:3", "identity"]


@pytest.fixture
def small(word_tokenizer_dir):
    return ["--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "120", "--per_device_train_batch_size",
            "4", "--max_eval_samples", "8", "--max_seq_length", "32"]


def _bert_config(vocab_size: int, hidden: int = 64, layers: int = 2) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=256, max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


def _save(model, tokenizer_dir, folder: Path) -> str:
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def encoder_dir(word_tokenizer_dir, tmp_path):
    """A BERT encoder without an MLM head (like a sentence-transformers model), 32 wide: a projection is needed."""
    torch.manual_seed(0)
    vocab = len(AutoTokenizer.from_pretrained(word_tokenizer_dir))
    return _save(BertModel(_bert_config(vocab, hidden=32)), word_tokenizer_dir, tmp_path / "encoder")


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_layer_maps():
    assert layer_map(None, 12, 6) == [(2, 1), (4, 2), (6, 3), (8, 4), (10, 5), (12, 6)]  # sublayer 2j+1 <-> j+1
    assert layer_map(None, 4, 3) == [(1, 1), (3, 2), (4, 3)]
    assert layer_map("0:0, 2:1", 4, 2) == [(0, 0), (2, 1)]
    for bad in ("2-1", "5:1", "2:3", ""):
        with pytest.raises(InputError, match="`kd_layer_map`"):
            layer_map(bad, 4, 2)


def test_hidden_kd_of_the_bert_shaped_child_against_its_own_teacher_is_zero(word_tokenizer_dir):
    torch.manual_seed(0)
    vocab = len(AutoTokenizer.from_pretrained(word_tokenizer_dir))
    bert = BertForMaskedLM(_bert_config(vocab)).eval()
    student = from_bert(bert, MagicBertForMaskedLM).eval()
    ids = torch.randint(5, vocab, (2, 16))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    class Frozen:
        model, name, has_mlm_head, num_layers, hidden_size = bert, "bert", True, 2, 64

        def outputs(self, batch, autocast):
            return bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        output_hidden_states=True)

    term = HiddenStateDistillation(Frozen(), 1.0, layer_map(None, 4, 2))
    outputs = student(**batch, output_hidden_states=True)
    loss = term(StepContext(batch, outputs, student, None, nullcontext))
    assert loss["kd_hidden_loss"].item() <= 1e-10
    other = BertForMaskedLM(_bert_config(vocab)).eval()  # another teacher: not zero, so the check can fail
    Frozen.outputs = lambda self, batch, autocast: other(input_ids=batch["input_ids"],
                                                          attention_mask=batch["attention_mask"],
                                                          output_hidden_states=True)
    assert term(StepContext(batch, outputs, student, None, nullcontext))["kd_hidden_loss"].item() > 1e-3


def test_an_encoder_without_an_mlm_head_teaches_hidden_states(tmp_path, small, encoder_dir):
    out = tmp_path / "kd"
    command.main([*small, "--arch", " ".join(FIXED_ARCH), "--teacher_name_or_path", encoder_dir,
                  "--kd_hidden_weight", "2", "--max_train_steps", "3", "--checkpointing_steps", "3",
                  "--output_dir", str(out)])
    for record in read_jsonl(out / "train_log.jsonl"):
        assert "kd_loss" not in record and record["kd_hidden_loss"] > 0  # logits KD is off without a head
        assert record["loss"] == pytest.approx(record["mlm_loss"] + 2 * record["kd_hidden_loss"], abs=1e-5)
    # The 64 -> 32 projection is trained and checkpointed with the run, and never exported.
    projection = load_file(out / "step_3" / "model_1.safetensors")
    assert projection["weight"].shape == (32, 64)
    assert not any("projection" in key or key == "weight" for key in load_file(out / "model.safetensors"))
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_steps"] == 3
    assert results["teacher_precision"] == resolve_precision("auto", "cpu")  # --teacher_precision auto, resolved


@pytest.mark.parametrize("precision", ["training", "bf16"])
def test_the_teacher_precision_is_the_one_asked_for(tmp_path, small, encoder_dir, precision):
    out = tmp_path / precision
    command.main([*small, "--arch", " ".join(FIXED_ARCH), "--teacher_name_or_path", encoder_dir,
                  "--kd_hidden_weight", "1", "--max_train_steps", "1", "--teacher_precision", precision,
                  "--output_dir", str(out)])
    assert json.loads((out / "all_results.json").read_text())["teacher_precision"] == precision


def test_an_unknown_teacher_precision_is_refused_before_anything_is_written(tmp_path, encoder_dir):
    out = tmp_path / "o"
    with pytest.raises(InputError, match=r"`teacher_precision` 'fp8' is not a precision; choose one of \['auto', "):
        pretrain(PretrainArguments(teacher_name_or_path=encoder_dir, kd_hidden_weight=1.0, teacher_precision="fp8",
                                   synthetic_documents=200, output_dir=str(out)))
    assert not out.exists()


def test_resume_with_a_projection_equals_an_uninterrupted_run(tmp_path, small, encoder_dir):
    common = [*small, "--arch", " ".join(FIXED_ARCH), "--teacher_name_or_path", encoder_dir, "--kd_hidden_weight",
              "1", "--max_train_steps", "4", "--checkpointing_steps", "2", "--learning_rate", "2e-3"]
    straight = command.main([*common, "--output_dir", str(tmp_path / "straight")])
    (tmp_path / "resumed").mkdir()
    first = command.main([*common, "--max_train_steps", "4", "--output_dir", str(tmp_path / "resumed")])
    assert first.results["train_steps"] == 4
    # Resume from step 2 of the second run: the projection (model_1) must come back exactly as it was.
    resumed = command.main([*common, "--output_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint",
                            str(tmp_path / "resumed" / "step_2")])
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    log_a, log_b = (read_jsonl(tmp_path / d / "train_log.jsonl") for d in ("straight", "resumed"))
    assert [r["loss"] for r in log_a] == pytest.approx([r["loss"] for r in log_b], abs=1e-6)


@pytest.mark.parametrize(("flags", "message"), [
    (["--kd_weight", "0.5", "--kd_hidden_weight", "1"], "encoder without an MLM head"),
    ([], "nothing is distilled"),
    (["--kd_hidden_weight", "1", "--kd_layer_map", "9:1"], "--kd_layer_map '9:1'"),
])
def test_what_an_encoder_cannot_teach_is_refused_before_writing(tmp_path, small, encoder_dir, flags, message):
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match=message):
        command.main([*small, "--teacher_name_or_path", encoder_dir, *flags, "--max_train_steps", "2",
                      "--output_dir", str(out)])
    assert not out.exists()


def test_a_teacher_with_another_vocabulary_is_refused(tmp_path, small, word_tokenizer_dir):
    vocab = len(AutoTokenizer.from_pretrained(word_tokenizer_dir))
    other = BertModel(_bert_config(vocab + 3))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(SystemExit, match="has a vocabulary of"):
        command.main([*small, "--teacher_name_or_path", str(tmp_path / "other"), "--kd_hidden_weight", "1",
                      "--max_train_steps", "2", "--output_dir", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_kd_weight_defaults_follow_the_teacher(tmp_path, word_tokenizer_dir, encoder_dir):
    vocab = len(AutoTokenizer.from_pretrained(word_tokenizer_dir))
    headed = load_teacher_model(_save(BertForMaskedLM(_bert_config(vocab)), word_tokenizer_dir, tmp_path / "mlm"))
    encoder = load_teacher_model(encoder_dir)
    assert headed.has_mlm_head and not encoder.has_mlm_head
    assert resolve_kd_weight(LossArguments(teacher_name_or_path="x"), headed) == 0.5
    assert resolve_kd_weight(LossArguments(teacher_name_or_path="x", kd_hidden_weight=1.0), encoder) == 0.0
