"""Gradient interference between children of a supernet: the measurement that motivates MAGIC.

For one shared operator ``o`` at layer ``l`` and children that all use ``o`` there, every child is run on the same
pre-masked batches; we keep the gradient of its masked-LM loss with respect to ``o``'s parameters only (computed
with ``torch.autograd.grad`` on those parameters, so no other op's gradient is ever formed or compared) and ``o``'s
input and output at the real tokens. Two children's similarity is the cosine of their gradients, averaged over the
batches; next to it, the mean per-token cosine of the op's inputs and outputs (the paper's second finding).

The supernet runs in eval mode (no dropout), so a child compared with itself on the same batch gives exactly 1.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..op_specs import parse_op
from ..search_space import SearchSpace
from ..training.electra import ElectraObjective

KINDS = ("gradient", "input", "output")


@dataclass
class ChildProbe:
    """What one child gives the shared op on each batch: gradient (flat) and the op's input/output at real tokens."""

    arch: list[str]
    gradients: list[torch.Tensor] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)


def shared_op(supernet, layer: int, op: str) -> nn.Module:
    """The module of op ``op`` at ``layer`` of ``supernet``; a clear error for a bad layer or an op without weights."""
    space: SearchSpace = supernet.config.search_space
    if not isinstance(layer, int) or not 0 <= layer < space.num_layers:
        raise InputError(f"`layer` {layer!r} is out of range: this supernet has layers 0..{space.num_layers - 1}.")
    names = [spec.name for spec in space.ops]
    spec = parse_op(op)
    if spec not in space.ops:
        raise InputError(f"`op` {op!r} is not a candidate of this supernet; candidates: {names}.")
    if spec.kind == "identity":
        raise InputError(f"`op` {op!r} has no parameters, so it has no gradient to compare; pick one of "
                         f"{[n for n in names if n != 'identity']}.")
    return supernet.bert.encoder.layer[layer].ops[spec.key]


def check_shared(children: list[list[str]], space: SearchSpace, layer: int, op: str) -> list[list[str]]:
    """The children (validated); every one must use ``op`` at ``layer``, else the error names those that do not."""
    archs = [space.validate(arch) for arch in children]
    name = parse_op(op).name
    outside = [i for i, arch in enumerate(archs) if arch[layer] != name]
    if outside:
        raise InputError(
            f"Op {name!r} at layer {layer} is not shared by every child: children {outside} use "
            f"{sorted({archs[i][layer] for i in outside})} there. Pass children that all use it, or another op/layer.")
    return archs


def probe_child(supernet, arch: list[str], batches: list[dict], layer: int, op: str,
                electra: ElectraObjective | None = None) -> ChildProbe:
    """Run child ``arch`` on every batch; record the shared op's gradient, input and output (see module doc). The
    gradient is of the held-out masked-LM loss, or for an ELECTRA supernet (``electra``) of the detection loss."""
    module = shared_op(supernet, layer, op)
    params = [p for p in module.parameters()]
    probe = ChildProbe(list(arch))
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, args, output):
        captured["input"], captured["output"] = args[0].detach(), output[0].detach()

    was_training = supernet.training
    supernet.eval()
    handle = module.register_forward_hook(hook)
    try:
        for index, batch in enumerate(batches):
            loss = supernet(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            labels=batch["labels"], arch=arch, masked_logits_only=True).loss if electra is None \
                else electra.held_out_loss(supernet, batch, index, {"arch": arch})
            grads = torch.autograd.grad(loss, params)
            probe.gradients.append(torch.cat([g.reshape(-1) for g in grads]).double())
            real = batch["attention_mask"].bool()
            probe.inputs.append(captured["input"][real].double())
            probe.outputs.append(captured["output"][real].double())
    finally:
        handle.remove()
        supernet.train(was_training)
    return probe


def pair_similarity(a: ChildProbe, b: ChildProbe) -> dict[str, float]:
    """Mean over batches of: gradient cosine, and mean per-token cosine of the op's inputs and of its outputs."""
    gradient = [F.cosine_similarity(x, y, dim=0, eps=1e-12).item() for x, y in zip(a.gradients, b.gradients,
                                                                                   strict=True)]
    inputs = [F.cosine_similarity(x, y, dim=-1, eps=1e-12).mean().item() for x, y in zip(a.inputs, b.inputs,
                                                                                         strict=True)]
    outputs = [F.cosine_similarity(x, y, dim=-1, eps=1e-12).mean().item() for x, y in zip(a.outputs, b.outputs,
                                                                                          strict=True)]
    return {"gradient": statistics.fmean(gradient), "input": statistics.fmean(inputs),
            "output": statistics.fmean(outputs)}


def similarity_matrix(supernet, children: list[list[str]], batches: list[dict], layer: int,
                      op: str, electra: ElectraObjective | None = None) -> dict[str, list[list[float]]]:
    """Pairwise similarities (``gradient``, ``input``, ``output``: n x n lists) of children sharing ``op`` at
    ``layer``, on the same batches."""
    if not batches:
        raise InputError("No batches to compare gradients on; pass held-out text with at least one block.")
    archs = check_shared(children, supernet.config.search_space, layer, op)
    probes = [probe_child(supernet, arch, batches, layer, op, electra) for arch in archs]
    n = len(probes)
    matrices = {kind: [[math.nan] * n for _ in range(n)] for kind in KINDS}
    for i in range(n):
        for j in range(i, n):
            values = pair_similarity(probes[i], probes[j])
            for kind in KINDS:
                matrices[kind][i][j] = matrices[kind][j][i] = values[kind]
    return matrices


def sample_sharing_children(space: SearchSpace, layer: int, op: str, count: int, rng: random.Random,
                            max_params: float | None = None, min_params: float | None = None) -> list[list[str]]:
    """``count`` distinct children inside the budget that all use ``op`` at ``layer``."""
    name = parse_op(op).name
    found: list[list[str]] = []
    for _ in range(200 * count):
        arch = space.sample(rng, max_params=max_params, min_params=min_params)
        arch[layer] = name
        if space.in_budget(arch, min_params, max_params) and arch not in found:
            found.append(arch)
            if len(found) == count:
                return found
    raise InputError(f"Found only {len(found)} of {count} distinct children with {name!r} at layer {layer} inside "
                     "the budget; widen the budget or ask for fewer.")


def pairs_at_distance(space: SearchSpace, layer: int, op: str, m: int, count: int, rng: random.Random,
                      max_params: float | None = None, min_params: float | None = None,
                      tries: int = 2000) -> list[tuple[list[str], list[str]]]:
    """Up to ``count`` random pairs of in-budget children that share ``op`` at ``layer`` and differ in exactly
    ``m`` other layers (so ``1 <= m <= L - 1``)."""
    if not 1 <= m <= space.num_layers - 1:
        raise InputError(f"m={m} is out of range: two children sharing one layer of {space.num_layers} differ in "
                         f"1..{space.num_layers - 1} layers.")
    name = parse_op(op).name
    others = [i for i in range(space.num_layers) if i != layer]
    pairs = []
    for _ in range(tries):
        a = space.sample(rng, max_params=max_params, min_params=min_params)
        a[layer] = name
        b = list(a)
        for i in rng.sample(others, m):
            b[i] = rng.choice([o.name for o in space.ops if o.name != a[i]])
        if space.in_budget(a, min_params, max_params) and space.in_budget(b, min_params, max_params):
            pairs.append((a, b))
            if len(pairs) == count:
                break
    return pairs


def similarity_vs_m(supernet, batches: list[dict], layer: int, op: str, pairs_per_m: int = 8, seed: int = 0,
                    max_params: float | None = None, min_params: float | None = None,
                    electra: ElectraObjective | None = None) -> list[dict]:
    """For m = 1..L-1: the similarities of ``pairs_per_m`` random child pairs that share ``op`` at ``layer`` and
    differ in m layers. One row per m with every pair's values and their mean / std (pairs are the same for every
    supernet given the same seed and budget, so supernets are compared on identical pairs)."""
    space: SearchSpace = supernet.config.search_space
    shared_op(supernet, layer, op)
    if pairs_per_m < 1:
        raise InputError(f"`pairs_per_m` must be at least 1, got {pairs_per_m}.")
    if not batches:
        raise InputError("No batches to compare gradients on; pass held-out text with at least one block.")
    rng = random.Random(seed)
    probes: dict[tuple[str, ...], ChildProbe] = {}

    def probe(arch):
        if tuple(arch) not in probes:
            probes[tuple(arch)] = probe_child(supernet, arch, batches, layer, op, electra)
        return probes[tuple(arch)]

    rows = []
    for m in range(1, space.num_layers):
        pairs = pairs_at_distance(space, layer, op, m, pairs_per_m, rng, max_params, min_params)
        values = [pair_similarity(probe(a), probe(b)) for a, b in pairs]
        row = {"m": m, "num_pairs": len(values), "pairs": [[a, b] for a, b in pairs]}
        for kind in KINDS:
            column = [v[kind] for v in values]
            row[kind] = column
            row[f"{kind}_mean"] = statistics.fmean(column) if column else None
            row[f"{kind}_std"] = statistics.pstdev(column) if len(column) > 1 else (0.0 if column else None)
        rows.append(row)
    return rows


__all__ = [
    "KINDS",
    "ChildProbe",
    "check_shared",
    "pair_similarity",
    "pairs_at_distance",
    "probe_child",
    "sample_sharing_children",
    "shared_op",
    "similarity_matrix",
    "similarity_vs_m",
]
