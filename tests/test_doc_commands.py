"""The commands the docs tell users to type (```bash blocks of README.md and docs/*.md) parse with their own parsers:
a renamed or removed flag, or a choice no longer offered, fails here. Nothing runs: each command's ``main(argv)`` is
called with ``magic_bert.cli.parse_args`` replaced by a recorder that stops it, then the recorded dataclasses parse
the documented argv for real. No ``check()``: the docs write placeholders (path/to/bert, corpus.txt), not files."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import tomllib

import magic_bert.cli as cli

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
PARSE = cli.parse_args
# Scripts the docs name only in prose, never in a ```bash block: why they need no entry here.
PROSE_ONLY = {"recipes/demo.py": "README prose `python recipes/demo.py`: no flags; test_demo.py runs it end to end"}
# Documented commands that no longer parse ("file:line" -> the error): strict xfail, so a fix must remove the entry.
STALE: dict[str, str] = {}


class Command(NamedTuple):
    where: str  # file:line of the command's first line
    program: str  # recipes/x.py, bench/x.py or magic-bert-x
    argv: list[str]


def _command(where: str, text: str) -> Command | None:
    """The program and its argv; None for a line that runs no recipe, bench script or entry point (pip, cd, ...)."""
    tokens = shlex.split(text, comments=True)
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # ACCELERATE_USE_CPU=1 torchrun ...
        tokens = tokens[1:]
    if tokens[:1] and tokens[0] in SCRIPTS:
        script = 0
    elif tokens[:1] and re.fullmatch(r"python3?", tokens[0]) and tokens[1:2] and tokens[1].endswith(".py"):
        script = 1
    elif tokens[:2] == ["accelerate", "launch"] or tokens[:1] == ["torchrun"]:  # the launcher's own options first
        script = next(i for i, token in enumerate(tokens) if token.endswith(".py"))
    else:
        return None
    # `...` stands for the flags of the command above: what is written must still parse.
    return Command(where, tokens[script], [token for token in tokens[script + 1:] if token != "..."])


def _collect() -> list[Command]:
    """The commands of the ```bash blocks (continuations joined, split on &&) that run a recipe, bench script or
    entry point."""
    commands = []
    for path in DOCS:
        fence, start, pending = None, 0, ""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("```"):
                fence = None if fence is not None else line.strip()[3:].strip()
            elif fence == "bash" and (pending or not line.strip().startswith("#")):
                start, pending = start if pending else number, pending + line.rstrip()
                if pending.endswith("\\"):
                    pending = pending[:-1] + " "
                    continue
                commands += filter(None, (_command(f"{path.relative_to(REPO)}:{start}", part)
                                          for part in pending.split("&&")))
                pending = ""
    return commands


COMMANDS = _collect()
FIRST = {c.program: c for c in reversed(COMMANDS)}  # each program's first documented command


def _module_and_main(program: str) -> tuple[object, Callable]:
    if program in SCRIPTS:
        module_name, _, name = SCRIPTS[program].partition(":")
        return importlib.import_module(module_name), getattr(importlib.import_module(module_name), name)
    path, name = REPO / program, f"doc_command_{program.replace('/', '_')[:-3]}"
    assert path.is_file(), f"{program} does not exist"
    if name not in sys.modules:  # kept there: dataclasses and HfArgumentParser look their module up by name
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name], sys.modules[name].main


class _Parsed(Exception):
    """Raised by the stand-in ``parse_args``; ``args``: the dataclass types and the argv it was given."""


def _dataclass_types(command: Command, monkeypatch: pytest.MonkeyPatch) -> tuple[type, ...]:
    """The argument dataclasses that ``main(argv)`` of the command hands to ``parse_args``; its work never starts."""

    def record(*types: type, argv: list[str] | None = None, description: str | None = None) -> None:
        raise _Parsed(types, argv)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{command.program} parses without magic_bert.cli.parse_args: teach this test how")

    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(REPO / "bench"))  # bench scripts import their siblings
        module, main = _module_and_main(command.program)
        for target in (cli, module):  # parse_one looks parse_args up in cli; some scripts import it by another name
            for name in [name for name, value in vars(target).items() if value is PARSE]:
                patch.setattr(target, name, record)
        patch.setattr(argparse.ArgumentParser, "parse_known_args", refuse)  # a plain argparse main must not run
        with pytest.raises(_Parsed) as parsed:
            main(command.argv)
    types, argv = parsed.value.args
    assert argv == command.argv
    return types


def test_the_docs_commands_are_collected() -> None:
    mentioned = set(re.findall(r"\b(?:recipes|bench)/\w+\.py\b", "\n".join(path.read_text() for path in DOCS)))
    assert COMMANDS and set(FIRST) >= mentioned - set(PROSE_ONLY)
    assert all((REPO / script).is_file() for script in PROSE_ONLY)
    assert set(STALE) <= {c.where for c in COMMANDS}


@pytest.mark.parametrize("command", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=STALE[c.where])) if c.where in STALE else c
    for c in COMMANDS], ids=[c.where for c in COMMANDS])
def test_documented_command_parses(command: Command, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    types = _dataclass_types(command, monkeypatch)
    try:
        PARSE(*types, argv=command.argv)
    except SystemExit:
        pytest.fail(f"{command.where}: `{command.program} {shlex.join(command.argv)}` is refused: "
                    f"{capsys.readouterr().err.strip()}")


NEGATIVE = [
    (FIRST["recipes/pretrain.py"], ["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
    (FIRST["recipes/pretrain.py"], ["--sampler", "no-such-sampler"], "invalid choice: 'no-such-sampler'"),
    (FIRST["bench/magic_study.py"], ["--no_such_flag"], "unrecognized arguments: --no_such_flag"),
    *[(Command("pyproject.toml", script, []), ["--no_such_flag"], "unrecognized arguments") for script in SCRIPTS],
]


@pytest.mark.parametrize(("command", "extra", "message"), NEGATIVE,
                         ids=[f"{c.program} {' '.join(extra)}" for c, extra, _ in NEGATIVE])
def test_a_bad_flag_or_choice_is_refused(command: Command, extra: list[str], message: str,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The check can fail: the same parse refuses a documented command plus a flag or choice that does not exist."""
    argv = [*command.argv, *extra]
    types = _dataclass_types(command._replace(argv=argv), monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        PARSE(*types, argv=argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
