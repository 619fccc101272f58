"""The archs a search starts from (``--seed_archs``): the hand-designed students of a space built around a BERT, or the
user's own. They are scored first, in the first generation, so the search can only improve on them by its own score.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..compression import hand_designed_archs
from ..errors import InputError, invalid_value, load_user_file
from ..op_specs import parse_op
from ..search_space import SearchSpace, load_arch, path_is
from .algorithms import Constraints

AUTO, NONE = "auto", "none"


def resolve_seed_archs(value: str | None, config, constraints: Constraints) -> tuple[dict[str, list[str]], list[str]]:
    """``(seeds by name, notes)`` for ``--seed_archs``: ``auto`` (the hand-designed students of a space built around a
    BERT that meet every constraint; the others are named in the notes), ``none``, or a JSON file / JSON text holding
    a list of archs or an object ``{name: arch}`` (each arch a list of op names or a string of them). A given arch
    outside the space or the constraints is an :class:`InputError` naming it."""
    space = config.search_space
    if value is None or value == NONE:
        return {}, []
    if value == AUTO:
        seeds, notes, designs = {}, [], hand_designed_archs(config)
        if not designs:
            notes.append("no seed archs: the supernet was not built around a BERT (--init_from_bert), so it has no "
                         "hand-designed students; pass --seed_archs to give some")
        for name, arch in designs.items():
            if constraints.allows(space, arch):
                seeds[name] = arch
            else:
                notes.append(f"hand-designed {name} ({space.num_params(arch):,} parameters) does not meet the "
                             "constraints: not seeded")
        return seeds, notes
    named = _read(value)
    for name, arch in named.items():
        with invalid_value(f"`seed_archs` {name!r}"):
            named[name] = space.validate(load_arch(arch))
        _check_allowed(name, named[name], space, constraints)
    return named, []


def _read(value: str) -> dict[str, list[str] | str]:
    text = value.strip()
    path = Path(text)
    if not text.startswith(("[", "{")) and (text.endswith(".json") or path_is(path, "is_file")):
        if not path.is_file():
            raise InputError(f"`seed_archs` file {text!r} does not exist; give 'auto', 'none', a JSON file or JSON "
                             "text (a list of archs or an object of named archs).")
        data = load_user_file(f"`seed_archs` {text!r}", lambda: json.loads(path.read_text()))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise InputError(f"`seed_archs` {text[:80]!r} is not 'auto', 'none', a JSON file or JSON text (a list "
                             "of archs or an object of named archs).") from None
    if isinstance(data, list) and data and all(isinstance(arch, (list, str)) for arch in data):
        return {f"seed_{i + 1}": arch for i, arch in enumerate(data)}
    if isinstance(data, dict) and data and all(isinstance(arch, (list, str)) for arch in data.values()):
        return {str(name): arch for name, arch in data.items()}
    raise InputError(f"`seed_archs` {text[:80]!r} must hold a non-empty list of archs or an object of named archs "
                     "(each a list of op names or a string of them).")


def _check_allowed(name: str, arch: list[str], space: SearchSpace, constraints: Constraints) -> None:
    if not constraints.allows(space, arch):
        measured = constraints.measure(space, arch)
        shown = ", ".join(f"{key} {value:,.6g}" if isinstance(value, float) else f"{key} {value:,}"
                          for key, value in measured.items())
        attention = sum(parse_op(op).is_attention for op in arch)
        raise InputError(f"`seed_archs` {name!r} ({shown}, {attention} attention layers) does not meet the "
                         f"constraints ({constraints.describe()}).")


__all__ = ["AUTO", "NONE", "resolve_seed_archs"]
