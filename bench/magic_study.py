"""SPOS vs MAGIC-T / MAGIC-A / MAGIC-AT at small scale: rank correlation and gradient interference, several seeds.

    python bench/magic_study.py                       # the study of docs/magic_study.md (< 45 min on 2 CPU cores)
    python bench/magic_study.py --quick --output_dir outputs/magic_study_quick   # smoke run, about a minute

Real English text (WikiText-2 from ../shared/data: valid.txt to train, test.txt held out) when it is there, else the
package's embedded corpus. Outputs in --output_dir: study.json (every number), study.md (the table),
similarity_vs_m.png, rank_scatter.png, similarity_matrix_<sampler>.png, and the supernets and standalone cache
(reused when the study is run again with the same settings).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from magic_bert.analysis.study import QUICK, StudySettings, run_study
from magic_bert.cli import arg, run
from magic_bert.cli import parse_args as parse_arguments

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "wikitext-2"


@dataclass
class StudyCommand:
    quick: bool = arg(False, "Tiny sizes and the embedded corpus: a smoke run (its sizes replace the defaults of the "
                             "settings not given on the command line).")
    data_dir: str = arg(str(WIKITEXT), "A folder with valid.txt (trained on) and test.txt (held out); if absent, "
                                       "the embedded corpus is used.")


def parse_args(argv: list[str] | None = None) -> StudySettings:
    command, settings = parse_arguments(StudyCommand, StudySettings, argv=argv, description=__doc__)
    defaults = StudySettings()
    if command.quick:
        settings = dataclasses.replace(settings, **{name: value for name, value in QUICK.items()
                                                    if getattr(settings, name) == getattr(defaults, name)})
    data = Path(command.data_dir)
    if (not command.quick and settings.train_file is None and (data / "valid.txt").is_file()
            and (data / "test.txt").is_file()):
        settings = dataclasses.replace(settings, train_file=str(data / "valid.txt"),
                                       validation_file=str(data / "test.txt"))
    return settings


def main(argv: list[str] | None = None) -> dict:
    return run(run_study, parse_args(argv))


if __name__ == "__main__":
    main()
