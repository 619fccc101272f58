"""bench/step_throughput.py and bench/teacher_precision.py on a tiny BERT: every variant is built and stepped in its own
worker, search's scoring gives the same losses with the head on masked positions only as with the full head, a worker
that fails to build is reported (not waited on), and the teacher-precision comparison runs its two stages once."""

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from magic_bert.synthetic_corpus import generate_corpus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import step_throughput  # noqa: E402
import teacher_precision  # noqa: E402
from workers import Worker  # noqa: E402


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory, word_tokenizer_dir):
    """A 2-layer BERT encoder (no MLM head, like all-MiniLM-L6-v2) with the word tokenizer."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("teacher")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_every_variant_steps_and_search_scores_equal(tiny_teacher, capsys):
    variants = ["bert", "fixed", "child (before)", "child+kd"]
    result = step_throughput.main(["--teacher", tiny_teacher, "--batch", "2", "--seq", "16", "--rounds", "2",
                                   "--warmup", "0", "--eval_batches", "2", "--eval_batch", "2",
                                   "--search_children", "2", "--variants", *variants])
    assert list(result["times"]) == variants and all(len(result["samples"][v]) == 2 for v in variants)
    assert result["figures"]["child+kd"]["teacher_precision"] in ("bf16", "training")
    assert result["figures"]["fixed"]["teacher_precision"] is None
    # The cut is BERT-shaped: the fixed MagicBert model and BertForMaskedLM have the same parameters.
    assert result["figures"]["fixed"]["params"] == result["figures"]["bert"]["params"]
    assert result["search"]["max_loss_diff"] <= 1e-5 and len(result["search"]["seconds"]["now"]) == 2
    assert set(result["speedups"]) == {"fixed / bert", "child+kd / child (before)"}
    assert "children/s now / before" in capsys.readouterr().out


def _fails_to_build(name, settings):
    raise ValueError(f"no such variant {name}")


def test_a_worker_that_fails_to_build_is_reported():
    with pytest.raises(RuntimeError, match=r"building 'broken' failed:(.|\n)*ValueError: no such variant broken"):
        Worker(_fails_to_build, "broken", {})


@pytest.mark.slow
def test_teacher_precision_runs_each_stage_once(tmp_path, tiny_teacher):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    documents = generate_corpus(60, seed=0)
    (corpus / "valid.txt").write_text("\n".join(documents[:40]) + "\n")
    (corpus / "test.txt").write_text("\n".join(documents[40:]) + "\n")
    argv = ["--teacher", tiny_teacher, "--corpus_dir", str(corpus), "--steps", "2", "--kd_eval_blocks", "2",
            "--output_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")]
    summary = teacher_precision.main(argv)
    runs = summary["runs"]
    assert [(row["teacher_precision"], row["seed"]) for row in runs.values()] == [
        ("training", 42), ("bf16", 42), ("bf16", 43)]  # the third differs in the seed alone
    assert all(0 < row["held_out_kd_hidden_loss_vs_fp32_teacher"] < float("inf") for row in runs.values())
    written = json.loads((tmp_path / "results" / "teacher_precision.json").read_text())
    assert written["runs"] == runs and "| bf16 |" in (tmp_path / "results" / "teacher_precision.md").read_text()
    again = teacher_precision.main(argv)  # both stages done: nothing retrained, the same summary
    assert again["runs"] == runs and again["stage_seconds"] == {}
