"""Two CPU processes (gloo): every rank trains the same child each step, takes the same anchor decisions and ends
with the same weights, for each sampler. Each rank sees different data, so equal weights need DDP's averaging.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from magic_bert.training.strategies import SAMPLERS

from .conftest import run_two_processes

REPO = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent("""
    import hashlib, json, os, sys
    from magic_bert.training.recipe import pretrain
    from magic_bert.training.arguments import parse_pretrain_args

    out, tokenizer = sys.argv[1], sys.argv[2]
    report = {}
    for sampler in sys.argv[3:]:
        result = pretrain(parse_pretrain_args([
            "--output_dir", f"{out}/{sampler}", "--sampler", sampler, "--tokenizer_name", tokenizer,
            "--max_train_steps", "6", "--anchor_eval_steps", "2", "--per_device_train_batch_size", "4",
            "--synthetic_documents", "200", "--max_seq_length", "64", "--anchor_eval_samples", "16",
            "--max_eval_samples", "16", "--learning_rate", "2e-3",
            "--anchor_swap_margin", "0"]))  # 6 steps, 41 masked tokens: swaps only without a margin
        state = result.model.state_dict()
        digest = hashlib.sha256(b"".join(state[k].contiguous().numpy().tobytes() for k in sorted(state)))
        report[sampler] = {"archs": result.archs, "anchor_history": result.anchor_history,
                           "weights": digest.hexdigest(), "num_processes": result.results["num_processes"]}
    with open(f"{out}/rank{os.environ['RANK']}.json", "w") as f:
        json.dump(report, f)
""")


@pytest.mark.slow
def test_two_processes_train_identically(tmp_path, word_tokenizer_dir):
    run_two_processes(WORKER, tmp_path / "worker.py", tmp_path / "runs", word_tokenizer_dir, *SAMPLERS, port=29533)
    rank0, rank1 = (json.loads((tmp_path / "runs" / f"rank{r}.json").read_text()) for r in (0, 1))
    for sampler in SAMPLERS:
        a, b = rank0[sampler], rank1[sampler]
        assert a["num_processes"] == b["num_processes"] == 2
        assert len(a["archs"]) == 6 and a["archs"] == b["archs"], sampler
        assert a["anchor_history"] == b["anchor_history"], sampler
        assert a["weights"] == b["weights"], sampler
    # The anchor path was exercised across ranks: MAGIC-A/AT made at least one decision to swap in this setting.
    assert any(rank0[s]["anchor_history"] for s in ("magic-a", "magic-at"))


@pytest.mark.slow
def test_search_under_two_processes_equals_one(tmp_path, trained_supernet_dir):
    """Evaluation batches are split across ranks and gathered: the same candidates and scores as one process
    scoring the same held-out blocks (at most 32: 4 batches of 8 on one process, 2 per process on two; the
    supernet's own held-out text has fewer, so the ranks' shares are uneven too)."""
    args = ["--supernet", str(trained_supernet_dir), "--population_size", "4", "--generations", "2",
            "--per_device_eval_batch_size", "8", "--max_seq_length", "64"]
    script = str(REPO / "recipes" / "search.py")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    runs = {"one": [sys.executable, script, "--num_eval_batches", "4"],
            "two": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
                    script, "--num_eval_batches", "2"]}
    for name, command in runs.items():
        done = subprocess.run([*command, *args, "--output_dir", str(tmp_path / name)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
    one, two = ([json.loads(line) for line in (tmp_path / n / "candidates.jsonl").read_text().splitlines()]
                for n in runs)
    assert len(one) == len(two) == 8
    assert [c["arch"] for c in one] == [c["arch"] for c in two]
    assert [c["loss"] for c in one] == pytest.approx([c["loss"] for c in two], abs=1e-5)
    assert [c["accuracy"] for c in one] == pytest.approx([c["accuracy"] for c in two], abs=1e-9)


RESUME_WORKER = textwrap.dedent("""
    import hashlib, json, os, sys
    import magic_bert.training.recipe as pretraining
    from magic_bert.training.arguments import parse_pretrain_args

    out, tokenizer = sys.argv[1], sys.argv[2]
    common = ["--sampler", "magic-at", "--tokenizer_name", tokenizer, "--max_train_steps", "8",
              "--anchor_eval_steps", "2", "--per_device_train_batch_size", "4", "--synthetic_documents", "200",
              "--max_seq_length", "64", "--anchor_eval_samples", "16", "--max_eval_samples", "16",
              "--learning_rate", "2e-3", "--checkpointing_steps", "4", "--gradient_accumulation_steps", "2"]

    def digest(result):
        state = result.model.state_dict()
        return hashlib.sha256(b"".join(state[k].contiguous().numpy().tobytes() for k in sorted(state))).hexdigest()

    straight = pretraining.pretrain(parse_pretrain_args(common + ["--output_dir", f"{out}/straight"]))
    real_save = pretraining.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    pretraining.save_checkpoint = save_then_stop
    try:
        pretraining.pretrain(parse_pretrain_args(common + ["--output_dir", f"{out}/resumed"]))
    except KeyboardInterrupt:
        pass
    pretraining.save_checkpoint = real_save
    resumed = pretraining.pretrain(parse_pretrain_args(common + ["--output_dir", f"{out}/resumed",
                                                                "--resume_from_checkpoint", "latest"]))
    with open(f"{out}/resume_rank{os.environ['RANK']}.json", "w") as f:
        json.dump({"straight": digest(straight), "resumed": digest(resumed), "archs": [straight.archs, resumed.archs],
                   "loss": [straight.results["eval_loss"], resumed.results["eval_loss"]],
                   "tokens": [straight.results["train_tokens"], resumed.results["train_tokens"]]}, f)
""")


@pytest.mark.slow
def test_two_process_resume_equals_an_uninterrupted_run(tmp_path, word_tokenizer_dir):
    run_two_processes(RESUME_WORKER, tmp_path / "resume_worker.py", tmp_path / "runs", word_tokenizer_dir, port=29535)
    ranks = [json.loads((tmp_path / "runs" / f"resume_rank{r}.json").read_text()) for r in (0, 1)]
    for report in ranks:
        assert report["straight"] == report["resumed"]  # bit-identical weights
        assert report["archs"][0][4:] == report["archs"][1]
        assert report["loss"][0] == report["loss"][1] and report["tokens"][0] == report["tokens"][1]
    assert ranks[0]["resumed"] == ranks[1]["resumed"]


RECIPE_WORKER = textwrap.dedent("""
    import hashlib, json, operator, os, sys
    from magic_bert.training.recipe import PretrainRecipe
    from magic_bert.training.arguments import parse_pretrain_args

    out, flags, modules = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    recipe = PretrainRecipe(parse_pretrain_args([
        "--output_dir", out, "--sampler", "magic-at", "--max_train_steps", "4", "--anchor_eval_steps", "2",
        "--per_device_train_batch_size", "4", "--synthetic_documents", "200", "--max_seq_length", "64",
        "--anchor_eval_samples", "16", "--max_eval_samples", "16", "--learning_rate", "2e-3", *flags]))
    recipe.setup_inputs()
    recipe.setup_training()
    recipe.train()
    result = recipe.finish()

    def digest(module):
        state = module.state_dict()
        return hashlib.sha256(b"".join(state[k].contiguous().numpy().tobytes() for k in sorted(state))).hexdigest()

    report = {"weights": digest(result.model), "archs": result.archs, "anchor_history": result.anchor_history,
              "eval_loss": result.results["eval_loss"], "replaced_share": result.results.get("replaced_share")}
    for name in modules:  # the run's other trained modules (a KD projection, ELECTRA's generator and head)
        report[name] = digest(recipe.accelerator.unwrap_model(operator.attrgetter(name)(recipe)))
    with open(f"{out}.rank{os.environ['RANK']}.json", "w") as f:
        json.dump(report, f)
""")


def _two_recipe_runs(tmp_path, name: str, flags: list[str], modules: list[str], port: int) -> tuple[dict, dict]:
    """The same magic-at run (4 steps, ``flags`` added) on two gloo processes: each rank's report."""
    run_two_processes(RECIPE_WORKER, tmp_path / f"{name}_worker.py", tmp_path / name, json.dumps(flags),
                      json.dumps(modules), port=port)
    return tuple(json.loads((tmp_path / f"{name}.rank{r}.json").read_text()) for r in (0, 1))


@pytest.mark.slow
def test_two_processes_distil_hidden_states_identically(tmp_path, word_tokenizer_dir):
    """Hidden-state KD from an encoder of another width: the learned projection is synchronised like the model."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    rank0, rank1 = _two_recipe_runs(tmp_path, "kd", ["--tokenizer_name", word_tokenizer_dir, "--teacher_name_or_path",
                                                     str(tmp_path / "encoder"), "--kd_hidden_weight", "1"],
                                    ["projection"], port=29536)
    assert rank0 == rank1 and len(rank0["archs"]) == 4


@pytest.mark.slow
def test_two_processes_train_e_magic_at_identically(tmp_path, word_tokenizer_dir):
    """ELECTRA under two processes: the same children and anchor decisions, and the discriminator, the generator
    (which shares its token embeddings) and the detection head end the same on both ranks."""
    rank0, rank1 = _two_recipe_runs(tmp_path, "electra", ["--tokenizer_name", word_tokenizer_dir, "--objective",
                                                          "electra", "--anchor_swap_margin", "0"],
                                    ["electra.generator", "electra.head"], port=29537)
    assert rank0 == rank1 and len(rank0["archs"]) == 4 and 0 < rank0["eval_loss"] < 2
    assert 0 < rank0["replaced_share"] < 0.3  # the base rate, gathered over both ranks' held-out batches
