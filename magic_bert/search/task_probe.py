"""The ``task`` search metric: a linear probe of each child on the user's own labelled data.

The child (inherited weights, no training) encodes each example, a pair jointly as in fine-tuning (``[CLS] a [SEP] b``),
and its mean-pooled last hidden state is the feature. A ridge regression (closed form, ``probe_ridge`` on the weights,
not the bias) is fit on a training slice: one-hot targets for classification (predicted class: the largest output),
the label itself for regression. The score is the task's main metric (GLUE's for a GLUE task; accuracy or Spearman
for a user's) on a held-out slice: a seeded slice of the training file (a GLUE task's dev set is never read), or the
user's ``task_validation_file``. Cost per child: one forward over ``task_train_samples + task_eval_samples`` examples
and a ``(hidden+1)²`` solve; the slices are tokenized once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..distillation import mean_pool
from ..errors import InputError
from ..glue.metrics import compute_glue, task_score
from ..glue.tasks import ORIGINAL_FILES, GlueTask, get_task, load_glue, read_glue_file
from .proxies import ProxyScore


@dataclass
class ProbeData:
    """Tokenized training and held-out slices of one task, in batches, with their labels."""

    task: GlueTask
    train: list[dict]
    train_labels: torch.Tensor
    held_out: list[dict]
    held_out_labels: torch.Tensor


def load_probe_task(task_name: str | None, data_dir: str | None, train_file: str | None,
                    validation_file: str | None, text_columns: list[str] | None = None,
                    label_column: str = "label"):
    """``(task, train rows, held-out rows or None)``: a GLUE task from a GLUE-layout folder (its train file only), or
    the user's files (:func:`magic_bert.glue.custom.task_from_files`)."""
    if task_name is not None:
        if train_file is not None:
            raise InputError("Give `task_name` (with `task_data_dir`) or `task_train_file`, not both.")
        task = get_task(task_name)
        if data_dir is None:  # the Hub's GLUE: the train split only is used
            return task, load_glue(task)["train"], None
        train = Path(data_dir) / task.folder / ORIGINAL_FILES["train"]
        if not train.is_file():
            raise InputError(f"`task_data_dir` {data_dir!r} has no {task.folder}/{ORIGINAL_FILES['train']} (the "
                             "original GLUE layout); its dev file is never read.")
        return task, read_glue_file(task, train), None
    if train_file is None:
        raise InputError("`metric` task needs labelled data: `task_name` (a GLUE task, with `task_data_dir`) or "
                         "`task_train_file` (csv / json / jsonl with text columns and a label).")
    from ..glue.custom import task_from_files

    task = task_from_files(train_file, text_columns, label_column)
    return task, read_glue_file(task, train_file), (None if validation_file is None else
                                                    read_glue_file(task, validation_file))


def probe_data(task: GlueTask, train_rows, held_out_rows, tokenizer, train_samples: int, eval_samples: int,
               max_seq_length: int, batch_size: int, seed: int, device, by_length: bool = True) -> ProbeData:
    """Seeded slices (``held_out_rows`` None: the held-out slice is cut from ``train_rows`` first, disjoint from the
    training slice), tokenized in batches on ``device``. ``by_length``: each slice is batched in order of length
    (labels follow), so a batch pads to examples of about its own length: the probe's score does not depend on the
    order (a sum over examples), and in random order GLUE's batches of 32 hold 2.4-2.9x the tokens they need."""
    order = list(range(len(train_rows)))
    random.Random(seed).shuffle(order)
    if held_out_rows is None:
        held = order[:eval_samples]
        order = order[eval_samples:]
        held_out_rows, held_order = train_rows, held
    else:
        held_order = list(range(min(eval_samples, len(held_out_rows))))
    train_order = order[:train_samples]
    if len(train_order) < 2 or len(held_order) < 2:
        raise InputError(f"`metric` task: {task.name} has too few labelled rows for a probe ({len(train_rows)}); "
                         "it needs at least 2 to train on and 2 held out.")

    def batches(rows, indices) -> tuple[list[dict], torch.Tensor]:
        if by_length:
            lengths = tokenizer(*[[rows[i][key] for i in indices] for key in task.keys], truncation=True,
                                max_length=max_seq_length)["input_ids"]
            indices = [indices[j] for j in sorted(range(len(indices)), key=lambda j: len(lengths[j]))]
        chunks = []
        for start in range(0, len(indices), batch_size):
            picked = [rows[i] for i in indices[start:start + batch_size]]
            texts = [[row[key] for row in picked] for key in task.keys]
            encoded = tokenizer(*texts, truncation=True, max_length=max_seq_length, padding=True,
                                return_tensors="pt")
            chunks.append({key: value.to(device) for key, value in encoded.items()})
        labels = torch.tensor([rows[i]["label"] for i in indices],
                              dtype=torch.float64 if task.is_regression else torch.long)
        return chunks, labels

    train, train_labels = batches(train_rows, train_order)
    held_out, held_out_labels = batches(held_out_rows, held_order)
    return ProbeData(task, train, train_labels, held_out, held_out_labels)


@torch.no_grad()
def _features(supernet, batches: list[dict], arch: list[str]) -> torch.Tensor:
    pooled = [mean_pool(supernet.bert(**batch, arch=arch).last_hidden_state.double(), batch["attention_mask"])
              for batch in batches]
    return torch.cat(pooled).cpu()


def ridge_fit(features: torch.Tensor, targets: torch.Tensor, ridge: float) -> torch.Tensor:
    """The ``(width + 1, outputs)`` weights (bias last) minimising ``|[X 1] W - Y|² + ridge |W without bias|²``."""
    x = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)
    penalty = torch.eye(x.shape[1], dtype=x.dtype) * ridge
    penalty[-1, -1] = 0
    return torch.linalg.solve(x.T @ x + penalty, x.T @ targets)


def ridge_predict(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1) @ weights


def probe_score(supernet, data: ProbeData, arch: list[str], ridge: float) -> ProxyScore:
    """``task``: the held-out main metric of a ridge probe on the child's pooled features."""
    was_training = supernet.training
    supernet.eval()
    try:
        train, held_out = _features(supernet, data.train, arch), _features(supernet, data.held_out, arch)
    finally:
        supernet.train(was_training)
    if data.task.is_regression:
        targets = data.train_labels.unsqueeze(1)
    else:
        targets = torch.nn.functional.one_hot(data.train_labels, data.task.num_labels).double()
    outputs = ridge_predict(held_out, ridge_fit(train, targets, ridge))
    predictions = outputs[:, 0] if data.task.is_regression else outputs.argmax(1)
    metrics = compute_glue(data.task, predictions.tolist(), data.held_out_labels.tolist())
    return ProxyScore(proxies={"task": task_score(data.task, metrics),
                               **{f"task_{name}": value for name, value in metrics.items()}})


__all__ = ["ProbeData", "load_probe_task", "probe_data", "probe_score", "ridge_fit", "ridge_predict"]
