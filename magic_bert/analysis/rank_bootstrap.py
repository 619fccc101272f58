"""Kendall's τ between supernets and a standalone reference, and a bootstrap interval for the difference between two
samplers, paired by supernet seed, over children and seeds.

Every ranking is kept as a matrix of pair signs ``S[i, j] = sign(v_i - v_j)`` (``x``: a run's inherited-weight
losses, ``r``: the reference). A resample of the children is a vector of multiplicities ``w`` (how often each child
was drawn); its τ is ``wᵀ(S_x·S_r)w / sqrt(wᵀ|S_x|w · wᵀ|S_r|w)``: Kendall's τ-b of the resampled lists (a child
drawn twice forms a tied pair, left out as τ-b leaves ties out), computed as matrix products, so thousands of
resamples cost little. With ``w = 1`` it is scipy's ``kendalltau``.

A pair every run orders like the reference tells the methods nothing about each other; :func:`informative_pairs`
finds them, and ``pairs=`` restricts τ to the others.
"""

from __future__ import annotations

import numpy as np


def sign_matrix(values) -> np.ndarray:
    """``S[i, j] = sign(v_i - v_j)``; a run's agreement with the reference is ``S_run · S_reference``."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    return np.sign(v[:, None] - v[None, :])


def weighted_tau(run_signs: np.ndarray, reference_signs: np.ndarray, weights: np.ndarray,
                 pairs: np.ndarray | None = None) -> np.ndarray:
    """Kendall's τ-b of every run (leading axes of ``run_signs``, shape ``(..., n, n)``) against the reference under
    every child-weight vector (rows of ``weights``, shape ``(b, n)``): shape ``(b, ...)``. Tied pairs count as in
    scipy's τ-b; ``pairs`` (n × n, 0/1) keeps only those pairs."""
    weights = np.asarray(weights, dtype=float)
    mask = np.ones(reference_signs.shape) if pairs is None else np.asarray(pairs, dtype=float)
    mask = mask * (1 - np.eye(mask.shape[0]))
    numerator = np.einsum("bi,...ij,bj->b...", weights, run_signs * (reference_signs * mask), weights)
    run_pairs = np.einsum("bi,...ij,bj->b...", weights, np.abs(run_signs) * mask, weights)
    reference_pairs = np.einsum("bi,ij,bj->b", weights, np.abs(reference_signs) * mask, weights)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample without a pair has no τ (NaN, skipped)
        return numerator / np.sqrt(run_pairs * reference_pairs.reshape((-1,) + (1,) * (run_signs.ndim - 2)))


def informative_pairs(run_signs: np.ndarray, reference_signs: np.ndarray) -> np.ndarray:
    """0/1 mask of the pairs NOT ordered like the reference by every run (``run_signs``: runs × n × n)."""
    trivial = np.all(run_signs * reference_signs == 1, axis=0)
    return (~trivial).astype(float) * (1 - np.eye(reference_signs.shape[0]))


def paired_tau_difference(losses_a, losses_b, reference, samples: int = 2000, seed: int = 0,
                          pairs: np.ndarray | None = None, level: float = 0.95) -> dict:
    """Mean τ of sampler A's supernets minus sampler B's, against ``reference``, with a percentile interval.

    ``losses_a[s]`` and ``losses_b[s]`` are the inherited losses of the same children in supernets trained with
    seed ``s`` (the pairing). Each resample draws seeds (pairs kept) and children (the same for every run) with
    replacement."""
    a, b = np.asarray(losses_a, dtype=float), np.asarray(losses_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != len(reference):
        raise ValueError(f"losses must be seeds × children of the same shape, got {a.shape} and {b.shape} for "
                         f"{len(reference)} children")
    seeds, children = a.shape
    signs, reference_signs = np.stack([sign_matrix(run) for run in (*a, *b)]), sign_matrix(reference)
    rng = np.random.default_rng(seed)
    point_taus = weighted_tau(signs, reference_signs, np.ones((1, children)), pairs)[0]
    child_weights = rng.multinomial(children, np.full(children, 1 / children), size=samples)
    seed_weights = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=samples)
    taus = weighted_tau(signs, reference_signs, child_weights, pairs)  # samples × runs
    gaps = taus[:, :seeds] - taus[:, seeds:]
    differences = np.sum(seed_weights * gaps, axis=1) / seeds
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(differences, [tail, 100 - tail])
    return {"difference": float(np.mean(point_taus[:seeds] - point_taus[seeds:])),
            "tau_a": point_taus[:seeds].tolist(), "tau_b": point_taus[seeds:].tolist(),
            "low": float(low), "high": float(high), "level": level, "samples": samples,
            "seeds": seeds, "children": children}


__all__ = ["informative_pairs", "paired_tau_difference", "sign_matrix", "weighted_tau"]
