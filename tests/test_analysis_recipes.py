"""The analysis command lines end to end at tiny size: interference, rank correlation, and the study's --quick mode."""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest

from .test_analysis import is_png

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))
sys.path.insert(0, str(REPO / "bench"))
import analyze_interference  # noqa: E402
import magic_study  # noqa: E402
import rank_correlation as rank_recipe  # noqa: E402


def test_interference_recipe(tmp_path, trained_supernet_dir, capsys):
    out = tmp_path / "interference"
    analyze_interference.main(["--supernet", str(trained_supernet_dir), "--output_dir", str(out), "--layer", "2",
                               "--op", "mha:2", "--num_children", "4", "--pairs_per_m", "2", "--num_batches", "2",
                               "--per_device_batch_size", "4", "--max_seq_length", "64"])
    matrix = json.loads((out / "similarity_matrix.json").read_text())
    assert matrix["layer"] == 2 and matrix["op"] == "mha:2" and len(matrix["children"]) == 4
    assert all(child[2] == "mha:2" for child in matrix["children"])
    for kind in ("gradient", "input", "output"):
        assert [row[i] for i, row in enumerate(matrix[kind])] == pytest.approx([1.0] * 4, abs=1e-9)
    rows = json.loads((out / "similarity_vs_m.json").read_text())["rows"]
    assert [r["m"] for r in rows] == [1, 2, 3] and all(r["num_pairs"] == 2 for r in rows)
    assert is_png(out / "similarity_matrix.png") and is_png(out / "similarity_vs_m.png")
    assert "gradient (mean ± std)" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    (["--layer", "1", "--op", "identity"], "has no parameters"),
    (["--layer", "9", "--op", "mha:2"], "--layer 9 is out of range"),
    (["--num_children", "0"], "--num_children must be at least 1"),
])
def test_interference_recipe_refuses_bad_input_before_writing(tmp_path, trained_supernet_dir, flags, message):
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match=message):
        analyze_interference.main(["--supernet", str(trained_supernet_dir), "--output_dir", str(out), *flags])
    assert not out.exists()


def test_interference_recipe_refuses_children_that_do_not_share_the_op(tmp_path, trained_supernet_dir):
    children = tmp_path / "children.json"
    children.write_text(json.dumps([["mha:2", "ffn:128", "conv:3", "identity"], ["mha:1", "ffn:256", "conv:3",
                                                                                  "identity"]]))
    with pytest.raises(SystemExit, match=r"not shared by every child: children \[1\] use \['ffn:256'\]"):
        analyze_interference.main(["--supernet", str(trained_supernet_dir), "--output_dir", str(tmp_path / "o"),
                                   "--layer", "1", "--op", "ffn:128", "--children_file", str(children)])
    assert not (tmp_path / "o").exists()


def test_rank_correlation_recipe_shares_one_standalone_set(tmp_path, trained_supernet_dir, word_tokenizer_dir):
    common = ["--num_children", "3", "--standalone_steps", "4", "--num_warmup_steps", "0",
              "--per_device_train_batch_size", "4", "--max_seq_length", "64", "--synthetic_documents", "300",
              "--num_eval_batches", "1", "--per_device_eval_batch_size", "8", "--cache_dir", str(tmp_path / "cache")]
    first = rank_recipe.correlate(rank_recipe.parse_args([
        "--supernet", str(trained_supernet_dir), "--output_dir", str(tmp_path / "one"), *common]))
    assert first["trained_now"] == 3 and len(first["standalone"]) == 3
    # Two supernets (the same one twice) against the cached set: nothing is trained again, and equal inputs give
    # equal correlations.
    second = rank_recipe.correlate(rank_recipe.parse_args([
        "--supernet", str(trained_supernet_dir), str(trained_supernet_dir), "--output_dir", str(tmp_path / "two"),
        *common]))
    assert second["trained_now"] == 0 and second["standalone"] == first["standalone"]
    report = json.loads((tmp_path / "two" / "rank_correlation.json").read_text())
    a, b = report["supernets"]
    assert a["kendall_tau"] == b["kendall_tau"] == first["supernets"][0]["kendall_tau"]
    assert -1 <= a["kendall_tau"] <= 1 and a["num_children"] == 3
    assert is_png(tmp_path / "two" / "rank_scatter.png")


def test_rank_correlation_recipe_refuses_bad_input(tmp_path, trained_supernet_dir):
    for flags, message in ((["--num_children", "2"], "--num_children must be at least 3, got 2"),
                           (["--max_params", "1000"], "Infeasible parameter budget"),
                           # the supernet held out the embedded corpus of seed 42, which opens the one of seed 43
                           (["--seed", "43"], "--seed 43: the standalone children would train on the embedded")):
        out = tmp_path / "never"
        with pytest.raises(SystemExit, match=message):
            rank_recipe.main(["--supernet", str(trained_supernet_dir), "--output_dir", str(out), *flags])
        assert not out.exists() and not (tmp_path / "standalone_cache").exists()


@pytest.mark.slow
def test_study_quick_end_to_end(tmp_path):
    out = tmp_path / "study"
    settings = magic_study.parse_args(["--quick", "--output_dir", str(out)])
    assert settings.train_file is None  # --quick uses the embedded corpus
    logged = []
    report = magic_study.run_study(settings, log=logged.append)
    summary = report["summary"]
    assert list(summary) == ["spos", "magic-t", "magic-a", "magic-at"]
    for entry in summary.values():
        assert len(entry["kendall_tau"]["values"]) == 2  # two seeds
        assert all(-1 <= tau <= 1 for tau in entry["kendall_tau"]["values"])
        assert [p["m"] for p in entry["similarity_vs_m"]] == [1, 2, 3]
    assert len(report["runs"]) == 8 and len(report["standalone"]) == 4
    for entry in report["standalone"]:  # the reference is the mean over the two standalone seeds
        assert entry["eval_loss"] == pytest.approx(sum(r["eval_loss"] for r in entry["per_seed"].values()) / 2)
    assert -1 <= report["standalone_seed_agreement"]["kendall_tau"] <= 1
    for name in ("similarity_vs_m.png", "rank_scatter.png", "similarity_matrix_magic-at.png"):
        assert is_png(out / name)
    assert "| magic-at |" in (out / "study.md").read_text()
    reference = [entry["eval_loss"] for entry in report["standalone"]]
    for run in report["runs"]:  # each anchor run's final anchor, trained alone, placed among the children
        if run["sampler"] in ("spos", "magic-t"):
            assert "final_anchor" not in run
            continue
        anchor = run["final_anchor"]
        assert anchor["arch"] == run["train_results"]["eval_arch"] and anchor["of"] == 4
        assert anchor["rank"] == 1 + sum(loss < anchor["standalone_loss"] for loss in reference)
    for sampler in ("magic-a", "magic-at"):
        mine = [run for run in report["runs"] if run["sampler"] == sampler]
        assert summary[sampler]["anchor_swap_rate"]["values"] == [r["train_results"]["anchor_swap_rate"] for r in mine]
        assert summary[sampler]["final_anchor_rank"]["values"] == [r["final_anchor"]["rank"] for r in mine]
    assert "anchor_swap_rate" not in summary["spos"]
    assert "magic-at: the anchor changed at" in (out / "study.md").read_text()
    assert json.loads((out / "study.json").read_text())["summary"] == json.loads(json.dumps(summary))
    # A second run reuses every supernet and standalone child and gives the same numbers.
    logged.clear()
    again = magic_study.run_study(settings, log=logged.append)
    assert sum(line.startswith("reusing") for line in logged) == 8
    assert sum(line.startswith("measurements reused") for line in logged) == 8  # no child scored again
    standalone_lines = [line for line in logged if line.startswith("standalone set")]
    assert len(standalone_lines) == 2 and all("(0 trained now)" in line for line in standalone_lines)
    assert again["summary"] == summary
    # Another measuring setting: the supernets are reused but measured again, to the same inherited losses.
    logged.clear()
    fewer_pairs = magic_study.run_study(dataclasses.replace(settings, pairs_per_m=1), log=logged.append)
    assert sum(line.startswith("reusing") for line in logged) == 8
    assert not any(line.startswith("measurements reused") for line in logged)
    assert [run["inherited_losses"] for run in fewer_pairs["runs"]] == [run["inherited_losses"]
                                                                         for run in report["runs"]]
    assert fewer_pairs["runs"][0]["similarity_vs_m"] != report["runs"][0]["similarity_vs_m"]


@pytest.mark.slow
def test_study_v2_quick_primary_comparison_and_committed_reference(tmp_path):
    out, reference = tmp_path / "study", tmp_path / "reference.json"
    argv = ["--quick", "--design", "v2", "--output_dir", str(out), "--reference_file", str(reference),
            "--exploratory_samplers", "magic-t"]
    settings = magic_study.parse_args(argv)
    assert (settings.samplers, settings.primary, settings.seeds) == (["spos", "magic-at"], ["magic-at", "spos"], [0, 1])
    assert (settings.exploratory_seeds, settings.standalone_lengths, settings.anchor_swap_margin) == ([0], [10, 20], 2)
    report = magic_study.run_study(settings, log=lambda line: None)
    assert [r["sampler"] for r in report["runs"]] == ["spos", "magic-at", "spos", "magic-at", "magic-t"]
    assert report["summary"]["magic-t"]["exploratory"] and not report["summary"]["spos"]["exploratory"]
    # The primary comparison is the mean of the per-seed τ differences, with its interval around it.
    primary = report["primary_comparison"]["all_pairs"]
    taus = {(r["sampler"], r["seed"]): r["kendall_tau"] for r in report["runs"]}
    assert primary["difference"] == pytest.approx(sum(taus[("magic-at", s)] - taus[("spos", s)] for s in (0, 1)) / 2)
    assert primary["low"] <= primary["difference"] <= primary["high"]
    assert set(report["standalone_seed_agreement_by_length"]) == {"10", "20"}
    assert (report["standalone_seed_agreement_by_length"]["20"]["kendall_tau"]
            == pytest.approx(report["standalone_seed_agreement"]["kendall_tau"]))  # 20 is the schedule's end
    assert "probe_grad_cosine_mean" in report["summary"]["magic-t"]
    stored = json.loads(reference.read_text())
    assert [c["arch"] for c in stored["children"]] == report["children"]
    # The MAGIC-AT runs' final anchors that are not children are stored beside them, trained alone once each.
    anchors = {tuple(run["final_anchor"]["arch"]) for run in report["runs"] if run["sampler"] == "magic-at"}
    others = [tuple(entry["arch"]) for entry in stored["others"]]
    assert sorted(others) == sorted(anchors - {tuple(arch) for arch in report["children"]})
    assert not any("final_anchor" in run for run in report["runs"] if run["sampler"] != "magic-at")
    # Without the standalone cache the committed reference is read, nothing is retrained, the numbers are equal.
    shutil.rmtree(out / "standalone_cache")
    logged = []
    assert magic_study.run_study(settings, log=logged.append)["summary"] == report["summary"]
    assert f"standalone reference read from {reference}" in logged and not (out / "standalone_cache").exists()
    # A reference made for other inputs is refused before anything is trained.
    stored["fingerprint"]["eval_blocks"] = 999
    reference.write_text(json.dumps(stored))
    with pytest.raises(SystemExit, match=r"belongs to other inputs \(eval_blocks differ\)"):
        magic_study.main(argv)


@pytest.mark.slow
def test_study_intervention_quick_same_children_fixed_anchor_paired_block(tmp_path):
    from scipy import stats

    out = tmp_path / "study"
    argv = ["--quick", "--design", "intervention", "--output_dir", str(out), "--supernet_steps", "12"]
    # τ needs a reference: asking for a primary comparison without standalone seeds is refused before any work.
    with pytest.raises(SystemExit, match=r"standalone_seeds is empty .* \['primary'\] need one"):
        magic_study.main([*argv, "--primary", "magic-a", "spos"])
    assert not out.exists()
    settings = magic_study.parse_args(argv)
    assert (settings.samplers, settings.primary, settings.standalone_seeds, settings.seeds) == (
        ["spos", "magic-a"], [], [], [0, 1])
    assert settings.fixed_anchor and (settings.align_hidden_weight, settings.align_logits_weight) == (1.0, 0.0)
    report = magic_study.run_study(settings, log=lambda line: None)
    supernets = out / "supernets"
    for seed in (0, 1):
        spos, aligned = ([json.loads(line) for line in (supernets / f"{name}-seed{seed}" / "train_log.jsonl").open()]
                         for name in ("spos", "magic-a"))
        # MAGIC-A draws SPOS's children, on the same batches (equal first-step masked-LM loss, before any update).
        assert [r["arch"] for r in spos] == [r["arch"] for r in aligned] and len(spos) == 12
        assert spos[0]["mlm_loss"] == aligned[0]["mlm_loss"]
        # Paper-mode alignment is on (hidden states only), and the anchor is never checked, so never swapped.
        assert any(r["align_hidden_loss"] > 0 for r in aligned) and not any("align_logits_loss" in r for r in aligned)
        results = json.loads((supernets / f"magic-a-seed{seed}" / "all_results.json").read_text())
        assert (results["anchor_swaps"], results["anchor_checks"]) == (0, 0)
        history = supernets / f"magic-a-seed{seed}" / "anchor_history.jsonl"
        assert not history.exists() or history.read_text() == ""
    # The block equals its recomputation from the runs: per m, magic-a − spos of the pairs' mean similarity, by seed.
    curves = {(r["sampler"], r["seed"]): r["similarity_vs_m"] for r in report["runs"]}
    block = report["intervention"]
    assert (block["first"], block["second"], [row["m"] for row in block["by_m"]]) == ("spos", "magic-a", [1, 2, 3])
    for index, row in enumerate(block["by_m"]):
        assert curves[("spos", 0)][index]["pairs"] == curves[("magic-a", 0)][index]["pairs"]  # the same pairs
        for kind in ("gradient", "input", "output"):
            diffs = [curves[("magic-a", s)][index][f"{kind}_mean"] - curves[("spos", s)][index][f"{kind}_mean"]
                     for s in (0, 1)]
            half = stats.t.ppf(0.975, 1) * stats.tstd(diffs) / 2 ** 0.5
            assert row[kind]["values"] == pytest.approx(diffs, abs=1e-12)
            assert (row[kind]["low"], row[kind]["mean"], row[kind]["high"]) == pytest.approx(
                (sum(diffs) / 2 - half, sum(diffs) / 2, sum(diffs) / 2 + half), abs=1e-12)
    pooled = [sum(row["gradient"]["values"][i] for row in block["by_m"]) / 3 for i in (0, 1)]
    assert block["all_m"]["gradient"]["values"] == pytest.approx(pooled, abs=1e-12)
    assert json.loads((out / "study.json").read_text())["intervention"] == json.loads(json.dumps(block))
    # No standalone reference: nothing trained alone, no τ anywhere, "–" in the table, no rank scatter.
    assert report["standalone"] == [] and report["standalone_seed_agreement"] is None
    assert not (out / "standalone_cache").exists() and not (out / "rank_scatter.png").exists()
    assert all("kendall_tau" not in run for run in report["runs"])
    assert all(entry["kendall_tau"] is None and entry["spearman_rho"] is None for entry in report["summary"].values())
    table = (out / "study.md").read_text()
    assert "| spos | 2 | – | – | – |" in table and "Intervention (magic-a − spos" in table


def test_study_refuses_bad_settings_before_training(tmp_path):
    with pytest.raises(SystemExit, match="unknown sampler 'fast'.*num_children=2"):
        magic_study.main(["--quick", "--output_dir", str(tmp_path / "s"), "--samplers", "spos", "fast",
                          "--num_children", "2"])
    assert not (tmp_path / "s").exists()
