"""Analysis of a supernet: gradient interference between children and rank correlation with standalone training.

``interference``: gradient (and input/output) similarity of children sharing an op, as a matrix and against m.
``ranking``: Kendall / Spearman between inherited-weight and standalone scores, with a standalone cache.
``plots``: the PNG figures. ``study``: the SPOS vs MAGIC comparison run by ``bench/magic_study.py``.
"""

from .interference import (
    check_shared,
    pair_similarity,
    pairs_at_distance,
    probe_child,
    sample_sharing_children,
    shared_op,
    similarity_matrix,
    similarity_vs_m,
)
from .plots import plot_rank_scatter, plot_similarity_matrix, plot_similarity_vs_m, short_arch
from .ranking import StandaloneCache, rank_correlation, sample_children

__all__ = [
    "StandaloneCache",
    "check_shared",
    "pair_similarity",
    "pairs_at_distance",
    "plot_rank_scatter",
    "plot_similarity_matrix",
    "plot_similarity_vs_m",
    "probe_child",
    "rank_correlation",
    "sample_children",
    "sample_sharing_children",
    "shared_op",
    "short_arch",
    "similarity_matrix",
    "similarity_vs_m",
]
