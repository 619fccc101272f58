"""bench/search_evaluations.py on a tiny trained supernet: every way of scoring runs on the raced search's children,
the masked head scores as the full one did, and what racing paid per child is the search's own record."""

import json
import sys
from pathlib import Path

import pytest

from magic_bert.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import search_evaluations  # noqa: E402


def test_every_variant_scores_the_raced_searchs_children(trained_supernet_dir, tmp_path, capsys):
    results = tmp_path / "evaluations.json"
    result = search_evaluations.main([
        "--supernet", str(trained_supernet_dir), "--output_dir", str(tmp_path / "search"), "--results", str(results),
        "--population_size", "4", "--generations", "3", "--children", "5", "--eval_batch", "1",
        "--max_seq_length", "64"])
    record = [json.loads(line) for line in (tmp_path / "search" / "candidates.jsonl").read_text().splitlines()]
    assert result["raced_search_children"] == len(record) == 12
    by_arch = {" ".join(row["arch"]): row for row in record}
    assert len(result["children"]) == 5 and set(result["children"]) <= set(by_arch)
    ends = [" ".join(record[0]["arch"]), " ".join(record[-1]["arch"])]
    assert [result["children"][0], result["children"][-1]] == ends  # spread over the whole record
    # What racing paid is scored again: the same losses the search recorded (its screen, or its full score).
    for arch, loss in zip(result["children"], result["losses"]["raced bf16"], strict=True):
        assert loss == pytest.approx(by_arch[arch]["loss"], abs=1e-6)
    assert result["max_loss_diff_masked_head"] <= 1e-5
    assert set(result["variants"]) == {"filed", "masked head", "default", "bf16", "raced bf16"}
    assert result["variants"]["filed"]["children_per_time_vs_filed"] == pytest.approx(1.0)
    assert result["variants"]["masked head"]["kendall_tau_vs_filed"] == pytest.approx(1.0)
    assert all(len(seconds) == 5 for seconds in result["seconds"].values())
    assert json.loads(results.read_text())["losses"] == result["losses"]
    assert "children per time vs filed" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    ([], "`supernet` is required"),
    (["--supernet", "x", "--screen_batches", "4"], "`screen_batches` 4 must be below"),
    (["--supernet", "x", "--children", "1"], "children"),
])
def test_bad_settings_are_one_error_before_anything_runs(tmp_path, flags, message):
    with pytest.raises(InputError, match=message):
        search_evaluations.compare(search_evaluations.parse_one(
            search_evaluations.EvaluationsArguments, [*flags, "--output_dir", str(tmp_path / "out")]))
    assert not (tmp_path / "out").exists()
