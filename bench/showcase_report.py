"""The report of bench/compression_showcase.py, built from its stage JSONs alone: the table (params, encoder params,
CPU latency ratio, each task's paper metric, the average, ± over seeds), the primary difference with a paired
bootstrap interval over seeds and dev examples, latency against GLUE average, the commands and each stage's wall
time. Writes <docs>/compression.md, <docs>/compression/latency_vs_glue.png and <docs>/results/compression/*.json."""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np

from magic_bert.io_utils import save_figure, write_json_atomic, write_text_atomic

TASKS = ("mrpc", "stsb", "cola", "sst2")  # the showcase's tasks, in the paper's column order below
COLUMNS = {"mrpc": "MRPC F1", "stsb": "STS-B Spearman", "cola": "CoLA MCC", "sst2": "SST-2 acc"}
ROWS = {"teacher": "teacher", "magic": "**MAGIC-AT searched + KD** (primary)",
        "distil": "**DistilBERT-style, layers 0, 2, 4 + KD** (primary)", "spos": "SPOS searched + KD",
        "first_half": "first half, layers 0, 1, 2 + KD", "random": "random arch in the budget + KD",
        "magic_nokd": "MAGIC-AT searched, supernet weights only",
        "magic_attn": "MAGIC-AT searched with an attention floor + KD (exploratory)",
        "majority": "majority class / mean score"}
LATENCY_OF = {"magic_nokd": "magic"}  # rows that share another row's arch
GOAL_LATENCY = 1.03


def task_score_of(task: str, predictions, labels) -> float:
    """The paper's number for ``task`` (MRPC F1, STS-B Spearman, CoLA MCC, accuracy); a constant prediction has no
    correlation, so an undefined correlation counts as 0."""
    from magic_bert.glue.metrics import compute_glue, task_score

    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = task_score(task, compute_glue(task, np.asarray(predictions), np.asarray(labels)))
    return 0.0 if math.isnan(score) else float(score)


def paired_bootstrap(a: list[dict], b: list[dict], samples: int, seed: int = 0) -> dict:
    """GLUE average of ``a`` minus that of ``b`` with a 95 % percentile interval. ``a[i]`` and ``b[i]`` are the
    same fine-tuning seed: ``{task: (predictions, labels)}``. Each resample draws seeds (pairs kept) and dev
    examples (the same ones for both) with replacement."""
    if len(a) != len(b) or not a:
        raise ValueError("paired_bootstrap needs the same, non-zero number of seeds on both sides")
    rng = np.random.default_rng(seed)
    tasks = sorted(a[0])
    data = {side: [{t: (np.asarray(run[t][0]), np.asarray(run[t][1])) for t in tasks} for run in runs]
            for side, runs in (("a", a), ("b", b))}

    def average(side: str, seeds, picks: dict) -> float:
        return float(np.mean([np.mean([task_score_of(t, data[side][s][t][0][picks[t]], data[side][s][t][1][picks[t]])
                                       for s in seeds]) for t in tasks]))

    everything = {t: np.arange(len(a[0][t][1])) for t in tasks}
    point = average("a", range(len(a)), everything) - average("b", range(len(b)), everything)
    differences = []
    for _ in range(samples):
        seeds = rng.integers(0, len(a), len(a))
        picks = {t: rng.integers(0, len(everything[t]), len(everything[t])) for t in tasks}
        differences.append(average("a", seeds, picks) - average("b", seeds, picks))
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"difference": point, "low": float(low), "high": float(high), "samples": samples, "seeds": len(a)}


# ---------------------------------------------------------------------------------------------------------- rows
def _load(results: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(results.glob("*.json"))}


def glue_runs(stages: dict[str, dict], row: str) -> list[dict]:
    """The row's fine-tuning runs, by seed: ``{task: (predictions, labels)}`` and their scores."""
    runs = [(int(m[1]), result) for name, result in stages.items()
            if (m := re.fullmatch(rf"glue_{row}_s(-?\d+)", name))]
    return [result["tasks"] for _, result in sorted(runs, key=lambda item: item[0])]


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def build_rows(stages: dict[str, dict]) -> list[dict]:
    """One record per row that has any result: sizes, latency ratio, per-task and average scores (× 100)."""
    teacher, students = stages.get("teacher", {}), stages.get("students", {}).get("students", {})
    latency = stages.get("latency", {}).get("ratio_to_teacher", {})
    rows = []
    for row in ROWS:
        sizes = ((teacher.get("params"), teacher.get("encoder_params")) if row == "teacher" else
                 (students.get(LATENCY_OF.get(row, row), {}).get("params"),
                  students.get(LATENCY_OF.get(row, row), {}).get("encoder_params")))
        if row == "majority":
            runs = [{t: v for t, v in stages["majority"]["tasks"].items()}] if "majority" in stages else []
            scores = {t: [100 * r[t]["score"] for r in runs] for t in TASKS}
        else:
            runs = glue_runs(stages, row)
            scores = {t: [100 * r[t]["score"] for r in runs if t in r] for t in TASKS}
        averages = [statistics.fmean(100 * r[t]["score"] for t in TASKS) for r in runs if all(t in r for t in TASKS)]
        rows.append({"row": row, "label": ROWS[row], "params": None if row == "majority" else sizes[0],
                     "encoder_params": None if row == "majority" else sizes[1], "seeds": len(runs),
                     "latency_ratio": None if row == "majority" else latency.get(LATENCY_OF.get(row, row)),
                     "mlm_loss": stages.get(f"kd_{row}", {}).get("results", {}).get("eval_loss"),
                     "tasks": {t: _mean_std(v) if v else None for t, v in scores.items()},
                     "average": _mean_std(averages) if averages else None})
    return rows


def _cell(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "pending"
    mean, std = value
    return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def rows_table(rows: list[dict]) -> str:
    header = ["row", "params", "encoder params", "latency / teacher", "MLM loss after KD", *COLUMNS.values(),
              "GLUE avg", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    def size(n: int | None) -> str:
        return "–" if n is None else f"{n / 1e6:.2f}M"

    for r in rows:
        ratio = "–" if r["latency_ratio"] is None else f"{r['latency_ratio']:.3f}"
        mlm = "–" if r["mlm_loss"] is None else f"{r['mlm_loss']:.3f}"
        lines.append("| " + " | ".join([r["label"], size(r["params"]), size(r["encoder_params"]), ratio, mlm,
                                        *(_cell(r["tasks"][t]) for t in TASKS), _cell(r["average"]),
                                        str(r["seeds"])]) + " |")
    return "\n".join(lines)


def primary(stages: dict[str, dict], samples: int) -> dict | None:
    """The MAGIC-AT student minus the DistilBERT-style one on the GLUE average (× 100), paired by seed."""
    a, b = glue_runs(stages, "magic"), glue_runs(stages, "distil")
    n = min(len(a), len(b))
    if n == 0 or any(set(r) < set(TASKS) for r in a[:n] + b[:n]):
        return None
    pairs = [[{t: (r[t]["predictions"], r[t]["labels"]) for t in TASKS} for r in side[:n]] for side in (a, b)]
    result = {k: 100 * v if k in ("difference", "low", "high") else v
              for k, v in paired_bootstrap(*pairs, samples=samples).items()}
    latency = stages.get("latency", {}).get("ratio_to_teacher", {})
    if "magic" in latency and "distil" in latency:
        result["latency_ratio_magic_to_distil"] = latency["magic"] / latency["distil"]
    return result


# -------------------------------------------------------------------------------------------------------- report
def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for r in rows:
        if r["average"] is None:
            continue
        if r["row"] == "majority":
            ax.axhline(r["average"][0], color="grey", linestyle="--", label="majority class / mean score")
            continue
        if r["latency_ratio"] is None:
            continue
        mean, std = r["average"]
        ax.errorbar(r["latency_ratio"], mean, yerr=std or 0, fmt="o", capsize=3,
                    color="C3" if r["row"] in ("magic", "distil") else "C0")
        ax.annotate(r["row"], (r["latency_ratio"], mean), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("CPU latency / teacher (batch 1, seq 128, interleaved medians)")
    ax.set_ylabel("GLUE dev average (MRPC, STS-B, CoLA, SST-2) × 100")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def reading(rows: list[dict], diff: dict | None) -> list[str]:
    """Plain statements read off the numbers (the full run's author adds the interpretation)."""
    by = {r["row"]: r for r in rows}
    if diff is None:
        return ["The primary pair has no fine-tuned seed on both sides yet: no comparison to read.", *_at_majority(by),
                *_mlm_against_glue(by)]
    lines = []
    verdict = "above zero" if diff["low"] > 0 else "below zero" if diff["high"] < 0 else "includes zero"
    lat = diff.get("latency_ratio_magic_to_distil")
    met = diff["low"] > 0 and lat is not None and lat <= GOAL_LATENCY
    seeds = f"{diff['seeds']} seed" + ("s" if diff["seeds"] != 1 else "")
    lines.append(f"MAGIC-AT student − DistilBERT-style student, GLUE average: {diff['difference']:+.2f} points, 95 % "
                 f"interval [{diff['low']:+.2f}, {diff['high']:+.2f}] ({seeds} × dev examples, "
                 f"{diff['samples']} resamples): the interval {verdict}."
                 + (f" Latency ratio MAGIC-AT / DistilBERT-style: {lat:.3f}." if lat is not None else ""))
    lines.append("Goal (interval above zero at ≤ 3 % more latency): " + ("met." if met else "**not met**."))
    floor = by["majority"]["average"][0] if by["majority"]["average"] else None
    for name in ("magic", "distil", "spos", "first_half", "random", "magic_nokd"):
        r = by[name]
        if floor is not None and r["average"] is not None and r["average"][0] - floor < 2:
            lines.append(f"{name}: within 2 points of the majority row ({r['average'][0]:.1f} vs {floor:.1f}): it "
                         "learned little.")
    lines += _at_majority(by)
    for a, b, what in (("magic", "magic_nokd", "the second (fixed-arch) distillation"),
                       ("magic", "spos", "MAGIC-AT over SPOS supernet training"),
                       ("magic", "random", "search over a random arch in the budget")):
        if by[a]["average"] and by[b]["average"]:
            lines.append(f"Effect of {what}: {by[a]['average'][0] - by[b]['average'][0]:+.1f} points "
                         f"({by[a]['average'][0]:.1f} vs {by[b]['average'][0]:.1f}).")
    return lines + _mlm_against_glue(by)


def _mlm_against_glue(by: dict[str, dict]) -> list[str]:
    """The distilled students by held-out masked-LM loss (what search and KD optimise) beside their GLUE average:
    whether the loss the search ranks by predicts the fine-tuned result is visible at a glance."""
    both = sorted((r["mlm_loss"], r["average"][0], name) for name, r in by.items()
                  if r.get("mlm_loss") is not None and r.get("average"))
    if len(both) < 2:
        return []
    agree = all(a[1] >= b[1] for a, b in itertools.pairwise(both))
    return ["Students by held-out masked-LM loss after KD (lower first), with their GLUE average: "
            + ", ".join(f"{name} {loss:.3f} / {glue:.1f}" for loss, glue, name in both)
            + (": the same order." if agree else ": not the same order.")]


def _at_majority(by: dict[str, dict]) -> list[str]:
    """Rows that score within a point of the majority (or mean) answer on some task: learning nothing is visible."""
    floor, lines = by["majority"]["tasks"], []
    for name, row in by.items():
        tasks = [COLUMNS[t] for t in TASKS if name != "majority" and row["tasks"][t] and floor[t]
                 and row["tasks"][t][0] - floor[t][0] < 1]
        if tasks:
            lines.append(f"{ROWS[name].replace('**', '')}: within 1 point of the majority (or mean) answer on "
                         f"{', '.join(tasks)}.")
    return lines


def _latency_cap(stages: dict[str, dict]) -> str:
    budget = stages.get("latency_budget")
    if not budget or budget.get("max_latency") is None:
        return ""
    return (f" and at most {budget['max_latency_ratio']:g} × the DistilBERT-style student's estimated CPU latency "
            f"({budget['max_latency'] * 1e3:.2f} ms at batch 1, sequence {budget['table']['seq_len']}, from a per-op "
            "lookup table); the random student obeys the same caps")


def _interpretation(docs: Path) -> list[str]:
    """The author's interpretation, hand-written in ``<docs>/compression/interpretation.md`` so that a rebuild keeps
    it; the reading above stays what the numbers alone say."""
    path = docs / "compression" / "interpretation.md"
    if not path.is_file():
        return []
    return ["## What the data suggest", "", f"Hand-written in `{path.relative_to(docs).as_posix()}` (the rest of this "
            "page is generated).", "", path.read_text().strip(), ""]


def stage_table(stages: dict[str, dict], names: list[str]) -> str:
    lines = ["| stage | estimate (min) | wall time (min) |", "|---|---|---|"]
    for name in names:
        if name == "report":
            continue
        result = stages.get(name)
        wall = "pending" if result is None else f"{result['seconds'] / 60:.1f}"
        estimate = "–" if result is None else f"{result.get('estimate_seconds', 0) / 60:.1f}"
        lines.append(f"| {name} | {estimate} | {wall} |")
    return "\n".join(lines)


def build_report(results: Path, docs: Path, names: list[str], commands: list[str], quick: bool = False,
                 samples: int | None = None) -> dict:
    """compression.md, the figure and the JSON copies, from ``results/*.json`` only."""
    stages = _load(results)
    settings = stages.get("teacher", {}).get("settings", {})
    samples = samples or settings.get("bootstrap_samples", 2000)
    rows = build_rows(stages)
    diff = primary(stages, samples)
    figure = plot(rows, docs / "compression" / "latency_vs_glue.png")
    copies = docs / "results" / "compression"
    for name, result in stages.items():
        write_json_atomic(copies / f"{name}.json", result)
    summary = {"rows": rows, "primary_difference": diff}
    write_json_atomic(copies / "summary.json", summary)
    write_text_atomic(docs / "compression.md", render(stages, rows, diff, names, commands, quick, figure, docs))
    return {"docs": str(docs), "figure": str(figure), **summary}


def _attention_floor(stages: dict[str, dict]) -> str:
    search = stages.get("search_magic_attn")
    if not search:
        return ""
    return (f"; the exploratory row's search (on the MAGIC-AT supernet) also keeps at least "
            f"{search['constraints']['min_attention_layers']} attention layers (`--min_attention_layers`)")


def render(stages: dict, rows: list[dict], diff: dict | None, names: list[str], commands: list[str], quick: bool,
           figure: Path, docs: Path) -> str:
    teacher = stages.get("teacher", {})
    s = teacher.get("settings", {})
    budget = (f"{teacher['min_encoder_params']:,}–{teacher['max_encoder_params']:,} encoder parameters (half of the "
              f"teacher's {teacher['encoder_params']:,})") if teacher else "pending"
    parts = [
        "# Compression showcase: searched students against hand-designed ones at one budget",
        "",
        ("**Quick run** (a tiny BERT built on the fly, the embedded corpus and toy task files): the numbers below "
         "only show that every stage runs." if quick else
         "Teacher all-MiniLM-L6-v2; text WikiText-2 (`valid.txt` trained on, `test.txt` held out); GLUE dev sets."),
        "",
        f"- **Budget**: {budget}.",
        f"- **Distillation** (supernets and students alike): hidden-state KD from the teacher (`--kd_hidden_weight 1`)"
        f" plus masked-LM, lr {s.get('learning_rate')}, batch {s.get('batch_size')} × {s.get('max_seq_length')} "
        f"tokens, seed {s.get('seed')}; supernets {s.get('distil_steps')} steps (SPOS, MAGIC-AT), every student "
        f"{s.get('student_steps')} steps as a fixed arch (searched and random ones from their supernet's weights, "
        "hand-designed ones from the teacher's layers).",
        f"- **Search**: evolution, {s.get('population_size')} × {s.get('generations')} children scored by held-out "
        "MLM loss with inherited weights, inside the budget" + _latency_cap(stages) + _attention_floor(stages) + ".",
        "- **Fine-tuning** (one recipe for every row): batch "
        f"{s.get('glue_batch_size')}, lr {s.get('glue_learning_rate')}, warm-up 10 %; MRPC 3 epochs, STS-B 2, CoLA 3 "
        "(length 64), SST-2 2 on its first 8,000 examples (length 64); seeds "
        f"{s.get('primary_seeds')} for the primary pair, {s.get('secondary_seeds')} for the other rows.",
        "",
        "## Results (dev, × 100; ± is the standard deviation over fine-tuning seeds)",
        "",
        rows_table(rows),
        "",
        "*MLM loss after KD*: the student's masked-LM loss on held-out text (`test.txt`) after its fixed-arch "
        "distillation, the quantity the search ranks children by (there, with inherited weights).",
        "",
        f"![latency against GLUE average]({figure.relative_to(docs).as_posix()})",
        "",
        "## Reading",
        "",
        *(f"- {line}" for line in reading(rows, diff)),
        "",
        *_interpretation(docs),
        "## Wall time of each stage (2 CPU cores)",
        "",
        "Wall time of the stage's last, completed call; the development machine was often shared with other work, "
        "and a distillation resumed from its checkpoint counts only the resumed part (its `train_seconds` in the "
        "stage JSON counts every step).",
        "",
        stage_table(stages, names),
        "",
        "## Commands",
        "",
        "```bash",
        *commands,
        "```",
        "",
        "Every number here is in `docs/results/compression/*.json` (one file per stage; `summary.json` holds the table "
        "and the bootstrap).",
        "",
    ]
    return "\n".join(parts)


__all__ = ["build_report", "build_rows", "paired_bootstrap", "primary", "reading", "rows_table", "task_score_of"]
