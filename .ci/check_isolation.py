"""CI guard: the suite must get its packages from its own venv, never from the base interpreter.

A test that starts another interpreter (a nested venv, ``sys._base_executable``) silently passes where torch happens
to be installed system-wide and fails on a fresh machine. So, before the tests: (1) the venv's own site-packages
provide every heavy dependency, and (2) the base interpreter outside the venv provides none of them, so such a test
fails here as it would for a user. A developer whose system Python has torch can run the suite anyway with
``MAGIC_BERT_CI_ALLOW_BASE_PACKAGES=1`` (then this class of failure can hide).
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGES = ("torch", "transformers", "accelerate", "datasets", "evaluate", "peft")


def main() -> int:
    if sys.prefix == sys.base_prefix:
        print("check_isolation: not inside a venv; run it with the venv's python", file=sys.stderr)
        return 1
    outside = [name for name in PACKAGES
               if not Path(importlib.import_module(name).__file__).resolve().is_relative_to(Path(sys.prefix).resolve())]
    if outside:
        print(f"check_isolation: {outside} imported from outside the venv {sys.prefix}", file=sys.stderr)
        return 1
    probe = ("import importlib.util, json; "
             f"print(json.dumps([n for n in {list(PACKAGES)!r} if importlib.util.find_spec(n)]))")
    base = getattr(sys, "_base_executable", None) or sys.executable
    found = json.loads(subprocess.run([base, "-I", "-c", probe], capture_output=True, text=True,
                                      check=True).stdout)
    if found:
        message = (f"check_isolation: the base interpreter {base} provides {found}; a test that leans on it "
                   "would pass here and fail on a fresh machine")
        if os.environ.get("MAGIC_BERT_CI_ALLOW_BASE_PACKAGES") == "1":
            print(f"{message} (allowed by MAGIC_BERT_CI_ALLOW_BASE_PACKAGES=1)", file=sys.stderr)
            return 0
        print(f"{message}. Run CI where the system Python lacks them, or set MAGIC_BERT_CI_ALLOW_BASE_PACKAGES=1.",
              file=sys.stderr)
        return 1
    print(f"check_isolation: {', '.join(PACKAGES)} come from {sys.prefix}; the base interpreter has none of them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
