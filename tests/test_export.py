"""Export: Auto / trust_remote_code loading equal to the supernet, heads, scratch init, --format bert, model card,
bad input, and the end-to-end pipeline (pre-train → search → export → load)."""

import json
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer, BertForMaskedLM

from magic_bert import MagicBertForMaskedLM, MagicBertForSequenceClassification, MagicBertSupernetForMaskedLM
from magic_bert.search.command import main_export
from magic_bert.search.export import export_checkpoint

from .conftest import TOLERANCE, make_batch, max_diff
from .test_save_load import CODE_FILES, _remote_load

REPO = Path(__file__).resolve().parent.parent
ARCH = ["mha:2", "conv:5", "ffn:256", "identity"]
BERT_ARCH = ["mha:2", "ffn:256"] * 2


@pytest.fixture(scope="module")
def supernet(trained_supernet_dir):
    return MagicBertSupernetForMaskedLM.from_pretrained(trained_supernet_dir).eval()


def _logits(model, vocab_size, **kwargs):
    input_ids, mask = make_batch(vocab_size)
    with torch.no_grad():
        return model(input_ids, attention_mask=mask, **kwargs).logits, mask


def test_export_loads_with_auto_classes_and_equals_the_supernet(trained_supernet_dir, supernet, tmp_path):
    out = export_checkpoint(trained_supernet_dir, ARCH, tmp_path / "child")
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    assert type(model) is MagicBertForMaskedLM and model.config.arch == ARCH
    expected, mask = _logits(supernet, supernet.config.vocab_size, arch=ARCH)
    assert max_diff(_logits(model, supernet.config.vocab_size)[0], expected, mask) < TOLERANCE
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(
        trained_supernet_dir).get_vocab()
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == ARCH and config["auto_map"]["AutoModelForMaskedLM"].endswith("MagicBertForMaskedLM")
    assert (out / "model.safetensors").is_file() and (out / "modeling_magic_bert.py").is_file()
    assert {p.name for p in out.glob("*.py")} == CODE_FILES  # only what remote code needs: no bert_interop.py
    assert not list(tmp_path.glob(".tmp-*"))

    # A Python that cannot import magic_bert loads it with trust_remote_code, same logits.
    input_ids, mask = make_batch(supernet.config.vocab_size)
    torch.save({"input_ids": input_ids, "attention_mask": mask}, out / "inputs.pt")
    remote = _remote_load(out, "mlm", "", tmp_path)
    assert remote["module"].startswith("transformers_modules.")
    assert max_diff(remote["logits"], expected, mask) < TOLERANCE


def test_sequence_classification_head_inherits_the_encoder(trained_supernet_dir, supernet, tmp_path):
    out = export_checkpoint(trained_supernet_dir, ARCH, tmp_path / "cls", head="sequence_classification",
                            num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model) is MagicBertForSequenceClassification and model.config.num_labels == 3
    child = supernet.export(ARCH).state_dict()
    for name, tensor in model.state_dict().items():
        if name.startswith("bert.") and not name.startswith("bert.pooler"):
            assert torch.equal(tensor, child[name]), name


def test_scratch_init_is_fresh_and_seeded(trained_supernet_dir, supernet, tmp_path):
    a = AutoModelForMaskedLM.from_pretrained(export_checkpoint(trained_supernet_dir, ARCH, tmp_path / "a",
                                                               init="scratch", seed=1))
    b = AutoModelForMaskedLM.from_pretrained(export_checkpoint(trained_supernet_dir, ARCH, tmp_path / "b",
                                                               init="scratch", seed=1))
    inherited = supernet.export(ARCH).state_dict()
    key = "bert.encoder.layer.0.query.weight"
    assert a.config.arch == ARCH and torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], inherited[key])


def test_format_bert_is_a_stock_bert(trained_supernet_dir, supernet, tmp_path):
    out = export_checkpoint(trained_supernet_dir, BERT_ARCH, tmp_path / "bert", format="bert")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and "auto_map" not in config
    assert not (out / "modeling_magic_bert.py").exists()
    model = BertForMaskedLM.from_pretrained(out).eval()
    expected, mask = _logits(supernet, supernet.config.vocab_size, arch=BERT_ARCH)
    assert max_diff(_logits(model, supernet.config.vocab_size)[0], expected, mask) < TOLERANCE
    with pytest.raises(ValueError, match="BERT-shaped"):
        export_checkpoint(trained_supernet_dir, ARCH, tmp_path / "refused", format="bert")
    assert not (tmp_path / "refused").exists()


def test_model_card_parses_and_holds_the_glue_numbers(trained_supernet_dir, tmp_path):
    glue = tmp_path / "all_results.json"
    glue.write_text(json.dumps({"mrpc": {"f1": 0.871, "accuracy": 0.82}, "eval_rte_accuracy": 0.66}))
    search = tmp_path / "arch.json"
    search.write_text(json.dumps({"arch": ARCH, "strategy": "evolution", "num_evaluated": 200, "metric": "loss",
                                  "eval_loss": 4.2, "eval_accuracy": 0.3, "constraints": {"max_params": 1e5}}))
    out = export_checkpoint(trained_supernet_dir, str(search), tmp_path / "card", glue_results=glue,
                            model_name="me/magic-tiny")
    card = ModelCard.load(out / "README.md")
    results = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("mrpc", "f1"): 0.871, ("mrpc", "accuracy"): 0.82, ("rte", "accuracy"): 0.66}
    assert card.data.model_name == "me/magic-tiny"
    text = card.text
    for op in ARCH:
        assert f"`{op}`" in text
    assert "evolution search over 200 children" in text and "| RTE | MRPC | AVG |" in text
    assert "Intended use" in text and "Limitations" in text
    assert "`trust_remote_code=True`; the latter executes this folder's `.py` files" in text
    assert card.data.license == "apache-2.0" and card.data.base_model is None  # the supernet was not from the Hub


def test_card_provenance_from_the_command_line(tmp_path, trained_supernet_dir):
    out = tmp_path / "card"
    main_export(["--supernet", str(trained_supernet_dir), "--arch", " ".join(ARCH), "--output_dir", str(out),
                 "--base_model", "sentence-transformers/all-MiniLM-L6-v2", "--license", "mit",
                 "--datasets", "Salesforce/wikitext, nyu-mll/glue"])
    data = ModelCard.load(out / "README.md").data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.license == "mit"
    assert data.datasets == ["Salesforce/wikitext", "nyu-mll/glue"]


@pytest.mark.parametrize("case, message", [
    ("malformed", "not valid JSON"),
    ("other_space", "does not belong to this supernet's search space"),
    ("missing_supernet", "not a saved supernet"),
    ("non_empty", "`overwrite_output_dir`"),
    ("bad_head", "`head` 'tokens'"),
    ("glue", "holds no GLUE results"),
])
def test_export_bad_input_writes_nothing(trained_supernet_dir, tmp_path, case, message):
    out = tmp_path / "out"
    kwargs = {}
    supernet_dir, arch = trained_supernet_dir, ARCH
    if case == "malformed":
        (tmp_path / "arch.json").write_text("{oops")
        arch = str(tmp_path / "arch.json")
    elif case == "other_space":
        arch = ["mha:12", "ffn:3072"] * 2
    elif case == "missing_supernet":
        supernet_dir = tmp_path / "nowhere"
    elif case == "non_empty":
        out.mkdir()
        (out / "keep").write_text("x")
    elif case == "bad_head":
        kwargs["head"] = "tokens"
    else:
        (tmp_path / "glue.json").write_text(json.dumps({"accuracy": 0.5}))
        kwargs["glue_results"] = tmp_path / "glue.json"
    with pytest.raises(ValueError, match=message):
        export_checkpoint(supernet_dir, arch, out, **kwargs)
    assert not out.exists() or [p.name for p in out.iterdir()] == ["keep"]
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow
def test_pretrain_search_export_load_end_to_end(tmp_path, word_tokenizer_dir):
    """The README pipeline at tiny size through the three command lines."""
    import subprocess

    def run(script, *args):
        done = subprocess.run([sys.executable, str(REPO / "recipes" / script), *map(str, args)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    run("pretrain.py", "--output_dir", tmp_path / "supernet", "--sampler", "magic-at", "--max_train_steps", 20,
        "--synthetic_documents", 200, "--max_seq_length", 64, "--anchor_eval_steps", 10,
        "--tokenizer_name", word_tokenizer_dir)
    printed = run("search.py", "--supernet", tmp_path / "supernet", "--output_dir", tmp_path / "search",
                  "--max_params", 150e3, "--population_size", 4, "--generations", 2, "--num_eval_batches", 1,
                  "--max_seq_length", 64)
    assert "best arch" in printed
    run("export.py", "--supernet", tmp_path / "supernet", "--arch", tmp_path / "search" / "arch.json",
        "--output_dir", tmp_path / "model")
    arch = json.loads((tmp_path / "search" / "arch.json").read_text())["arch"]
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "model").eval()
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(tmp_path / "supernet").eval()
    assert model.config.arch == arch
    expected, mask = _logits(supernet, supernet.config.vocab_size, arch=arch)
    assert max_diff(_logits(model, supernet.config.vocab_size)[0], expected, mask) < TOLERANCE
    assert "evolution search over 8 children" in ModelCard.load(tmp_path / "model" / "README.md").text


def test_push_to_hub_uploads_the_export(tmp_path, monkeypatch):
    """The Hub is unreachable here: check what would be sent (repo created, the folder uploaded to it)."""
    import huggingface_hub

    import magic_bert.search.export as export

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", folder_path, repo_id))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    (tmp_path / "model").mkdir()
    export.push_to_hub(tmp_path / "model", "me/magic-tiny", hub_token="hf_x", private=True)
    assert calls == [("token", "hf_x"), ("create", "me/magic-tiny", True, True),
                     ("upload", str(tmp_path / "model"), "me/magic-tiny")]
