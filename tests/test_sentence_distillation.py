"""Task-agnostic objectives for a teacher without an MLM head: MiniLMv2 self-attention relations, pooled
sentence-embedding distillation, and masked-LM made optional (``--mlm_weight 0``)."""

import json
import math
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

from magic_bert import MagicBertForMaskedLM, from_bert
from magic_bert.distillation import embedding_distance, mean_pool, relation_kl, self_relations
from magic_bert.errors import InputError
from magic_bert.training import command
from magic_bert.training.arguments import PretrainArguments
from magic_bert.training.losses import (
    AttentionRelationDistillation,
    EmbeddingDistillation,
    HiddenStateDistillation,
    StepContext,
)
from magic_bert.training.teacher import Teacher, layer_map, uniform_layer_map

ARCH = ["mha:2", "ffn:256", "conv:3", "mha:1"]


def _config(vocab: int, hidden: int = 64, layers: int = 2, heads: int = 2) -> BertConfig:
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=256, max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


@pytest.fixture
def vocab(word_tokenizer_dir):
    return len(AutoTokenizer.from_pretrained(word_tokenizer_dir))


@pytest.fixture
def small(word_tokenizer_dir):
    return ["--tokenizer_name", word_tokenizer_dir, "--synthetic_documents", "120", "--per_device_train_batch_size",
            "4", "--max_eval_samples", "8", "--max_seq_length", "32", "--arch", " ".join(ARCH)]


@pytest.fixture
def encoder_dir(word_tokenizer_dir, vocab, tmp_path):
    """A 32-wide BERT encoder with 4 heads and no MLM head (a sentence-transformers-like teacher)."""
    torch.manual_seed(0)
    folder = tmp_path / "encoder"
    BertModel(_config(vocab, hidden=32, heads=4)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(word_tokenizer_dir).save_pretrained(folder)
    return str(folder)


def _relations_by_hand(x: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """softmax(x_h x_hᵀ / √d) over the real keys, one sentence and one head at a time."""
    batch, seq, width = x.shape
    d = width // heads
    out = torch.zeros(batch, heads, seq, seq)
    for b in range(batch):
        real = mask[b].bool()
        for h in range(heads):
            part = x[b, :, h * d:(h + 1) * d]
            scores = part @ part.T / math.sqrt(d)
            probs = torch.softmax(scores[:, real], -1)
            out[b, h][:, real] = probs
    return out


def test_relations_and_their_kl_equal_a_hand_computation():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    student, teacher = torch.randn(2, 5, 8), torch.randn(2, 5, 12)  # different widths, 2 relation heads each
    p_s, p_t = _relations_by_hand(student, 2, mask), _relations_by_hand(teacher, 2, mask)
    assert torch.allclose(self_relations(student, 2, mask).exp() * mask[:, None, None, :], p_s, atol=1e-6)
    rows = []  # KL(teacher || student) of every real query row of every head
    for b in range(2):
        for h in range(2):
            for q in range(int(mask[b].sum())):
                t, s = p_t[b, h, q][mask[b].bool()], p_s[b, h, q][mask[b].bool()]
                rows.append((t * (t.log() - s.log())).sum())
    assert relation_kl(student, teacher, 2, mask).item() == pytest.approx(torch.stack(rows).mean().item(), abs=1e-6)
    assert relation_kl(teacher, teacher, 3, mask).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="do not divide"):
        self_relations(student, 3, mask)


def test_pooled_embeddings_and_their_distances_equal_a_hand_computation():
    torch.manual_seed(0)
    hidden, mask = torch.randn(2, 4, 6), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pooled = mean_pool(hidden, mask)
    assert torch.allclose(pooled[1], hidden[1, :2].mean(0)) and torch.allclose(pooled[0], hidden[0].mean(0))
    other = torch.randn(2, 6)
    cosine = sum(1 - torch.dot(pooled[i], other[i]) / (pooled[i].norm() * other[i].norm()) for i in range(2)) / 2
    assert embedding_distance(pooled, other, "cosine").item() == pytest.approx(cosine.item(), abs=1e-6)
    assert embedding_distance(pooled, other, "mse").item() == pytest.approx(((pooled - other) ** 2).mean().item())
    assert embedding_distance(2 * other, other, "cosine").item() == pytest.approx(0.0, abs=1e-6)  # scale-free


def _context(student, bert, vocab):
    torch.manual_seed(1)
    ids = torch.randint(5, vocab, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": ids}
    outputs = student(**batch, output_hidden_states=True)
    return StepContext(batch, outputs, student, None, nullcontext), Teacher(bert, "bert", True)


@pytest.mark.parametrize("make_term", [
    lambda teacher: AttentionRelationDistillation(teacher, 1.0, heads=4, layer=1),
    lambda teacher: EmbeddingDistillation(teacher, 1.0, "mse"),
    lambda teacher: EmbeddingDistillation(teacher, 1.0, "cosine"),
])
def test_a_bert_shaped_child_distilled_from_its_own_bert_has_zero_loss(vocab, make_term):
    torch.manual_seed(0)
    bert = BertForMaskedLM(_config(vocab)).eval()
    student = from_bert(bert, MagicBertForMaskedLM).eval()
    ctx, teacher = _context(student, bert, vocab)
    (key, value), = make_term(teacher)(ctx).items()
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    other = BertForMaskedLM(_config(vocab)).eval()  # another teacher: not zero, so the check can fail
    ctx, teacher = _context(student, other, vocab)
    assert make_term(teacher)(ctx)[key].item() > 1e-4


def test_a_path_without_attention_gets_no_relation_loss(vocab):
    bert = BertForMaskedLM(_config(vocab)).eval()
    config = from_bert(bert, MagicBertForMaskedLM).config.with_arch(["ffn:256", "ffn:256", "ffn:256", "ffn:256"])
    ctx, teacher = _context(MagicBertForMaskedLM(config).eval(), bert, vocab)
    assert AttentionRelationDistillation(teacher, 1.0, 2, 1)(ctx)["kd_attention_loss"].item() == 0.0


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_relations_and_embeddings_teach_without_masked_lm(tmp_path, small, encoder_dir):
    out = tmp_path / "kd"
    result = command.main([*small, "--teacher_name_or_path", encoder_dir, "--mlm_weight", "0",
                           "--kd_attention_weight", "2", "--kd_embedding_weight", "3", "--kd_embedding_loss", "mse",
                           "--max_train_steps", "3", "--output_dir", str(out)])
    assert result.results["train_steps"] == 3
    for record in _log(out):
        assert "mlm_loss" not in record and "kd_hidden_loss" not in record
        assert record["kd_attention_loss"] > 0 and record["kd_embedding_loss"] > 0
        assert record["loss"] == pytest.approx(2 * record["kd_attention_loss"] + 3 * record["kd_embedding_loss"],
                                               abs=1e-5)


def test_masked_lm_keeps_its_weight_beside_the_new_terms(tmp_path, small, encoder_dir):
    out = tmp_path / "kd"
    command.main([*small, "--teacher_name_or_path", encoder_dir, "--mlm_weight", "0.5", "--kd_attention_weight", "1",
                  "--kd_relation_heads", "8", "--kd_attention_layer", "0", "--max_train_steps", "2",
                  "--output_dir", str(out)])
    for record in _log(out):
        assert record["loss"] == pytest.approx(0.5 * record["mlm_loss"] + record["kd_attention_loss"], abs=1e-5)


@pytest.mark.parametrize(("flags", "message"), [
    (["--kd_attention_weight", "1", "--kd_relation_heads", "3"], "--kd_relation_heads 3 must divide the student's "
                                                                 "attention width 64 and the teacher's 32"),
    (["--kd_attention_weight", "1", "--kd_attention_layer", "2"], r"--kd_attention_layer 2: the teacher .* has "
                                                                  "layers 0 to 1"),
    (["--kd_embedding_weight", "-1"], "--kd_embedding_weight must be at least 0, got -1.0"),
    (["--kd_attention_weight", "0", "--kd_embedding_weight", "0"], "nothing is distilled"),
])
def test_bad_distillation_settings_are_refused_before_writing(tmp_path, small, encoder_dir, flags, message):
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match=message):
        command.main([*small, "--teacher_name_or_path", encoder_dir, *flags, "--max_train_steps", "2",
                      "--output_dir", str(out)])
    assert not out.exists()


def test_the_uniform_map_matches_each_non_empty_layer_with_teacher_layers_spread_evenly():
    cut = ["mha:12", "ffn:1536", "identity", "identity"] * 3  # teacher layers 0, 2, 4 of six (DistilBERT's cut)
    assert uniform_layer_map(cut, 6) == [(2, 2), (6, 4), (10, 6)]  # TinyBERT: student layer m <-> teacher 2m
    full = ["mha:12", "ffn:1536"] * 6
    assert uniform_layer_map(full, 6) == layer_map(None, 12, 6) == [(2 * k, k) for k in range(1, 7)]
    # a layer with one identity still counts; an odd last sublayer is a layer of its own; the last meets the last
    assert uniform_layer_map(["identity", "ffn:8", "identity", "identity", "conv:3"], 4) == [(2, 2), (5, 4)]
    assert uniform_layer_map(["mha:2"] * 8, 2) == [(2, 1), (4, 1), (6, 2), (8, 2)]
    with pytest.raises(InputError, match=r"`kd_layer_map` 'uniform': the arch \['identity', 'identity'\] has no "):
        uniform_layer_map(["identity", "identity"], 6)
    per_child = layer_map("uniform", 12, 6)  # a supernet: each sampled child's own map
    assert list(per_child(cut)) == uniform_layer_map(cut, 6) and list(per_child(full)) == layer_map(None, 12, 6)
    assert per_child(["identity"] * 12) == ()


def test_a_supernets_uniform_hidden_loss_is_each_childs_own_and_zero_for_an_empty_child():
    torch.manual_seed(0)
    student = tuple(torch.randn(2, 5, 8, requires_grad=True) for _ in range(5))  # embeddings + 4 sublayers
    teacher_states = tuple(torch.randn(2, 5, 8) for _ in range(3))  # embeddings + 2 layers
    teacher = SimpleNamespace(outputs=lambda batch, autocast: SimpleNamespace(hidden_states=teacher_states))
    batch = {"attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])}

    def loss(pairs, arch):
        ctx = StepContext(batch, SimpleNamespace(hidden_states=student), None, arch, nullcontext)
        return HiddenStateDistillation(teacher, 1.0, pairs)(ctx)["kd_hidden_loss"]

    child = ["identity", "identity", "mha:2", "ffn:8"]  # one non-empty layer: 4 <-> 2
    assert loss(layer_map("uniform", 4, 2), child).item() == loss([(4, 2)], None).item() > 0
    empty = loss(layer_map("uniform", 4, 2), ["identity"] * 4)
    assert empty.item() == 0.0 and empty.requires_grad


def test_a_supernet_distils_with_the_uniform_map(tmp_path, small, encoder_dir):
    supernet = small[:small.index("--arch")]  # the tiny supernet (no --arch)
    command.main([*supernet, "--teacher_name_or_path", encoder_dir, "--kd_hidden_weight", "1", "--kd_layer_map",
                  "uniform", "--max_train_steps", "2", "--output_dir", str(tmp_path / "run")])
    losses = [row["kd_hidden_loss"] for row in _log(tmp_path / "run")]
    assert losses and all(math.isfinite(x) for x in losses) and max(losses) > 0


def test_a_run_with_the_uniform_map_is_the_run_with_its_pairs_written_out(tmp_path, small, encoder_dir):
    arch = ["mha:2", "ffn:256", "identity", "identity"]  # uniform: 2:2 (the default map would be 2:1,4:2)
    logs = []
    for name, pairs in (("uniform", "uniform"), ("written", "2:2")):
        command.main([*small, "--arch", " ".join(arch), "--teacher_name_or_path", encoder_dir, "--kd_hidden_weight",
                      "1", "--kd_layer_map", pairs, "--max_train_steps", "2", "--output_dir", str(tmp_path / name)])
        logs.append(_log(tmp_path / name))
    assert logs[0] == logs[1] and logs[0][0]["kd_hidden_loss"] > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mlm_weight": 0.0}, "`mlm_weight` 0 drops the masked-LM loss, and without `teacher_name_or_path`"),
    ({"kd_embedding_weight": 1.0}, "`kd_embedding_weight` distil a teacher: give `teacher_name_or_path`"),
    ({"kd_relation_heads": 4}, "`kd_relation_heads` distil a teacher"),
    ({"kd_embedding_loss": "l1"}, r"`kd_embedding_loss` 'l1' is not a loss; choose one of \['cosine', 'mse'\]"),
])
def test_options_that_need_a_teacher_or_a_known_value_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        PretrainArguments(output_dir="o", preset="tiny", **kwargs).check()
