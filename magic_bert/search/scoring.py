"""How ``magic-bert-search`` scores one child: the function of ``--metric`` (masked-LM or a proxy), built once."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader
from transformers import default_data_collator

from ..errors import InputError
from ..evaluation import evaluate_mlm
from ..training.electra import load_electra
from ..training.losses import resolve_precision
from ..training.teacher import check_relation_heads, load_teacher_model
from .proxies import TeacherReference, distillation_loss, embedding_agreement
from .task_probe import load_probe_task, probe_data, probe_score


def metric_score_fn(args, supernet, blocks, tokenizer, accelerator) -> Callable[[list[str]], object]:
    """``score(arch)`` for ``args.metric`` in ``args.scoring_precision``; every input the metric needs is checked (and
    the teacher's targets or the probe's slices prepared, in fp32) before the first child is scored."""
    score = _metric_fn(args, supernet, blocks, tokenizer, accelerator)
    if resolve_precision(args.scoring_precision.replace("fp32", "training"), accelerator.device) != "bf16":
        return score
    device_type = accelerator.device.type

    def score_in_bf16(arch: list[str]):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return score(arch)

    return score_in_bf16


def _metric_fn(args, supernet, blocks, tokenizer, accelerator) -> Callable[[list[str]], object]:
    if args.metric in ("loss", "accuracy"):
        loader = accelerator.prepare(DataLoader(blocks, batch_size=args.per_device_eval_batch_size,
                                                collate_fn=default_data_collator))
        model = accelerator.prepare_model(supernet, evaluation_mode=True)
        # An ELECTRA-trained supernet is scored on its own objective, replaced-token detection
        electra = load_electra(args.supernet, accelerator.device)
        sums = None if electra is None else electra.example_sums
        return lambda arch: evaluate_mlm(model, loader, accelerator, arch=arch, example_sums=sums)
    supernet = supernet.to(accelerator.device)
    if args.metric == "task":
        columns = [c.strip() for c in args.task_text_columns.split(",")] if args.task_text_columns else None
        task, train_rows, held_out_rows = load_probe_task(args.task_name, args.task_data_dir, args.task_train_file,
                                                          args.task_validation_file, columns, args.task_label_column)
        data = probe_data(task, train_rows, held_out_rows, tokenizer, args.task_train_samples,
                          args.task_eval_samples,
                          min(args.max_seq_length or 128, supernet.config.max_position_embeddings),
                          args.per_device_eval_batch_size,
                          args.seed, accelerator.device)
        return lambda arch: probe_score(supernet, data, arch, args.probe_ridge)
    reference = _teacher_reference(args, supernet, blocks, accelerator)
    score = distillation_loss if args.metric == "distill" else embedding_agreement
    return lambda arch: score(supernet, reference, arch)


def _teacher_reference(args, supernet, blocks, accelerator) -> TeacherReference:
    """The teacher's targets on every held-out block (all of them on every process: the same scores on each)."""
    config = supernet.config
    name = args.teacher_name_or_path or (getattr(config, "inherited", None) or {}).get("bert")
    if name is None:
        raise InputError(f"`metric` {args.metric} compares children with a teacher: pass `teacher_name_or_path` (the "
                         "supernet was not built from a BERT with `init_from_bert`, which would be the default).")
    teacher = load_teacher_model(name)
    if teacher.hidden_size != config.hidden_size or teacher.model.config.vocab_size != config.vocab_size:
        raise InputError(f"`teacher_name_or_path` {name!r} (hidden {teacher.hidden_size}, vocabulary "
                         f"{teacher.model.config.vocab_size}) must match the supernet's hidden size "
                         f"{config.hidden_size} and vocabulary {config.vocab_size} for `metric` {args.metric}.")
    check_relation_heads(teacher.num_attention_heads, config.attention_widths, teacher,
                         what=f"`metric` {args.metric}: the teacher's {teacher.num_attention_heads} relation heads")
    loader = DataLoader(blocks, batch_size=args.per_device_eval_batch_size, collate_fn=default_data_collator)
    batches = [{key: value.to(accelerator.device) for key, value in batch.items()} for batch in loader]
    return TeacherReference.compute(teacher.model.to(accelerator.device), batches)


__all__ = ["metric_score_fn"]
