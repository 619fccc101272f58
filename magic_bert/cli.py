"""One argument convention for every command: argument dataclasses parsed by :func:`parse_args` (``HfArgumentParser``
plus ``--config FILE``), checked by their own ``check()``, and run by :func:`run`, which catches only
:class:`~magic_bert.errors.InputError`.

    @dataclass
    class SearchArguments:
        supernet: str = arg(None, "A pre-training output folder.")
        ...
        def check(self) -> None: ...          # every check of these values, in one place

    def search(args: SearchArguments):
        args.check()                          # library callers are checked too
        ...

    main = command_main(SearchArguments, search, __doc__)   # parse, then run; bad input → one line, exit 1
    console = console_script(main)    # the [project.scripts] target: exits 0 on success

``main(argv)`` returns the command's result to Python callers; the installed command runs ``sys.exit(console())``,
so ``console`` returns None (a result object there would be printed and exit 1).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import field, fields
from pathlib import Path
from typing import Any, TypeVar

from transformers import HfArgumentParser

from .errors import InputError, load_user_file

T = TypeVar("T")


def arg(default, help: str, **metadata):
    """A dataclass field that ``HfArgumentParser`` turns into a documented flag (``choices=`` etc. pass through)."""
    return field(default=default, metadata={"help": help, **metadata})


class ArgumentGroups:
    """For a flat arguments dataclass built from group dataclasses by inheritance (the command line stays one
    familiar list): ``args.group(DataArguments)`` hands a phase only its own part."""

    def group(self, cls: type[T]) -> T:
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})


def _config_file_values(path: str, known: set[str]) -> dict:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"`config` {path!r} does not exist.")
    if file.suffix not in (".yaml", ".yml", ".json"):
        raise InputError(f"`config` {path!r}: use a .yaml, .yml or .json file.")

    def read() -> Any:
        if file.suffix == ".json":
            return json.loads(file.read_text())
        import yaml

        return yaml.safe_load(file.read_text())

    values = load_user_file(f"`config` {path!r}", read) or {}
    if not isinstance(values, dict):
        raise InputError(f"`config` {path!r} must hold a mapping of option names to values.")
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"`config` {path!r} has unknown options {unknown}; allowed: {sorted(known)}.")
    return values


def _as_flags(values: dict) -> list[str]:
    """Config-file values as command-line flags, so argparse converts and checks them like typed-in ones."""
    flags = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):
            flags += [f"--{name}", *map(str, value)]
        else:
            flags += [f"--{name}", ("true" if value else "false") if isinstance(value, bool) else str(value)]
    return flags


class _OneLineErrors(HfArgumentParser):
    """argparse prints the whole usage (dozens of flags) before a parse error: print the error alone, in one line,
    and where the usage is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def parse_args(*dataclass_types: type, argv: list[str] | None = None, description: str | None = None) -> tuple:
    """Parse the command line, and ``--config FILE`` (YAML or JSON; flags typed on the command line win), into one
    instance per dataclass. Types and choices are checked here; the values' own checks (each dataclass's
    ``check()``) run when the command starts, so library callers get them too."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    pre.add_argument("--student_recipe")
    known, rest = pre.parse_known_args(argv)
    parser = _OneLineErrors(dataclass_types, description=description,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="A YAML/JSON file of these options (flags on the command line win).")
    try:
        file_values = {} if not known.config else _config_file_values(
            known.config, {f.name for cls in dataclass_types for f in fields(cls)})
        recipe = known.student_recipe or file_values.get("student_recipe")
        with_teacher = file_values.get("teacher_name_or_path") is not None or any(
            a.split("=", 1)[0] == "--teacher_name_or_path" for a in rest)
        recipe_flags = _as_flags(_recipe_values(dataclass_types, recipe, with_teacher)) if recipe else []
    except InputError as error:
        parser.error(error.as_flags())
    if known.student_recipe is not None:
        rest += ["--student_recipe", known.student_recipe]
    # Recipe values, then file values: argparse keeps the last occurrence, so flags typed on the command line win.
    *parsed, unknown = parser.parse_args_into_dataclasses(args=recipe_flags + _as_flags(file_values) + rest,
                                                          return_remaining_strings=True)
    if unknown:  # transformers raises a ValueError (a traceback) for these; argparse's own message instead
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return tuple(parsed[:len(dataclass_types)])


def _recipe_values(dataclass_types: tuple[type, ...], name: str, with_teacher: bool) -> dict:
    """The values a named student recipe sets for the dataclasses that take one (``recipe_options``; its
    task-specific KD ``with_teacher``)."""
    values = {}
    for cls in dataclass_types:
        if hasattr(cls, "recipe_options"):
            values |= cls.recipe_options(name, with_teacher)
    if not values:
        raise InputError(f"`student_recipe` {name!r}: this command takes no student recipe.")
    return values


def parse_one(dataclass_type: type[T], argv: list[str] | None = None, description: str | None = None) -> T:
    """:func:`parse_args` for a command with one arguments dataclass."""
    (args,) = parse_args(dataclass_type, argv=argv, description=description)
    return args


def command_main(dataclass_type: type, command: Callable[..., T], description: str | None = None
                 ) -> Callable[[list[str] | None], T]:
    """A console-script ``main(argv=None)``: parse ``dataclass_type``, then :func:`run` ``command`` on it."""

    def main(argv: list[str] | None = None) -> T:
        return run(command, parse_one(dataclass_type, argv, description))

    main.__doc__ = description
    return main


def console_script(main: Callable[[list[str] | None], object]) -> Callable[[list[str] | None], None]:
    """The installed command (a ``[project.scripts]`` target) for ``main``: ``main(argv)``, its result dropped, so
    the console script's ``sys.exit(console())`` exits 0 on success. Bad input still exits with its one line."""

    @functools.wraps(main)  # its name and help; __wrapped__ is main
    def console(argv: list[str] | None = None) -> None:
        main(argv)

    return console


def run(command: Callable[..., T], *args, **kwargs) -> T:
    """``command(*args)``; bad input (an :class:`InputError`) exits with its one-line message, flags named as flags.
    Any other exception is a bug and keeps its traceback."""
    try:
        return command(*args, **kwargs)
    except InputError as error:
        sys.exit(f"error: {error.as_flags()}")


def at_least(minimum: float, **values: float | None) -> None:
    """Each named value (when given) is at least ``minimum``."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise InputError(f"`{name}` must be at least {minimum}, got {value}.")


def at_most(maximum: float, **values: float | None) -> None:
    """Each named value (when given) is at most ``maximum``."""
    for name, value in values.items():
        if value is not None and value > maximum:
            raise InputError(f"`{name}` must be at most {maximum:,}, got {value}.")


def check_seed(seed: int, name: str = "seed") -> None:
    """A seed torch and numpy take: 0 <= seed < 2**32."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InputError(f"`{name}` must be an integer from 0 to 2**32 - 1, got {seed!r}.")


def check_report_to(value: str) -> None:
    """``report_to``: 'all', 'none' or trackers accelerate knows, comma-separated."""
    from accelerate.utils import LoggerType

    known = [t.value for t in LoggerType]
    unknown = [name for name in (part.strip() for part in str(value).split(",")) if name not in (*known, "none")]
    if unknown:
        raise InputError(f"`report_to` {value!r}: unknown trackers {unknown}; choose from {known + ['none']}.")


def positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not value > 0:
            raise InputError(f"`{name}` must be positive, got {value}.")


def in_range(name: str, value: float, low: float, high: float, closed: str = "[]") -> None:
    """``value`` inside the interval; ``closed`` says which ends are included: ``"[]"``, ``"()"``, ``"[)"``..."""
    above = value >= low if closed[0] == "[" else value > low
    below = value <= high if closed[1] == "]" else value < high
    if not (above and below):
        raise InputError(f"`{name}` must be in {closed[0]}{low}, {high}{closed[1]}, got {value}.")


def check_budget_order(high_name: str, high: float | None, low_name: str, low: float | None) -> None:
    """Budgets are positive and the lower bound is not above the upper one."""
    positive(**{high_name: high})
    if high is not None and low is not None and low > high:
        raise InputError(f"`{low_name}` {low:,.0f} is larger than `{high_name}` {high:,.0f}.")


__all__ = ["ArgumentGroups", "arg", "at_least", "at_most", "check_budget_order", "command_main", "console_script",
           "in_range", "parse_args", "parse_one", "positive", "run"]
