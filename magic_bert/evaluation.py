"""Held-out masked-LM scoring, shared by pre-training (final results, anchor decisions), search and analysis.

One function scores one model or one child of a supernet on a pre-masked held-out set (``data.mask_once``): summed
cross-entropy, correct predictions and masked-token counts per example, gathered across processes with
``gather_for_metrics`` (so duplicated padding samples of an uneven split are dropped). Every process gets the same
numbers, so decisions taken on them (anchor swaps, search) are identical on every rank. With ``keep_examples`` the
score also keeps those per-example sums, which :func:`paired_standard_error` needs to compare two children on the
same masked tokens without a second pass.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import InputError


@dataclass(frozen=True)
class MLMScore:
    loss: float  # mean cross-entropy over masked tokens
    accuracy: float  # fraction of masked tokens predicted exactly
    num_tokens: int  # masked tokens scored
    # (examples, 3) float64: summed loss, correct predictions, masked tokens of each example, in the loader's
    # (gathered) order; only with ``evaluate_mlm(keep_examples=True)``.
    examples: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf

    def as_dict(self, prefix: str = "eval_") -> dict:
        values = {"loss": self.loss, "accuracy": self.accuracy, "num_tokens": self.num_tokens,
                  "perplexity": self.perplexity}
        return {f"{prefix}{key}": value for key, value in values.items()}


def _example_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(batch, 3): summed loss, correct predictions and masked tokens of each example. ``logits`` are either full
    ``(batch, seq, vocab)`` or, from ``masked_logits_only``, ``(labelled, vocab)`` in row-major order."""
    masked = labels != -100
    if logits.dim() == 3:
        logits = logits[masked]
    targets = labels[masked]
    token_loss = F.cross_entropy(logits.float(), targets, reduction="none")
    correct = (logits.argmax(-1) == targets).float()
    # Back onto the (batch, seq) grid, zeros elsewhere: a per-row sum in a fixed order (no atomics), same on every run.
    grid = torch.zeros(*labels.shape, 2, dtype=token_loss.dtype, device=labels.device)
    grid[masked] = torch.stack([token_loss, correct], dim=1)
    return torch.cat([grid.sum(1), masked.sum(1, keepdim=True).to(grid.dtype)], dim=1)


def _takes_masked_logits(model) -> bool:
    """Whether ``model`` (unwrapped from DDP) can run its MLM head on the labelled positions only (MagicBert's
    masked-LM models); other masked-LMs (a BERT baseline) are scored from their full logits."""
    return "masked_logits_only" in inspect.signature(getattr(model, "module", model).forward).parameters


def _batches_to_score(dataloader, max_batches: int | None) -> int | None:
    """How many batches the loop will take (the bar's total), or None when the loader has no length."""
    try:
        count = len(dataloader)
    except TypeError:
        return max_batches
    return count if max_batches is None else min(count, max_batches)


@torch.no_grad()
def evaluate_mlm(model, dataloader, accelerator=None, arch=None, max_batches: int | None = None,
                 progress: bool = False, desc: str = "Held-out MLM", keep_examples: bool = False,
                 example_sums: Callable | None = None) -> MLMScore:
    """Score ``model`` (a child of a supernet when ``arch`` is given) on the batches of ``dataloader``.

    ``dataloader`` yields pre-masked batches (``input_ids``, ``attention_mask``, ``labels``); with an ``accelerator``
    it is the prepared, rank-split loader and the sums are gathered across ranks. ``max_batches`` caps the batches
    per process (the same prefix every call); with an accelerate-prepared loader prefer a loader over a subset of
    the data, since leaving one early keeps it registered as the active loader. The model's train/eval mode is
    restored afterwards.

    ``progress=True`` shows a transient progress bar (``desc``; on stderr, local main process only) for long
    evaluations such as a final held-out score; off by default for the many short ones (search, anchors, analysis).
    ``keep_examples=True`` keeps the per-example sums on the score (``MLMScore.examples``) for paired comparisons.
    ``example_sums(model, batch, index, extra)`` scores another objective's tokens instead (ELECTRA's detection:
    ``ElectraObjective.example_sums``), as ``(batch, 3)`` summed loss, correct and scored tokens per example.
    """
    was_training = model.training
    model.eval()
    extra = {} if arch is None else {"arch": arch}
    head_on_labels = _takes_masked_logits(model)  # the head's decoder only where a loss is scored
    sums = torch.zeros(3, dtype=torch.float64)
    kept: list[torch.Tensor] = []
    # Transient (leave=False): a search scores thousands of children, and their bars must not pile up.
    shown = progress and (accelerator is None or accelerator.is_local_main_process)
    bar = tqdm(total=_batches_to_score(dataloader, max_batches), desc=desc, leave=False, disable=not shown)
    try:
        for index, batch in enumerate(dataloader):
            if max_batches is not None and index >= max_batches:
                break
            if example_sums is not None:
                per_example = example_sums(model, batch, index, extra)
            else:
                if head_on_labels:
                    extra |= {"labels": batch["labels"], "masked_logits_only": True}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               token_type_ids=batch.get("token_type_ids"), **extra).logits
                per_example = _example_sums(logits, batch["labels"])
            if accelerator is not None:
                per_example = accelerator.gather_for_metrics(per_example)
            per_example = per_example.double().cpu()
            sums += per_example.sum(0)
            if keep_examples:
                kept.append(per_example)
            bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    loss_sum, correct, count = sums.tolist()
    if count == 0:
        raise InputError("The held-out set has no masked tokens to score; pass more validation text.")
    return MLMScore(loss=loss_sum / count, accuracy=correct / count, num_tokens=int(count),
                    examples=torch.cat(kept) if keep_examples else None)


def paired_standard_error(first: MLMScore, second: MLMScore) -> float:
    """Standard error of ``first.loss - second.loss`` when both scored the same masked tokens of the same blocks.

    Both losses are ratios (summed loss over masked tokens), so the difference is ``D = sum(d_i) / sum(n_i)`` with
    ``d_i`` the difference of block ``i``'s summed losses and ``n_i`` its masked tokens. Its delta-method
    (cluster-robust) variance is ``B / (B - 1) * sum((d_i - D n_i)^2) / (sum n_i)^2`` over the ``B`` blocks with
    masked tokens: blocks, not tokens, are the independent units (tokens of one block share their context). The
    pairing removes what both children find hard, which is most of the variance of either loss.
    """
    if first.examples is None or second.examples is None:
        raise ValueError("paired_standard_error needs scores from evaluate_mlm(..., keep_examples=True).")
    if first.examples.shape != second.examples.shape or not torch.equal(first.examples[:, 2],
                                                                         second.examples[:, 2]):
        raise ValueError("paired_standard_error needs two scores of the same masked tokens (same blocks, same order).")
    tokens = first.examples[:, 2]
    scored = tokens > 0
    blocks = int(scored.sum())
    if blocks < 2:
        raise ValueError(f"paired_standard_error needs at least 2 blocks with masked tokens, got {blocks}.")
    differences = (first.examples[:, 0] - second.examples[:, 0])[scored]
    tokens = tokens[scored]
    total = tokens.sum()
    residuals = differences - differences.sum() / total * tokens
    return math.sqrt(blocks / (blocks - 1) * float(residuals.pow(2).sum())) / float(total)




def unigram_baseline(train_blocks, held_out, vocab_size: int) -> MLMScore:
    """What a model that knows only token frequencies scores on the same masked tokens: every masked position
    predicted as the training text's most frequent token (accuracy), and scored by add-one unigram probabilities
    (loss). A masked-LM that has learned nothing about context scores about this; one that has, far better."""
    counts = torch.ones(vocab_size, dtype=torch.float64)  # add-one
    for chunk in train_blocks.select_columns(["input_ids"]).with_format("torch").iter(batch_size=4096):
        counts += torch.bincount(chunk["input_ids"].reshape(-1).long(), minlength=vocab_size).double()
    labels = held_out.select_columns(["labels"]).with_format("torch")[:]["labels"].reshape(-1).long()
    labels = labels[labels != -100]
    if labels.numel() == 0:
        raise InputError("The held-out set has no masked tokens to score; pass more validation text.")
    log_probs = counts.log() - counts.sum().log()
    accuracy = (labels == counts.argmax()).double().mean().item()
    return MLMScore(loss=-log_probs[labels].mean().item(), accuracy=accuracy, num_tokens=labels.numel())


__all__ = ["MLMScore", "evaluate_mlm", "paired_standard_error", "unigram_baseline"]
