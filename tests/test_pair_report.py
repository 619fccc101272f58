"""bench/pair_report.py's confirmatory round (pair design, amendment 2): its fresh seeds are compared on their own,
and neither the primary pair nor the ladder's rows pool them."""

import json
import random
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import ladder_report  # noqa: E402
import pair_report  # noqa: E402
from showcase_report import task_score_of  # noqa: E402

ROWS = {"teacher": ("teacher", "tuned"), "cut": ("kd_combined_taskkdh", "cutlr"),
        "searched_task": ("arch_searched_task_taskkdh", "cutlr")}
LABELS = [0, 1] * 10


def _tasks(rng: random.Random) -> dict:
    tasks = {}
    for task in ladder_report.TASKS:
        labels = [x * 2.5 for x in LABELS] if task == "stsb" else list(LABELS)
        predictions = [rng.uniform(0, 5) for _ in labels] if task == "stsb" else \
            [y if rng.random() < 0.8 else 1 - y for y in labels]
        score = task_score_of(task, predictions, labels)
        tasks[task] = {"score": score, "reported_score": score, "learning_rate": 1e-4, "predictions": predictions,
                       "labels": labels}
    return tasks


@pytest.fixture
def results(tmp_path):
    rng = random.Random(0)
    for name, (row, protocol) in ROWS.items():
        for seed in (42, 43) if name == "teacher" else (42, 45, 46):
            (tmp_path / f"glue_{row}_{protocol}_s{seed}.json").write_text(json.dumps(
                {"row": row, "protocol": protocol, "seed": seed, "tasks": _tasks(rng)}))
    archs = {"teacher": ["mha:2", "ffn:64"] * 2, "cut": ["mha:2", "ffn:64", "identity", "identity"],
             "searched_task": ["mha:2", "ffn:32", "identity", "identity"]}
    (tmp_path / "pair_latency.json").write_text(json.dumps(
        {"batch": 1, "seq_len": 8, "threads": 1, "rounds": 3, "archs": archs,
         "encoder_params": {name: 100 for name in archs}, "median_seconds": {name: 1.0 for name in archs},
         "ratio_to_cut": {"teacher": 2.0, "cut": 1.0, "searched_task": 1.02}}))
    return tmp_path


def _average(tasks: dict) -> float:
    return 100 * statistics.mean(tasks[t]["score"] for t in ladder_report.TASKS)


def test_the_confirmatory_seeds_are_compared_alone_and_pooled_nowhere_else(results, tmp_path):
    pooled = ladder_report.collect(results, None)
    assert {key: sorted(seeds) for key, seeds in pooled.items()} == {
        ROWS["teacher"]: [42, 43], ROWS["cut"]: [42], ROWS["searched_task"]: [42]}
    fresh = ladder_report.collect(results, None, confirmatory=True)
    assert {key: sorted(seeds) for key, seeds in fresh.items()} == {ROWS["cut"]: [45, 46],
                                                                    ROWS["searched_task"]: [45, 46]}
    primary = pair_report.analyse(results, "taskkdh", samples=200)
    assert primary["students"]["searched_task"]["summary"]["seeds"] == [42] and "goal" not in primary
    confirmatory = pair_report.analyse(results, "taskkdh", samples=200, confirmatory=True)
    assert set(confirmatory["students"]) == {"cut", "searched_task"}
    teacher = statistics.mean(_average(pooled[ROWS["teacher"]][seed]) for seed in (42, 43))
    assert confirmatory["teacher_average"] == pytest.approx(teacher) == primary["teacher_average"]
    boot = confirmatory["versus_cut"]["searched_task"]
    assert boot == pair_report.compare(fresh, ROWS["searched_task"], ROWS["cut"], 200) and boot["seeds"] == 2
    difference = statistics.mean(_average(fresh[ROWS["searched_task"]][s]) - _average(fresh[ROWS["cut"]][s])
                                 for s in (45, 46))
    assert boot["difference"] == pytest.approx(difference)
    # Two of the round's three seeds: compared, but the goal is not read before the round is complete.
    assert "goal" not in confirmatory
    docs = tmp_path / "docs"
    pair_report.write_pair_report(results, docs, "taskkdh", samples=200)
    page = (docs / "search_pair.md").read_text()
    primary_part, round_part = page.split("## Amendment 2: the confirmatory round (fine-tuning seeds 45, 46, 47)")
    assert "- Goal: not decided yet (the searched student" in primary_part
    assert f"[{boot['low']:+.2f}, {boot['high']:+.2f}] (2 paired seeds" in round_part
    assert "- Goal: not decided yet (the task-searched student" in round_part and "- Goal (interval" not in round_part
    summary = json.loads((docs / "results" / "student_recipe" / "pair_summary.json").read_text())
    assert summary["confirmatory"]["versus_cut"]["searched_task"] == boot
