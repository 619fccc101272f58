"""Kendall τ as pair agreements: equal to scipy (with and without resampled ties), restricted to pairs, and the
paired bootstrap of the study's primary comparison."""

import numpy as np
import pytest
from scipy import stats

from magic_bert.analysis.rank_bootstrap import informative_pairs, paired_tau_difference, sign_matrix, weighted_tau


def noisy(rng, truth, scale, runs):
    return truth + scale * rng.standard_normal((runs, len(truth)))


def test_tau_of_every_run_equals_scipy():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(20)
    runs = noisy(rng, reference, 1.0, 3)
    runs[0, :5] = runs[0, 5]  # ties in a run and in the reference count as in scipy's tau-b
    reference = reference.copy()
    reference[10:13] = reference[13]
    taus = weighted_tau(np.stack([sign_matrix(run) for run in runs]), sign_matrix(reference), np.ones((1, 20)))[0]
    assert taus == pytest.approx([stats.kendalltau(run, reference).statistic for run in runs], abs=1e-12)


def test_resampled_children_give_scipy_tau_b_of_the_expanded_lists():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal(15)
    run = noisy(rng, reference, 0.8, 1)[0]
    weights = rng.multinomial(15, np.full(15, 1 / 15), size=5)
    taus = weighted_tau(sign_matrix(run), sign_matrix(reference), weights)
    for w, tau in zip(weights, taus, strict=True):
        picks = np.repeat(np.arange(15), w)
        assert any(w > 1)  # ties exist: this is tau-b, not tau-a
        assert tau == pytest.approx(stats.kendalltau(run[picks], reference[picks]).statistic, abs=1e-12)


def test_tau_on_a_subset_of_pairs_is_the_mean_agreement_there():
    rng = np.random.default_rng(2)
    reference = rng.standard_normal(8)
    run = noisy(rng, reference, 1.0, 1)[0]
    mask = np.zeros((8, 8))
    chosen = [(0, 1), (2, 5), (3, 7), (4, 6)]
    for i, j in chosen:
        mask[i, j] = mask[j, i] = 1
    expected = np.mean([np.sign(run[i] - run[j]) * np.sign(reference[i] - reference[j]) for i, j in chosen])
    assert weighted_tau(sign_matrix(run), sign_matrix(reference), np.ones((1, 8)), mask)[0] == pytest.approx(expected)


def test_informative_pairs_leave_out_the_pairs_every_run_orders_like_the_reference():
    reference = np.array([0.0, 1.0, 2.0, 3.0])
    runs = np.array([[0.0, 1.0, 3.0, 2.0], [0.0, 2.0, 1.0, 3.0]])  # pairs (2,3) and (1,2) are swapped once each
    pairs = informative_pairs(np.stack([sign_matrix(run) for run in runs]), sign_matrix(reference))
    assert {(i, j) for i, j in zip(*np.nonzero(np.triu(pairs)), strict=True)} == {(1, 2), (2, 3)}


def test_paired_difference_is_zero_for_identical_samplers_and_positive_for_a_clear_gain():
    rng = np.random.default_rng(3)
    reference = rng.standard_normal(40)
    b = noisy(rng, reference, 1.5, 4)
    same = paired_tau_difference(b, b, reference, samples=300)
    assert same["difference"] == same["low"] == same["high"] == 0.0
    better = paired_tau_difference(noisy(rng, reference, 0.05, 4), b, reference, samples=300, seed=7)
    assert better["low"] > 0 and better["difference"] > 0.3


def test_paired_difference_is_the_mean_of_per_seed_differences_and_reproducible():
    rng = np.random.default_rng(4)
    reference = rng.standard_normal(12)
    a, b = noisy(rng, reference, 0.5, 3), noisy(rng, reference, 1.0, 3)
    first = paired_tau_difference(a, b, reference, samples=200, seed=5)
    expected = np.mean([stats.kendalltau(x, reference).statistic - stats.kendalltau(y, reference).statistic
                        for x, y in zip(a, b, strict=True)])
    assert first["difference"] == pytest.approx(expected, abs=1e-12)
    assert first == paired_tau_difference(a, b, reference, samples=200, seed=5)
    assert first["low"] <= first["difference"] <= first["high"]


def test_paired_difference_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="seeds × children"):
        paired_tau_difference(np.zeros((2, 5)), np.zeros((3, 5)), np.arange(5.0))
