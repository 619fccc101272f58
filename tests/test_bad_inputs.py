"""Bad inputs a careful user tries (issue 17): each stops with one line naming the file or value and what is allowed,
before any work and before anything is written (old results stay as they were); nothing runs on silently wrong."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification

from magic_bert.glue.arguments import FinetuneArguments
from magic_bert.glue.command import main as glue_main
from magic_bert.glue.finetuning import finetune_glue, load_model, resolve_tasks
from magic_bert.search.command import main_export, main_search
from magic_bert.synthetic_corpus import generate_corpus
from magic_bert.training.command import main as pretrain_main

SMALL = ["--synthetic_documents", "200", "--per_device_train_batch_size", "4", "--anchor_eval_samples", "16",
         "--max_eval_samples", "16", "--max_seq_length", "64"]
SENTENCES = generate_corpus(100, seed=3, sentences_per_document=(1, 1))


def one_line_error(main, argv) -> str:
    """The command's exit message: one line, starting with ``error:``."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    message = str(info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to show a failed command left old results alone)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def corrupt(file: Path, how: str) -> None:
    if how == "garbage":
        file.write_bytes(b"this is not a safetensors file")
    else:  # a download or copy cut short: a valid start, the rest missing
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, word_tokenizer_dir) -> Path:
    """A two-step pre-training run with its checkpoint step_2/ (also a supernet for search and export)."""
    out = tmp_path_factory.mktemp("bad_inputs") / "run"
    pretrain_main(["--tokenizer_name", word_tokenizer_dir, *SMALL, "--max_train_steps", "2",
                   "--checkpointing_steps", "2", "--output_dir", str(out)])
    assert (out / "step_2" / "model.safetensors").is_file()
    return out


# -- pre-training ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_resume_from_unreadable_weights(run_dir, tmp_path, word_tokenizer_dir, how):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    corrupt(out / "step_2" / "model.safetensors", how)
    before = snapshot(out)
    message = one_line_error(pretrain_main, ["--tokenizer_name", word_tokenizer_dir, *SMALL, "--max_train_steps", 4,
                                             "--checkpointing_steps", 2, "--output_dir", out,
                                             "--resume_from_checkpoint", "latest"])
    # The checkpoint's manifest catches it first: its model.safetensors is not what was saved.
    assert "--resume_from_checkpoint" in message and "step_2: model.safetensors does not match its manifest" in message
    assert snapshot(out) == before


def test_training_file_that_is_not_utf8(tmp_path, word_tokenizer_dir):
    text = tmp_path / "latin1.txt"
    text.write_bytes(b"the cat sat on the mat\n" * 50 + "caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    message = one_line_error(pretrain_main, ["--tokenizer_name", word_tokenizer_dir, *SMALL, "--train_file", text,
                                             "--output_dir", tmp_path / "out"])
    assert "--train_file" in message and "latin1.txt" in message and "UTF-8" in message
    assert not (tmp_path / "out").exists()


def test_one_line_training_file_without_validation_file(tmp_path, word_tokenizer_dir):
    text = tmp_path / "one.txt"
    text.write_text("the cat sat on the mat and the dog sat on the rug\n")
    message = one_line_error(pretrain_main, ["--tokenizer_name", word_tokenizer_dir, *SMALL, "--train_file", text,
                                             "--max_seq_length", 8, "--output_dir", tmp_path / "out"])
    assert "--train_file" in message and "one.txt" in message and "--validation_file" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("own_tokenizer", [False, True])
def test_training_file_of_blank_lines(tmp_path, word_tokenizer_dir, own_tokenizer):
    """Blank text yields special tokens only (a 5-token vocabulary, NaN loss): refused before training."""
    text = tmp_path / "blank.txt"
    text.write_text("\n" * 400 + "   \n\t\n")
    tokenizer = ["--tokenizer_name", word_tokenizer_dir] if own_tokenizer else []
    message = one_line_error(pretrain_main, [*tokenizer, *SMALL, "--train_file", text, "--max_seq_length", 8,
                                             "--output_dir", tmp_path / "out"])
    assert "--train_file" in message and "blank.txt" in message and "no text" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--init_from_bert", "--teacher_name_or_path"])
def test_bert_or_teacher_with_unreadable_weights(tmp_path, word_tokenizer_dir, flag):
    """Its weights load only in the training setup (or mid-way through it): refused with the inputs instead."""
    bert = tmp_path / "bert"
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    corrupt(bert / "model.safetensors", "truncated")
    message = one_line_error(pretrain_main, ["--tokenizer_name", word_tokenizer_dir, *SMALL, flag, bert,
                                             "--output_dir", tmp_path / "out"])
    assert message.startswith(f"error: {flag} ") and f"{bert / 'model.safetensors'}" in message
    assert not (tmp_path / "out").exists()


# -- search and export -----------------------------------------------------------------------------------------------
SEARCH = ["--population_size", 2, "--generations", 1, "--num_eval_batches", 1, "--max_seq_length", 64]
EXPORT = ["--arch", "mha:2 ffn:256 mha:2 ffn:256"]


@pytest.mark.parametrize("command", ["search", "export"])
@pytest.mark.parametrize(("case", "named"), [
    ("garbage", "model.safetensors"),
    ("truncated", "model.safetensors"),
    ("invalid_json", "config.json"),
    ("json_not_an_object", "config.json"),
    ("config_with_a_bad_arch", "config.json"),
    ("fixed_child", "config.json"),
])
def test_search_and_export_of_an_unreadable_supernet(run_dir, tmp_path, command, case, named):
    supernet = tmp_path / "supernet"
    shutil.copytree(run_dir, supernet)
    config = supernet / "config.json"
    if case in ("garbage", "truncated"):
        corrupt(supernet / "model.safetensors", case)
    elif case == "invalid_json":
        config.write_text(config.read_text()[:-20])
    elif case == "json_not_an_object":
        config.write_text("[1, 2]")
    else:
        arch = 5 if case == "config_with_a_bad_arch" else ["mha:2", "ffn:256", "mha:2", "ffn:256"]
        config.write_text(json.dumps({**json.loads(config.read_text()), "arch": arch}))
    main, extra = (main_search, SEARCH) if command == "search" else (main_export, EXPORT)
    message = one_line_error(main, ["--supernet", supernet, "--output_dir", tmp_path / "out", *extra])
    assert "--supernet" in message and f"{supernet / named}" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_config_that_is_a_json_list_is_named_once(tmp_path, word_tokenizer_dir, as_folder):
    config = tmp_path / ("folder" if as_folder else "") / "config.json"
    config.parent.mkdir(exist_ok=True)
    config.write_text("[1, 2]")
    given = config.parent if as_folder else config
    message = one_line_error(pretrain_main, ["--tokenizer_name", word_tokenizer_dir, *SMALL, "--config_name", given,
                                             "--output_dir", tmp_path / "out"])
    where = f"--config_name '{given}'" + (": its config.json" if as_folder else "")
    assert message == f"error: {where} holds a JSON array; a config must be a JSON object of settings ({{...}})."
    assert not (tmp_path / "out").exists()


def test_an_unknown_op_is_named_before_the_layer_count(run_dir, tmp_path):
    message = one_line_error(main_export, ["--supernet", run_dir, "--arch", "lstm:3", "--output_dir", tmp_path / "out"])
    assert "Unknown op 'lstm:3'" in message and "layers" not in message
    assert not (tmp_path / "out").exists()


def test_search_longer_than_the_position_embeddings(run_dir, tmp_path):
    positions = json.loads((run_dir / "config.json").read_text())["max_position_embeddings"]
    message = one_line_error(main_search, ["--supernet", run_dir, "--output_dir", tmp_path / "out", *SEARCH,
                                           "--max_seq_length", 2 * positions])
    assert f"--max_seq_length {2 * positions}" in message and f"max_position_embeddings {positions}" in message
    assert not (tmp_path / "out").exists()


# -- GLUE fine-tuning ------------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[list], header=("review", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def glue_inputs(tmp_path_factory, word_tokenizer_dir) -> dict[str, Path]:
    """A tiny 2-class BERT classifier with 64 positions (saved with the tokenizer) and a 3-class csv task."""
    root = tmp_path_factory.mktemp("glue_inputs")
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64,
                                                     max_position_embeddings=64))
    model.save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    names = ("neg", "neutral", "pos")
    train = write_csv(root / "reviews.csv", [[s, names[i % 3]] for i, s in enumerate(SENTENCES[:24])])
    dev = write_csv(root / "reviews_dev.csv", [[s, names[i % 3]] for i, s in enumerate(SENTENCES[24:36])])
    return {"bert": root / "bert", "train": train, "dev": dev}


@pytest.fixture
def old_results(tmp_path) -> Path:
    """An output folder holding an earlier run's results, which a refused run must leave as they are."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "eval_results.json").write_text('{"reviews": {"accuracy": 0.9}}\n')
    return out


def glue_argv(model: Path, inputs: dict[str, Path], out: Path, *extra) -> list:
    return ["--model_name_or_path", model, "--train_file", inputs["train"], "--validation_file", inputs["dev"],
            "--output_dir", out, "--overwrite_output_dir", "--per_device_train_batch_size", 8,
            "--max_seq_length", 32, "--num_train_epochs", 1, *extra]


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--learning_rate", -1, "--learning_rate must be positive, got -1.0."),
    ("--max_train_steps", -3, "--max_train_steps must be at least 1, got -3."),
    ("--max_train_steps", 0, "--max_train_steps must be at least 1, got 0."),
    ("--max_seq_length", 100, "--max_seq_length 100 exceeds the max_position_embeddings 64 of --model_name_or_path"),
    ("--seed", -1, "--seed must be an integer from 0 to 2**32 - 1, got -1."),
    ("--report_to", "nosuch", "--report_to 'nosuch': unknown trackers ['nosuch']; choose from ['all', "),
])
def test_finetuning_values_are_refused_before_old_results_are_touched(glue_inputs, old_results, flag, value,
                                                                      expected):
    before = snapshot(old_results)
    message = one_line_error(glue_main, glue_argv(glue_inputs["bert"], glue_inputs, old_results, flag, value))
    assert message.startswith(f"error: {expected}")
    assert snapshot(old_results) == before


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_finetuning_a_folder_with_unreadable_weights(glue_inputs, old_results, tmp_path, how):
    model = tmp_path / "model"
    shutil.copytree(glue_inputs["bert"], model)
    corrupt(model / "model.safetensors", how)
    before = snapshot(old_results)
    message = one_line_error(glue_main, glue_argv(model, glue_inputs, old_results))
    assert "--model_name_or_path" in message and f"{model / 'model.safetensors'}" in message
    assert snapshot(old_results) == before


@pytest.fixture(scope="module")
def masked_lm_child(run_dir, tmp_path_factory) -> Path:
    """A child exported from the supernet as a masked-LM checkpoint (no classifier, no pooler weights saved)."""
    out = tmp_path_factory.mktemp("child") / "child"
    main_export(["--supernet", str(run_dir), "--arch", "mha:2 ffn:256 conv:3 ffn:128", "--output_dir", str(out)])
    return out


def test_finetuning_a_checkpoint_whose_arch_no_longer_matches_its_weights(masked_lm_child, glue_inputs, old_results,
                                                                         tmp_path):
    model = tmp_path / "edited"
    shutil.copytree(masked_lm_child, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "arch": ["mha:2", "ffn:128", "conv:3", "ffn:128"]}))
    before = snapshot(old_results)
    message = one_line_error(glue_main, glue_argv(model, glue_inputs, old_results))
    assert "--model_name_or_path" in message and "bert.encoder.layer.1.intermediate.weight" in message
    assert "only the pooler and the classifier" in message
    assert snapshot(old_results) == before


@pytest.mark.parametrize("source", ["masked_lm_child", "two_class_classifier"])
def test_new_heads_still_fine_tune(masked_lm_child, glue_inputs, tmp_path, source):
    """The legitimate cases: a masked-LM checkpoint gets a new classifier (and pooler); a saved 2-class classifier
    is replaced by a 3-class one. The encoder is loaded as saved."""
    model = masked_lm_child if source == "masked_lm_child" else glue_inputs["bert"]
    out = tmp_path / "out"
    args = FinetuneArguments(model_name_or_path=str(model), train_file=str(glue_inputs["train"]),
                             validation_file=[str(glue_inputs["dev"])], output_dir=str(out),
                             per_device_train_batch_size=8, max_seq_length=32, num_train_epochs=1, max_train_steps=1)
    (task,) = resolve_tasks(args)
    loaded = load_model(args, task, None).state_dict()
    saved = load_file(model / "model.safetensors")
    encoder = [key for key in loaded if key.startswith("bert.") and not key.startswith("bert.pooler.")]
    assert encoder and all(torch.equal(loaded[key], saved[key]) for key in encoder)
    assert loaded["classifier.weight"].shape[0] == 3
    finetune_glue(args)
    config = json.loads((out / "reviews" / "best_model" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}


def test_cola_row_with_a_missing_field(glue_inputs, old_results, tmp_path):
    """Original CoLA layout (no header: source, label, mark, sentence): a row without its sentence is refused."""
    rows = [["gj04", str(i % 2), "", s] for i, s in enumerate(SENTENCES[:8])]
    rows[4] = rows[4][:3]  # the sentence is missing
    train = tmp_path / "train.tsv"
    train.write_text("".join("\t".join(row) + "\n" for row in rows))
    dev = tmp_path / "dev.tsv"
    dev.write_text("".join("\t".join(row) + "\n" for row in rows[:4]))
    before = snapshot(old_results)
    message = one_line_error(glue_main, ["--model_name_or_path", glue_inputs["bert"], "--task_name", "cola",
                                         "--train_file", train, "--validation_file", dev, "--output_dir", old_results,
                                         "--overwrite_output_dir", "--max_seq_length", 32])
    assert f"cola: --train_file {str(train)!r}, line 5" in message and "sentence" in message, message
    assert snapshot(old_results) == before


def test_csv_row_with_a_missing_text_field(glue_inputs, tmp_path):
    train = tmp_path / "sst.csv"
    with open(train, "w", encoding="utf-8") as f:
        f.write("label,sentence\n" + "".join(f"{i % 2},{s}\n" for i, s in enumerate(SENTENCES[:6])) + "1\n")
    message = one_line_error(glue_main, ["--model_name_or_path", glue_inputs["bert"], "--task_name", "sst2",
                                         "--train_file", train, "--validation_file", train, "--output_dir",
                                         tmp_path / "out", "--max_seq_length", 32])
    assert f"sst2: --train_file {str(train)!r}, row 7 has no 'sentence'" in message, message
    assert not (tmp_path / "out").exists()


# -- round 2 of the sweep (issue 31) --------------------------------------------------------------------------------
def test_a_folder_without_a_tokenizer_is_named(glue_inputs, old_results, tmp_path, word_tokenizer_dir):
    weights_only = tmp_path / "weights_only"  # a model folder without tokenizer files: not a 5-token tokenizer
    shutil.copytree(glue_inputs["bert"], weights_only)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (weights_only / name).unlink(missing_ok=True)
    message = one_line_error(glue_main, glue_argv(weights_only, glue_inputs, old_results))
    assert f"--model_name_or_path '{weights_only}' holds no tokenizer" in message
    (tmp_path / "empty").mkdir()
    message = one_line_error(pretrain_main, ["--tokenizer_name", tmp_path / "empty", *SMALL, "--max_train_steps",
                                             "1", "--output_dir", tmp_path / "run"])
    assert "--tokenizer_name" in message and "holds no tokenizer" in message
    assert not (tmp_path / "run").exists()


def test_a_supernet_is_not_fine_tuned_and_weights_that_do_not_fit_their_config_are_named(run_dir, glue_inputs,
                                                                                         old_results, tmp_path):
    message = one_line_error(glue_main, glue_argv(run_dir, glue_inputs, old_results))
    assert f"--model_name_or_path '{run_dir}' is a supernet; export one child first" in message
    supernet = tmp_path / "supernet"
    shutil.copytree(run_dir, supernet)
    config = json.loads((supernet / "config.json").read_text())
    (supernet / "config.json").write_text(json.dumps({**config, "hidden_size": 2 * config["hidden_size"]}))
    message = one_line_error(main_search, ["--supernet", supernet, "--output_dir", tmp_path / "search", *SEARCH])
    assert "its weights do not fit its config.json" in message and not (tmp_path / "search").exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--parents", 10, "--population_size", 4], "--parents 10 exceeds --population_size 4"),
    (["--tokenizer_name", "OTHER"], "tokens) is not the vocabulary the supernet was trained with"),
])
def test_search_options_that_cannot_work_together(run_dir, tmp_path, word_tokenizer_dir, extra, expected):
    other = tmp_path / "other_tokenizer"  # a vocabulary of another size
    AutoTokenizer.from_pretrained(word_tokenizer_dir).train_new_from_iterator(SENTENCES, 60).save_pretrained(other)
    argv = ["--supernet", run_dir, "--output_dir", tmp_path / "out", *SEARCH,
            *[other if value == "OTHER" else value for value in extra]]
    assert expected in one_line_error(main_search, argv) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--weight_decay", "--max_grad_norm"])
def test_negative_regularisation_is_refused(tmp_path, word_tokenizer_dir, flag):
    message = one_line_error(pretrain_main, ["--tokenizer_name", word_tokenizer_dir, *SMALL, flag, -1,
                                             "--output_dir", tmp_path / "run"])
    assert message == f"error: {flag} must be at least 0, got -1.0." and not (tmp_path / "run").exists()
