"""SPOS vs MAGIC-T / MAGIC-A / MAGIC-AT at small scale: rank correlation and gradient interference, several seeds.

    python bench/magic_study.py                       # the first study of docs/magic_study.md (< 45 min on 2 cores)
    python bench/magic_study.py --design v2           # study v2: 64 children, 8 seeds of SPOS and MAGIC-AT, ...
    python bench/magic_study.py --design intervention   # the alignment intervention (below)
    python bench/magic_study.py --design anchor-precision   # v2's MAGIC-AT runs again with the anchor in bf16 (below)
    python bench/magic_study.py --quick --output_dir outputs/magic_study_quick   # smoke run, about a minute

Study v2 (`--design v2`, sizes from bench/study_power.py) reads its standalone reference from
docs/results/magic_study_v2/standalone_reference.json when that file matches its tokenizer, texts and children, and
builds and writes it there otherwise (about an hour, resumable through the standalone cache).

The alignment intervention (`--design intervention`, issue 16 item 5; outputs/alignment_intervention) trains, for
each of 5 seeds, one supernet with SPOS and one with MAGIC-A whose anchor never changes (`fixed_anchor`: no anchor
check falls inside the run, since a swap margin cannot rule a swap out when the paired standard error is 0). MAGIC-A
draws SPOS's children for the same seed, so the two runs of a seed train the same children sequence on the same
batches, and differ only by paper-mode alignment (each layer's output, i.e. the next shared op's input, pulled toward
the fixed anchor's by a hidden-state MSE of weight 1.0; logits weight 0). Both are then measured at the same op and
the same child pairs. No standalone reference is trained (`standalone_seeds` empty: no τ, shown as "–"). The
`intervention` block of study.json (and its table in study.md) gives, per m, the change magic-a − spos of the mean
gradient, input and output similarity of the pairs, paired by seed: each seed's difference, their mean and a 95 % t
interval over seeds; `all_m` averages each seed's differences over m first. A positive Δ gradient similarity with an
interval above 0 is causal evidence that aligning inputs raises gradient agreement (less interference). The block is
written whenever `primary` is empty and exactly two samplers are given (the second minus the first).

The anchor's precision (`--design anchor-precision`, issue 16 item 6) runs study v2 (reused when done), then the same
MAGIC-AT seeds with `anchor_precision` bf16 into <output_dir>_bf16_anchor, sharing v2's tokenizer, data and reference;
anchor_precision.json / .md there compare the two seed by seed (τ, the paired Δτ with its bootstrap interval, the
largest change of any child's inherited loss, the anchor swaps and final arch). The studies themselves keep the
anchor in the training precision (`anchor_precision` training), as they were run.

Real English text (WikiText-2 from ../shared/data: valid.txt to train, test.txt held out) when it is there, else the
package's embedded corpus. Outputs in --output_dir: study.json (every number), study.md (the table),
similarity_vs_m.png, rank_scatter.png, similarity_matrix_<sampler>.png, and the supernets (each with its measurements,
analysis.json) and standalone cache: a rerun with the same settings trains and scores nothing again, and one that only
adds samplers or seeds costs only those supernets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from magic_bert.analysis.study import INTERVENTION, QUICK, V2, StudySettings, run_study
from magic_bert.analysis.study_compare import compare_setting, comparison_text
from magic_bert.cli import arg, run
from magic_bert.cli import parse_args as parse_arguments
from magic_bert.io_utils import write_json_atomic, write_text_atomic

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "wikitext-2"
REFERENCE_V2 = Path(__file__).resolve().parents[1] / "docs" / "results" / "magic_study_v2" / "standalone_reference.json"


@dataclass
class StudyCommand:
    quick: bool = arg(False, "Tiny sizes and the embedded corpus: a smoke run (its sizes replace the defaults of the "
                             "settings not given on the command line).")
    data_dir: str = arg(str(WIKITEXT), "A folder with valid.txt (trained on) and test.txt (held out); if absent, "
                                       "the embedded corpus is used.")
    design: str = arg("v1", "v1: the first study (docs/magic_study.md); v2: the powered study of issue 16; "
                            "intervention: SPOS against SPOS plus alignment toward a fixed anchor (the design's "
                            "values replace the defaults of the settings not given).",
                      choices=["v1", "v2", "intervention", "anchor-precision"])


# --design anchor-precision: v2's MAGIC-AT seeds again, the anchor forward in bf16 (beside v2, sharing its inputs).
BF16_ANCHOR = {"samplers": ["magic-at"], "exploratory_samplers": [], "exploratory_seeds": [], "primary": [],
               "anchor_precision": "bf16"}


def parse_command(argv: list[str] | None = None) -> tuple[StudyCommand, StudySettings]:
    """The design and its settings (the design's values replace the defaults of the settings not given)."""
    command, settings = parse_arguments(StudyCommand, StudySettings, argv=argv, description=__doc__)
    defaults = StudySettings()
    design = "v2" if command.design == "anchor-precision" else command.design
    preset = {"v1": {}, "v2": dict(V2, reference_file=str(REFERENCE_V2)), "intervention": INTERVENTION}[design]
    preset |= QUICK if command.quick else {}  # --quick --design v2: v2's design at the quick sizes
    if command.quick and design == "v2":
        preset |= {"exploratory_seeds": [0], "standalone_lengths": [10, 20], "reference_file": None,
                   "probe_interference_steps": 10}
    if command.quick and design == "intervention":
        preset |= {"standalone_seeds": []}  # still no reference
    settings = dataclasses.replace(settings, **{name: value for name, value in preset.items()
                                                if getattr(settings, name) == getattr(defaults, name)})
    data = Path(command.data_dir)
    if (not command.quick and settings.train_file is None and (data / "valid.txt").is_file()
            and (data / "test.txt").is_file()):
        settings = dataclasses.replace(settings, train_file=str(data / "valid.txt"),
                                       validation_file=str(data / "test.txt"))
    return command, settings


def parse_args(argv: list[str] | None = None) -> StudySettings:
    return parse_command(argv)[1]


def bf16_anchor_settings(settings: StudySettings) -> StudySettings:
    """The anchor-precision variant of a v2 study: its MAGIC-AT seeds, anchor in bf16, beside it and sharing its
    tokenizer, data and standalone reference."""
    return dataclasses.replace(settings, **BF16_ANCHOR, output_dir=settings.output_dir + "_bf16_anchor",
                               shared_dir=settings.shared_dir or settings.output_dir)


def run_anchor_precision(settings: StudySettings) -> dict:
    """Study v2, its MAGIC-AT seeds with the anchor in bf16, and their comparison (written beside the variant)."""
    base = run_study(settings)
    variant_settings = bf16_anchor_settings(settings)
    variant = run_study(variant_settings)
    comparison = compare_setting(base, variant, "magic-at", settings.bootstrap_samples)
    output = Path(variant_settings.output_dir)
    write_json_atomic(output / "anchor_precision.json", comparison)
    text = comparison_text(comparison, "anchor fp32", "anchor bf16")
    write_text_atomic(output / "anchor_precision.md", text + "\n")
    print(text)
    return {"base": base, "variant": variant, "comparison": comparison}


def main(argv: list[str] | None = None) -> dict:
    command, settings = parse_command(argv)
    return run(run_anchor_precision if command.design == "anchor-precision" else run_study, settings)


if __name__ == "__main__":
    main()
