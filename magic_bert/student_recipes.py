"""Named student recipes: the option values with which every student (searched or hand-designed) is distilled from
its teacher (``magic-bert-pretrain``) and fine-tuned (``magic-bert-glue``), as chosen by the ablation ladder
(``bench/student_ladder.py``, ``docs/student_recipe.md``).

On the command line ``--student_recipe NAME`` fills in the recipe's values; a ``--config`` file and flags typed on the
command line override any of them (recipe < config file < command line). A recipe's task-specific KD values apply to
fine-tuning only when a fine-tuned teacher is given (``--teacher_name_or_path``, on the command line or in the file).
In Python, ``PretrainArguments.from_recipe(NAME, output_dir=..., ...)`` and ``FinetuneArguments.from_recipe(...)`` do
the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError


@dataclass(frozen=True)
class StudentRecipe:
    description: str
    pretrain: dict[str, object] = field(default_factory=dict)  # magic-bert-pretrain options
    finetune: dict[str, object] = field(default_factory=dict)  # magic-bert-glue options
    # magic-bert-glue options that apply only with a fine-tuned teacher (--teacher_name_or_path): task-specific KD
    task_kd: dict[str, object] = field(default_factory=dict)


LADDER_V1_PRETRAIN = {"mlm_weight": 0.0, "kd_hidden_weight": 1.0, "kd_layer_map": "uniform",
                      "kd_attention_weight": 1.0, "kd_embedding_weight": 1.0, "learning_rate": 1e-4}
LADDER_V1_FINETUNE = {"learning_rates": "5e-5,1e-4,2e-4", "warmup_ratio": 0.1, "per_device_train_batch_size": 32}
LADDER_V1_TASK_KD = {"kd_alpha": 0.5, "kd_temperature": 1.0, "kd_hidden_weight": 1.0, "kd_layer_map": "uniform"}

STUDENT_RECIPES = {
    "showcase-v1": StudentRecipe(
        "The compression showcase's first recipe: masked-LM through a fresh head + hidden-state MSE (lr 1e-4); "
        "fine-tuning at lr 5e-5 with 10 % warm-up.",
        pretrain={"kd_hidden_weight": 1.0, "learning_rate": 1e-4},
        finetune={"learning_rate": 5e-5, "warmup_ratio": 0.1}),
    "ladder-v1": StudentRecipe(
        "The ablation ladder's recipe row before ladder-v2 (over three seeds: 94.2 % of the teacher's GLUE "
        "average, docs/student_recipe.md; the attention-relation objective alone has the higher held-out average "
        "without task KD, 67.1 vs 65.8 at one seed, its task-KD row not run): distillation by the teacher's "
        "hidden states on TinyBERT's uniform layer map + "
        "MiniLMv2 self-attention relations + the mean-pooled sentence embedding (cosine), no masked-LM, lr 1e-4; "
        "fine-tuning over the grid 5e-5, 1e-4, 2e-4 with 10 % warm-up, batch 32, the rate and epoch chosen on the "
        "validation file (pass a held-out slice of your training data, not the dev set you report); the ladder's "
        "epochs per task (MRPC 4, STS-B 4, CoLA 3, SST-2 2) are --num_train_epochs. With --teacher_name_or_path (the "
        "teacher fine-tuned on the task) fine-tuning adds task-specific KD of its logits (kd_alpha 0.5, temperature "
        "1) and its hidden states (kd_hidden_weight 1 on the uniform map).",
        pretrain=LADDER_V1_PRETRAIN, finetune=LADDER_V1_FINETUNE,
        task_kd=LADDER_V1_TASK_KD),
    "ladder-v2": StudentRecipe(
        "ladder-v1 with TinyBERT's data augmentation in task-specific KD (design amendment 7, "
        "docs/student_recipe.md): with --teacher_name_or_path every training example is also trained on as 4 copies "
        "whose words are replaced (probability 0.4) by one of their 15 nearest whole words in the fine-tuned "
        "teacher's input embeddings; the copies get the distillation terms only. Fine-tuning takes about 5 times as "
        "long. The ladder's best row by held-out average (71.2 vs ladder-v1's 70.1, seed 42); over three seeds the "
        "DistilBERT-style student keeps 96.0 % of the teacher's GLUE dev average (67.6 vs 70.4; ladder-v1 66.3, "
        "+1.3 [-0.6, +3.0]).",
        pretrain=LADDER_V1_PRETRAIN, finetune=LADDER_V1_FINETUNE,
        task_kd={**LADDER_V1_TASK_KD, "augment_copies": 4, "augment_probability": 0.4, "augment_neighbours": 15}),
}


def recipe_options(name: str, command: str, with_teacher: bool = False) -> dict[str, object]:
    """The values recipe ``name`` sets for ``command`` (``"pretrain"`` or ``"finetune"``); fine-tuning
    ``with_teacher`` (a fine-tuned teacher given) adds the recipe's task-specific KD."""
    if name not in STUDENT_RECIPES:
        raise InputError(f"`student_recipe` {name!r} is not a recipe; choose one of {list(STUDENT_RECIPES)}.")
    recipe = STUDENT_RECIPES[name]
    options = dict(getattr(recipe, command))
    if command == "finetune" and with_teacher:
        options |= recipe.task_kd
    return options


class TakesStudentRecipe:
    """For an arguments dataclass with a ``student_recipe`` field: the recipe's values for its command."""

    recipe_command: str  # "pretrain" or "finetune"

    @classmethod
    def recipe_options(cls, name: str, with_teacher: bool = False) -> dict[str, object]:
        return recipe_options(name, cls.recipe_command, with_teacher)

    @classmethod
    def from_recipe(cls, name: str, **overrides):
        """The arguments with recipe ``name``'s values, then ``overrides`` (as flags typed after it)."""
        options = cls.recipe_options(name, with_teacher=overrides.get("teacher_name_or_path") is not None)
        return cls(**{**options, "student_recipe": name, **overrides})


RECIPE_HELP = ("A named student recipe (docs/student_recipe.md): sets its options' values; a --config file and flags "
               "on the command line override them.")

__all__ = ["RECIPE_HELP", "STUDENT_RECIPES", "StudentRecipe", "TakesStudentRecipe", "recipe_options"]
