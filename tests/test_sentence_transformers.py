"""sentence-transformers students: `--format sentence-transformers` and `save_sentence_transformer` write a folder that
`SentenceTransformer(path)` loads, whose embeddings are the package's own mean pooling of the child's encoder."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel, AutoTokenizer

from magic_bert import MagicBertForSequenceClassification, MagicBertSupernetForMaskedLM, save_sentence_transformer
from magic_bert.distillation import mean_pool
from magic_bert.errors import InputError
from magic_bert.search.command import main_export
from magic_bert.search.export import export_checkpoint
from magic_bert.synthetic_corpus import vocabulary

from .conftest import BLOCK_MAGIC_BERT

SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer  # the [sentence] extra

BERT_ARCH = ["mha:2", "ffn:256"] * 2
ARCH = ["mha:2", "conv:5", "ffn:256", "identity"]
WORDS = sorted(vocabulary())
SENTENCES = [" ".join(WORDS[:9]) + ".", " ".join(WORDS[20:23]), WORDS[40]]  # three lengths: padded batches
TOLERANCE = 1e-5
REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys

    import torch
    from sentence_transformers import SentenceTransformer

    folder, sentences = sys.argv[1], json.loads(sys.argv[2])
    model = SentenceTransformer(folder, device="cpu", trust_remote_code=True)
    assert "magic_bert" not in sys.modules
    torch.save({"embeddings": model.encode(sentences, convert_to_tensor=True),
                "module": type(model[0].model).__module__}, folder + "/remote.pt")
    """
)


@pytest.fixture(scope="module")
def tiny_config_module():
    from magic_bert import MagicBertConfig

    return MagicBertConfig.from_preset("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory, word_tokenizer_dir, tiny_config_module):
    """A random tiny supernet saved with the word tokenizer (no training: only equality is tested)."""
    folder = tmp_path_factory.mktemp("sentence") / "supernet"
    torch.manual_seed(0)
    MagicBertSupernetForMaskedLM(tiny_config_module).save_pretrained(folder)
    AutoTokenizer.from_pretrained(word_tokenizer_dir).save_pretrained(folder)
    return folder


def mean_pooled(encoder, tokenizer) -> torch.Tensor:
    """The package's mean pooling of ``encoder``'s last hidden state on :data:`SENTENCES`."""
    batch = tokenizer(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return mean_pool(encoder.eval()(**batch).last_hidden_state, batch["attention_mask"])


def encoded(folder, **kwargs) -> torch.Tensor:
    return SentenceTransformer(str(folder), device="cpu", **kwargs).encode(SENTENCES, convert_to_tensor=True)


def child_embeddings(supernet_dir, arch) -> torch.Tensor:
    supernet = MagicBertSupernetForMaskedLM.from_pretrained(supernet_dir)
    return mean_pooled(supernet.export(arch).bert, AutoTokenizer.from_pretrained(supernet_dir))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_bert_shaped_child_is_a_plain_bert_sentence_transformer(supernet_dir, tmp_path):
    out = tmp_path / "student"
    main_export(["--supernet", str(supernet_dir), "--arch", " ".join(BERT_ARCH), "--output_dir", str(out),
                 "--format", "sentence-transformers"])
    modules = json.loads((out / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Pooling"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "mean"
    assert (out / "sentence_bert_config.json").is_file() and (out / "tokenizer_config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and "auto_map" not in config and not list(out.glob("*.py"))
    assert not list(tmp_path.glob(".tmp-*"))

    expected = child_embeddings(supernet_dir, BERT_ARCH)
    assert max_diff(encoded(out), expected) <= TOLERANCE
    assert max_diff(mean_pooled(AutoModel.from_pretrained(out), AutoTokenizer.from_pretrained(out)),
                    expected) <= TOLERANCE

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "sentence-similarity"
    assert "SentenceTransformer(" in card.text and "import magic_bert" not in card.text
    assert "A stock transformers BERT checkpoint: no custom code." in card.text


def test_other_archs_load_with_magic_bert_or_remote_code(supernet_dir, tmp_path):
    out = export_checkpoint(supernet_dir, ARCH, tmp_path / "student", format="sentence-transformers")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "magic_bert" and config["arch"] == ARCH
    assert (out / "modeling_magic_bert.py").is_file()
    expected = child_embeddings(supernet_dir, ARCH)
    assert max_diff(encoded(out), expected) <= TOLERANCE  # magic_bert is imported here
    assert "import magic_bert" in ModelCard.load(out / "README.md").text

    # A Python that cannot import magic_bert loads it with trust_remote_code=True: the folder's own code.
    script = tmp_path / "remote.py"
    script.write_text(BLOCK_MAGIC_BERT + REMOTE_SCRIPT)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, str(script), str(out), json.dumps(SENTENCES)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = torch.load(out / "remote.pt")
    assert remote["module"].startswith("transformers_modules.")
    assert max_diff(remote["embeddings"], expected) <= TOLERANCE


def test_save_sentence_transformer_keeps_the_encoder_of_any_head(tiny_config_module, word_tokenizer_dir, tmp_path):
    torch.manual_seed(0)
    model = MagicBertForSequenceClassification(tiny_config_module.with_arch(BERT_ARCH))
    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer_dir)
    out = save_sentence_transformer(model, tokenizer, tmp_path / "student")
    assert max_diff(encoded(out), mean_pooled(model.bert, tokenizer)) <= TOLERANCE
    assert model.training  # the model given is left as it was
    with pytest.raises(InputError, match="supernet"):
        save_sentence_transformer(MagicBertSupernetForMaskedLM(tiny_config_module), tokenizer, tmp_path / "no")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("argv, message", [
    (["--format", "onnx"], "argument --format: invalid choice: 'onnx'"),
    (["--format", "sentence-transformers", "--head", "sequence_classification"], "leave --head at masked_lm"),
])
def test_bad_format_is_refused_before_writing(supernet_dir, tmp_path, capsys, argv, message):
    out = tmp_path / "student"
    with pytest.raises(SystemExit) as exit_info:
        main_export(["--supernet", str(supernet_dir), "--arch", " ".join(BERT_ARCH), "--output_dir", str(out), *argv])
    assert message in f"{exit_info.value.code} {capsys.readouterr().err}"  # the parser's line, or the command's
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="`format` 'onnx' is not allowed"):
        export_checkpoint(supernet_dir, BERT_ARCH, out, format="onnx")


def test_without_sentence_transformers_the_format_names_the_extra(supernet_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers.sentence_transformer.modules", None)  # as if absent
    out = tmp_path / "student"
    with pytest.raises(SystemExit) as exit_info:
        main_export(["--supernet", str(supernet_dir), "--arch", " ".join(BERT_ARCH), "--output_dir", str(out),
                     "--format", "sentence-transformers"])
    assert exit_info.value.code == ("error: --format sentence-transformers needs sentence-transformers>=6, which is "
                                    "not installed: pip install magic_bert[sentence]")
    assert not out.exists() and not list(tmp_path.iterdir())
