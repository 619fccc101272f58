"""SPOS vs MAGIC-T / MAGIC-A / MAGIC-AT at small scale: rank correlation and gradient interference, several seeds.

    python bench/magic_study.py                       # the study of docs/magic_study.md (< 45 min on 2 CPU cores)
    python bench/magic_study.py --quick --output_dir outputs/magic_study_quick   # smoke run, about a minute

Real English text (WikiText-2 from ../shared/data: valid.txt to train, test.txt held out) when it is there, else the
package's embedded corpus. Outputs in --output_dir: study.json (every number), study.md (the table),
similarity_vs_m.png, rank_scatter.png, similarity_matrix_<sampler>.png, and the supernets and standalone cache
(reused when the study is run again with the same settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from magic_bert.analysis.study import QUICK, StudySettings, run_study

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "wikitext-2"


def parse_args(argv: list[str] | None = None) -> StudySettings:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and the embedded corpus: a smoke run")
    parser.add_argument("--data_dir", default=str(WIKITEXT),
                        help="a folder with valid.txt (trained on) and test.txt (held out); if absent, the embedded "
                             "corpus is used")
    defaults = StudySettings()
    for spec in dataclasses.fields(StudySettings):
        if spec.name in ("train_file", "validation_file"):
            continue
        value = getattr(defaults, spec.name)
        if isinstance(value, list):
            parser.add_argument(f"--{spec.name}", nargs="+", type=type(value[0]))
        else:
            kind = float if spec.name == "max_params" else (str if value is None else type(value))
            parser.add_argument(f"--{spec.name}", type=kind)
    args = parser.parse_args(argv)
    values = dict(QUICK) if args.quick else {}
    data = Path(args.data_dir)
    if not args.quick and (data / "valid.txt").is_file() and (data / "test.txt").is_file():
        values |= {"train_file": str(data / "valid.txt"), "validation_file": str(data / "test.txt")}
    values |= {k: v for k, v in vars(args).items() if k not in ("quick", "data_dir") and v is not None}
    return StudySettings(**values)


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    try:
        run_study(settings)
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
