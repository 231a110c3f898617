r"""Node pruning as maps on order parameters (Acharyya et al. 2021, Lemma 3; docs/theory.md §6).

Keeping the student units ``S`` (``|S| = k``) maps

.. math:: Q' = Q_{SS},\quad R' = R_{S\cdot},\quad T' = T,\quad v' = v_S \text{ (or reweighted)}.

Node pruning does not change any overlap, so the Gaussian averages of the pruned network are
sub-blocks of the unpruned ones: with ``G = I2`` over all fields computed once, the error of
every subset is a quadratic form (:func:`odeprune.pruning.reweight.eg_quadratic`) and a whole
distribution of subsets is evaluated in a few batched numpy calls.

Each method returns the distribution of the kept subset: ``subsets`` (n, k), ``probabilities``
(n,), and ``n_draws`` (0 for an exact distribution, the number of Monte Carlo draws otherwise;
then ``probabilities`` are empirical frequencies).

Each method is a :class:`NodeMethod` with its limit form (the distribution of the kept subset of
a state) and its finite-N form (subsets of real units, with empirical kernels) side by side; the
classes declare the method names (:data:`NODE_METHODS`), which
:mod:`odeprune.pruning.registry` lists with the edge rules.
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import get_activation
from ..ode.progress import progress_bar
from . import dpp

__all__ = ["NODE_METHODS", "NODE_CLASSES", "NodeMethod", "KERNELS", "MAX_ENUMERATE",
           "node_kernel", "random_node", "importance_node", "dpp_node", "dpp_node_sampled",
           "dpp_map_node", "activation_gram_all"]

KERNELS = ("Q", "activation")
#: Largest number of subsets ``C(K, k)`` enumerated exactly; above it, Monte Carlo.
MAX_ENUMERATE = 20_000
#: k-DPP subset probabilities below this are dropped as round-off (subsets spanning a null
#: direction of a rank-deficient kernel have det(L_S) ~ 1e-16 instead of 0).
PROB_ATOL = 1e-12


def activation_gram_all(state, activation: str | None = None) -> np.ndarray:
    """:math:`I_2` over all ``K + M`` fields of ``state`` (students first), shape (K+M, K+M).

    ``activation`` defaults to the state's own (and may only repeat it): a ReLU state gets the
    ReLU Gram matrix, never an erf one by default.
    """
    act = get_activation(state.check_activation(activation))
    return act.I2_matrix(np.ascontiguousarray(state.covariance()))


def node_kernel(state, kernel="Q", activation: str | None = None) -> np.ndarray:
    r"""The DPP kernel over the student units, shape (K, K).

    ``"Q"``: the limit of the pre-activation Gram matrix :math:`h_i\cdot h_j/(N n)`
    (Acharyya et al. 2021, Lemma 1); ``"activation"``: the limit of the activation Gram matrix,
    :math:`L_{ij} = I_2(i, j)` with the state's activation; or an explicit PSD array of shape
    (K, K).
    """
    if isinstance(kernel, str):
        if kernel == "Q":
            return np.array(state.Q)
        if kernel == "activation":
            return activation_gram_all(state, activation)[:state.K, :state.K]
        raise ValueError(f"kernel={kernel!r} is unknown; allowed {KERNELS} or a (K, K) PSD array")
    return dpp.check_kernel(kernel, state.K, name="kernel")


def from_draws(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    draws = np.sort(draws, axis=1)
    subsets, counts = np.unique(draws, axis=0, return_counts=True)
    return subsets, counts / draws.shape[0], int(draws.shape[0])


def random_node(K: int, k: int, exact: bool, n_samples: int, rng):
    """k of K units uniformly at random: all ``C(K, k)`` subsets with equal probability when
    ``exact`` and ``C(K, k) <= MAX_ENUMERATE``, otherwise ``n_samples`` Monte Carlo draws."""
    if exact and math.comb(K, k) <= MAX_ENUMERATE:
        subsets = dpp.all_subsets(K, k)
        return subsets, np.full(subsets.shape[0], 1.0 / subsets.shape[0]), 0
    draws = np.argsort(rng.random((n_samples, K)), axis=1)[:, :k]
    return from_draws(draws)


def importance_node(v: np.ndarray, k: int):
    """The k units with the largest :math:`|v_i|`; ties go to the lower index (stable sort).

    On the specialised ansatz all :math:`|v_i|` are equal, so this keeps units ``0..k-1``.
    """
    order = np.argsort(-np.abs(v), kind="stable")
    return np.sort(order[:k])[None, :].astype(np.int64), np.ones(1), 0


def dpp_node(L: np.ndarray, k: int, exact: bool, n_samples: int, rng):
    r"""k-DPP with kernel ``L``: exact :math:`\det L_S / e_k(\lambda)` over all subsets when
    ``exact`` and ``C(K, k) <= MAX_ENUMERATE``, else ``n_samples`` exact spectral samples
    (Kulesza & Taskar 2012, Alg. 8 + Alg. 1). Exact probabilities below ``PROB_ATOL`` are
    dropped as determinant round-off and the rest renormalised."""
    K = L.shape[0]
    if exact and math.comb(K, k) <= MAX_ENUMERATE:
        subsets, p = dpp.k_dpp_probabilities(L, k)
        keep = p > PROB_ATOL
        return subsets[keep], p[keep] / p[keep].sum(), 0
    return from_draws(dpp.sample_k_dpp(L, k, size=n_samples, seed=rng))


def dpp_map_node(L: np.ndarray, k: int):
    """Greedy MAP subset of the k-DPP with kernel ``L`` (ties to the lower index)."""
    return dpp.k_dpp_map_greedy(L, k)[None, :], np.ones(1), 0


def dpp_node_sampled(L, k, exact, n_samples, rng, progress):
    """:func:`dpp_node`, drawing Monte Carlo samples in chunks to show progress (the same
    generator in the same order: the same draws as one call)."""
    if exact and math.comb(L.shape[0], k) <= MAX_ENUMERATE:
        return dpp_node(L, k, exact, n_samples, rng)
    chunk = 500
    draws = []
    with progress_bar(progress, n_samples, "dpp_node samples", unit="draw") as bar:
        for start in range(0, n_samples, chunk):
            size = min(chunk, n_samples - start)
            draws.append(dpp.sample_k_dpp(L, k, size=size, seed=rng))
            bar.update(size)
    return from_draws(np.concatenate(draws))


# ---------------------------------------------------------------------------------------------
# the methods: limit form and finite-N form
# ---------------------------------------------------------------------------------------------
def _empirical_kernel(H: np.ndarray, Gs: np.ndarray, kernel: str) -> np.ndarray:
    """The DPP kernel over real units from ``n`` samples: :math:`h_i\\cdot h_j/(Nn)` (``"Q"``,
    ``H`` the pre-activations) or :math:`g(\\lambda_i)\\cdot g(\\lambda_j)/n`."""
    F = H if kernel == "Q" else Gs
    return F.T @ F / F.shape[0]


class NodeMethod:
    """A node-pruning method. ``limit(state, k, ...)`` gives ``(subsets, probabilities,
    n_draws)`` of the kept units of a state; ``finite(v, k, ...)`` the kept units (n_masks or
    1, k) of real weights from the samples' pre-activations ``H`` and activations ``Gs``."""

    name = ""
    description = ""
    #: one outcome (no randomness), in the limit and at finite N
    deterministic = False
    #: subsets are sampled (``seed``, ``n_samples``, Monte Carlo when too many to enumerate)
    sampled = False
    #: takes the DPP ``kernel``
    uses_kernel = False

    @staticmethod
    def limit(state, k: int, *, kernel, activation, exact, n_samples, rng, progress):
        raise NotImplementedError

    @staticmethod
    def finite(v, k: int, *, H, Gs, kernel, n_masks, rng):
        raise NotImplementedError


class RandomNode(NodeMethod):
    name = "random_node"
    description = "k of the K units uniformly at random"
    sampled = True

    @staticmethod
    def limit(state, k, *, exact, n_samples, rng, **_):
        return random_node(state.K, k, exact, n_samples, rng)

    @staticmethod
    def finite(v, k, *, n_masks, rng, **_):
        return np.sort(np.argsort(rng.random((n_masks, v.shape[0])), axis=1)[:, :k], axis=1)


class ImportanceNode(NodeMethod):
    name = "importance_node"
    description = "the k units with the largest |v_i|"
    deterministic = True

    @staticmethod
    def limit(state, k, **_):
        return importance_node(np.array(state.v), k)

    @staticmethod
    def finite(v, k, **_):
        return importance_node(v, k)[0]


class DPPNode(NodeMethod):
    name = "dpp_node"
    description = "k-DPP over the units with a Gram kernel (the authors' method)"
    sampled = True
    uses_kernel = True

    @staticmethod
    def limit(state, k, *, kernel, activation, exact, n_samples, rng, progress):
        L = node_kernel(state, kernel, activation)
        return dpp_node_sampled(L, k, exact, n_samples, rng, progress)

    @staticmethod
    def finite(v, k, *, H, Gs, kernel, n_masks, rng):
        return dpp.sample_k_dpp(_empirical_kernel(H, Gs, kernel), k, size=n_masks, seed=rng)


class DPPMapNode(NodeMethod):
    name = "dpp_map_node"
    description = "greedy MAP subset of the k-DPP"
    deterministic = True
    uses_kernel = True

    @staticmethod
    def limit(state, k, *, kernel, activation, **_):
        return dpp_map_node(node_kernel(state, kernel, activation), k)

    @staticmethod
    def finite(v, k, *, H, Gs, kernel, **_):
        return dpp.k_dpp_map_greedy(_empirical_kernel(H, Gs, kernel), k)[None, :]


#: the node methods, in the order of :data:`odeprune.pruning.METHODS`
NODE_CLASSES: tuple[type[NodeMethod], ...] = (RandomNode, ImportanceNode, DPPNode, DPPMapNode)
NODE_METHODS = tuple(cls.name for cls in NODE_CLASSES)
