"""Nothing lost, nothing silent, no code run from a checkpoint: output folders are locked, never hold the run's own
inputs and are replaced only once the new result exists; checkpoints carry a verified manifest and a JSON state."""

import itertools
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import magic_bert.training.recipe as pretraining
from magic_bert.errors import InputError
from magic_bert.glue import finetuning
from magic_bert.glue.command import main as glue_main
from magic_bert.output_folder import OutputLock
from magic_bert.search.command import main_export, main_search
from magic_bert.training.checkpointing import list_checkpoints, resolve_resume_path, write_manifest
from magic_bert.training.command import main as pretrain_main

from .test_finetuning import args_for, bert_dirs, glue_dir  # noqa: F401 - fixtures
from .test_pretraining import run, small  # noqa: F401 - fixture

SEARCH = ["--strategy", "random", "--num_evaluations", "2", "--num_eval_batches", "1",
          "--per_device_eval_batch_size", "4"]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(main, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.fixture
def supernet(tmp_path, trained_supernet_dir) -> Path:
    """A copy of the trained supernet that a test may try to damage."""
    copy = tmp_path / "runs" / "supernet"
    shutil.copytree(trained_supernet_dir, copy)
    return copy


# -- checkpoints -----------------------------------------------------------------------------------------------
def _fake_checkpoint(folder: Path, step: int) -> Path:
    folder.mkdir()
    (folder / "optimizer.bin").write_bytes(bytes(range(200)))
    (folder / "checkpoint.json").write_text(json.dumps({"completed_steps": step}))
    write_manifest(folder)
    return folder


def test_latest_is_the_newest_checkpoint_whose_files_match_its_manifest(tmp_path, capsys):
    _fake_checkpoint(tmp_path / "step_4", 4)
    truncated = _fake_checkpoint(tmp_path / "step_6", 6)
    (truncated / "optimizer.bin").write_bytes(b"cut")  # written over after the manifest (another run, a full disk)
    (tmp_path / ".tmp-step_8-x1").mkdir()  # a save that died half-way
    (tmp_path / "step_9").mkdir()  # no manifest: never finished
    (tmp_path / "step_9" / "optimizer.bin").write_bytes(b"x")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_4", "step_6"]
    assert resolve_resume_path("latest", str(tmp_path)).name == "step_4"
    assert "skipping checkpoint" in capsys.readouterr().out
    with pytest.raises(InputError, match="damaged: optimizer.bin does not match its manifest"):
        resolve_resume_path(str(truncated), str(tmp_path))
    with pytest.raises(InputError, match="not a checkpoint folder"):
        resolve_resume_path(str(tmp_path / "step_9"), str(tmp_path))


class _RunsCode:
    """Unpickling this creates a file: what a crafted checkpoint could do with any code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_training_state_is_json_and_a_crafted_pickle_is_never_loaded(tmp_path, small):  # noqa: F811
    out = tmp_path / "run"
    args = [*small, "--sampler", "magic-at", "--anchor_eval_steps", 2, "--checkpointing_steps", 2]
    run(*args, "--max_train_steps", 2, "--output_dir", out)
    step = out / "step_2"
    assert not list(out.rglob("*.pkl")) or all(p.name.startswith("random_states") for p in out.rglob("*.pkl"))
    state = json.loads((step / "training_state.json").read_text())
    assert state["completed_steps"] == 2 and state["strategy"]["name"] == "magic-at"
    marker = tmp_path / "code-ran"
    (step / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_RunsCode(marker)))
    decoy = out / ".tmp-step_4"  # another tool's folder with a staging-like name
    decoy.mkdir()
    (decoy / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="custom_checkpoint_0.pkl not in its manifest"):
        run(*args, "--max_train_steps", 4, "--output_dir", out, "--resume_from_checkpoint", step)
    assert not marker.exists()
    (step / "custom_checkpoint_0.pkl").unlink()
    dead = out / ".tmp-step_3-k1ll3d_x"  # a checkpoint a killed run was staging: the resume removes it
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"half")
    resumed = run(*args, "--max_train_steps", 4, "--output_dir", out, "--resume_from_checkpoint", "latest")
    assert resumed.results["train_steps"] == 4 and (out / "step_4" / "manifest.json").is_file()
    assert (decoy / "keep.txt").read_text() == "mine" and not dead.exists()


# -- one run per folder ----------------------------------------------------------------------------------------
def test_a_second_run_into_a_locked_folder_gets_one_message(tmp_path, small, supernet, bert_dirs,  # noqa: F811
                                                            glue_dir):  # noqa: F811
    out = tmp_path / "busy"
    commands = [
        (pretrain_main, [*small, "--max_train_steps", 2, "--output_dir", out]),
        (main_search, ["--supernet", supernet, *SEARCH, "--output_dir", out]),
        (main_export, ["--supernet", supernet, "--arch", "identity identity", "--output_dir", out]),
        (glue_main, ["--model_name_or_path", bert_dirs[1], "--task_name", "rte", "--data_dir", glue_dir,
                     "--output_dir", out]),
    ]
    with OutputLock(out):
        for main, argv in commands:
            assert "is in use by another run" in one_line_error(main, argv)
            assert not out.exists()
    pretrain_main([str(a) for a in commands[0][1]])  # released: the run goes through
    assert (out / "all_results.json").is_file()


# -- nothing lost ----------------------------------------------------------------------------------------------
def _nan_from_step(step: int, monkeypatch) -> None:
    real = pretraining.build_loss_terms

    def build(*args, **kwargs):
        loss, calls = real(*args, **kwargs), itertools.count(1)

        class NaNLoss:
            def __getattr__(self, name):
                return getattr(loss, name)

            def forward(self, *args, **kwargs):  # the recipe's seam: one micro-batch's forward and loss
                values = loss.forward(*args, **kwargs)
                return {**values, "loss": values["loss"] * float("nan")} if next(calls) >= step else values

        return NaNLoss()

    monkeypatch.setattr(pretraining, "build_loss_terms", build)


def test_a_non_finite_loss_stops_the_run_and_the_old_folder_survives(tmp_path, small, monkeypatch):  # noqa: F811
    out = tmp_path / "run"
    run(*small, "--max_train_steps", 2, "--output_dir", out)
    (out / "README.md").write_text("a stale card")
    before = files(out)
    _nan_from_step(2, monkeypatch)
    with pytest.raises(pretraining.NonFiniteLossError, match="not finite at step 2"):
        run(*small, "--max_train_steps", 3, "--output_dir", out, "--overwrite_output_dir")
    # Stopped before a checkpoint: what it wrote is gone and the old folder is back in place, nothing left aside.
    assert files(out) == before and list(tmp_path.glob(".old-run-*")) == []
    monkeypatch.undo()
    run(*small, "--max_train_steps", 2, "--output_dir", out, "--overwrite_output_dir")  # the lock was released
    assert (out / "all_results.json").is_file() and not (out / "README.md").exists()  # a fresh folder
    assert list(tmp_path.glob(".old-run-*")) == []


def test_overwrite_never_replaces_a_folder_holding_an_input(tmp_path, supernet, bert_dirs, small):  # noqa: F811
    kept = files(supernet.parent)
    message = one_line_error(main_search, ["--supernet", supernet, *SEARCH, "--output_dir", supernet,
                                           "--overwrite_output_dir"])
    assert "holds --supernet" in message
    message = one_line_error(main_export, ["--supernet", supernet, "--arch", "identity identity", "--output_dir",
                                           supernet.parent, "--overwrite_output_dir"])
    assert "holds --supernet" in message
    assert files(supernet.parent) == kept
    text = tmp_path / "corpus" / "train.txt"
    text.parent.mkdir()
    text.write_text("some words here\n" * 50)
    with pytest.raises(InputError, match="holds `train_file`"):
        run(*small, "--train_file", text, "--validation_file", text, "--output_dir", text.parent,
            "--overwrite_output_dir")
    model = tmp_path / "model"
    shutil.copytree(bert_dirs[1], model)
    with pytest.raises(InputError, match="holds `model_name_or_path`"):
        finetuning.finetune_glue(args_for(model, model, overwrite_output_dir=True))
    assert text.is_file() and (model / "model.safetensors").is_file()


def test_fine_tuning_adds_results_to_its_own_model_folder_only_with_update_model_card(tmp_path, bert_dirs,  # noqa: F811
                                                                                     glue_dir):  # noqa: F811
    model = tmp_path / "model"
    shutil.copytree(bert_dirs[1], model)
    weights = (model / "model.safetensors").read_bytes()
    finetuning.finetune_glue(args_for(model, model, overwrite_output_dir=True, update_model_card=True,
                                      task_name="rte", data_dir=str(glue_dir), num_train_epochs=1))
    assert (model / "model.safetensors").read_bytes() == weights
    assert "model-index" in (model / "README.md").read_text() and (model / "rte" / "best_model").is_dir()


def test_fine_tuning_keeps_old_results_until_the_new_run_succeeds(tmp_path, bert_dirs, glue_dir,  # noqa: F811
                                                                  monkeypatch):
    out = tmp_path / "results"
    out.mkdir()
    (out / "all_results.json").write_text("{}")
    with pytest.raises(InputError, match="learning_rate"):
        finetuning.finetune_glue(args_for(bert_dirs[1], out, overwrite_output_dir=True, learning_rate=-1.0,
                                          task_name="rte", data_dir=str(glue_dir)))
    assert files(out) == {"all_results.json": b"{}"}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetuning, "train_one", crash)
    with pytest.raises(KeyboardInterrupt):
        finetuning.finetune_glue(args_for(bert_dirs[1], out, overwrite_output_dir=True, task_name="rte",
                                          data_dir=str(glue_dir)))
    (aside,) = tmp_path.glob(".old-results-*/results")
    assert files(aside) == {"all_results.json": b"{}"}


def test_staging_folders_of_others_are_left_alone(tmp_path, supernet):
    decoy = tmp_path / ".tmp-found"
    decoy.mkdir()
    (decoy / "keep.txt").write_text("mine")
    main_search([str(a) for a in ["--supernet", supernet, *SEARCH, "--output_dir", tmp_path / "found"]])
    assert (tmp_path / "found" / "arch.json").is_file() and (decoy / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["pretrain", "search", "glue"])
def test_an_output_dir_under_a_regular_file_is_one_message(command, tmp_path, small, supernet,  # noqa: F811
                                                         bert_dirs, glue_dir):  # noqa: F811
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    out = blocker / "out"
    main, argv = {
        "pretrain": (pretrain_main, [*small, "--max_train_steps", 2]),
        "search": (main_search, ["--supernet", supernet, *SEARCH]),
        "glue": (glue_main, ["--model_name_or_path", bert_dirs[1], "--task_name", "rte", "--data_dir", glue_dir]),
    }[command]
    assert "which is a file, not a folder" in one_line_error(main, [*argv, "--output_dir", out])
    assert blocker.read_text() == "x"


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_folder(tmp_path, small):  # noqa: F811
    """One finishes with its own log and model; the other stops with one line (in use, or no longer empty)."""
    out = tmp_path / "shared"
    argv = [sys.executable, "-m", "magic_bert.training.command", *map(str, small), "--max_train_steps", "3",
            "--checkpointing_steps", "1", "--output_dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    runs = [subprocess.Popen([*argv, "--seed", str(seed)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for seed in (1, 2)]
    outcomes = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in outcomes) == [0, 1]
    (winner,) = [seed for seed, (code, _) in zip((1, 2), outcomes, strict=True) if code == 0]
    (error,) = [err.strip().splitlines()[-1] for code, err in outcomes if code == 1]
    assert "is in use by another run" in error or "exists and is not empty" in error
    assert json.loads((out / "step_3" / "checkpoint.json").read_text())["settings"]["seed"] == winner
    assert resolve_resume_path("latest", str(out)).name == "step_3"
    assert [r["step"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())] == [1, 2, 3]


def test_atomic_files_get_the_mode_open_would_give(tmp_path):
    from magic_bert.io_utils import write_text_atomic

    umask = os.umask(0o022)
    try:
        written = write_text_atomic(tmp_path / "a.json", "{}")
        (tmp_path / "b.json").write_text("{}")
    finally:
        os.umask(umask)
    assert written.stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644
