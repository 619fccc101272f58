"""bench/student_ladder.py --quick: held-out slices that never overlap the training part, the cut as a plain BERT of
the teacher's layers, a distilled row, the tuned protocol (grid on the first seed, its choice reused by the next),
a rerun that skips what is done, and the report from the stage JSONs alone."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from magic_bert.errors import InputError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import student_ladder as ladder  # noqa: E402

STAGES = ("splits,cut,kd_combined,glue_cut_tuned,glue_kd_combined_tuned,glue_kd_combined_cutlr_s1,"
          "glue_teacher_tuned_s1,glue_kd_combined_taskkd_cutlr_s1,glue_kd_combined_taskkdh_cutlr_s1,"
          "glue_kd_combined_taskkdha_cutlr_s1,arch_,"
          "glue_arch_width_half_taskkdh_cutlr_s1,glue_arch_searched_taskkdh_cutlr_s1,stilts_data,"
          "glue_kd_combined_taskkdh_cutlr_stilts_s1,glue_kd_combined_taskkdh_cutlr_swap_s1,"
          "glue_kd_combined_taskkdh_cutlr_aug_s1,pair_latency,report,"
          "pair_report")
SEARCHED = ["heads:1", "ffn:64", "mha:4", "identity", "heads:2", "ffn:32", "identity", "ffn:128"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder")
    argv = ["--quick", "--output_dir", str(out), "--stages", STAGES, "--searched_arch", json.dumps(SEARCHED)]
    first = ladder.main(argv)
    second = ladder.main(argv)
    return out, first, second


def _result(out: Path, stage: str) -> dict:
    return json.loads((out / "results" / f"{stage}.json").read_text())


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_every_selected_stage_runs_once_and_a_rerun_only_reports(quick):
    out, first, second = quick
    assert list(first) == ["splits", "cut", "kd_combined", "glue_teacher_tuned_s1", "glue_cut_tuned_s1",
                           "glue_cut_tuned_s2", "glue_kd_combined_tuned_s1", "glue_kd_combined_tuned_s2",
                           "glue_kd_combined_cutlr_s1", "glue_kd_combined_taskkd_cutlr_s1",
                           "glue_kd_combined_taskkdh_cutlr_s1", "glue_kd_combined_taskkdha_cutlr_s1",
                           "arch_width_half",
                           "glue_arch_width_half_taskkdh_cutlr_s1", "arch_searched",
                           "glue_arch_searched_taskkdh_cutlr_s1", "stilts_data",
                           "glue_kd_combined_taskkdh_cutlr_stilts_s1", "glue_kd_combined_taskkdh_cutlr_swap_s1",
                           "glue_kd_combined_taskkdh_cutlr_aug_s1", "pair_latency", "report", "pair_report"]
    assert list(second) == ["report", "pair_report"]


@pytest.mark.slow
def test_held_out_slices_are_disjoint_from_the_training_part(quick):
    out = quick[0]
    for task in ladder.TASKS:
        train, held = ({r["idx"] for r in _rows(out / "data" / task / f"{split}.jsonl")} for split in ("train",
                                                                                                     "held_out"))
        assert held and not held & train
        # The toy training files have 32 examples: split, nothing lost (SST-2 holds out a tenth of its training part)
        assert held | train == set(range(32)) if task != "sst2" else (train == set(range(29)) and held == {29, 30})


@pytest.mark.slow
def test_the_cut_is_the_teachers_every_other_layer(quick):
    out = quick[0]
    teacher = AutoModel.from_pretrained(out / "quick_inputs" / "teacher")
    cut = AutoModel.from_pretrained(out / "models" / "cut")
    assert cut.config.num_hidden_layers == 2 and _result(out, "cut")["layers"] == [0, 2]
    for student_layer, teacher_layer in zip(cut.encoder.layer, (0, 2), strict=True):
        for name, value in student_layer.state_dict().items():
            assert torch.equal(value, teacher.encoder.layer[teacher_layer].state_dict()[name])


@pytest.mark.slow
def test_the_grid_runs_on_the_first_seed_and_the_second_reuses_its_choice(quick):
    out = quick[0]
    first, second = _result(out, "glue_cut_tuned_s1")["tasks"], _result(out, "glue_cut_tuned_s2")["tasks"]
    for task in ladder.TASKS:
        assert sorted(run["learning_rate"] for run in first[task]["runs"]) == [1e-3, 3e-3]
        chosen = max(first[task]["runs"], key=lambda run: run["score"])["learning_rate"]
        assert first[task]["learning_rate"] == chosen  # chosen on the held-out slice ...
        assert [run["learning_rate"] for run in second[task]["runs"]] == [chosen]  # ... and reused
        assert len(first[task]["predictions"]) == 16  # ... and scored on dev (16 examples), not the slice
    at_cut_rates = _result(out, "glue_kd_combined_cutlr_s1")["tasks"]
    assert {t: [r["learning_rate"] for r in at_cut_rates[t]["runs"]] for t in ladder.TASKS} == \
        {t: [first[t]["learning_rate"]] for t in ladder.TASKS}  # the distilled cut at the cut's chosen rates


@pytest.mark.slow
def test_the_distilled_row_used_its_objectives_and_the_report_shows_both_rows(quick):
    out = quick[0]
    kd = _result(out, "kd_combined")
    assert kd["flags"][kd["flags"].index("--kd_layer_map") + 1] == "uniform"  # 2:2,6:4 for a 4-layer teacher
    log = _rows(out / "models" / "kd_combined" / "train_log.jsonl")
    assert all("mlm_loss" not in r and r["kd_attention_loss"] > 0 and r["kd_embedding_loss"] > 0 for r in log)
    page = (out / "docs" / "student_recipe.md").read_text()
    assert "| cut: layers 0, 2, 4, no distillation | tuned |" in page
    assert "| cut + hidden + relations + embedding | tuned |" in page
    assert "**distillation: hidden + relations + embedding (tuned)**" in page
    assert "**distillation: hidden + relations + embedding (cutlr)**" in page
    summary = json.loads((out / "docs" / "results" / "student_recipe" / "summary.json").read_text())
    committed = out / "docs" / "results" / "student_recipe"
    assert json.loads((committed / "tasks" / "glue_cut_tuned_s1" / "cola.json").read_text()) == \
        _result(out, "glue_cut_tuned_s1")["tasks"]["cola"]  # each task's part too, for a later session to resume
    assert set(summary["summaries"]) == {"teacher/tuned", "cut/tuned", "kd_combined/tuned", "kd_combined/cutlr",
                                         "kd_combined_taskkd/cutlr", "kd_combined_taskkdh/cutlr",
                                         "arch_width_half_taskkdh/cutlr", "arch_searched_taskkdh/cutlr",
                                         "kd_combined_taskkdh/cutlr_stilts", "kd_combined_taskkdh/cutlr_swap",
                                         "kd_combined_taskkdh/cutlr_aug", "kd_combined_taskkdha/cutlr"}


def _without_output_dir(flags: list[str]) -> list[str]:
    at = flags.index("--output_dir")
    return flags[:at] + flags[at + 2:]


@pytest.mark.slow
def test_task_specific_kd_learns_from_the_teacher_fine_tuned_on_the_same_task(quick):
    out = quick[0]
    runs = _result(out, "glue_kd_combined_taskkd_cutlr_s1")["tasks"]
    for task in ladder.TASKS:
        flags = runs[task]["flags"]
        teacher = Path(flags[flags.index("--teacher_name_or_path") + 1])
        assert teacher == out / "glue" / "teacher" / "tuned" / "seed_1" / task / task / "best_model"
        assert (teacher / "config.json").is_file()  # the teacher's first tuned model is kept for this
        assert flags[flags.index("--model_name_or_path") + 1] == str(out / "models" / "kd_combined")
        hidden = _result(out, "glue_kd_combined_taskkdh_cutlr_s1")["tasks"][task]["flags"]
        at = hidden.index("--kd_hidden_weight")  # the same run, plus the hidden states, in its own folder
        assert hidden[at:at + 4] == ["--kd_hidden_weight", "1", "--kd_layer_map", "uniform"]
        assert _without_output_dir(hidden[:at] + hidden[at + 4:]) == _without_output_dir(flags)
        assert hidden[hidden.index("--output_dir") + 1] != flags[flags.index("--output_dir") + 1]
    page = (out / "docs" / "student_recipe.md").read_text()
    assert "| cut + hidden + relations + embedding + task-specific KD | cutlr |" in page
    assert "| cut + hidden + relations + embedding + task-specific KD of logits and hidden states | cutlr |" in page


@pytest.mark.slow
def test_committed_results_resume_on_a_new_machine_task_by_task(quick, tmp_path):
    """Results copied without the held-out files and models: those stages run again (to the same split); a GLUE
    stage cut short after its tasks finished takes them from results/tasks/ instead of fine-tuning again."""
    out = quick[0]
    shutil.copytree(out / "results", tmp_path / "results")
    shutil.copytree(out / "quick_inputs", tmp_path / "quick_inputs")
    (tmp_path / "results" / "glue_cut_tuned_s1.json").unlink()  # as if the session ended before the stage's end
    ran = ladder.main(["--quick", "--output_dir", str(tmp_path), "--stages", "splits,cut,glue_cut_tuned_s1"])
    assert list(ran) == ["splits", "cut", "glue_cut_tuned_s1"]
    assert not (tmp_path / "glue").exists()  # no task fine-tuned again
    assert _result(tmp_path, "glue_cut_tuned_s1")["tasks"] == _result(out, "glue_cut_tuned_s1")["tasks"]
    for task in ladder.TASKS:
        assert (tmp_path / "data" / task / "held_out.jsonl").read_text() == \
            (out / "data" / task / "held_out.jsonl").read_text()
    # The teacher's tuned models teach the task-KD rows: made again at the chosen rate only (the run checks that
    # they predict as recorded), not by the whole grid.
    assert list(ladder.main(["--quick", "--output_dir", str(tmp_path), "--stages", "glue_teacher_tuned_s1"])) == \
        ["glue_teacher_tuned_s1"]
    chosen = _result(out, "glue_teacher_tuned_s1")["tasks"]
    for task in ladder.TASKS:
        folder = tmp_path / "glue" / "teacher" / "tuned" / "seed_1" / task
        assert (folder / task / "best_model" / "config.json").is_file()
        runs = json.loads((folder / "all_results.json").read_text())["runs"]
        assert [run["learning_rate"] for run in runs] == [chosen[task]["learning_rate"]]


@pytest.mark.slow
def test_the_pairs_students_get_the_recipe_rows_distillation_and_fine_tuning(quick):
    """docs/search_study/pair_design.md: the width cut and the searched arch are distilled and fine-tuned exactly as
    the recipe's row (kd_combined, task KD of logits and hidden states, the cut's rates), from the teacher."""
    out = quick[0]
    cut = _result(out, "kd_combined")
    for name, arch in (("width_half", ["heads:2", "ffn:64"] * 4), ("searched", SEARCHED)):
        student = _result(out, f"arch_{name}")
        assert student["arch"] == arch and student["flags"] == cut["flags"]
        config = json.loads((out / "models" / f"arch_{name}" / "config.json").read_text())
        assert config["arch"] == arch
        recipe = _result(out, "glue_kd_combined_taskkdh_cutlr_s1")["tasks"]
        for task, run in _result(out, f"glue_arch_{name}_taskkdh_cutlr_s1")["tasks"].items():
            flags, theirs = run["flags"], recipe[task]["flags"]
            at = flags.index("--model_name_or_path")
            assert flags[at + 1] == str(out / "models" / f"arch_{name}")
            assert _without_output_dir(flags[:at] + flags[at + 2:]) == \
                _without_output_dir(theirs[:at] + theirs[at + 2:])


@pytest.mark.slow
def test_the_pair_report_compares_each_student_with_the_cut(quick):
    import pair_report

    from magic_bert.compression import space_from_bert

    out = quick[0]
    latency = _result(out, "pair_latency")
    space = space_from_bert(out / "quick_inputs" / "teacher").search_space
    assert latency["encoder_params"] == {name: space.encoder_params(arch) for name, arch in latency["archs"].items()}
    assert latency["ratio_to_cut"]["cut"] == 1.0 and latency["archs"]["searched"] == SEARCHED
    summary = json.loads((out / "docs" / "results" / "student_recipe" / "pair_summary.json").read_text())
    runs = pair_report.collect(out / "results", None)
    rows = pair_report.pair_rows("taskkdh")
    for name in ("searched", "width_half"):
        assert summary["versus_cut"][name] == pair_report.compare(runs, rows[name], rows["cut"], 2000)
        own = summary["students"][name]["summary"]["average"]["mean"]
        cut = summary["students"]["cut"]["summary"]["average"]["mean"]
        assert summary["versus_cut"][name]["difference"] == pytest.approx(own - cut)
    page = (out / "docs" / "search_pair.md").read_text()
    assert "- **searched − cut**, GLUE average:" in page and "- Goal (interval above zero" in page
    ratios = latency["ratio_to_cut"]
    assert (f"over the cut's: teacher {ratios['teacher']:.3f}, width_half {ratios['width_half']:.3f}, searched "
            f"{ratios['searched']:.3f} (the goal's cap 1.03)") in page
    assert set(summary["goal"]) == {"interval_above_zero", "latency_within", "share_at_least", "met"}
    assert f"the machine's 1-minute load average {latency['load_average']:.1f} before timing" in page


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    from transformers import BertConfig

    teacher = tmp_path / "teacher"  # a config is all the plan reads before it refuses
    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64).save_pretrained(teacher)
    for argv, message in ((["--seeds", "4x"], "`seeds` must be comma-separated"),
                          (["--distil_steps", "0"], "`distil_steps` must be at least 1"),
                          (["--stages", "nope"], r"`stages` 'nope': unknown \['nope'\]"),
                          (["--searched_arch", str(tmp_path / "nope.json")], "`searched_arch`: Arch file"),
                          (["--searched_arch", "mha:2 ffn:64"],
                           "`searched_arch`: Arch has 2 layers but the search space has num_hidden_layers=4"),
                          (["--searched_arch", "mha:2 ffn:7 identity identity"], "`searched_arch`: .*ffn:7"),
                          (["--searched_task_arch", "mha:2 ffn:64"],
                           "`searched_task_arch`: Arch has 2 layers but the search space has num_hidden_layers=4"),
                          (["--teacher", str(tmp_path / "o")], "`teacher` .* is not a BERT folder")):
        with pytest.raises(InputError, match=message):
            ladder.run_ladder(ladder.parse_one(ladder.LadderArguments, ["--teacher", str(teacher), *argv,
                                                                        "--output_dir", str(tmp_path / "o")]))
    assert not (tmp_path / "o").exists()


def test_the_report_names_every_task_kd_kind_of_the_ladder():
    import ladder_report

    assert set(ladder_report.TASK_KD_LABELS) == set(ladder.TASK_KD_KINDS)


def _folded_sentences(path: Path) -> list[set[str]]:
    return [{ladder.fold(row[key]) for key in ("sentence1", "sentence2")} for row in _rows(path)]


@pytest.mark.slow
def test_stilts_trains_mrpc_from_the_rows_own_decontaminated_sts_b_model(quick):
    """Design amendment 5: MRPC starts from an STS-B model of the same row and seed, trained on STS-B's training part
    less every pair that shares a sentence with MRPC's dev or held-out pairs, both at the base protocol's rates; the
    other tasks are the base protocol's results."""
    from magic_bert.glue.tasks import TASKS as GLUE
    from magic_bert.glue.tasks import read_glue_file

    out = quick[0]
    dev = read_glue_file(GLUE["mrpc"], out / "quick_inputs" / "glue" / "MRPC" / "dev.tsv")
    scored = {ladder.fold(text) for key in ("sentence1", "sentence2") for text in dev[key]}
    scored |= set().union(*_folded_sentences(out / "data" / "mrpc" / "held_out.jsonl"))
    everything = _folded_sentences(out / "data" / "stsb" / "train.jsonl")
    kept = _folded_sentences(out / "data" / ladder.STILTS_DATA / "train.jsonl")
    dropped = [pair for pair in everything if pair & scored]  # none here: the toy tasks' slices coincide
    data = _result(out, "stilts_data")
    assert not any(pair & scored for pair in kept)
    assert (data["kept"], data["dropped"]) == (len(kept), len(dropped)) and len(kept) + len(dropped) == len(everything)
    for row, protocol in ((ladder.VARIANT_ROW, "cutlr_stilts"),):
        base = _result(out, f"glue_{row}_{ladder.STILTS[protocol]}_s1")["tasks"]
        tasks = _result(out, f"glue_{row}_{protocol}_s1")["tasks"]
        for task in ("stsb", "cola", "sst2"):
            assert {k: v for k, v in tasks[task].items() if k != "from"} == base[task]
        start, flags = tasks["mrpc"]["intermediate"]["flags"], tasks["mrpc"]["flags"]
        assert start[start.index("--train_file") + 1] == str(out / "data" / ladder.STILTS_DATA / "train.jsonl")
        assert start[start.index("--task_name") + 1] == "stsb"
        model = Path(flags[flags.index("--model_name_or_path") + 1])
        assert model == Path(start[start.index("--output_dir") + 1]) / "stsb" / "best_model"
        for task, run in (("stsb", start), ("mrpc", flags)):
            assert run[run.index("--learning_rates") + 1] == f"{base[task]['learning_rate']:g}"
        assert "--teacher_name_or_path" in flags
    page = (out / "docs" / "student_recipe.md").read_text()
    assert "| cutlr_stilts |" in page and "MRPC from the row's STS-B model" in page


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "extra", "factor", "rung"), [
    ("cutlr_swap", ["--swap_pairs"], 2, "MRPC trained on its pairs swapped too"),  # design amendment 6
    ("cutlr_aug", ["--augment_copies", "4"], 5, "MRPC trained on augmented copies too"),  # design amendment 7
])
def test_a_flag_variant_runs_mrpc_with_its_flags_and_keeps_the_base_rows_other_tasks(quick, protocol, extra, factor,
                                                                                    rung):
    """The recipe's row, MRPC with the variant's flags at the base protocol's rate; the rest is cutlr's."""
    out = quick[0]
    base = _result(out, f"glue_{ladder.VARIANT_ROW}_cutlr_s1")["tasks"]
    tasks = _result(out, f"glue_{ladder.VARIANT_ROW}_{protocol}_s1")["tasks"]
    for task in ("stsb", "cola", "sst2"):
        assert {k: v for k, v in tasks[task].items() if k != "from"} == base[task]
    flags = tasks["mrpc"]["flags"]
    assert flags[-len(extra):] == extra and "--teacher_name_or_path" in flags
    assert _without_output_dir(flags[:-len(extra)]) == _without_output_dir(base["mrpc"]["flags"])
    steps = [_rows(out / "glue" / ladder.VARIANT_ROW / name / "seed_1" / "mrpc" / "train_log.jsonl")[0]["step"]
             for name in ("cutlr", protocol)]
    # The quick files' 28 training pairs: one step of 32 each; swapped, twice the pairs; augmented, 4 copies each.
    assert steps[1] == factor * steps[0]
    page = (out / "docs" / "student_recipe.md").read_text()
    assert f"| {protocol} |" in page and rung in page


@pytest.mark.slow
def test_the_augmented_row_is_the_hidden_kd_row_with_four_copies_and_its_mrpc_the_aug_variants_run(quick):
    """Design amendment 7's whole row: every task with --augment_copies 4; its MRPC has the cutlr_aug variant's flags
    (in another order), and fine-tuning being deterministic, the two runs predict the same."""
    out = quick[0]
    rows = {name: _result(out, f"glue_{name}_s1")["tasks"] for name in
            ("kd_combined_taskkdh_cutlr", "kd_combined_taskkdha_cutlr", "kd_combined_taskkdh_cutlr_aug")}
    for task in ladder.TASKS:
        flags = rows["kd_combined_taskkdha_cutlr"][task]["flags"]
        hidden = rows["kd_combined_taskkdh_cutlr"][task]["flags"]
        at = flags.index("--augment_copies")
        assert flags[at + 1] == "4" and _without_output_dir(flags[:at] + flags[at + 2:]) == _without_output_dir(hidden)
    augmented, variant = rows["kd_combined_taskkdha_cutlr"]["mrpc"], rows["kd_combined_taskkdh_cutlr_aug"]["mrpc"]
    assert ladder._flag_items(augmented["flags"]) == ladder._flag_items(variant["flags"])
    assert augmented["predictions"] == variant["predictions"]


def test_a_run_made_before_with_the_same_flags_is_not_made_again(tmp_path):
    from types import SimpleNamespace

    made = {"flags": ["--task_name", "mrpc", "--output_dir", "a", "--overwrite_output_dir", "--augment_copies", "4"],
            "score": 0.8}
    (tmp_path / "tasks" / "glue_x_s1").mkdir(parents=True)
    (tmp_path / "tasks" / "glue_x_s1" / "mrpc.json").write_text(json.dumps(made))
    plan = SimpleNamespace(results=tmp_path)
    calls = []

    def run():
        calls.append(1)
        return {"score": 0.5}

    same = ["--augment_copies", "4", "--overwrite_output_dir", "--output_dir", "b", "--task_name", "mrpc"]
    assert ladder._made_before_or(run, same, plan) == {**made, "same_run_as": "glue_x_s1"} and not calls
    for other in (["--augment_copies", "2", "--overwrite_output_dir", "--task_name", "mrpc"],
                  ["--augment_copies", "4", "--task_name", "mrpc"]):
        assert ladder._made_before_or(run, other, plan) == {"score": 0.5}
    assert len(calls) == 2
    # Every value of a flag counts; a flag given twice is refused.
    assert ladder._flag_items(["--validation_file", "a", "b"]) != ladder._flag_items(["--validation_file", "a", "c"])
    with pytest.raises(ValueError, match="a flag is given twice"):
        ladder._flag_items(["--seed", "1", "--seed", "2"])


def test_stilts_data_drops_every_sts_b_pair_that_shares_a_sentence_with_mrpcs_scored_pairs(tmp_path):
    """Case and spacing are folded; a pair is dropped for one shared sentence, from MRPC dev or its held-out slice."""
    from types import SimpleNamespace

    def jsonl(path: Path, rows: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    (tmp_path / "glue" / "MRPC").mkdir(parents=True)
    (tmp_path / "glue" / "MRPC" / "dev.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                                                        "1\t1\t2\tA dog runs.\tThe dog runs.\n")
    jsonl(tmp_path / "data" / "mrpc" / "held_out.jsonl",
          [{"sentence1": "Rain fell.", "sentence2": "It rained.", "label": 1, "idx": 0}])
    stsb = [("a  DOG runs.", "Cats sleep."), ("Birds sing.", "Fish swim."), ("Snow.", "it RAINED."),
            ("Trees grow.", "Leaves fall.")]
    jsonl(tmp_path / "data" / "stsb" / "train.jsonl",
          [{"sentence1": a, "sentence2": b, "label": 1.0, "idx": i} for i, (a, b) in enumerate(stsb)])
    plan = SimpleNamespace(glue=tmp_path / "glue", data=lambda task: tmp_path / "data" / task)
    assert ladder.stilts_data_stage(plan) == {"stsb_train": 4, "kept": 2, "dropped": 2}
    kept = _rows(tmp_path / "data" / ladder.STILTS_DATA / "train.jsonl")
    assert [(row["sentence1"], row["idx"]) for row in kept] == [("Birds sing.", 1), ("Trees grow.", 3)]


def test_a_task_result_records_how_long_its_run_took_or_keeps_a_taken_runs_time(tmp_path, monkeypatch):
    """``seconds`` is the compute's own wall time (the clock read after it), and a result taken from an identical
    earlier run keeps that run's; a cached part is read back, not computed again."""
    import stages

    now = [10.0]
    monkeypatch.setattr(stages.time, "perf_counter", lambda: now[0])

    def run(result: dict) -> dict:
        now[0] += 2.5  # the run takes 2.5 s
        return result

    plan = ladder.Plan.__new__(ladder.Plan)
    plan.out = tmp_path
    assert plan.task_result("stage", "mrpc", lambda: run({"score": 1.0})) == {"seconds": 2.5, "score": 1.0}
    assert plan.task_result("stage", "stsb", lambda: run({"score": 2.0, "seconds": 99.0}))["seconds"] == 99.0
    assert plan.task_result("stage", "mrpc", lambda: pytest.fail("computed again")) == {"seconds": 2.5,
                                                                                           "score": 1.0}


@pytest.mark.parametrize("offsets, kept", [
    ({i: 0.004 for i in range(400)}, True),  # every prediction within 5e-3
    ({0: 1.0, 7: 0.006}, True),  # 2 of 400 further off: 0.5 %, a flipped class on a near tie
    ({0: 1.0, 7: 0.006, 9: -0.01}, False),
])
def test_a_rebuilt_teacher_is_kept_only_if_it_predicts_as_the_recorded_one(tmp_path, monkeypatch, offsets, kept):
    """Results restored without models: the chosen teacher is fine-tuned again at the recorded rate; predictions
    within another machine's rounding keep it, further off it is deleted (a rerun must not take it) and the run
    stops."""
    folder = tmp_path / "stsb"
    recorded = {"learning_rate": 1e-4, "predictions": [i / 100 for i in range(400)]}
    calls = []

    def finetune(flags, where, keep_model, plan):
        calls.append((flags, keep_model))
        (where / "stsb" / "best_model").mkdir(parents=True)
        return {"predictions": [p + offsets.get(i, 0.0) for i, p in enumerate(recorded["predictions"])]}

    monkeypatch.setattr(ladder, "_finetune", finetune)
    flags = ["--task_name", "stsb", "--learning_rates", "5e-05,0.0001,0.0002"]
    if kept:
        ladder._rebuild_chosen_model(recorded, flags, folder, None)
    else:
        with pytest.raises(RuntimeError, match="does not predict as the recorded one"):
            ladder._rebuild_chosen_model(recorded, flags, folder, None)
    assert calls == [(["--task_name", "stsb", "--learning_rates", "0.0001"], True)]
    assert (folder / "stsb" / "best_model").is_dir() == kept
    assert flags[-1] == "5e-05,0.0001,0.0002"  # the caller's flags untouched
    assert not ladder.same_predictions(recorded["predictions"][:-1], recorded["predictions"])


def test_the_exploratory_searched_student_gets_the_pairs_rows_and_a_new_timing(tmp_path):
    """pair_design.md amendment 1: --searched_task_arch adds the rows arch_searched_task*, and the pair's latency is
    measured again until it has timed every student in the same rounds."""
    from transformers import BertConfig

    teacher = tmp_path / "teacher"
    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64).save_pretrained(teacher)
    arch = ["heads:1", "ffn:32", "identity", "ffn:64"]
    args = ladder.parse_one(ladder.LadderArguments, ["--teacher", str(teacher), "--output_dir", str(tmp_path / "o"),
                                                     "--seeds", "1,2", "--searched_task_arch", " ".join(arch)])
    plan = ladder.make_plan(args)
    assert plan.pair_archs["searched_task"] == arch and "searched" not in plan.pair_archs
    names = [stage.name for stage in ladder.all_stages(plan)]
    assert {"arch_searched_task", "glue_arch_searched_task_taskkdh_cutlr_s1",
            "glue_arch_searched_task_taskkdh_cutlr_s2"} <= set(names)
    assert ladder.task_kd_base("arch_searched_task_taskkdh") == "arch_searched_task"
    plan.results.mkdir(parents=True)
    timed = {"teacher": [], "cut": [], "width_half": []}
    (plan.results / "pair_latency.json").write_text(json.dumps({"stage": "pair_latency", "archs": timed}))
    assert not plan.done("pair_latency")
    timed["searched_task"] = arch
    (plan.results / "pair_latency.json").write_text(json.dumps({"stage": "pair_latency", "archs": timed}))
    assert plan.done("pair_latency")
