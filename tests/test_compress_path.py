"""The README's "Compress your BERT" commands, in the README's order and as written, on a tiny BERT encoder: only the
placeholders (your BERT, your corpus, the budget) are filled in, and flags that shorten each step are appended."""

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from magic_bert.compression import bert_layers_arch, space_from_bert
from magic_bert.synthetic_corpus import generate_corpus

from .test_finetuning import write_glue_dir

REPO = Path(__file__).resolve().parent.parent
SHORT = {  # appended to each step: a few steps of tiny batches
    "recipes/pretrain.py": ["--max_train_steps", "3", "--per_device_train_batch_size", "4", "--max_seq_length", "32",
                            "--max_eval_samples", "8", "--anchor_eval_steps", "2"],
    "recipes/search.py": ["--population_size", "2", "--generations", "1", "--num_eval_batches", "1"],
    "recipes/finetune_glue.py": ["--num_train_epochs", "1", "--max_seq_length", "32", "--learning_rates", "1e-3"],
}


def readme_compress_commands() -> list[list[str]]:
    """The commands of the README's "Compress your BERT" bash block (continuations joined)."""
    section = (REPO / "README.md").read_text().split("## Compress your BERT", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def run_recipe(script: str, argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location(f"readme_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


@pytest.mark.slow
def test_the_readme_compress_path_runs_as_written(tmp_path, word_tokenizer_dir, monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    bert = tmp_path / "bert"  # a BertModel without an MLM head, as all-MiniLM-L6-v2
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    (tmp_path / "corpus.txt").write_text("\n".join(generate_corpus(300, seed=3)) + "\n")
    budget = space_from_bert(str(bert)).search_space.encoder_params(bert_layers_arch(str(bert), range(2))) // 2
    glue = write_glue_dir(tmp_path / "glue", tasks=["mrpc"])
    monkeypatch.chdir(tmp_path)

    commands = readme_compress_commands()
    assert [c[1] for c in commands] == ["recipes/pretrain.py", "recipes/search.py", "recipes/pretrain.py",
                                        "recipes/finetune_glue.py"]
    for python, script, *argv in commands:
        assert python == "python"
        argv = [str(bert) if a == "path/to/bert" else str(budget) if a == "7e6" else a for a in argv]
        if script == "recipes/finetune_glue.py":
            argv += ["--data_dir", str(glue)]  # offline: GLUE's MRPC folder instead of the Hub's
        run_recipe(script, [*argv, *SHORT[script]])

    arch = json.loads((tmp_path / "outputs" / "compress-search" / "arch.json").read_text())
    student = json.loads((tmp_path / "outputs" / "student" / "config.json").read_text())
    assert student["arch"] == arch["arch"] and arch["encoder_params"] <= budget
    logged = json.loads((tmp_path / "outputs" / "student" / "train_log.jsonl").read_text().splitlines()[0])
    # the recipe's three distillation terms and no masked-LM
    assert {"kd_hidden_loss", "kd_attention_loss", "kd_embedding_loss"} <= set(logged) and "mlm_loss" not in logged
    results = json.loads((tmp_path / "outputs" / "student-mrpc" / "all_results.json").read_text())
    assert [run["learning_rate"] for run in results["runs"]] == [1e-3] and "mrpc" in results["scores"]
