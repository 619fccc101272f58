"""Task-specific distillation while fine-tuning: the layer map, the loss to 1e-6 on tiny models (logits + hidden
states through a projection), the flag's effect end to end, and bad values refused before anything is written."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from magic_bert.errors import InputError
from magic_bert.glue import finetuning
from magic_bert.glue.finetuning import finetune_glue
from magic_bert.glue.task_distillation import TaskDistillation, load_task_distillation, task_layer_map
from magic_bert.glue.tasks import TASKS

from .conftest import run_two_processes
from .test_finetuning import args_for, bert_dirs, glue_dir, log  # noqa: F401 - fixtures

CUT = ["mha:12", "ffn:1536", "identity", "identity"] * 2 + ["mha:12", "ffn:1536"] + ["identity"] * 2


def tiny_bert(tokenizer, hidden: int, layers: int, seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128))


@pytest.fixture(scope="module")
def wide_teacher(tmp_path_factory, word_tokenizer_dir):
    """A 4-layer teacher twice as wide as the 2-layer students of ``bert_dirs``."""
    folder = tmp_path_factory.mktemp("wide_teacher")
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    tiny_bert(tokenizer, 64, 4, seed=1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_uniform_map_matches_the_students_layers_with_teacher_layers_spread_evenly():
    assert task_layer_map("uniform", BertConfig(num_hidden_layers=3), 6) == [(1, 2), (2, 4), (3, 6)]
    assert task_layer_map("uniform", BertConfig(num_hidden_layers=2), 4) == [(1, 2), (2, 4)]
    # A MagicBert child: its non-empty layers only (the DistilBERT-style cut of a 6-layer teacher).
    assert task_layer_map("uniform", SimpleNamespace(arch=CUT, num_hidden_layers=12), 6) == [(2, 2), (6, 4), (10, 6)]
    assert task_layer_map("1:2, 3:6", BertConfig(num_hidden_layers=3), 6) == [(1, 2), (3, 6)]
    with pytest.raises(InputError, match=r"`kd_layer_map` '5:1': student indices go up to 3"):
        task_layer_map("5:1", BertConfig(num_hidden_layers=3), 6)


def test_the_loss_is_the_task_loss_the_logits_kd_and_the_projected_hidden_mse(word_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    student, teacher = tiny_bert(tokenizer, 32, 2, seed=0).eval(), tiny_bert(tokenizer, 64, 4, seed=1).eval()
    torch.manual_seed(2)
    projection = torch.nn.Linear(32, 64)
    ids = torch.randint(5, len(tokenizer), (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 4:] = mask[2, 6:] = 0  # padding the MSE must skip
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1])}
    kd = TaskDistillation(teacher, alpha=0.3, temperature=2.0, hidden_weight=0.9, pairs=[(1, 2), (2, 4)],
                          projection=projection)
    outputs = student(**inputs, output_hidden_states=True)
    loss = kd.loss(TASKS["mrpc"], inputs, outputs, outputs.loss)

    with torch.no_grad():
        target = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        kl = F.kl_div(F.log_softmax(outputs.logits / 2, -1), F.softmax(target.logits / 2, -1),
                      reduction="batchmean") * 4
        real = mask.bool()
        mse = [(projection(outputs.hidden_states[s])[real] - target.hidden_states[t][real]).pow(2).mean()
               for s, t in ((1, 2), (2, 4))]
    expected = 0.7 * outputs.loss + 0.3 * kl + 0.9 * (mse[0] + mse[1]) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    loss.backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0


def _run(model, out, glue, **kd) -> list[dict]:
    finetune_glue(args_for(model, out, task_name="mrpc", data_dir=str(glue), num_train_epochs=1, **kd))
    return log(out)


def test_hidden_kd_changes_training_and_weight_zero_is_the_logits_kd_run(bert_dirs, glue_dir, wide_teacher,  # noqa: F811
                                                                         tmp_path, monkeypatch):
    bert_dir, magic_dir = bert_dirs
    logits_only = _run(magic_dir, tmp_path / "logits", glue_dir, teacher_name_or_path=str(bert_dir))
    zero = _run(magic_dir, tmp_path / "zero", glue_dir, teacher_name_or_path=str(bert_dir), kd_hidden_weight=0.0)
    hidden = _run(magic_dir, tmp_path / "hidden", glue_dir, teacher_name_or_path=str(bert_dir), kd_hidden_weight=1.0)
    assert zero == logits_only
    assert hidden[0]["train_loss"] != logits_only[0]["train_loss"]
    # A wider, deeper teacher: a projection, drawn without moving the global generator, trains with the run (in the
    # optimizer) and is not saved with the student.
    made = []

    def recording(*args, **kwargs):
        state = torch.get_rng_state()
        kd = load_task_distillation(*args, **kwargs)
        assert torch.equal(torch.get_rng_state(), state)
        made.append((kd.projection, kd.projection.weight.detach().clone()))
        return kd

    monkeypatch.setattr(finetuning, "load_task_distillation", recording)
    wide = _run(magic_dir, tmp_path / "wide", glue_dir, teacher_name_or_path=str(wide_teacher), kd_hidden_weight=1.0)
    assert wide[0]["train_loss"] != hidden[0]["train_loss"]
    (projection, initial), = made
    assert projection.weight.shape == (64, 32) and not torch.equal(projection.weight.detach(), initial)
    saved = {p.name for p in (tmp_path / "wide" / "mrpc" / "best_model").iterdir()}
    assert saved == {p.name for p in (tmp_path / "logits" / "mrpc" / "best_model").iterdir()}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kd_hidden_weight": 1.0}, r"`kd_hidden_weight` 1.0 distils the hidden states of a fine-tuned teacher"),
    ({"kd_hidden_weight": -1.0, "teacher": True}, r"`kd_hidden_weight` must be at least 0, got -1.0"),
    ({"kd_hidden_weight": 1.0, "kd_layer_map": "9:1", "teacher": True}, r"`kd_layer_map` '9:1': student indices"),
    ({"kd_hidden_weight": 1.0, "teacher": "magic"}, r"`kd_layer_map` 'uniform' spreads over a BERT teacher's layers"),
])
def test_bad_hidden_kd_values_are_refused_before_anything_is_written(bert_dirs, glue_dir, tmp_path,  # noqa: F811
                                                                     overrides, message):
    bert_dir, magic_dir = bert_dirs
    overrides = dict(overrides)
    teacher = overrides.pop("teacher", None)
    if teacher is not None:  # a fine-tuned BERT, or a MagicBert child whose hidden states are per sublayer
        overrides["teacher_name_or_path"] = str(magic_dir if teacher == "magic" else bert_dir)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        finetune_glue(args_for(magic_dir, out, task_name="mrpc", data_dir=str(glue_dir), **overrides))
    assert not out.exists()


TWO_PROCESS_WORKER = """
import hashlib, json, os, sys
from magic_bert.glue import finetuning
from magic_bert.glue.arguments import FinetuneArguments

out, model, teacher, glue = sys.argv[1:5]
runs, trained_on = [], []
prepare = finetuning._prepare_run
finetuning._prepare_run = lambda *args: trained_on.append(args[4]["train"]) or runs.append(prepare(*args)) or runs[-1]
finetuning.finetune_glue(FinetuneArguments(
    model_name_or_path=model, teacher_name_or_path=teacher, kd_hidden_weight=1.0, augment_copies=1, task_name="mrpc",
    data_dir=glue,
    output_dir=f"{out}/run", per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=1,
    max_seq_length=32, learning_rate=1e-3))

def digest(module):
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode()); h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

(run,) = runs
with open(f"{out}.rank{os.environ['RANK']}.json", "w") as f:
    json.dump({"student": digest(run.model), "projection": digest(run.distillation.projection),
               "data": hashlib.sha256(json.dumps(trained_on[0].to_list()).encode()).hexdigest(),
               "copies": sum(trained_on[0]["distill_only"])}, f)
"""


@pytest.mark.slow
def test_two_processes_fine_tune_with_hidden_kd_and_augmentation_identically(bert_dirs, glue_dir,  # noqa: F811
                                                                             wide_teacher, tmp_path):
    """The projection to a wider teacher is synchronised like the student (accumulated and clipped with it); both
    ranks augment the training data identically (before each takes its shard)."""
    _, magic_dir = bert_dirs
    run_two_processes(TWO_PROCESS_WORKER, tmp_path / "worker.py", tmp_path / "kd", magic_dir, wide_teacher, glue_dir,
                      port=29543)
    rank0, rank1 = (json.loads((tmp_path / f"kd.rank{r}.json").read_text()) for r in (0, 1))
    assert rank0 == rank1 and rank0["copies"] == 24

