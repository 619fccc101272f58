"""Packaging: the wheel builds offline, ships the model-card template and the `evaluate` metric module, an export
runs from the installed wheel and the GLUE metric loads from it (evaluate's copy in a temporary HF_HOME).

The wheel is built from a copy of the repository (pip builds in-tree, and a stale ``build/`` there could leak removed
files into the wheel); it is installed into a fresh venv whose own site-packages come first and which sees the running
interpreter's packages (torch, transformers, ...) through a ``.pth`` file listing that interpreter's site-packages.
Not ``--system-site-packages``: a venv made from a venv's Python sees the *base* interpreter's packages, not the outer
venv's, so that only worked where torch was installed system-wide. Folders named in a ``.pth`` file are added to
``sys.path`` but their own ``.pth`` files are not run, so the outer editable install of this checkout stays invisible.
The export runs with ``python -I`` from a folder outside the repository, so neither the checkout nor the editable
install of another checkout can be what is imported.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = "magic_bert/search/templates/model_card.md"
METRIC_SCRIPT = "magic_bert/glue/evaluate_metrics/glue/glue.py"
ARCH = ["mha:2", "conv:5", "ffn:256", "identity"]

EXPORT_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForMaskedLM, BertTokenizer

    import magic_bert
    from magic_bert import MagicBertConfig, MagicBertSupernetForMaskedLM
    from magic_bert.glue.metrics import load_glue_metric
    from magic_bert.search.export import export_checkpoint
    from magic_bert.synthetic_corpus import vocabulary

    root, arch = Path.cwd(), sys.argv[1].split(",")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *sorted(vocabulary())]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})
    torch.manual_seed(0)
    supernet = MagicBertSupernetForMaskedLM(MagicBertConfig.from_preset("tiny", vocab_size=len(tokens))).eval()
    supernet.save_pretrained(root / "supernet")
    tokenizer.save_pretrained(root / "supernet")

    out = export_checkpoint(root / "supernet", arch, root / "child", model_name="me/tiny-child")
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    inputs = tokenizer(["the dog sees a cat .", "a cat ."], padding=True, return_tensors="pt")
    mask = inputs["attention_mask"].bool()
    with torch.no_grad():
        expected = supernet(**inputs, arch=arch).logits[mask]
        diff = (model(**inputs).logits[mask] - expected).abs().max().item()
    card = ModelCard.load(out / "README.md")
    metric = load_glue_metric("mrpc")
    metric.add_batch(predictions=[1, 0, 1], references=[1, 1, 1])
    print(json.dumps({"metric": metric.compute(), "metric_module": sys.modules[type(metric).__module__].__file__,
                      "package": magic_bert.__file__, "model_module": sys.modules[type(model).__module__].__file__,
                      "arch": model.config.arch, "max_diff": diff, "card_text": card.text,
                      "card_model_name": card.data.model_name, "files": sorted(p.name for p in out.iterdir())}))
    """
)


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _see_running_interpreter_packages(python: Path) -> None:
    """Append this interpreter's site-packages (system, venv or conda alike) to the venv's ``sys.path``."""
    own = _run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    outer = [folder for folder in site.getsitepackages() if Path(folder).is_dir()]
    (Path(own) / "_outer_site_packages.pth").write_text("".join(f"{folder}\n" for folder in outer))


@pytest.mark.slow
def test_wheel_ships_the_template_and_exports_from_a_venv(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache", "outputs",
        "runs"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp_path / "dist"), str(source)])
    [wheel] = (tmp_path / "dist").glob("magic_bert-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert TEMPLATE in names and METRIC_SCRIPT in names and "magic_bert/bert_interop.py" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _see_running_interpreter_packages(python)
    # The venv sees the outer pip too; --force-reinstall so a same-version install elsewhere never counts as done.
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "-q", str(wheel)])

    work = tmp_path / "work"
    work.mkdir()
    (work / "export_from_wheel.py").write_text(EXPORT_SCRIPT)
    # Not the suite's own module caches (conftest): the venv's HF_HOME below holds evaluate's copy.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "HF_MODULES_CACHE", "HF_METRICS_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_HOME=str(tmp_path / "hf_home"))
    done = _run([str(python), "-I", "export_from_wheel.py", ",".join(ARCH)], cwd=work, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])

    site_packages = venv.resolve()
    assert Path(result["package"]).resolve().is_relative_to(site_packages), result["package"]
    assert Path(result["model_module"]).resolve().is_relative_to(site_packages), result["model_module"]
    assert result["arch"] == ARCH and result["max_diff"] < 1e-5
    assert "README.md" in result["files"] and "bert_interop.py" not in result["files"]
    text = result["card_text"]
    assert result["card_model_name"] == "me/tiny-child" and "{{" not in text and "}}" not in text
    assert all(f"`{op}`" in text for op in ARCH) and "Intended use" in text
    # The metric ran from evaluate's copy of the installed script, which imported the installed package.
    assert result["metric"] == {"f1": 0.8, "accuracy": 2 / 3}
    module = Path(result["metric_module"]).resolve()
    assert module.is_relative_to((tmp_path / "hf_home" / "modules").resolve()) and module.name == "glue.py", module
    assert module.read_text() == zipfile.ZipFile(wheel).read(METRIC_SCRIPT).decode()
    source = Path(json.loads(module.with_suffix(".json").read_text())["original file path"]).resolve()
    assert source.is_relative_to(site_packages), source  # loaded by path from the installed package
