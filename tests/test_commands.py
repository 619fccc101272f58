"""One convention for every command: installed entry points, --help, --config, one-line input errors naming flags."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from magic_bert.cli import parse_args, run
from magic_bert.errors import InputError, invalid_value, load_user_file
from magic_bert.search.arguments import SearchArguments

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def _target(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def test_every_stage_has_an_installed_command():
    assert set(SCRIPTS) == {"magic-bert-pretrain", "magic-bert-search", "magic-bert-export", "magic-bert-glue",
                            "magic-bert-interference", "magic-bert-rank-correlation"}
    for spec in SCRIPTS.values():
        assert callable(_target(spec)), spec


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_command_has_help(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _target(SCRIPTS[script])(["--help"])
    assert exit_info.value.code == 0
    assert "--config" in capsys.readouterr().out


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("magic-bert-pretrain", ["--max_seq_length", "4"], "error: --output_dir is required."),
    ("magic-bert-search", ["--output_dir", "o"], "error: --supernet is required."),
    ("magic-bert-export", ["--supernet", "s", "--arch", "a", "--output_dir", "o", "--push_to_hub"],
     "error: --push_to_hub needs --hub_model_id."),
    ("magic-bert-interference", ["--supernet", "s", "--output_dir", "o", "--num_batches", "0"],
     "error: --num_batches must be at least 1, got 0."),
    ("magic-bert-rank-correlation", ["--supernet", "s", "--output_dir", "o", "--train_file", "t.txt"],
     "error: --train_file needs --validation_file"),
])
def test_bad_input_is_one_line_naming_the_flag(script, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _target(SCRIPTS[script])(argv)
    assert str(exit_info.value.code).startswith(message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_flag_parse_error_is_one_line_without_the_usage(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _target(SCRIPTS[script])(["--no_such_flag", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "usage:" in err and "--config" not in err
    assert "error: unrecognized arguments: --no_such_flag 1 (usage: " in err


def test_config_file_for_any_command(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text("supernet: my-supernet\npopulation_size: 4\nmetric: accuracy\n")
    (args,) = parse_args(SearchArguments, argv=["--config", str(config), "--population_size", "6"])
    assert (args.supernet, args.population_size, args.metric) == ("my-supernet", 6, "accuracy")
    config.write_text("population: 4\n")
    with pytest.raises(SystemExit):
        parse_args(SearchArguments, argv=["--config", str(config)])


def test_input_errors_name_parameters_and_flags():
    error = InputError("`max_params` 10 is below `min_params` 20")
    assert str(error) == "`max_params` 10 is below `min_params` 20"
    assert error.as_flags() == "--max_params 10 is below --min_params 20"
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: (_ for _ in ()).throw(error))
    assert exit_info.value.code == "error: --max_params 10 is below --min_params 20"


def test_only_input_errors_are_shortened():
    def bug():
        raise ValueError("a bug, not bad input")

    with pytest.raises(ValueError, match="a bug") as info:
        run(bug)
    assert not isinstance(info.value, InputError)


def test_load_user_file_names_the_file_for_known_failures_only(tmp_path):
    import json

    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(InputError, match=r"^`arch_file` '.*bad\.json': Expecting property name"):
        load_user_file(f"`arch_file` {str(bad)!r}", lambda: json.loads(bad.read_text()))
    with pytest.raises(InputError, match="No such file"):
        load_user_file("`weights`", lambda: (tmp_path / "missing.safetensors").read_bytes())
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(InputError, match="codec can't decode"):
        load_user_file("`train_file`", lambda: binary.read_text(encoding="utf-8"))
    from safetensors.torch import load_file

    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="`weights`"):
        load_user_file("`weights`", lambda: load_file(tmp_path / "broken.safetensors"))
    with pytest.raises(KeyError):  # not a known load failure: a bug keeps its type and traceback
        load_user_file("`x`", lambda: {}["missing"])
    with pytest.raises(InputError, match=r"^`arch`: bad op"), invalid_value("`arch`"):
        raise ValueError("bad op")


def test_no_command_turns_every_value_error_into_a_message():
    """No ``except ValueError`` around a whole run: commands catch only InputError (in ``cli.run``)."""
    sources = [*REPO.glob("recipes/*.py"), *REPO.glob("bench/*.py"), *REPO.glob("magic_bert/**/command.py")]
    offenders = [str(p.relative_to(REPO)) for p in sources if re.search(r"except \(?[\w, ]*ValueError", p.read_text())]
    assert offenders == []


def test_recipe_scripts_run_the_packaged_commands(tmp_path):
    """``python recipes/pretrain.py`` and the installed command are one program: same one-line error."""
    completed = subprocess.run([sys.executable, str(REPO / "recipes" / "pretrain.py"), "--max_eval_samples", "0",
                                "--output_dir", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1
    assert completed.stderr.strip() == "error: --max_eval_samples must be at least 1, got 0."
