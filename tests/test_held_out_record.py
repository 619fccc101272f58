"""Search finds the supernet's own held-out text: pre-training records it in all_results.json (``held_out_text``), the
embedded default corpus is one corpus in every command, and a fallback or a refusal says which text it means."""

import inspect
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator

from magic_bert import MagicBertSupernetForMaskedLM
from magic_bert.data import (
    held_out_blocks,
    load_held_out_text,
    load_text_datasets,
    mask_once,
    synthetic_datasets,
    synthetic_validation,
    tokenize_and_group,
)
from magic_bert.errors import InputError
from magic_bert.evaluation import evaluate_mlm
from magic_bert.held_out_record import load_recorded, record_held_out
from magic_bert.supernet_inputs import HeldOutArguments, held_out
from magic_bert.synthetic_corpus import DEFAULT_DOCUMENTS, generate_corpus
from magic_bert.training.arguments import DataArguments, parse_pretrain_args
from magic_bert.training.recipe import pretrain

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "recipes"))
import search as search_recipe  # noqa: E402

DOCUMENTS, LENGTH, SEED = 200, 64, 42


@pytest.fixture(scope="module")
def anchored_supernet(tmp_path_factory, word_tokenizer_dir) -> Path:
    """A MAGIC-AT supernet of a few steps whose anchor checks took validation blocks of their own."""
    out = tmp_path_factory.mktemp("anchored") / "supernet"
    pretrain(parse_pretrain_args([
        "--output_dir", str(out), "--tokenizer_name", word_tokenizer_dir, "--sampler", "magic-at",
        "--synthetic_documents", str(DOCUMENTS), "--max_seq_length", str(LENGTH), "--per_device_train_batch_size", "4",
        "--max_train_steps", "4", "--anchor_eval_steps", "2"]))
    return out


def test_the_embedded_default_is_one_corpus_in_every_command():
    assert DataArguments().synthetic_documents == DEFAULT_DOCUMENTS
    for function in (generate_corpus, synthetic_datasets, synthetic_validation, load_text_datasets,
                     load_held_out_text):
        parameters = inspect.signature(function).parameters
        name = "num_documents" if "num_documents" in parameters else "synthetic_documents"
        assert parameters[name].default == DEFAULT_DOCUMENTS, function.__name__
    # What search scores on by default is what pre-training held out by default.
    assert load_held_out_text(seed=SEED)["text"] == load_text_datasets(seed=SEED)["validation"]["text"]


def test_search_scores_the_supernets_own_held_out_text(anchored_supernet, tmp_path, capsys):
    results = json.loads((anchored_supernet / "all_results.json").read_text())
    record, skipped = results["held_out_text"], results["held_out_skipped_blocks"]
    assert skipped >= 2
    assert (record["synthetic_documents"], record["seed"], record["max_seq_length"]) == (DOCUMENTS, SEED, LENGTH)
    assert record["description"] == ("the embedded synthetic text (10 held-out documents of a 200-document corpus, "
                                     "seed 42)")

    # Pre-training's validation blocks (the anchor's first, then the final score's), built as build_blocks builds them.
    tokenizer = AutoTokenizer.from_pretrained(anchored_supernet)
    raw = load_text_datasets(synthetic_documents=DOCUMENTS, seed=SEED)
    pretraining = mask_once(tokenize_and_group(raw, tokenizer, LENGTH)["validation"], tokenizer, 0.15, seed=SEED)
    # Search's defaults: no --validation_file, no --max_seq_length, the anchor blocks skipped.
    everything = held_out(HeldOutArguments(skip_held_out_blocks=0), tokenizer, SEED, [anchored_supernet])
    kept = held_out(HeldOutArguments(), tokenizer, SEED, [anchored_supernet])
    assert everything["input_ids"] == pretraining["input_ids"] and everything["labels"] == pretraining["labels"]
    assert kept["input_ids"] == pretraining["input_ids"][skipped:]
    assert "Held-out text: the embedded synthetic text (10 held-out documents" in capsys.readouterr().err

    out = tmp_path / "search"
    result = search_recipe.search(search_recipe.parse_args([
        "--supernet", str(anchored_supernet), "--output_dir", str(out), "--max_params", "150e3",
        "--population_size", "2", "--generations", "1", "--num_eval_batches", "1"]))
    best = json.loads((out / "arch.json").read_text())
    assert best["arch"] == result.best.arch
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(anchored_supernet).eval()
    loader = DataLoader(kept.select(range(min(len(kept), 32))), batch_size=32, collate_fn=default_data_collator)
    assert evaluate_mlm(supernet, loader, arch=best["arch"]).loss == pytest.approx(best["eval_loss"], abs=1e-6)

    with pytest.raises(InputError, match=r"leaves none of the \d+ blocks of the embedded synthetic text \(10 held-out"):
        held_out(HeldOutArguments(skip_held_out_blocks=1000), tokenizer, SEED, [anchored_supernet])


def test_a_checkpoint_of_a_run_is_a_supernet_search_takes(tmp_path, word_tokenizer_dir, capsys):
    """A run stopped early can be searched from its last checkpoint: the same held-out text and skipped anchor blocks
    as the finished run would give, and the checkpoint's weights."""
    out = tmp_path / "supernet"
    pretrain(parse_pretrain_args([
        "--output_dir", str(out), "--tokenizer_name", word_tokenizer_dir, "--sampler", "magic-at",
        "--synthetic_documents", str(DOCUMENTS), "--max_seq_length", str(LENGTH), "--per_device_train_batch_size", "4",
        "--max_train_steps", "4", "--anchor_eval_steps", "2", "--checkpointing_steps", "4"]))
    step = out / "step_4"
    final = json.loads((out / "all_results.json").read_text())
    result = search_recipe.search(search_recipe.parse_args([
        "--supernet", str(step), "--output_dir", str(tmp_path / "search"), "--max_params", "150e3",
        "--population_size", "2", "--generations", "1", "--num_eval_batches", "1"]))
    tokenizer = AutoTokenizer.from_pretrained(step)
    capsys.readouterr()
    kept = held_out(HeldOutArguments(), tokenizer, SEED, [step])
    assert f"which --supernet '{step}' held out in pre-training" in capsys.readouterr().err
    assert kept["input_ids"] == held_out(HeldOutArguments(), tokenizer, SEED, [out])["input_ids"]
    assert len(kept) == len(held_out(HeldOutArguments(skip_held_out_blocks=0), tokenizer, SEED, [out])) - \
        final["held_out_skipped_blocks"]
    from_step = MagicBertSupernetForMaskedLM.from_pretrained(step).eval()  # the last step's weights: the final ones
    finished = MagicBertSupernetForMaskedLM.from_pretrained(out).eval()
    for (name, a), b in zip(from_step.state_dict().items(), finished.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result.best.arch is not None


def test_a_supernet_without_a_record_falls_back_to_the_default_corpus_and_says_so(anchored_supernet, tmp_path,
                                                                                  capsys):
    older = tmp_path / "older"
    older.mkdir()
    results = json.loads((anchored_supernet / "all_results.json").read_text())
    del results["held_out_text"]
    (older / "all_results.json").write_text(json.dumps(results))
    tokenizer = AutoTokenizer.from_pretrained(anchored_supernet)
    blocks = held_out(HeldOutArguments(skip_held_out_blocks=0, max_seq_length=LENGTH), tokenizer, SEED, [older])
    [note] = [line for line in capsys.readouterr().err.splitlines() if "Held-out text" in line]  # one line
    assert "800 held-out documents of a 16,000-document corpus, seed 42" in note
    assert "no --supernet records its held-out text" in note and "--validation_file" in note
    expected = held_out_blocks(synthetic_validation(DEFAULT_DOCUMENTS, SEED), tokenizer, LENGTH, seed=SEED)
    assert blocks["input_ids"] == expected["input_ids"]


def test_a_hand_edited_record_is_one_clear_error(anchored_supernet, tmp_path):
    edited = tmp_path / "edited"
    edited.mkdir()
    results = json.loads((anchored_supernet / "all_results.json").read_text())
    (edited / "all_results.json").write_text(json.dumps({**results, "held_out_text": {"seed": "42"}}))
    tokenizer = AutoTokenizer.from_pretrained(anchored_supernet)
    with pytest.raises(InputError, match="all_results.json held_out_text is not a record pre-training writes"):
        held_out(HeldOutArguments(), tokenizer, SEED, [edited])


def test_a_recorded_training_file_gives_its_held_out_percent_and_a_missing_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("train.txt").write_text("\n".join(generate_corpus(60, seed=5)) + "\n")
    record = record_held_out(DataArguments(train_file="train.txt"), SEED, LENGTH)
    path = str((tmp_path / "train.txt").resolve())
    assert record["train_file"] == path  # absolute: search may run from another folder
    assert record["description"] == f"the first 5% of `train_file` {path!r}"
    assert load_recorded(record, "`supernet` 's'")["text"] == \
        load_text_datasets(train_file="train.txt")["validation"]["text"]

    Path("train.txt").unlink()
    with pytest.raises(InputError, match=r"`supernet` 's' was validated on the first 5% of .* no longer there"):
        load_recorded(record, "`supernet` 's'")


def test_a_named_validation_file_wins_over_the_record(anchored_supernet, tmp_path, capsys):
    text = tmp_path / "valid.txt"
    text.write_text("\n".join(generate_corpus(30, seed=9)) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(anchored_supernet)
    blocks = held_out(HeldOutArguments(validation_file=str(text), skip_held_out_blocks=0), tokenizer, SEED,
                      [anchored_supernet])
    assert "Held-out text" not in capsys.readouterr().err  # the user named the text: nothing to say
    # The supernet's block length is still the default one.
    expected = held_out_blocks(load_held_out_text(validation_file=str(text)), tokenizer, LENGTH, seed=SEED)
    assert blocks["input_ids"] == expected["input_ids"]


@pytest.mark.slow
def test_the_readme_commands_run_in_order(tmp_path):
    """The README's set-up command, then its search and export, as written (default corpus and tokenizer), shortened
    by flags only: before the record, search failed on the default supernet (176 anchor blocks, 45 held-out)."""
    import subprocess

    def run(script, *args):
        done = subprocess.run([sys.executable, str(REPO / "recipes" / script), *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    run("pretrain.py", "--sampler", "magic-at", "--output_dir", "outputs/tiny-supernet", "--overwrite_output_dir",
        "--max_train_steps", 2, "--anchor_eval_steps", 1)
    results = json.loads((tmp_path / "outputs/tiny-supernet/all_results.json").read_text())
    assert results["held_out_text"]["synthetic_documents"] == DEFAULT_DOCUMENTS
    done = run("search.py", "--supernet", "outputs/tiny-supernet", "--max_params", "150e3", "--output_dir",
               "outputs/search", "--population_size", 2, "--generations", 1, "--num_eval_batches", 1,
               "--per_device_eval_batch_size", 8)
    assert "800 held-out documents of a 16,000-document corpus" in done.stderr
    run("export.py", "--supernet", "outputs/tiny-supernet", "--arch", "outputs/search/arch.json", "--output_dir",
        "outputs/model")
    assert (tmp_path / "outputs/model/config.json").is_file()
    shutil.rmtree(tmp_path / "outputs")
