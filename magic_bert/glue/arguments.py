"""The arguments of GLUE fine-tuning (``magic-bert-glue`` / ``recipes/finetune_glue.py``), with every cheap check of
their values in :meth:`FinetuneArguments.check` (the command line and the library entry both run it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers.trainer_utils import SchedulerType

from ..cli import arg, at_least, check_report_to, check_seed, in_range, positive
from ..errors import InputError, check_local_path
from ..io_utils import check_output_dir
from ..student_recipes import RECIPE_HELP, STUDENT_RECIPES, TakesStudentRecipe
from .tasks import FILE_TYPES, PAPER_ORDER, TASKS, get_task, parse_number


@dataclass
class FinetuneArguments(TakesStudentRecipe):
    recipe_command = "finetune"
    model_name_or_path: str = arg(None, "Our exported checkpoints, plain BERT, anything "
                                        "AutoModelForSequenceClassification loads.")
    task_name: str | None = arg(None, "A GLUE task, or 'all' for the eight in turn; leave it out to train on your own "
                                      "--train_file/--validation_file.", choices=[*PAPER_ORDER, "all"])
    train_file: str | None = arg(None, "Local training file (csv/tsv/json/jsonl; for a GLUE task the Hub's or the "
                                       "original GLUE layout).")
    validation_file: list[str] | None = arg(None, "Dev file(s); MNLI takes matched then mismatched.")
    test_file: list[str] | None = arg(None, "Test file(s) for submission predictions (MNLI: two).")
    text_columns: list[str] | None = arg(None, "Your own data: the one or two text columns (default: the columns "
                                               "other than the label and idx).")
    label_column: str = arg("label", "Your own data: the label column. Strings or integers are classes, floats "
                                     "regression.")
    data_dir: str | None = arg(None, "A folder with the original GLUE layout (MRPC/train.tsv, ...), for any task.")
    max_seq_length: int = arg(128, "Longer inputs are truncated.")
    pad_to_max_length: bool = arg(False, "Pad every batch to --max_seq_length (default: dynamic padding).")
    per_device_train_batch_size: int = arg(32, "Batch size per device for training.")
    per_device_eval_batch_size: int = arg(64, "Batch size per device for evaluation.")
    learning_rate: float = arg(2e-5, "Peak learning rate (AdamW).")
    learning_rates: str | None = arg(None, "A grid, e.g. '1e-5,2e-5,3e-5': every run recorded, best dev kept.")
    weight_decay: float = arg(0.0, "AdamW weight decay.")
    num_train_epochs: int = arg(3, "Epochs.")
    max_train_steps: int | None = arg(None, "Total steps (overrides --num_train_epochs).")
    gradient_accumulation_steps: int = arg(1, "Micro-batches per optimizer step.")
    lr_scheduler_type: SchedulerType = arg("linear", "Learning-rate schedule.")
    num_warmup_steps: int = arg(0, "Warm-up steps.")
    warmup_ratio: float = arg(0.0, "Warm-up as a fraction of the steps (used when --num_warmup_steps is 0).")
    max_grad_norm: float = arg(1.0, "Gradient clipping (0 disables).")
    teacher_name_or_path: str | None = arg(None, "A fine-tuned teacher for this task (prediction-layer KD).")
    kd_alpha: float = arg(0.5, "loss = (1 - kd_alpha) * task loss + kd_alpha * KD (KL; MSE for regression).")
    kd_temperature: float = arg(1.0, "Softmax temperature of the KD KL.")
    kd_hidden_weight: float = arg(0.0, "Intermediate-layer KD (TinyBERT): weight of the MSE between the student's and "
                                       "the teacher's hidden states through --kd_layer_map, added to the loss; needs "
                                       "--teacher_name_or_path.")
    kd_layer_map: str = arg("uniform", "--kd_hidden_weight's pairs 'student:teacher,...' of indices into "
                                       "hidden_states (0 = embeddings), or 'uniform': the student's (non-empty) layers "
                                       "matched with teacher layers spread evenly, the last with the last.")
    init_from_mnli: str | None = arg(None, "An MNLI fine-tuned checkpoint to start RTE, MRPC and STS-B from.")
    max_train_samples: int | None = arg(None, "Use the first N training examples.")
    swap_pairs: bool = arg(False, "Also train on every pair with its two texts swapped (after --max_train_samples): "
                                  "twice the training examples, labels unchanged; for the tasks whose label does "
                                  "not depend on the order (MRPC, STS-B, QQP).")
    augment_copies: int = arg(0, "Task-specific data augmentation (TinyBERT): every training example also as N copies "
                                 "whose words are replaced by --augment_probability with one of their "
                                 "--augment_neighbours nearest words (the teacher's input embeddings); the copies "
                                 "get the distillation terms only. Needs --teacher_name_or_path.")
    augment_probability: float = arg(0.4, "Probability of replacing each replaceable word of a copy (TinyBERT's).")
    augment_neighbours: int = arg(15, "How many nearest words a word is replaced by one of (TinyBERT's K).")
    max_eval_samples: int | None = arg(None, "Use the first N examples of each dev set.")
    student_recipe: str | None = arg(None, RECIPE_HELP, choices=list(STUDENT_RECIPES))
    seed: int = arg(42, "Seed of the head's initialisation, data order and dropout.")
    output_dir: str | None = arg(None, "Where results, predictions and the best models go (required).")
    overwrite_output_dir: bool = arg(False, "Replace a non-empty --output_dir.")
    save_best_model: bool = arg(True, "Save the best epoch's model of the best learning rate per task.")
    update_model_card: bool = arg(False, "Add the dev results to the model card (model-index) of "
                                         "--model_name_or_path's README.md in the output.")
    with_tracking: bool = arg(False, "Log to experiment trackers.")
    report_to: str = arg("all", "Trackers: 'all' or a comma-separated list.")

    @property
    def is_custom(self) -> bool:
        """Training on the user's own files (no GLUE task named)."""
        return self.task_name is None

    def task_names(self) -> list[str]:
        """The GLUE tasks to run (none for a user's own data)."""
        if self.is_custom:
            return []
        return list(PAPER_ORDER) if self.task_name == "all" else [get_task(self.task_name).name]

    def learning_rate_grid(self) -> list[float]:
        if self.learning_rates is None:
            return [self.learning_rate]
        rates = [parse_number(x) for x in self.learning_rates.split(",") if x.strip()]
        if None in rates:
            raise InputError(f"`learning_rates` {self.learning_rates!r} must be comma-separated numbers.")
        if not rates or any(not r > 0 for r in rates):
            raise InputError(f"`learning_rates` {self.learning_rates!r} must be positive numbers.")
        return rates

    def check(self) -> None:
        """Every check that needs no file read beyond its existence: bad values raise an InputError naming them."""
        if self.model_name_or_path is None:
            raise InputError("`model_name_or_path` is required.")
        for name in ("model_name_or_path", "teacher_name_or_path", "init_from_mnli"):  # not "not in the Hub cache"
            check_local_path(getattr(self, name), f"`{name}` {getattr(self, name)!r}")
        check_output_dir(self.output_dir, self.overwrite_output_dir, inputs=glue_inputs(self))
        if self.task_name is not None and self.task_name != "all":
            get_task(self.task_name)
        self._check_init_from_mnli()
        self._check_swap_pairs()
        check_seed(self.seed)
        check_report_to(self.report_to)
        at_least(1, max_seq_length=self.max_seq_length, per_device_train_batch_size=self.per_device_train_batch_size,
                 per_device_eval_batch_size=self.per_device_eval_batch_size, num_train_epochs=self.num_train_epochs,
                 gradient_accumulation_steps=self.gradient_accumulation_steps, max_train_steps=self.max_train_steps,
                 max_train_samples=self.max_train_samples, max_eval_samples=self.max_eval_samples,
                 augment_neighbours=self.augment_neighbours)
        at_least(0, num_warmup_steps=self.num_warmup_steps, weight_decay=self.weight_decay,
                 max_grad_norm=self.max_grad_norm, kd_hidden_weight=self.kd_hidden_weight,
                 augment_copies=self.augment_copies)
        positive(learning_rate=self.learning_rate, kd_temperature=self.kd_temperature)
        in_range("kd_alpha", self.kd_alpha, 0, 1)
        if self.kd_hidden_weight > 0 and self.teacher_name_or_path is None:
            raise InputError(f"`kd_hidden_weight` {self.kd_hidden_weight} distils the hidden states of a fine-tuned "
                             "teacher: give `teacher_name_or_path` too.")
        in_range("augment_probability", self.augment_probability, 0, 1, closed="(]")
        if self.augment_copies > 0 and self.teacher_name_or_path is None:
            raise InputError(f"`augment_copies` {self.augment_copies} adds copies without labels of their own, which "
                             "learn from a fine-tuned teacher only: give `teacher_name_or_path` too.")
        if self.augment_copies > 0 and self.kd_alpha == 0 and self.kd_hidden_weight == 0:
            raise InputError(f"`augment_copies` {self.augment_copies} adds copies that learn from the teacher's "
                             "distillation terms only, and `kd_alpha` and `kd_hidden_weight` are both 0: raise one.")
        in_range("warmup_ratio", self.warmup_ratio, 0, 1, closed="[)")
        self.learning_rate_grid()
        self._check_data()

    def _check_init_from_mnli(self) -> None:
        """``init_from_mnli`` only where a task starts from it (RTE, MRPC, STS-B): elsewhere it would be ignored."""
        if self.init_from_mnli is None or any(TASKS[name].mnli_transfer for name in self.task_names()):
            return
        takers = [name for name, task in TASKS.items() if task.mnli_transfer]
        data = "your own data (no `task_name`)" if self.is_custom else f"`task_name` {self.task_name}"
        raise InputError(f"`init_from_mnli` starts {', '.join(takers)} from an MNLI model; {data} is none of them: "
                         "drop `init_from_mnli`.")

    def _check_swap_pairs(self) -> None:
        """``swap_pairs`` only where swapping keeps the label: a symmetric GLUE pair task, never a user's data."""
        if not self.swap_pairs:
            return
        symmetric = [name for name, task in TASKS.items() if task.symmetric]
        others = ["your own data (no `task_name`)"] if self.is_custom else \
            [name for name in self.task_names() if not TASKS[name].symmetric]
        if others:
            raise InputError(f"`swap_pairs` swaps the two texts of a pair whose label does not depend on their order "
                             f"({', '.join(symmetric)}); not {', '.join(others)}: drop `swap_pairs`.")

    def _check_data(self) -> None:
        if self.is_custom:
            if self.train_file is None or not self.validation_file:
                raise InputError("Without `task_name`, your own data is read: give `train_file` and "
                                 "`validation_file` (csv/tsv/json/jsonl), or name a GLUE `task_name`.")
            if self.data_dir is not None:
                raise InputError("`data_dir` holds the original GLUE folders: it needs a GLUE `task_name`.")
        else:
            if self.text_columns or self.label_column != "label":
                raise InputError("`text_columns` and `label_column` are for your own data (no `task_name`); GLUE "
                                 f"task {self.task_name!r} has its own columns.")
            if self.task_name == "all" and self.train_file is not None:
                raise InputError("`task_name` all reads each task from `data_dir` (or the Hub), not `train_file`.")
            if self.data_dir is not None and (self.train_file or self.validation_file or self.test_file):
                raise InputError("Give either `data_dir` or `train_file`/`validation_file`/`test_file`, not both.")
            if self.train_file is None and (self.validation_file or self.test_file):
                raise InputError("`validation_file` and `test_file` come with a `train_file`.")
        task = None if self.is_custom or self.task_name == "all" else TASKS[self.task_name]
        dev_count, test_count = (len(task.dev_splits), len(task.test_splits)) if task else (1, 1)
        for name, paths, most in (("validation_file", self.validation_file, dev_count),
                                  ("test_file", self.test_file, test_count)):
            if paths and len(paths) > most:
                raise InputError(f"`{name}` takes at most {most} file(s) here, got {len(paths)}: {paths}.")
        files = [("train_file", self.train_file)] + [(n, p) for n in ("validation_file", "test_file")
                                                      for p in getattr(self, n) or []]
        for name, path in files:
            if path is None:
                continue
            if not Path(path).is_file():
                raise InputError(f"`{name}` {path!r} does not exist.")
            if Path(path).suffix.lower() not in FILE_TYPES:
                raise InputError(f"`{name}` {path!r}: use a {', '.join(FILE_TYPES)} file.")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise InputError(f"`data_dir` {self.data_dir!r} is not a folder.")


__all__ = ["FinetuneArguments", "glue_inputs", "writes_into_model"]


def writes_into_model(args: FinetuneArguments) -> bool:
    """``--update_model_card`` with the model's own folder as ``--output_dir``: results are added to that folder
    (on purpose), nothing in it is replaced but the files the run writes."""
    model = Path(args.model_name_or_path) if args.model_name_or_path else None
    return bool(args.update_model_card and model is not None and model.is_dir() and args.output_dir is not None
                and model.resolve() == Path(args.output_dir).resolve())


def glue_inputs(args: FinetuneArguments) -> dict[str, str | list[str] | None]:
    """The local paths the run reads, which its output folder must not hold."""
    names = ["teacher_name_or_path", "init_from_mnli", "train_file", "validation_file", "test_file", "data_dir"]
    if not writes_into_model(args):
        names.append("model_name_or_path")
    return {name: getattr(args, name) for name in names}
