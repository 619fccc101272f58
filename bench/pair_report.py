"""The showcase's primary pair, second round (docs/search_study/pair_design.md): its latency stage (the teacher and
the pair's students timed in the same rounds) and its report from the ablation ladder's stage JSONs alone: the
DistilBERT-style cut (the recipe's row), the uniform width cut and the searched students, each fine-tuned with the
same recipe; the primary comparison (searched − cut, paired bootstrap over seeds × dev examples), latency, and the
goal check; then amendment 2's confirmatory round (the task-searched student against the cut on the fresh seeds
``CONFIRMATORY_SEEDS`` alone, which no other table pools). Writes <docs>/search_pair.md and
<docs>/results/student_recipe/pair_summary.json."""

from __future__ import annotations

import json
import os
import statistics
from functools import partial
from pathlib import Path

from ladder_report import COLUMNS, CONFIRMATORY_SEEDS, TASKS, collect, summarise
from showcase_report import GOAL_LATENCY, paired_bootstrap

from magic_bert.io_utils import write_json_atomic, write_text_atomic

GOAL_SHARE = 92.0  # % of the tuned teacher's GLUE average (issue 29)
LABELS = {"cut": "DistilBERT-style cut, layers 0, 2, 4", "width_half": "uniform width cut, half the heads and neurons",
          "searched": "searched", "searched_task": "searched by the task probe (exploratory, amendment 1)"}
OTHERS = ("searched", "width_half", "searched_task")  # each compared with the cut; the goal is the first's


def pair_rows(kind: str) -> dict[str, tuple[str, str]]:
    """Student name -> its (row, protocol) in the ladder."""
    return {"cut": (f"kd_combined_{kind}", "cutlr"),
            **{name: (f"arch_{name}_{kind}", "cutlr") for name in ("width_half", "searched", "searched_task")}}


def compare(runs: dict, a: tuple[str, str], b: tuple[str, str], samples: int) -> dict | None:
    """``a`` − ``b`` on the GLUE average over the seeds both have, with a paired bootstrap interval (× 100)."""
    common = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
    if not common:
        return None
    sides = [[{t: (runs[key][seed][t]["predictions"], runs[key][seed][t]["labels"]) for t in TASKS}
              for seed in common] for key in (a, b)]
    boot = paired_bootstrap(*sides, samples)
    return {k: 100 * v if k in ("difference", "low", "high") else v for k, v in boot.items()}


def analyse(results: Path, kind: str, samples: int = 2000, confirmatory: bool = False) -> dict:
    """The pair's students against the cut and the goal check: the primary round (the searched student, every seed
    but the confirmatory ones) or, with ``confirmatory``, amendment 2's round (``searched_task`` on
    :data:`CONFIRMATORY_SEEDS` alone). The teacher's average is the primary seeds' in both."""
    primary = collect(results, None)
    runs = collect(results, None, confirmatory=True) if confirmatory else primary
    latency = json.loads((results / "pair_latency.json").read_text())
    teacher = primary.get(("teacher", "tuned"))
    teacher_average = summarise(teacher, held_out=True)["average"]["mean"] if teacher else None
    rows = pair_rows(kind)
    names, judged = (("cut", "searched_task"), "searched_task") if confirmatory else (tuple(rows), "searched")
    students = {}
    for name in names:
        if rows[name] not in runs or name not in latency["archs"]:
            continue
        summary = summarise(runs[rows[name]], held_out=True)
        students[name] = {"row": rows[name][0], "arch": latency["archs"][name], "summary": summary,
                          "encoder_params": latency["encoder_params"][name],
                          "latency_to_cut": latency["ratio_to_cut"][name],
                          "share_of_teacher": 100 * summary["average"]["mean"] / teacher_average
                          if teacher_average else None}
    out = {"students": students, "teacher_average": teacher_average,
           "teacher_seeds": sorted(teacher) if teacher else [], "latency": latency,
           "versus_cut": {name: compare(runs, rows[name], rows["cut"], samples) for name in OTHERS
                          if name in students and "cut" in students}}
    student, comparison = students.get(judged), out["versus_cut"].get(judged)
    # The confirmatory round is read once, when both rows have every one of its seeds (amendment 2).
    complete = not confirmatory or all(name in students and set(students[name]["summary"]["seeds"])
                                       >= CONFIRMATORY_SEEDS for name in names)
    if student and comparison and complete:
        out["goal"] = {"interval_above_zero": comparison["low"] > 0,
                       "latency_within": student["latency_to_cut"] <= GOAL_LATENCY,
                       "share_at_least": student["share_of_teacher"] is not None
                       and student["share_of_teacher"] >= GOAL_SHARE}
        out["goal"]["met"] = all(out["goal"].values())
    return out


def _cell(stat: dict) -> str:
    return f"{stat['mean']:.1f}" + (f" ± {stat['sd']:.1f}" if stat["sd"] is not None else "")


def _table(analysis: dict) -> str:
    lines = ["| student | arch | encoder params | latency / cut | " + " | ".join(COLUMNS)
             + " | GLUE avg | % of teacher | seeds |", "|" + "---|" * 11]
    for name, student in analysis["students"].items():
        s = student["summary"]
        share = f"{student['share_of_teacher']:.1f} %" if student["share_of_teacher"] is not None else "–"
        lines.append(f"| {LABELS[name]} | `{' '.join(student['arch'])}` | {student['encoder_params']:,} | "
                     f"{student['latency_to_cut']:.3f} | " + " | ".join(_cell(s[t]) for t in TASKS)
                     + f" | **{_cell(s['average'])}** | {share} | {len(s['seeds'])} |")
    return "\n".join(lines)


def _comparison_line(name: str, boot: dict | None) -> str:
    if boot is None:
        return f"- {LABELS[name]} − cut: not run yet."
    where = "above zero" if boot["low"] > 0 else "below zero" if boot["high"] < 0 else "includes zero"
    return (f"- **{LABELS[name]} − cut**, GLUE average: {boot['difference']:+.2f} points, 95 % interval "
            f"[{boot['low']:+.2f}, {boot['high']:+.2f}] ({boot['seeds']} paired seeds × dev examples, "
            f"{boot['samples']} resamples): the interval {where}.")


def pair_latency_stage(plan) -> dict:
    """Forward time at batch 1, sequence 128 of the teacher and the pair's students (the cut and ``pair_archs``) as
    the package builds them (a head-pruned layer's projections really smaller), interleaved in one process."""
    import torch
    from student_ladder import cut_layers  # imported here: the ladder imports this module

    from magic_bert import MagicBertModel
    from magic_bert.compression import bert_layers_arch, space_from_bert
    from magic_bert.timing import interleaved_medians

    config, seq = space_from_bert(plan.teacher), 32 if plan.args.quick else 128
    archs = {"teacher": bert_layers_arch(plan.teacher, range(plan.teacher_layers)),
             "cut": bert_layers_arch(plan.teacher, cut_layers(plan.teacher_layers)), **plan.pair_archs}
    torch.manual_seed(0)
    models = {name: MagicBertModel(config.with_arch(arch)).eval() for name, arch in archs.items()}
    ids = torch.randint(5, config.vocab_size, (1, seq))
    rounds = 3 if plan.args.quick else 50
    load = os.getloadavg()[0]  # other work on the machine: interleaving evens it out, but a ratio still moves
    with torch.inference_mode():
        medians = interleaved_medians({name: partial(model, ids, attention_mask=torch.ones_like(ids))
                                       for name, model in models.items()}, rounds=rounds)
    return {"batch": 1, "seq_len": seq, "threads": torch.get_num_threads(), "rounds": rounds, "load_average": load,
            "archs": archs,
            "encoder_params": {name: config.search_space.encoder_params(arch) for name, arch in archs.items()},
            "median_seconds": medians, "ratio_to_cut": {name: t / medians["cut"] for name, t in medians.items()}}


def _round_lines(analysis: dict, judged: str) -> list[str]:
    """A round's table, each student's comparison with the cut and its goal line (``judged``: whose goal)."""
    lines = [_table(analysis), ""]
    lines += [_comparison_line(name, analysis["versus_cut"].get(name)) for name in OTHERS
              if name in analysis["students"]]
    goal = analysis.get("goal")
    if goal:
        lines.append(f"- Goal (interval above zero, latency ≤ {GOAL_LATENCY} × the cut's, ≥ {GOAL_SHARE:g} % of the "
                     f"teacher): **{'met' if goal['met'] else 'not met'}** (" + ", ".join(
                         f"{k.replace('_', ' ')}: {'yes' if v else 'no'}" for k, v in goal.items() if k != "met")
                     + ").")
    else:
        lines.append(f"- Goal: not decided yet ({judged} has not been fine-tuned on every seed of this round).")
    return lines


def write_pair_report(results: Path, docs: Path, kind: str, samples: int = 2000) -> dict:
    analysis = analyse(results, kind, samples)
    confirmatory = analyse(results, kind, samples, confirmatory=True)
    latency = analysis["latency"]
    teacher = analysis["teacher_average"]
    lines = ["# The showcase's primary pair, second round: searched vs hand-designed students, one recipe", "",
             "Design and primary comparison written before the runs: "
             "[search_study/pair_design.md](search_study/pair_design.md). Generated by `python "
             "bench/student_ladder.py --stages pair_report` from `docs/results/student_recipe/`. GLUE dev × 100 "
             "(MRPC F1, STS-B Spearman, CoLA MCC, SST-2 accuracy on a model fine-tuned on its first 8,000 "
             "examples); ± is the standard deviation over fine-tuning seeds; every student distilled and fine-tuned "
             "with `ladder-v1` (protocol `cutlr`, task-specific KD of logits and hidden states).", "",
             *_round_lines(analysis, "the searched student"), "",
             f"Teacher (all-MiniLM-L6-v2, tuned protocol, seeds {analysis['teacher_seeds']}): "
             + (f"{teacher:.1f}." if teacher is not None else "not run yet."),
             f"Latency: batch {latency['batch']}, sequence {latency['seq_len']}, {latency['threads']} threads, "
             f"medians of {latency['rounds']} interleaved rounds"
             + (f", the machine's 1-minute load average {latency['load_average']:.1f} before timing"
                if "load_average" in latency else "") + "; over the cut's: " + ", ".join(
                 f"{name} {ratio:.3f}" for name, ratio in latency["ratio_to_cut"].items() if name != "cut")
             + f" (the goal's cap {GOAL_LATENCY}).", "",
             "## Amendment 2: the confirmatory round (fine-tuning seeds "
             + ", ".join(map(str, sorted(CONFIRMATORY_SEEDS))) + ")",
             "", "The cut against the student searched by the task probe on fresh seeds alone (its design in "
             "[search_study/pair_design.md](search_study/pair_design.md)); the goal is read on this round.", ""]
    lines += _round_lines(confirmatory, "the task-searched student") if confirmatory["students"] else \
        ["Not run yet."]
    reading = docs / "search_study" / "pair_interpretation.md"
    if reading.is_file():
        lines += ["", reading.read_text()]
    write_text_atomic(docs / "search_pair.md", "\n".join(lines) + "\n")
    target = docs / "results" / "student_recipe"
    target.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target / "pair_summary.json",
                      {**{k: v for k, v in analysis.items() if k != "latency"},
                       "confirmatory": {k: v for k, v in confirmatory.items() if k != "latency"}})
    return {"page": str(docs / "search_pair.md"), "students": list(analysis["students"]),
            "mean_share": statistics.mean(s["share_of_teacher"] for s in analysis["students"].values())
            if teacher is not None and analysis["students"] else None}


__all__ = ["analyse", "compare", "pair_latency_stage", "pair_rows", "write_pair_report"]
