"""Save/load round trips through the Auto classes, and the trust_remote_code load where magic_bert is absent."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from magic_bert import (
    MagicBertConfig,
    MagicBertForMaskedLM,
    MagicBertForSequenceClassification,
    MagicBertModel,
    MagicBertSupernetForMaskedLM,
)

from .conftest import BLOCK_MAGIC_BERT, TOLERANCE, max_diff

ARCH = ["mha:2", "ffn:256", "conv:3", "identity"]
CODE_FILES = {"configuration_magic_bert.py", "modeling_magic_bert.py", "op_specs.py", "search_space.py"}


@pytest.fixture
def saved_mlm(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = MagicBertForMaskedLM(tiny_config.with_arch(ARCH)).eval()
    model.save_pretrained(tmp_path / "mlm")
    return model, tmp_path / "mlm"


def test_checkpoint_files_and_auto_map(saved_mlm):
    _, path = saved_mlm
    files = set(os.listdir(path))
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    assert files >= CODE_FILES
    assert {f for f in files if f.endswith(".py")} == CODE_FILES  # only what remote code needs: no bert_interop.py
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "magic_bert" and config["arch"] == ARCH
    assert config["auto_map"] == {
        "AutoConfig": "configuration_magic_bert.MagicBertConfig",
        "AutoModel": "modeling_magic_bert.MagicBertModel",
        "AutoModelForMaskedLM": "modeling_magic_bert.MagicBertForMaskedLM",
        "AutoModelForSequenceClassification": "modeling_magic_bert.MagicBertForSequenceClassification",
    }


def test_auto_classes_round_trip(saved_mlm, batch):
    model, path = saved_mlm
    input_ids, attention_mask = batch
    assert isinstance(AutoConfig.from_pretrained(path), MagicBertConfig)
    loaded = AutoModelForMaskedLM.from_pretrained(path)
    assert type(loaded) is MagicBertForMaskedLM
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        assert max_diff(model(input_ids, attention_mask=attention_mask).logits,
                        loaded(input_ids, attention_mask=attention_mask).logits) <= TOLERANCE
        base = AutoModel.from_pretrained(path)
        assert type(base) is MagicBertModel
        assert max_diff(model.bert(input_ids, attention_mask=attention_mask).last_hidden_state,
                        base(input_ids, attention_mask=attention_mask).last_hidden_state) <= TOLERANCE
    classifier = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    assert type(classifier) is MagicBertForSequenceClassification and classifier.config.num_labels == 3
    assert torch.equal(classifier.bert.encoder.layer[0].query.weight, model.bert.encoder.layer[0].query.weight)


def test_classifier_round_trip(tiny_config, batch, tmp_path):
    config = tiny_config.with_arch(ARCH)
    config.num_labels = 1
    model = MagicBertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    input_ids, attention_mask = batch
    with torch.no_grad():
        assert max_diff(model(input_ids, attention_mask=attention_mask).logits,
                        loaded(input_ids, attention_mask=attention_mask).logits) <= TOLERANCE


def test_supernet_round_trip(tiny_config, batch, tmp_path):
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(tiny_config).eval()
    supernet.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["arch"] is None
    assert saved["auto_map"]["AutoModelForMaskedLM"] == "modeling_magic_bert.MagicBertSupernetForMaskedLM"
    loaded = MagicBertSupernetForMaskedLM.from_pretrained(tmp_path)
    input_ids, attention_mask = batch
    with torch.no_grad():
        for arch in (ARCH, ["conv:5", "mha:1", "ffn:128", "conv:7"]):
            assert max_diff(supernet(input_ids, attention_mask=attention_mask, arch=arch).logits,
                            loaded(input_ids, attention_mask=attention_mask, arch=arch).logits) <= TOLERANCE
    # The in-memory config of the supernet still exports children that point at the fixed class.
    assert supernet.export(ARCH).config.auto_map["AutoModelForMaskedLM"] == "modeling_magic_bert.MagicBertForMaskedLM"
    # A supernet folder has its own model_type, so the Auto classes return a supernet.
    assert saved["model_type"] == "magic_bert_supernet"
    auto = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(auto) is MagicBertSupernetForMaskedLM
    with torch.no_grad():
        assert max_diff(supernet(input_ids, attention_mask=attention_mask, arch=ARCH).logits,
                        auto(input_ids, attention_mask=attention_mask, arch=ARCH).logits) <= TOLERANCE


def test_a_supernet_folder_of_the_first_version_still_loads_or_explains(tiny_config, tmp_path):
    """Folders written before supernets had their own model_type: the supernet class loads them, the Auto classes
    say how to convert them, and a re-save converts them."""
    supernet = MagicBertSupernetForMaskedLM(tiny_config).eval()
    supernet.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "magic_bert"
    config["auto_map"]["AutoConfig"] = "configuration_magic_bert.MagicBertConfig"
    (tmp_path / "config.json").write_text(json.dumps(config))
    old = MagicBertSupernetForMaskedLM.from_pretrained(tmp_path)
    assert old.config.model_type == "magic_bert_supernet"
    with pytest.raises(ValueError, match=r"describes a supernet.*MagicBertSupernetForMaskedLM.from_pretrained\(path\); "
                                         "save_pretrained it again"):
        AutoModelForMaskedLM.from_pretrained(tmp_path)
    old.save_pretrained(tmp_path / "converted")
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "converted")) is MagicBertSupernetForMaskedLM


REMOTE_SCRIPT = BLOCK_MAGIC_BERT + textwrap.dedent(
    """
    import sys

    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

    folder, kind, arch = sys.argv[1], sys.argv[2], sys.argv[3]
    inputs = torch.load(folder + "/inputs.pt")
    auto = AutoModelForSequenceClassification if kind == "cls" else AutoModelForMaskedLM
    model = auto.from_pretrained(folder, trust_remote_code=True).eval()
    assert "magic_bert" not in sys.modules
    kwargs = {"arch": arch.split(",")} if arch else {}
    with torch.no_grad():
        logits = model(**inputs, **kwargs).logits
    # BERT conversion belongs to the package, not to the copied code.
    from_bert_error = None if hasattr(type(model), "from_bert") else "no from_bert in remote code"
    torch.save({"logits": logits, "class": type(model).__name__, "module": type(model).__module__,
                "from_bert_error": from_bert_error}, folder + "/remote.pt")
    """
)


def _remote_load(folder, kind, arch, tmp_path):
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
    script = tmp_path / "remote_load.py"
    script.write_text(REMOTE_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(folder), kind, arch], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(folder / "remote.pt")


@pytest.mark.parametrize("kind", ["mlm", "cls", "supernet"])
def test_trust_remote_code_without_magic_bert(kind, tiny_config, batch, tmp_path):
    torch.manual_seed(0)
    if kind == "supernet":
        model, arch = MagicBertSupernetForMaskedLM(tiny_config), ",".join(ARCH)
    elif kind == "cls":
        config = tiny_config.with_arch(ARCH)
        config.num_labels = 3
        model, arch = MagicBertForSequenceClassification(config), ""
    else:
        model, arch = MagicBertForMaskedLM(tiny_config.with_arch(ARCH)), ""
    model.eval()
    folder = tmp_path / kind
    model.save_pretrained(folder)
    assert {f.name for f in folder.glob("*.py")} == CODE_FILES  # no bert_interop.py
    input_ids, attention_mask = batch
    torch.save({"input_ids": input_ids, "attention_mask": attention_mask}, folder / "inputs.pt")
    result = _remote_load(folder, kind, arch, tmp_path)
    assert result["class"] == type(model).__name__
    assert result["module"].startswith("transformers_modules.")  # the copied code, not the package
    assert result["from_bert_error"] == "no from_bert in remote code"
    with torch.no_grad():
        kwargs = {"arch": ARCH} if kind == "supernet" else {}
        expected = model(input_ids, attention_mask=attention_mask, **kwargs).logits
    assert max_diff(expected, result["logits"]) <= TOLERANCE


def test_core_files_import_only_each_other():
    """The files copied as remote code import nothing of the package beyond themselves (and never bert_interop)."""
    from pathlib import Path

    from transformers.dynamic_module_utils import get_relative_imports

    import magic_bert

    package = Path(magic_bert.__file__).parent
    for name in CODE_FILES:
        imported = {module + ".py" for module in get_relative_imports(package / name)}
        assert imported <= CODE_FILES, (name, imported)
