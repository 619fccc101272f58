"""A user's own data (no ``--task_name``), through the command line's ``main`` on a tiny model: string labels become
classes saved as ``id2label``, float labels regression; results name the training file's task; the metrics equal
scikit-learn's on the saved predictions; bad files stop with one message before anything is written."""

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoConfig, AutoTokenizer, BertConfig, BertForSequenceClassification

from magic_bert.errors import InputError
from magic_bert.glue.command import main
from magic_bert.glue.custom import task_from_files
from magic_bert.glue.finetuning import FinetuneArguments, finetune_glue
from magic_bert.glue.tasks import read_glue_file
from magic_bert.synthetic_corpus import generate_corpus

SENTENCES = generate_corpus(200, seed=3, sentences_per_document=(1, 1))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, word_tokenizer_dir) -> Path:
    """A tiny BERT classifier (hidden 32, the synthetic corpus' ~300-word vocabulary) saved with its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny") / "bert"
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64,
                                             max_position_embeddings=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def review_rows(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[s, "pos" if "cat" in s or rng.random() < 0.3 else "neg"] for s in rng.sample(SENTENCES, n)]


def argv(model: Path, out: Path, train: Path, dev: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file", str(dev),
            "--output_dir", str(out), "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
            "--per_device_eval_batch_size", "8", "--learning_rate", "1e-3", "--max_seq_length", "32", *extra]


def test_string_labels_from_the_command_line(tiny_model, tmp_path):
    train = write_csv(tmp_path / "reviews.csv", ["review", "label"], review_rows(32, 0))
    dev_rows = review_rows(16, 1)
    dev = write_csv(tmp_path / "reviews_dev.csv", ["review", "label"], dev_rows)
    out = tmp_path / "out"
    # The dev file doubles as the test file, so the saved predictions can be scored here.
    main(argv(tiny_model, out, train, dev, "--test_file", str(dev)))

    config = AutoConfig.from_pretrained(out / "reviews" / "best_model")
    assert config.id2label == {0: "neg", 1: "pos"} and config.label2id == {"neg": 0, "pos": 1}
    results = json.loads((out / "eval_results.json").read_text())
    assert list(results) == ["reviews"]
    metrics = results["reviews"]
    assert {"accuracy", "macro_f1"} <= set(metrics)
    table = (out / "results.md").read_text()
    assert "reviews" in table.splitlines()[0] and "| reviews |" in table and "reviews accuracy" in table
    assert json.loads((out / "all_results.json").read_text())["scores"] == {"reviews": metrics["accuracy"]}

    lines = (out / "submission" / "reviews.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 1 + len(dev_rows)
    predicted = [line.split("\t")[1] for line in lines[1:]]
    assert set(predicted) <= {"neg", "pos"}  # label names, not ids
    truth = [label for _, label in dev_rows]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-12)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all(r["task"] == "reviews" for r in log)


def test_float_labels_are_regression(tiny_model, tmp_path):
    rng = random.Random(2)
    rows = [[s, f"{rng.uniform(0, 1):.3f}"] for s in SENTENCES[:24]]
    train = write_csv(tmp_path / "scores.csv", ["text", "score"], rows[:16])
    dev = write_csv(tmp_path / "scores_dev.csv", ["text", "score"], rows[16:])
    out = tmp_path / "out"
    main(argv(tiny_model, out, train, dev, "--label_column", "score", "--num_train_epochs", "1"))
    config = AutoConfig.from_pretrained(out / "scores" / "best_model")
    assert config.num_labels == 1
    metrics = json.loads((out / "eval_results.json").read_text())["scores"]
    assert {"pearson", "spearmanr"} <= set(metrics)
    score = json.loads((out / "all_results.json").read_text())["scores"]["scores"]
    assert score == metrics["spearmanr"]


def test_third_text_column_is_one_clear_error(tiny_model, tmp_path):
    rows = [[s, s.upper(), "x", label] for s, label in review_rows(8, 3)]
    train = write_csv(tmp_path / "reviews.csv", ["review", "title", "source", "label"], rows)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(argv(tiny_model, out, train, train))
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "['review', 'title', 'source']" in message
    assert "--text_columns" in message and "\n" not in message
    assert not out.exists()
    # Naming them works.
    task = task_from_files(train, ["review", "title"])
    assert task.keys == ("review", "title") and task.labels == ("neg", "pos")


def test_unknown_validation_label_is_an_error(tiny_model, tmp_path):
    train = write_csv(tmp_path / "reviews.csv", ["review", "label"], review_rows(8, 4))
    dev = write_csv(tmp_path / "dev.csv", ["review", "label"], [["a cat runs.", "pos"], ["a dog runs.", "meh"]])
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(argv(tiny_model, out, train, dev))
    message = str(exit_info.value.code)
    assert "'meh'" in message and "row 2" in message and "['neg', 'pos']" in message
    assert not out.exists()


def test_a_bad_data_file_is_refused_before_any_model_loads(tiny_model, tmp_path, monkeypatch):
    """The files are read first: a bad row is one line, not one after transformers' load report of the model."""
    from magic_bert.glue import finetuning

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the data files were checked")

    monkeypatch.setattr(finetuning.AutoModelForSequenceClassification, "from_pretrained", no_model)
    monkeypatch.setattr(finetuning.AutoConfig, "from_pretrained", no_model)
    train = write_csv(tmp_path / "reviews.csv", ["review", "label"], review_rows(8, 4))
    dev = write_csv(tmp_path / "dev.csv", ["review", "label"], [["a cat runs.", "pos"], ["a dog runs.", "meh"]])
    with pytest.raises(SystemExit) as exit_info:
        main(argv(tiny_model, tmp_path / "out", train, dev))
    assert "'meh'" in str(exit_info.value.code) and not (tmp_path / "out").exists()


def test_missing_files_without_a_task_name(tiny_model, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_name_or_path", str(tiny_model), "--output_dir", str(tmp_path / "out")])
    err = str(exit_info.value.code)  # the one line the interpreter prints on exit
    assert "--train_file" in err and "--validation_file" in err and "--task_name" in err
    assert not (tmp_path / "out").exists()


def test_library_callers_are_checked_too(tiny_model, tmp_path):
    train = write_csv(tmp_path / "reviews.csv", ["review", "label"], review_rows(8, 5))
    args = FinetuneArguments(model_name_or_path=str(tiny_model), train_file=str(train),
                             validation_file=[str(train)], output_dir=str(tmp_path / "out"), kd_alpha=2.0)
    with pytest.raises(InputError, match=r"`kd_alpha` must be in \[0, 1\]"):
        finetune_glue(args)
    with pytest.raises(InputError, match="`text_columns` and `label_column` are for your own data"):
        FinetuneArguments(model_name_or_path="m", output_dir=str(tmp_path / "o"), task_name="rte",
                          text_columns=["review"]).check()
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ the task from files


@pytest.mark.parametrize("name, text", [
    ("ratings.jsonl", '{"text": "a", "label": 10}\n{"text": "b", "label": 2}\n{"text": "c", "label": 2}\n'),
    ("ratings.tsv", "idx\ttext\tlabel\n0\ta\t10\n1\tb\t2\n2\tc\t2\n"),
    ("ratings.csv", "text,label\na,10\nb,2\nc,2\n"),
    ("ratings.tsv", "index\ttext\tlabel\n0\ta\t10\n1\tb\t2\n2\tc\t2\n"),  # GLUE's original .tsv layout
])
def test_integer_labels_are_classes_sorted_by_value(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    task = task_from_files(path)
    assert task.name == "ratings" and task.keys == ("text",) and task.labels == ("2", "10")
    assert task.metrics == ("accuracy", "macro_f1") and task.main_metric == "accuracy"
    data = read_glue_file(task, path)
    assert data["label"] == [1, 0, 0] and data["text"] == ["a", "b", "c"]


def test_float_labels_make_a_regression_record(tmp_path):
    path = tmp_path / "sim.json"
    path.write_text(json.dumps([{"a": "x", "b": "y", "sim": 1}, {"a": "z", "b": "w", "sim": 0.5}]))
    task = task_from_files(path, label_column="sim")
    assert task.is_regression and task.keys == ("a", "b") and task.main_metric == "spearmanr"
    assert read_glue_file(task, path)["label"] == pytest.approx([1.0, 0.5])
    # A regression label of -1 is a score, not "no label" (GLUE's convention for its own files).
    dev = tmp_path / "dev.csv"
    dev.write_text("a,b,sim\nx,y,-1\n")
    assert read_glue_file(task, dev)["label"] == [-1.0]


@pytest.mark.parametrize("name, text, message", [
    ("t.csv", "review,label\na,pos\nb,pos\n", "holds one class"),
    ("t.csv", "review,stars\na,1\nb,2\n", "has no label column 'label'"),
    ("t.csv", "review,label\na,pos\nb,\n", r"rows without a label \(rows \[2\]\)"),
    ("t.csv", "label\npos\nneg\n", "has 0 text columns"),
    ("t.json", '{"review": "a"', "`train_file` '.*t.json'"),
    ("t.json", '"just a string"', "must hold records"),
    ("t.tsv", "review\tlabel\na\tpos\tx\n", "line 2 has 3 fields"),
])
def test_bad_training_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        task_from_files(path)


def test_unknown_text_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["review", "label"], [["a", "pos"], ["b", "neg"]])
    with pytest.raises(InputError, match=r"`text_columns` \['body'\] are not columns"):
        task_from_files(path, ["body"])
    with pytest.raises(InputError, match="must not hold the label column"):
        task_from_files(path, ["review", "label"])
    indexed = write_csv(tmp_path / "i.csv", ["index", "review", "label"], [["0", "a", "pos"], ["1", "b", "neg"]])
    with pytest.raises(InputError, match=r"or an id column \['idx', 'index'\]"):
        task_from_files(indexed, ["index", "review"])


def test_dev_file_without_the_text_column(tmp_path):
    train = write_csv(tmp_path / "reviews.csv", ["review", "label"], [["a", "pos"], ["b", "neg"]])
    dev = write_csv(tmp_path / "dev.csv", ["text", "label"], [["a", "pos"]])
    with pytest.raises(InputError, match=r"needs the text columns \['review'\], as the training file has"):
        read_glue_file(task_from_files(train), dev)


def test_the_recipe_is_the_command():
    import importlib.util

    from magic_bert.glue import command

    recipe = Path(__file__).parents[1] / "recipes" / "finetune_glue.py"
    spec = importlib.util.spec_from_file_location("finetune_glue_recipe", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main is command.main and module.__doc__.startswith("Fine-tune on GLUE")


def test_a_regression_model_fine_tunes_as_a_classifier(tiny_model, tmp_path):
    """Intermediate-task transfer (STS-B's regression model as MRPC's start): the saved ``problem_type`` of the
    regression head must not carry over, or the classifier trains with a mean-squared error on class ids."""
    rng = random.Random(2)
    scores = [[s, f"{rng.uniform(0, 1):.3f}"] for s in SENTENCES[:24]]
    regression = tmp_path / "regression"
    main(argv(tiny_model, regression, write_csv(tmp_path / "scores.csv", ["text", "score"], scores[:16]),
              write_csv(tmp_path / "scores_dev.csv", ["text", "score"], scores[16:]), "--label_column", "score",
              "--num_train_epochs", "1"))
    start = regression / "scores" / "best_model"
    assert AutoConfig.from_pretrained(start).problem_type == "regression"
    out = tmp_path / "classifier"
    main(argv(start, out, write_csv(tmp_path / "reviews.csv", ["review", "label"], review_rows(32, 0)),
              write_csv(tmp_path / "reviews_dev.csv", ["review", "label"], review_rows(16, 1)),
              "--num_train_epochs", "1"))
    config = AutoConfig.from_pretrained(out / "reviews" / "best_model")
    assert (config.num_labels, config.problem_type) == (2, "single_label_classification")
