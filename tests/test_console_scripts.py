"""The installed ``magic-bert-*`` commands exit 0 on success (each ``[project.scripts]`` target is a
``cli.console_script`` wrapper: pip's script runs ``sys.exit(target())``, and a result object there would be printed
and exit 1), while ``main(argv)`` keeps returning its result to Python callers.

The commands run as subprocesses exactly as pip's console script runs them (its two lines, from pyproject.toml), so
what is tested is what ``pip install`` will install, whether or not this checkout's own install predates a change of
target; ``test_installed_scripts_match_pyproject`` says when the venv's scripts are stale.
"""

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from magic_bert.cli import console_script

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
ARCH = ["mha:1", "ffn:128", "identity", "ffn:128"]  # in the tiny space (the conftest supernet)


def _target(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run_installed(script: str, *args, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``script`` as its installed console script runs it: import the pyproject target, ``sys.exit(target())``."""
    module, _, name = SCRIPTS[script].partition(":")
    code = f"import sys\nfrom {module} import {name}\nsys.exit({name}())\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _succeeded(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    # A result object handed to sys.exit is printed to stderr as its repr: none is.
    assert not re.search(r"^(PosixPath|SearchResult|PretrainResult|\{')", done.stderr, re.MULTILINE), done.stderr


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_script_target_wraps_its_main_and_returns_none(script):
    target = _target(SCRIPTS[script])
    assert callable(target)
    # Built by cli.console_script around the module's main, which still returns its result to Python callers.
    assert target.__code__ is console_script(print).__code__
    main = target.__wrapped__
    module = importlib.import_module(SCRIPTS[script].partition(":")[0])
    assert any(main is value for name, value in vars(module).items() if name.startswith("main")), script


def test_the_wrapper_drops_the_result_so_the_script_exits_0():
    calls = []
    wrapped = console_script(lambda argv: calls.append(argv) or Path("a/result"))
    assert wrapped(["--anything"]) is None and calls == [["--anything"]]
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(wrapped())  # what pip's console script does
    assert exit_info.value.code is None and calls[-1] is None


def test_the_wrapper_keeps_input_errors_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _target(SCRIPTS["magic-bert-search"])(["--output_dir", "o"])
    assert exit_info.value.code == "error: --supernet is required."


def test_installed_scripts_match_pyproject():
    """The venv's scripts (when this checkout is installed) call the pyproject targets; an install made before the
    targets changed must be redone (``pip install -e .``) for the commands on the PATH to exit 0."""
    folder = Path(sys.executable).parent
    installed = {script: folder / script for script in SCRIPTS if (folder / script).is_file()}
    if not installed:
        pytest.skip(f"no magic-bert-* script in {folder}")
    stale = {}
    for script, path in installed.items():
        module, _, name = SCRIPTS[script].partition(":")
        if f"from {module} import {name}" not in path.read_text(errors="replace"):
            stale[script] = SCRIPTS[script]
    assert not stale, f"the installed scripts predate pyproject.toml's targets {stale}: run `pip install -e .`"


def test_installed_export_exits_0(trained_supernet_dir, tmp_path):
    (tmp_path / "arch.json").write_text(json.dumps({"arch": ARCH}))
    done = run_installed("magic-bert-export", "--supernet", trained_supernet_dir, "--arch", tmp_path / "arch.json",
                         "--output_dir", tmp_path / "model", cwd=tmp_path)
    _succeeded(done)
    assert "exported to" in done.stdout
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["arch"] == ARCH


@pytest.mark.slow
def test_installed_pretrain_search_export_exit_0(tmp_path, word_tokenizer_dir):
    """The three installed commands in the README's order, on a tiny job."""
    _succeeded(run_installed(
        "magic-bert-pretrain", "--sampler", "magic-at", "--output_dir", "supernet", "--max_train_steps", 2,
        "--anchor_eval_steps", 1, "--synthetic_documents", 200, "--max_seq_length", 64,
        "--per_device_train_batch_size", 4, "--tokenizer_name", word_tokenizer_dir, cwd=tmp_path))
    assert (tmp_path / "supernet" / "all_results.json").is_file()
    _succeeded(run_installed("magic-bert-search", "--supernet", "supernet", "--max_params", 150e3, "--output_dir",
                             "search", "--population_size", 2, "--generations", 1, "--num_eval_batches", 1,
                             cwd=tmp_path))
    assert (tmp_path / "search" / "arch.json").is_file()
    _succeeded(run_installed("magic-bert-export", "--supernet", "supernet", "--arch", "search/arch.json",
                             "--output_dir", "model", cwd=tmp_path))
    assert (tmp_path / "model" / "config.json").is_file()
