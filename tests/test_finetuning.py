"""GLUE fine-tuning recipe: BERT == MagicBert-from-BERT exactly, all eight task layouts end to end, KD, MNLI init,
learning-rate grid, outputs and submission files, bad input."""

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, HfArgumentParser

from magic_bert import MagicBertForSequenceClassification, from_bert
from magic_bert.errors import InputError
from magic_bert.glue.finetuning import FinetuneArguments, distillation_loss, finetune_glue, load_model
from magic_bert.glue.tasks import PAPER_ORDER, TASKS
from magic_bert.synthetic_corpus import generate_corpus

# Original GLUE .tsv layouts (header, row builder from (sentence1, sentence2, label name or id)).
LAYOUTS = {
    "cola": (None, lambda i, a, b, y: ["gj04", str(y), "", a]),
    "sst2": ("sentence\tlabel", lambda i, a, b, y: [a, str(y)]),
    "mrpc": ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", lambda i, a, b, y: [str(y), str(i), str(i + 1), a,
                                                                                      f'"{b}']),
    "stsb": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
             lambda i, a, b, y: [str(i), "main", "f", "2012", "0", "none", "none", a, b, f"{y:.3f}"]),
    "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", lambda i, a, b, y: [str(i), "1", "2", a, b, str(y)]),
    "mnli": ("index\tpromptID\tpairID\tgenre\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label",
             lambda i, a, b, y: [str(i), "1", "1", "fiction", "", "", "", "", a, b, y, y]),
    "qnli": ("index\tquestion\tsentence\tlabel", lambda i, a, b, y: [str(i), a, b, y]),
    "rte": ("index\tsentence1\tsentence2\tlabel", lambda i, a, b, y: [str(i), a, b, y]),
}
DEV_FILES = {"mnli": ("dev_matched.tsv", "dev_mismatched.tsv")}
TEST_FILES = {"mnli": ("test_matched.tsv", "test_mismatched.tsv")}


def _label(task, rng):
    if task.is_regression:
        return rng.uniform(0, 5)
    if task.name in ("cola", "sst2", "mrpc", "qqp"):  # ids in the original files
        return rng.randrange(task.num_labels)
    return task.labels[rng.randrange(task.num_labels)]  # names (MNLI, QNLI, RTE)


def _write_tsv(path: Path, task, n: int, rng, sentences, with_label: bool = True) -> None:
    header, row = LAYOUTS[task.name]
    if not with_label:  # test files: an index and the text columns, no label
        header = "index\t" + "\t".join(task.tsv_keys)
    lines = [] if header is None else [header]
    for i in range(n):
        a, b = rng.choice(sentences), rng.choice(sentences)
        lines.append("\t".join(row(i, a, b, _label(task, rng)) if with_label else
                               [str(i), a] + ([b] if len(task.keys) == 2 else [])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_glue_dir(root: Path, tasks=PAPER_ORDER, n_train: int = 24, n_dev: int = 12, n_test: int = 5) -> Path:
    """Tiny GLUE folders in the original layouts (train, dev(s), test without labels) from the synthetic corpus."""
    rng = random.Random(0)
    sentences = generate_corpus(400, seed=7, sentences_per_document=(1, 1))
    for name in tasks:
        task = TASKS[name]
        folder = root / task.folder
        folder.mkdir(parents=True, exist_ok=True)
        _write_tsv(folder / "train.tsv", task, n_train, rng, sentences)
        for dev in DEV_FILES.get(name, ("dev.tsv",)):
            _write_tsv(folder / dev, task, n_dev, rng, sentences)
        for test in TEST_FILES.get(name, ("test.tsv",)):
            _write_tsv(folder / test, task, n_test, rng, sentences, with_label=False)
    return root


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue_dir(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="module")
def bert_dirs(tmp_path_factory, word_tokenizer_dir):
    """A tiny BERT classifier and the MagicBert imported from it, each saved with the tokenizer."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64,
                                                    max_position_embeddings=128))
    magic = from_bert(bert, MagicBertForSequenceClassification)
    for name, model in (("bert", bert), ("magic", magic)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root / "bert", root / "magic"


def args_for(model, out, **overrides) -> FinetuneArguments:
    base = dict(model_name_or_path=str(model), output_dir=str(out), per_device_train_batch_size=8,
                per_device_eval_batch_size=8, learning_rate=1e-3, num_train_epochs=2, max_seq_length=64)
    return FinetuneArguments(**{**base, **overrides})


def log(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]


def test_magic_from_bert_fine_tunes_exactly_like_bert(bert_dirs, glue_dir, tmp_path):
    bert_dir, magic_dir = bert_dirs
    for name, model in (("bert", bert_dir), ("magic", magic_dir)):
        finetune_glue(args_for(model, tmp_path / name, task_name="mrpc", data_dir=str(glue_dir)))
    a, b = log(tmp_path / "bert"), log(tmp_path / "magic")
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):  # dropout on, same seed: same losses and dev metrics
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-5)
        assert x["eval_f1"] == y["eval_f1"] and x["eval_accuracy"] == y["eval_accuracy"]
    assert a[0]["train_loss"] != a[1]["train_loss"]


@pytest.mark.slow
def test_all_eight_tasks_from_original_layouts(bert_dirs, glue_dir, tmp_path):
    _, magic_dir = bert_dirs
    out = tmp_path / "all"
    best = finetune_glue(args_for(magic_dir, out, task_name="all", data_dir=str(glue_dir), num_train_epochs=1))
    assert list(best) == list(PAPER_ORDER)
    results = json.loads((out / "all_results.json").read_text())
    assert set(results["scores"]) == set(PAPER_ORDER)
    assert results["average"] == pytest.approx(sum(results["scores"].values()) / 8)
    ev = json.loads((out / "eval_results.json").read_text())
    assert {"matched_accuracy", "mismatched_accuracy"} <= set(ev["mnli"])
    assert {"pearson", "spearmanr"} <= set(ev["stsb"]) and "matthews_correlation" in ev["cola"]
    assert {"f1", "accuracy"} <= set(ev["qqp"])
    table = (out / "results.md").read_text()
    assert "| MNLI | QQP | QNLI | CoLA | SST-2 | STS-B | RTE | MRPC | AVG |" in table
    files = sorted(p.name for p in (out / "submission").iterdir())
    assert files == sorted(["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
                            "QNLI.tsv", "RTE.tsv"])
    rte = (out / "submission" / "RTE.tsv").read_text().splitlines()
    assert rte[0] == "index\tprediction" and len(rte) == 6
    assert {line.split("\t")[1] for line in rte[1:]} <= {"entailment", "not_entailment"}
    stsb = [float(line.split("\t")[1]) for line in (out / "submission" / "STS-B.tsv").read_text().splitlines()[1:]]
    assert all(0 <= v <= 5 for v in stsb)
    for task in PAPER_ORDER:
        assert (out / task / "best_model" / "config.json").is_file()


def test_learning_rate_grid_keeps_the_best_and_records_every_run(bert_dirs, glue_dir, tmp_path):
    _, magic_dir = bert_dirs
    out = tmp_path / "grid"
    best = finetune_glue(args_for(magic_dir, out, task_name="rte", data_dir=str(glue_dir),
                                  learning_rates="1e-4,3e-3", num_train_epochs=1))
    runs = json.loads((out / "all_results.json").read_text())["runs"]
    assert [r["learning_rate"] for r in runs] == [1e-4, 3e-3]
    assert best["rte"].score == max(r["score"] for r in runs)
    assert {p.name for p in (out / "rte").iterdir()} == {"lr_0.0001", "lr_0.003", "best_model"}
    assert len(log(out)) == 2


def test_kd_changes_training_and_the_loss_is_right(bert_dirs, glue_dir, tmp_path):
    bert_dir, magic_dir = bert_dirs
    plain = finetune_glue(args_for(magic_dir, tmp_path / "plain", task_name="mrpc", data_dir=str(glue_dir)))
    kd = finetune_glue(args_for(magic_dir, tmp_path / "kd", task_name="mrpc", data_dir=str(glue_dir),
                                teacher_name_or_path=str(bert_dir), kd_alpha=0.5))
    assert log(tmp_path / "kd")[0]["train_loss"] != log(tmp_path / "plain")[0]["train_loss"]
    assert kd["mrpc"].history and plain["mrpc"].history
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    expected = torch.nn.functional.kl_div(student.log_softmax(-1), teacher.softmax(-1), reduction="batchmean")
    assert distillation_loss(student, teacher, TASKS["mnli"], 1.0).item() == pytest.approx(expected.item(), abs=1e-6)
    assert distillation_loss(teacher, teacher, TASKS["mnli"], 2.0).item() == pytest.approx(0.0, abs=1e-6)
    s, t = torch.randn(5, 1), torch.randn(5, 1)
    assert distillation_loss(s, t, TASKS["stsb"], 1.0).item() == pytest.approx(((s - t) ** 2).mean().item())


def test_init_from_mnli_keeps_the_encoder_and_resizes_the_head(bert_dirs, glue_dir, tmp_path, word_tokenizer_dir):
    _, magic_dir = bert_dirs
    mnli_out = tmp_path / "mnli"
    finetune_glue(args_for(magic_dir, mnli_out, task_name="mnli", data_dir=str(glue_dir), num_train_epochs=1))
    mnli_model = mnli_out / "mnli" / "best_model"
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    args = args_for(magic_dir, tmp_path / "rte", init_from_mnli=str(mnli_model))
    rte = load_model(args, TASKS["rte"], tokenizer)
    mnli = MagicBertForSequenceClassification.from_pretrained(mnli_model)
    assert rte.config.num_labels == 2 and mnli.config.num_labels == 3
    key = "bert.encoder.layer.0.query.weight"
    assert torch.equal(rte.state_dict()[key], mnli.state_dict()[key])
    sst2 = load_model(args, TASKS["sst2"], tokenizer)  # not an MNLI-transfer task: starts from the model itself
    assert not torch.equal(sst2.state_dict()[key], mnli.state_dict()[key])


@pytest.mark.parametrize("case, message", [
    ("columns", "needs the text columns"),
    ("label", "outside rte's label set"),
    ("vocab", "do not belong together"),
    ("missing_dev", "no data for the"),
])
def test_bad_input_is_refused_before_writing(bert_dirs, glue_dir, tmp_path, case, message, word_tokenizer_dir):
    _, magic_dir = bert_dirs
    model, kwargs = magic_dir, {"task_name": "rte"}
    train = tmp_path / "train.tsv"
    dev = tmp_path / "dev.tsv"
    rows = ["index\tsentence1\tsentence2\tlabel", "0\ta dog runs.\ta cat runs.\tentailment"]
    dev.write_text("\n".join(rows) + "\n")
    if case == "columns":
        train.write_text("index\ttext\tlabel\n0\ta dog runs.\tentailment\n")
    elif case == "label":
        train.write_text("\n".join([*rows, "1\ta dog.\ta cat.\tmaybe"]) + "\n")
    elif case == "vocab":
        train.write_text("\n".join(rows) + "\n")
        small = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=64))
        model = tmp_path / "small"
        small.save_pretrained(model)
        AutoTokenizer.from_pretrained(word_tokenizer_dir).save_pretrained(model)
    else:
        train.write_text("\n".join(rows) + "\n")
    files = {"train_file": str(train)} | ({} if case == "missing_dev" else {"validation_file": [str(dev)]})
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        finetune_glue(args_for(model, out, **kwargs, **files))
    assert not out.exists()


def test_unknown_task_is_rejected_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        HfArgumentParser(FinetuneArguments).parse_args_into_dataclasses(args=["--task_name", "squad"])
    assert "squad" in capsys.readouterr().err


def test_model_card_gets_the_dev_results(bert_dirs, glue_dir, tmp_path):
    from huggingface_hub import ModelCard

    _, magic_dir = bert_dirs
    out = tmp_path / "card"
    best = finetune_glue(args_for(magic_dir, out, task_name="mrpc", data_dir=str(glue_dir), num_train_epochs=1,
                                  update_model_card=True))
    card = ModelCard.load(out / "README.md")
    results = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("mrpc", "f1"): best["mrpc"].dev_metrics["f1"],
                       ("mrpc", "accuracy"): best["mrpc"].dev_metrics["accuracy"]}


def test_dev_progress_and_epoch_lines_and_a_bounded_tokenizer(bert_dirs, glue_dir, tmp_path, capsys, monkeypatch):
    """Dev evaluation shows a progress bar; each epoch's JSON is a line of its own written with tqdm.write (not in
    the bar); the saved best model's tokenizer stops at the model's positions."""
    import magic_bert.glue.finetuning as finetuning

    written, write = [], finetuning.tqdm.write

    def spy(text, *args, **kwargs):
        written.append(text)
        write(text, *args, **kwargs)

    monkeypatch.setattr(finetuning.tqdm, "write", spy)
    _, magic_dir = bert_dirs
    out = tmp_path / "progress"
    finetune_glue(args_for(magic_dir, out, task_name="mrpc", data_dir=str(glue_dir)))
    captured = capsys.readouterr()
    assert "mrpc validation" in captured.err and "mrpc test" in captured.err
    records = [json.loads(text) for text in written]
    assert [r["epoch"] for r in records] == [1, 2] and records == log(out)
    assert "train_loss" not in captured.err
    stdout_records = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert stdout_records == records
    saved = json.loads((out / "mrpc" / "best_model" / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 128 and saved["tokenizer_class"].startswith("BertTokenizer")


def test_swap_pairs_adds_every_training_pair_swapped_with_its_label(bert_dirs, glue_dir, tmp_path):
    from magic_bert.glue.finetuning import load_raw_data

    args = args_for(bert_dirs[0], tmp_path / "out", task_name="mrpc", data_dir=str(glue_dir), max_train_samples=10)
    plain = load_raw_data(args, TASKS["mrpc"])["train"]
    swapped = load_raw_data(args_for(bert_dirs[0], tmp_path / "out", task_name="mrpc", data_dir=str(glue_dir),
                                     max_train_samples=10, swap_pairs=True), TASKS["mrpc"])
    assert len(plain) == 10 and len(swapped["train"]) == 20
    assert swapped["train"].select(range(10)).to_list() == plain.to_list()
    assert swapped["train"].select(range(10, 20)).to_list() == [
        {**row, "sentence1": row["sentence2"], "sentence2": row["sentence1"]} for row in plain.to_list()]
    assert len(swapped["validation"]) == len(load_raw_data(args, TASKS["mrpc"])["validation"])  # dev untouched
    out = tmp_path / "run"
    finetune_glue(args_for(bert_dirs[0], out, task_name="mrpc", data_dir=str(glue_dir), num_train_epochs=1,
                           swap_pairs=True))
    assert log(out)[0]["step"] == 6  # 2 x 24 training pairs, batch 8


@pytest.mark.parametrize("overrides", [dict(task_name="rte"), dict(task_name="all"),
                                       dict(train_file="TRAIN", validation_file=["TRAIN"])])
def test_swap_pairs_is_refused_where_the_order_matters(bert_dirs, glue_dir, tmp_path, overrides):
    if "train_file" in overrides:
        train = tmp_path / "pairs.csv"
        train.write_text("a,b,label\nx y,z w,1\n")
        overrides = {"train_file": str(train), "validation_file": [str(train)]}
    else:
        overrides = {**overrides, "data_dir": str(glue_dir)}
    args = args_for(bert_dirs[0], tmp_path / "out", swap_pairs=True, **overrides)
    message = r"`swap_pairs` swaps the two texts .*\(qqp, stsb, mrpc\); not .*: drop `swap_pairs`"
    with pytest.raises(InputError, match=message):
        args.check()
    assert not (tmp_path / "out").exists()
