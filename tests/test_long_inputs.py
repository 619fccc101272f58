"""Long inputs on exported checkpoints: the tokenizer's `model_max_length` is the model's `max_position_embeddings`,
so `truncation=True` makes the fill-mask and text-classification pipelines take a 600-word text, with `magic_bert`
imported and in a Python where it cannot be imported (`trust_remote_code=True`). The exported tokenizer is a stock
BERT tokenizer that loads without custom code."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from transformers import AutoConfig, AutoTokenizer, pipeline

from magic_bert.search.export import export_checkpoint
from magic_bert.synthetic_corpus import vocabulary

from .conftest import BLOCK_MAGIC_BERT, make_word_tokenizer

ARCH = ["mha:2", "conv:5", "ffn:256", "identity"]
WORDS = 600
TOP_K = 3


def long_text(words: int = WORDS) -> str:
    """`words` corpus words with one [MASK] near the start (kept by truncation)."""
    vocab = sorted(vocabulary())
    text = [vocab[(7 * i) % len(vocab)] for i in range(words)]
    text[3] = "[MASK]"
    return " ".join(text)


@pytest.fixture(scope="module")
def exported(trained_supernet_dir, tmp_path_factory):
    """{head: folder} of one child exported with each head."""
    root = tmp_path_factory.mktemp("long_inputs")
    return {"mlm": export_checkpoint(trained_supernet_dir, ARCH, root / "mlm"),
            "cls": export_checkpoint(trained_supernet_dir, ARCH, root / "cls", head="sequence_classification")}


def _max_positions(folder) -> int:
    return json.loads((folder / "config.json").read_text())["max_position_embeddings"]


def test_exported_tokenizer_is_bounded_by_the_model_and_names_its_class(exported):
    for folder in exported.values():
        saved = json.loads((folder / "tokenizer_config.json").read_text())
        assert saved["model_max_length"] == _max_positions(folder)
        assert saved["tokenizer_class"] in ("BertTokenizer", "BertTokenizerFast")


def test_export_clamps_an_unbounded_tokenizer_and_keeps_a_shorter_one(trained_supernet_dir, tmp_path):
    supernet = tmp_path / "supernet"
    shutil.copytree(trained_supernet_dir, supernet)
    make_word_tokenizer().save_pretrained(supernet)  # a tokenizer saved without a length: 1e30
    assert json.loads((supernet / "tokenizer_config.json").read_text())["model_max_length"] > 1e29
    out = export_checkpoint(supernet, ARCH, tmp_path / "clamped")
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == _max_positions(out)
    assert AutoTokenizer.from_pretrained(out).model_max_length == _max_positions(out)

    tokenizer = make_word_tokenizer()
    tokenizer.model_max_length = 32
    tokenizer.save_pretrained(supernet)
    out = export_checkpoint(supernet, ARCH, tmp_path / "shorter")
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32


def _check_fill_mask(predictions) -> None:
    assert len(predictions) == TOP_K and all(isinstance(p["token_str"], str) and p["score"] > 0
                                             for p in predictions)


def test_pipelines_take_long_inputs_with_magic_bert_imported(exported, monkeypatch):
    def no_prompt(*args, **kwargs):
        raise AssertionError(f"prompted: {args}")

    monkeypatch.setattr("builtins.input", no_prompt)
    text = long_text()
    tokenizer = AutoTokenizer.from_pretrained(exported["mlm"])
    assert type(tokenizer).__name__ in ("BertTokenizer", "BertTokenizerFast")
    assert len(tokenizer(text)["input_ids"]) > tokenizer.model_max_length  # really longer than the model
    fill = pipeline("fill-mask", model=str(exported["mlm"]), tokenizer=str(exported["mlm"]), device="cpu")
    _check_fill_mask(fill(text, top_k=TOP_K, tokenizer_kwargs={"truncation": True}))
    classify = pipeline("text-classification", model=str(exported["cls"]), tokenizer=str(exported["cls"]),
                        device="cpu")
    labels = set(AutoConfig.from_pretrained(exported["cls"]).id2label.values())
    (result,) = classify(text, truncation=True)
    assert result["label"] in labels and 0 < result["score"] <= 1


REMOTE_SCRIPT = BLOCK_MAGIC_BERT + textwrap.dedent(
    """
    import builtins, json, logging, sys

    prompts, messages = [], []

    def closed_stdin(prompt=""):  # what a closed stdin does, recorded
        prompts.append(prompt)
        raise EOFError

    builtins.input = closed_stdin

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logging.getLogger("transformers").addHandler(Collect())
    from transformers import AutoTokenizer, pipeline

    mlm, cls, text, top_k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    report = {}

    def record(name, load):
        del prompts[:], messages[:]
        try:
            tokenizer = load()
            result = {"class": type(tokenizer).__name__, "model_max_length": tokenizer.model_max_length}
        except Exception as error:  # reported, asserted on by the tests
            result = {"error": repr(error)}
        report[name] = {**result, "prompts": list(prompts), "messages": list(messages)}

    record("trust_remote_code", lambda: AutoTokenizer.from_pretrained(mlm, trust_remote_code=True))
    record("tokenizer_type", lambda: AutoTokenizer.from_pretrained(mlm, tokenizer_type="bert"))
    fill = pipeline("fill-mask", model=mlm, tokenizer=mlm, trust_remote_code=True, device="cpu")
    report["fill_mask"] = fill(text, top_k=top_k, tokenizer_kwargs={"truncation": True})
    classify = pipeline("text-classification", model=cls, tokenizer=cls, trust_remote_code=True, device="cpu")
    report["text_classification"] = classify(text, truncation=True)
    report["labels"] = list(classify.model.config.id2label.values())
    report["model_module"] = type(fill.model).__module__
    report["magic_bert_imported"] = "magic_bert" in sys.modules
    record("bare", lambda: AutoTokenizer.from_pretrained(mlm))  # last: warning_once would hide later warnings
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def remote_report(exported, tmp_path_factory):
    """What a Python without magic_bert sees (stdin closed), from one subprocess."""
    folder = tmp_path_factory.mktemp("remote")
    script = folder / "remote_long_inputs.py"
    script.write_text(REMOTE_SCRIPT)
    env = {**os.environ, "HF_MODULES_CACHE": str(folder / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": "",
           "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, str(script), str(exported["mlm"]), str(exported["cls"]), long_text(),
                           str(TOP_K)], env=env, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pipelines_take_long_inputs_without_magic_bert(remote_report):
    assert not remote_report["magic_bert_imported"]
    assert remote_report["model_module"].startswith("transformers_modules.")  # the copied code
    _check_fill_mask(remote_report["fill_mask"])
    (result,) = remote_report["text_classification"]
    assert result["label"] in remote_report["labels"] and 0 < result["score"] <= 1


@pytest.mark.parametrize("how", ["trust_remote_code", "tokenizer_type"])
def test_tokenizer_loads_without_magic_bert_with_no_prompt_or_warning(remote_report, exported, how):
    loaded = remote_report[how]
    assert loaded.get("class") in ("BertTokenizer", "BertTokenizerFast"), loaded
    assert loaded["model_max_length"] == _max_positions(exported["mlm"])
    assert loaded["prompts"] == []
    assert not [m for m in loaded["messages"] if "model of type" in m or "custom code" in m], loaded["messages"]


@pytest.mark.xfail(strict=False, reason="transformers' AutoTokenizer resolves config.json through AutoConfig before it "
                   "reads tokenizer_config.json; the auto_map.AutoConfig that trust_remote_code model loading needs "
                   "then asks to run the custom code, and declining falls back to a config of model type ''. "
                   "No file an export writes avoids this; see test_tokenizer_loads_without_magic_bert_*")
def test_bare_auto_tokenizer_without_magic_bert(remote_report):
    loaded = remote_report["bare"]
    assert loaded.get("class") in ("BertTokenizer", "BertTokenizerFast")
    assert loaded["prompts"] == [] and not [m for m in loaded["messages"] if "model of type" in m]
