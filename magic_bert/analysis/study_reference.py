"""The study's standalone reference as one small JSON: every child's held-out loss after training alone, per seed and
at several training lengths, with the hashes of what it belongs to (tokenizer, training text, held-out text, blocks).

Building it costs about an hour on 2 CPU cores (the standalone cache makes it resumable); committing it lets every
later run of the study, and every variant, cost only supernets. A file whose fingerprint or children differ from the
study's is refused with the differing keys named, never silently used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import InputError
from ..io_utils import write_json_atomic

FORMAT = "magic_bert.standalone_reference/1"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_reference(path: str | Path, fingerprint: dict, children: list[list[str]]) -> dict | None:
    """The reference stored at ``path`` (None if there is none yet); refused when it belongs to other inputs."""
    file = Path(path)
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"`reference_file` {str(path)!r} is not readable JSON: {error}.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"`reference_file` {str(path)!r} is not a standalone reference ({FORMAT}).")
    stored = data.get("fingerprint", {})
    differ = sorted(key for key in set(stored) | set(fingerprint) if stored.get(key) != fingerprint.get(key))
    if differ:
        raise InputError(f"`reference_file` {str(path)!r} belongs to other inputs ({', '.join(differ)} differ); "
                         "point `reference_file` at a new path to build a reference for these settings.")
    if [entry["arch"] for entry in data["children"]] != [list(arch) for arch in children]:
        raise InputError(f"`reference_file` {str(path)!r} holds other children than the study draws (a different "
                         "budget, `num_children` or `children_seed`).")
    return data


def standalone_entry(per_seed: dict[int, dict]) -> dict:
    """What the reference keeps of one arch's standalone runs: per seed, its scores."""
    return {str(seed): {key: run[key] for key in ("eval_loss", "eval_accuracy", "length_losses", "num_tokens")
                        if key in run} for seed, run in per_seed.items()}


def save_reference(path: str | Path, fingerprint: dict, children: list[list[str]], per_seed: dict[int, list[dict]],
                   schedule: dict) -> dict:
    """Write the reference: per child, each seed's final loss and its losses at the scored training lengths."""
    data = {"format": FORMAT, "fingerprint": fingerprint, "schedule": schedule,
            "children": [{"arch": list(arch),
                          "per_seed": standalone_entry({seed: runs[index] for seed, runs in per_seed.items()})}
                         for index, arch in enumerate(children)]}
    write_json_atomic(Path(path), data)
    return data


def add_others(path: str | Path, data: dict, others: list[dict]) -> dict:
    """Add standalone results of archs that are not children (the studies' final anchors) to the stored reference,
    so a rerun ranks those anchors without training them again."""
    data = {**data, "others": [*data.get("others", []), *others]}
    write_json_atomic(Path(path), data)
    return data


def per_seed_losses(data: dict, length: str | None = None) -> dict[str, list[float]]:
    """Each seed's losses over the children: final (``length`` None) or at one scored training length."""
    seeds = list(data["children"][0]["per_seed"])
    if length is None:
        return {seed: [child["per_seed"][seed]["eval_loss"] for child in data["children"]] for seed in seeds}
    return {seed: [child["per_seed"][seed]["length_losses"][length] for child in data["children"]] for seed in seeds}


__all__ = ["FORMAT", "add_others", "file_digest", "load_reference", "per_seed_losses", "save_reference",
           "standalone_entry"]
