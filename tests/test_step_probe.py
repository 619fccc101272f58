"""The interference probe (``--probe_interference_steps``): its cosine and loss rise equal a direct computation, it
counts shared ops, it never changes training (weights and every other log field bit-identical with it on or off,
with gradient accumulation), MAGIC-T's consecutive children share L-1 ops, and two processes measure the same."""

import hashlib
import json
import textwrap
from pathlib import Path

import datasets
import pytest
import torch
import torch.nn.functional as F

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.errors import InputError
from magic_bert.op_specs import parse_op
from magic_bert.training.arguments import parse_pretrain_args
from magic_bert.training.recipe import pretrain
from magic_bert.training.step_probe import FIELDS, InterferenceProbe, probe_batch, probe_means

from .conftest import make_batch, run_two_processes, run_until_first_checkpoint

REPO = Path(__file__).resolve().parent.parent
FIRST = ["mha:2", "ffn:256", "conv:3", "identity"]
SECOND = ["mha:2", "ffn:128", "conv:3", "identity"]  # shares layers 0, 2 (with weights) and 3 (identity)


def masked_batch(seed: int) -> dict:
    input_ids, attention_mask = make_batch(seed=seed)
    labels = torch.full_like(input_ids, -100)
    labels[:, 1:6:2] = input_ids[:, 1:6:2]  # 3 masked positions per row, all real tokens
    input_ids = input_ids.masked_fill(labels != -100, 4)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def op_gradient(model, arch: list[str], layers: list[int]) -> torch.Tensor:
    ops = [model.bert.encoder.layer[i].ops[parse_op(arch[i]).key] for i in layers]
    return torch.cat([p.grad.reshape(-1) for op in ops for p in op.parameters()])


def direct_loss(model, arch: list[str], batch: dict) -> float:
    """Mean cross-entropy over masked tokens, in float64 from the logits (eval mode, no grad)."""
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], arch=arch).logits
    model.train()
    return F.cross_entropy(logits.double().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100).item()


def run_steps(model, probe, archs: list[list[str]], lr: float = 1.0) -> list[torch.Tensor]:
    """Steps 1..len(archs), each one child's backward then an SGD update inside the probe; each step's gradients
    on the layers FIRST and SECOND share (0 and 2) are returned."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    grads = []
    for step, arch in enumerate(archs, start=1):
        optimizer.zero_grad()
        model(**masked_batch(10 + step), arch=arch).loss.backward()
        grads.append(op_gradient(model, arch, [0, 2]).clone())
        with probe.around_update(step, arch):
            optimizer.step()
    return grads


def test_cosine_and_loss_rise_equal_a_direct_computation(tiny_config):
    torch.manual_seed(0)
    model = MagicBertSupernetForMaskedLM(tiny_config).train()
    probe_batch = masked_batch(1)
    probe = InterferenceProbe(2, model, probe_batch)
    [first_grad] = run_steps(model, probe, [FIRST])
    assert probe.kept is not None and probe.record(1) == {}  # step 2 is measured: step 1's gradients are kept

    # Step 2 by hand, with the direct before/after losses of child 1 around its update.
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer.zero_grad()
    model(**masked_batch(12), arch=SECOND).loss.backward()
    second_grad = op_gradient(model, SECOND, [0, 2])
    before = direct_loss(model, FIRST, probe_batch)
    with probe.around_update(2, SECOND):
        optimizer.step()
    after = direct_loss(model, FIRST, probe_batch)
    record = probe.record(2)
    assert set(record) == set(FIELDS)
    assert record["probe_shared_ops"] == 3
    expected = F.cosine_similarity(first_grad.double(), second_grad.double(), dim=0).item()
    assert abs(expected) > 0.01  # a real value, not a degenerate 0
    assert record["probe_grad_cosine"] == pytest.approx(expected, abs=1e-6)
    assert abs(after - before) > 1e-3  # the update moved child 1's loss
    assert record["probe_prev_child_loss_rise"] == pytest.approx(after - before, abs=1e-6)
    assert probe.kept is None  # step 3 is not measured: nothing kept


def test_kept_gradients_are_the_previous_steps(tiny_config):
    """Every step measured (N = 1): each step's cosine is against the step just before, on the shared layers."""
    torch.manual_seed(0)
    model = MagicBertSupernetForMaskedLM(tiny_config).train()
    probe = InterferenceProbe(1, model, masked_batch(1))
    grads = run_steps(model, probe, [FIRST, SECOND, FIRST], lr=0.1)
    assert probe.record(1) == {}  # no previous step
    for step in (2, 3):
        expected = F.cosine_similarity(grads[step - 2].double(), grads[step - 1].double(), dim=0).item()
        assert probe.record(step)["probe_grad_cosine"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("other", "shared"), [
    (["ffn:128", "mha:1", "conv:5", "identity"], 1),  # only identity is shared: no gradient to compare
    (["ffn:128", "mha:1", "conv:5", "conv:7"], 0),  # nothing shared
])
def test_no_shared_weights_gives_a_null_cosine(tiny_config, other, shared):
    torch.manual_seed(0)
    model = MagicBertSupernetForMaskedLM(tiny_config).train()
    probe = InterferenceProbe(1, model, masked_batch(1))
    run_steps(model, probe, [FIRST, other])
    record = probe.record(2)
    assert record["probe_shared_ops"] == shared
    assert record["probe_grad_cosine"] is None
    assert '"probe_grad_cosine": null' in json.dumps(record)
    assert isinstance(record["probe_prev_child_loss_rise"], float)


def test_run_means_skip_null_cosines_and_unprobed_steps():
    records = [{"step": 1, "loss": 5.0},
               {"step": 2, "probe_grad_cosine": None, "probe_shared_ops": 0, "probe_prev_child_loss_rise": 0.25},
               {"step": 4, "probe_grad_cosine": 0.5, "probe_shared_ops": 2, "probe_prev_child_loss_rise": -0.75}]
    assert probe_means(records) == {"probe_grad_cosine_mean": 0.5, "probe_grad_cosine_count": 1,
                                    "probe_prev_child_loss_rise_mean": -0.25, "probe_measurements": 2}
    assert probe_means(records[:1]) == {"probe_grad_cosine_mean": None, "probe_grad_cosine_count": 0,
                                        "probe_prev_child_loss_rise_mean": None, "probe_measurements": 0}


def test_probe_batch_is_the_first_held_out_batch_with_masked_tokens():
    rows = {"input_ids": [[2, 4, 9, 3]] * 5, "attention_mask": [[1] * 4] * 5,
            "labels": [[-100, 9, -100, -100]] + [[-100] * 4] * 4}
    batch = probe_batch(datasets.Dataset.from_dict(rows), 2)
    assert batch["labels"].tolist() == rows["labels"][:2] and batch["input_ids"].shape == (2, 4)
    with pytest.raises(InputError, match="`probe_interference_steps`.*no masked token"):
        probe_batch(datasets.Dataset.from_dict({k: v[1:] for k, v in rows.items()}), 2)
    with pytest.raises(InputError, match="`probe_interference_steps`.*0 held-out block"):
        probe_batch(datasets.Dataset.from_dict({k: [] for k in rows}), 2)


@pytest.mark.parametrize(("argv", "message"), [
    (["--probe_interference_steps", "-1"], "`probe_interference_steps` must be at least 0"),
    (["--probe_interference_steps", "5", "--arch", "mha:2 ffn:256 mha:2 ffn:256"], "`probe_interference_steps`"),
])
def test_bad_probe_settings_are_refused(tmp_path, argv, message):
    with pytest.raises(InputError, match=message):
        parse_pretrain_args(["--output_dir", str(tmp_path / "out"), *argv]).check()


def tiny_run(out: Path, tokenizer: str, *extra: str, steps: int = 5):
    return pretrain(parse_pretrain_args([
        "--output_dir", str(out), "--tokenizer_name", tokenizer, "--synthetic_documents", "200",
        "--max_seq_length", "64", "--per_device_train_batch_size", "4", "--max_train_steps", str(steps),
        "--gradient_accumulation_steps", "2", "--max_eval_samples", "16", "--learning_rate", "2e-3", *extra]))


def digest(model) -> str:
    state = model.state_dict()
    return hashlib.sha256(b"".join(state[k].contiguous().numpy().tobytes() for k in sorted(state))).hexdigest()


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_probe_never_changes_training_and_magic_t_shares_all_but_one_op(tmp_path, word_tokenizer_dir):
    """Dropout on (the preset's 0.1), 2 micro-batches per step, every step probed: same bits as without the probe."""
    off = tiny_run(tmp_path / "off", word_tokenizer_dir, "--sampler", "magic-t")
    on = tiny_run(tmp_path / "on", word_tokenizer_dir, "--sampler", "magic-t", "--probe_interference_steps", "1")
    assert digest(on.model) == digest(off.model)
    log_off, log_on = read_log(tmp_path / "off"), read_log(tmp_path / "on")
    assert [{k: v for k, v in r.items() if k not in FIELDS} for r in log_on] == log_off
    assert not set(FIELDS) & set(log_on[0])  # step 1 has no previous step
    layers = len(log_on[0]["arch"])
    assert [r["probe_shared_ops"] for r in log_on[1:]] == [layers - 1] * 4
    assert all(-1 <= r["probe_grad_cosine"] <= 1 for r in log_on[1:])
    timing = ("train_seconds", "train_tokens_per_second")
    assert {k: v for k, v in on.results.items() if "probe" not in k and k not in timing} == {
        k: v for k, v in off.results.items() if k not in timing}
    saved = json.loads((tmp_path / "on" / "all_results.json").read_text())
    assert saved["probe_measurements"] == saved["probe_grad_cosine_count"] == 4
    assert saved["probe_interference_steps"] == 1
    assert saved["probe_grad_cosine_mean"] == pytest.approx(sum(r["probe_grad_cosine"] for r in log_on[1:]) / 4)
    assert saved["probe_prev_child_loss_rise_mean"] == pytest.approx(
        sum(r["probe_prev_child_loss_rise"] for r in log_on[1:]) / 4)
    assert "probe_grad_cosine_mean" not in off.results


@pytest.mark.slow
def test_spos_probe_counts_the_ops_consecutive_children_share(tmp_path, word_tokenizer_dir):
    tiny_run(tmp_path / "spos", word_tokenizer_dir, "--sampler", "spos", "--probe_interference_steps", "2")
    log = read_log(tmp_path / "spos")
    assert [r["step"] for r in log if "probe_shared_ops" in r] == [2, 4]  # t % N == 0 only
    for r in log[1::2]:
        assert r["probe_shared_ops"] == sum(a == b for a, b in zip(log[r["step"] - 2]["arch"], r["arch"],
                                                                     strict=True))


@pytest.mark.slow
def test_resumed_run_probes_as_the_straight_one(tmp_path, word_tokenizer_dir, monkeypatch):
    """Resumed at step 3: step 4 has no step 3 in memory (no probe fields), step 6 measures as without the break,
    and the run's means count the logged step 2 from before the break."""
    args = ("--sampler", "magic-t", "--probe_interference_steps", "2", "--checkpointing_steps", "3")
    tiny_run(tmp_path / "straight", word_tokenizer_dir, *args, steps=6)
    run_until_first_checkpoint(lambda: tiny_run(tmp_path / "resumed", word_tokenizer_dir, *args, steps=6),
                               monkeypatch)
    resumed = tiny_run(tmp_path / "resumed", word_tokenizer_dir, *args, "--resume_from_checkpoint", "latest",
                       steps=6)
    straight_log, resumed_log = read_log(tmp_path / "straight"), read_log(tmp_path / "resumed")
    assert [r["step"] for r in straight_log if "probe_shared_ops" in r] == [2, 4, 6]
    assert [r["step"] for r in resumed_log if "probe_shared_ops" in r] == [2, 6]
    for step in (2, 6):
        for key in FIELDS:
            assert resumed_log[step - 1][key] == pytest.approx(straight_log[step - 1][key], abs=1e-6)
    assert resumed.results["probe_measurements"] == 2
    assert resumed.results["probe_grad_cosine_mean"] == pytest.approx(
        (resumed_log[1]["probe_grad_cosine"] + resumed_log[5]["probe_grad_cosine"]) / 2)


WORKER = textwrap.dedent("""
    import json, os, sys
    import magic_bert.training.step_probe as step_probe
    from magic_bert.training.arguments import parse_pretrain_args
    from magic_bert.training.recipe import pretrain

    out, tokenizer = sys.argv[1], sys.argv[2]
    seen, record = [], step_probe.InterferenceProbe.record

    def keep(self, step):
        fields = record(self, step)
        if fields:
            seen.append({"step": step, **fields})
        return fields

    step_probe.InterferenceProbe.record = keep
    result = pretrain(parse_pretrain_args([
        "--output_dir", f"{out}/run", "--sampler", "magic-t", "--tokenizer_name", tokenizer, "--max_train_steps", "4",
        "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--synthetic_documents", "200",
        "--max_seq_length", "64", "--max_eval_samples", "16", "--learning_rate", "2e-3",
        "--probe_interference_steps", "2"]))
    with open(f"{out}/rank{os.environ['RANK']}.json", "w") as f:
        json.dump({"seen": seen, "means": {k: v for k, v in result.results.items() if "probe" in k}}, f)
""")


@pytest.mark.slow
def test_two_processes_measure_the_same(tmp_path, word_tokenizer_dir):
    run_two_processes(WORKER, tmp_path / "worker.py", tmp_path, word_tokenizer_dir, port=29571)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert [r["step"] for r in rank0["seen"]] == [2, 4]
    assert rank0 == rank1  # all-reduced gradients, same weights, the whole probe batch on each rank
    logged = [{"step": r["step"], **{k: r[k] for k in FIELDS}} for r in read_log(tmp_path / "run")
              if "probe_shared_ops" in r]
    assert logged == rank0["seen"]
    assert all(r["probe_shared_ops"] == 3 and r["probe_grad_cosine"] is not None for r in logged)
