"""--student_recipe: a named set of option values for distillation and fine-tuning; recipe < --config file < flags."""

import dataclasses
import json
from pathlib import Path

import pytest

from magic_bert.cli import parse_one
from magic_bert.errors import InputError
from magic_bert.glue.arguments import FinetuneArguments
from magic_bert.search.arguments import ExportArguments
from magic_bert.student_recipes import STUDENT_RECIPES, recipe_options
from magic_bert.training.arguments import PretrainArguments, parse_pretrain_args

RECIPE = "showcase-v1"


@pytest.mark.parametrize("name", list(STUDENT_RECIPES))
def test_every_recipe_sets_only_options_its_commands_have(name):
    for cls, command in ((PretrainArguments, "pretrain"), (FinetuneArguments, "finetune")):
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(recipe_options(name, command, with_teacher=True)) <= names
    args = PretrainArguments.from_recipe(name, output_dir="o", preset="tiny", teacher_name_or_path="teacher")
    args.check()  # the recipe's own values pass the checks
    assert args.student_recipe == name


def test_the_recipe_fills_in_values_and_a_config_file_and_flags_override_them(tmp_path):
    options = recipe_options(RECIPE, "pretrain")
    parsed = parse_pretrain_args(["--student_recipe", RECIPE, "--output_dir", "o"])
    assert parsed.student_recipe == RECIPE
    assert {k: getattr(parsed, k) for k in options} == options
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"learning_rate": 7e-4, "kd_hidden_weight": 3.0}))
    parsed = parse_pretrain_args(["--student_recipe", RECIPE, "--config", str(config), "--kd_hidden_weight", "2",
                                  "--output_dir", "o"])
    assert (parsed.learning_rate, parsed.kd_hidden_weight) == (7e-4, 2.0)  # file over recipe, flag over file
    config.write_text(json.dumps({"student_recipe": RECIPE}))  # the recipe named in a config file works too
    assert parse_pretrain_args(["--config", str(config), "--output_dir", "o"]).kd_hidden_weight == \
        options["kd_hidden_weight"]
    glue = parse_one(FinetuneArguments, ["--student_recipe", RECIPE, "--model_name_or_path", "m"])
    assert glue.learning_rate == recipe_options(RECIPE, "finetune")["learning_rate"]
    assert FinetuneArguments.from_recipe(RECIPE, learning_rate=1e-3).learning_rate == 1e-3


@pytest.mark.parametrize(("cls", "argv", "message"), [
    (PretrainArguments, ["--student_recipe", "magic"], r"--student_recipe 'magic' is not a recipe; choose one of"),
    (ExportArguments, ["--student_recipe", RECIPE], "this command takes no student recipe"),
])
def test_an_unknown_recipe_or_a_command_without_recipes_is_one_clear_error(cls, argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_one(cls, [*argv, "--output_dir", "o"])
    assert message in capsys.readouterr().err


def test_from_recipe_refuses_an_unknown_name():
    with pytest.raises(InputError, match="`student_recipe` 'x' is not a recipe"):
        FinetuneArguments.from_recipe("x")


@pytest.mark.parametrize(("recipe", "kind"), [("ladder-v1", "_taskkdh"), ("ladder-v2", "_taskkdha")])
def test_the_ladders_recipe_is_what_the_ladder_measured(monkeypatch, recipe, kind):
    """ladder-v1 = the ladder's `combined` objectives at its distillation rate, fine-tuned with its tuned protocol's
    grid, warm-up and batch (not its per-task epochs), with the task-KD settings of its task-KD rows; ladder-v2 the
    same with the augmented rows' task KD."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import student_ladder as ladder

    ours = recipe_options(recipe, "pretrain")
    measured = parse_pretrain_args([*ladder.OBJECTIVES["combined"], "--teacher_name_or_path", "t", "--arch",
                                    "mha:2 ffn:8", "--output_dir", "o", "--learning_rate",
                                    str(ladder.LadderArguments().distil_learning_rate)])
    assert ours == {name: getattr(measured, name) for name in ours}
    tuned = ladder.PROTOCOLS["tuned"]
    glue = FinetuneArguments.from_recipe(recipe, model_name_or_path="m")
    assert glue.learning_rate_grid() == list(tuned.learning_rates)
    assert (glue.warmup_ratio, glue.per_device_train_batch_size) == (tuned.warmup_ratio, tuned.batch_size)
    # With a fine-tuned teacher: the task KD of the ladder's rows of that kind (logits and hidden states; copies).
    measured = parse_one(FinetuneArguments, [*ladder.TASK_KD_KINDS[kind], "--model_name_or_path", "m"])
    task_kd = STUDENT_RECIPES[recipe].task_kd
    assert task_kd == {name: getattr(measured, name) for name in task_kd}
    with_teacher = FinetuneArguments.from_recipe(recipe, model_name_or_path="m", teacher_name_or_path="t")
    assert {name: getattr(with_teacher, name) for name in task_kd} == task_kd


@pytest.mark.parametrize(("given", "hidden_weight"), [
    ([], 0.0),  # no teacher: the recipe's task KD is left out (it would be refused without one)
    (["--teacher_name_or_path", "t"], 1.0),
    (["--teacher_name_or_path=t"], 1.0),
    (["--teacher_name_or_path", "t", "--kd_hidden_weight", "0"], 0.0),  # a flag still wins
    (["--config", "{config}"], 1.0),  # the teacher named in a config file
])
def test_a_recipes_task_kd_applies_only_with_a_fine_tuned_teacher(tmp_path, given, hidden_weight):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"teacher_name_or_path": "t"}))
    argv = ["--student_recipe", "ladder-v1", "--model_name_or_path", "m", *[a.format(config=config) for a in given]]
    parsed = parse_one(FinetuneArguments, argv)
    assert parsed.kd_hidden_weight == hidden_weight
    assert parsed.learning_rates == "5e-5,1e-4,2e-4"


def test_ladder_v2_augments_only_with_a_fine_tuned_teacher():
    """The copies have no labels: without a teacher to distil from they would teach nothing (and are refused)."""
    argv = ["--student_recipe", "ladder-v2", "--model_name_or_path", "m"]
    assert parse_one(FinetuneArguments, argv).augment_copies == 0
    assert parse_one(FinetuneArguments, [*argv, "--teacher_name_or_path", "t"]).augment_copies == 4
