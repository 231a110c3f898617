r"""k-determinantal point processes (k-DPPs) on a finite ground set, written for node pruning.

A k-DPP with (likelihood) kernel ``L`` (K, K), symmetric positive semi-definite, draws a subset
``S`` of ``{0..K-1}`` with ``|S| = k`` and

.. math::

    P(S) = \frac{\det L_S}{e_k(\lambda_1, \dots, \lambda_K)},

where :math:`e_k` is the k-th elementary symmetric polynomial of the eigenvalues of ``L``
(Kulesza & Taskar 2012, Eq. 5.3 and Prop. 5.1). Everything here works from the spectrum:

- :func:`elementary_symmetric` -- the table :math:`e_l(\lambda_1..\lambda_n)` by the recursion
  :math:`e_l^n = e_l^{n-1} + \lambda_n e_{l-1}^{n-1}` (Kulesza & Taskar 2012, Alg. 7); every term
  is non-negative, so there is no cancellation.
- :func:`k_dpp_probabilities` -- exact probabilities of all subsets (enumeration).
- :func:`k_dpp_inclusion_probabilities` -- exact marginals :math:`P(i \in S)`.
- :func:`sample_k_dpp` -- the exact spectral sampler: choose k eigenvectors (Kulesza & Taskar
  2012, Alg. 8), then sample from the elementary DPP they span (Alg. 1, second phase).
- :func:`k_dpp_map_greedy` -- the greedy approximation of the most likely subset.

Rank-deficient kernels (trained students: several units learned the same teacher) are the rule
here, not the exception. Eigenvalues below ``RANK_RTOL * lambda_max`` are set to zero, so the
sampler never uses a numerical null-space direction and the probabilities of subsets spanning a
null direction are ~0. When ``rank(L) < k`` every size-k subset has probability zero and the
k-DPP does not exist: a ``ValueError`` says so.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..state import PSD_RTOL, as_generator

__all__ = [
    "PSD_RTOL",
    "RANK_RTOL",
    "check_kernel",
    "kernel_rank",
    "elementary_symmetric",
    "k_dpp_probabilities",
    "k_dpp_inclusion_probabilities",
    "sample_k_dpp",
    "k_dpp_map_greedy",
    "all_subsets",
]

#: (the smallest allowed eigenvalue of a kernel, relative to ``max(1, max|L_ij|)``, is the
#: package's PSD tolerance ``odeprune.state.PSD_RTOL``)
#: Eigenvalues below ``RANK_RTOL * lambda_max`` count as zero (numerical rank).
RANK_RTOL = 1e-10


def check_kernel(L, K: int | None = None, name: str = "kernel") -> np.ndarray:
    """Validate a k-DPP kernel: real, finite, square (K, K), symmetric, positive semi-definite.

    Returns the symmetrised float array; raises ``ValueError`` naming ``name`` otherwise.
    """
    try:
        L = np.array(L, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real (K, K) array, got {type(L).__name__}") from None
    if L.ndim != 2 or L.shape[0] != L.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) array, got shape {L.shape}")
    if K is not None and L.shape[0] != K:
        raise ValueError(f"{name} must have shape ({K}, {K}) for K={K}, got {L.shape}")
    if L.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(L)):
        raise ValueError(f"{name} contains non-finite entries")
    scale = max(1.0, float(np.max(np.abs(L))))
    if np.max(np.abs(L - L.T)) > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric (max asymmetry {np.max(np.abs(L - L.T)):.3e})")
    L = 0.5 * (L + L.T)
    lam_min = float(np.linalg.eigvalsh(L)[0])
    if lam_min < -PSD_RTOL * scale:
        raise ValueError(f"{name} is not positive semi-definite: smallest eigenvalue "
                         f"{lam_min:.3e}; allowed down to {-PSD_RTOL * scale:.1e}")
    return L


def _spectrum(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending, clipped, small ones zeroed, scaled by the largest) and vectors."""
    lam, V = np.linalg.eigh(L)
    lam_max = float(lam[-1]) if lam[-1] > 0 else 0.0
    lam = np.where(lam > RANK_RTOL * lam_max, lam, 0.0)
    if lam_max > 0:
        lam = lam / lam_max
    return lam, V


def kernel_rank(L) -> int:
    """Numerical rank of a PSD kernel: eigenvalues above ``RANK_RTOL * lambda_max``."""
    lam, _ = _spectrum(check_kernel(L))
    return int(np.count_nonzero(lam))


def _check_k(k, K: int) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k={k!r} must be an integer in 1..K={K}")
    if not 1 <= k <= K:
        raise ValueError(f"k={k!r} is out of range; allowed 1..K={K}")
    return int(k)


def _check_rank(lam: np.ndarray, k: int) -> None:
    r = int(np.count_nonzero(lam))
    if r < k:
        raise ValueError(
            f"k={k} exceeds the rank {r} of the DPP kernel (eigenvalues below {RANK_RTOL:g} x the "
            f"largest count as zero): every subset of size k has det(L_S)=0, so the k-DPP is "
            f"undefined; allowed k <= {r}"
        )


def _k_dpp_spectrum(L, k) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(K, k, lam, V)`` of a k-DPP with kernel ``L``, after every check: a PSD kernel,
    ``1 <= k <= K`` and ``k`` at most the kernel's rank."""
    L = check_kernel(L)
    K = L.shape[0]
    k = _check_k(k, K)
    lam, V = _spectrum(L)
    _check_rank(lam, k)
    return K, k, lam, V


def elementary_symmetric(lam, k: int) -> np.ndarray:
    r"""Table of elementary symmetric polynomials of the first ``n`` values.

    .. math::

        E_{n,l} = e_l(\lambda_1..\lambda_n),\qquad
        E_{n,l} = E_{n-1,l} + \lambda_n E_{n-1,l-1},\quad E_{n,0} = 1

    (Kulesza & Taskar 2012, Alg. 7).

    Parameters
    ----------
    lam : array_like, shape (K,)
        Non-negative values (eigenvalues of a PSD kernel).
    k : int
        Largest order needed.

    Returns
    -------
    E : ndarray, shape (K + 1, k + 1)
    """
    lam = np.asarray(lam, dtype=float)
    K = lam.shape[0]
    E = np.zeros((K + 1, k + 1))
    E[:, 0] = 1.0
    for n in range(1, K + 1):
        E[n, 1:] = E[n - 1, 1:] + lam[n - 1] * E[n - 1, :-1]
    return E


def log_elementary_symmetric(lam, k: int) -> np.ndarray:
    r"""``log`` of :func:`elementary_symmetric`, computed in log space (no overflow or
    underflow for large kernels: e_k of 500 eigenvalues easily exceeds 1e308).

    .. math:: \log E_{n,l} = \mathrm{logaddexp}(\log E_{n-1,l}, \log\lambda_n + \log E_{n-1,l-1})
    """
    lam = np.asarray(lam, dtype=float)
    K = lam.shape[0]
    with np.errstate(divide="ignore"):
        log_lam = np.log(np.clip(lam, 0.0, None))
    logE = np.full((K + 1, k + 1), -np.inf)
    logE[:, 0] = 0.0
    for n in range(1, K + 1):
        logE[n, 1:] = np.logaddexp(logE[n - 1, 1:], log_lam[n - 1] + logE[n - 1, :-1])
    return logE


def all_subsets(K: int, k: int) -> np.ndarray:
    """Every k-subset of ``range(K)`` in lexicographic order, shape (C(K, k), k)."""
    n = math.comb(K, k)
    flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(K), k)),
                       dtype=np.int64, count=n * k)
    return flat.reshape(n, k)


def k_dpp_probabilities(L, k: int, subsets=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact k-DPP probabilities :math:`P(S) = \det L_S / e_k(\lambda)`.

    Parameters
    ----------
    L : array_like, shape (K, K)
        PSD kernel.
    k : int
        Subset size, ``1 <= k <= rank(L)``.
    subsets : array_like of int, shape (n, k), optional
        Subsets to evaluate; default all ``C(K, k)`` of them (lexicographic order).

    Returns
    -------
    subsets : ndarray of int, shape (n, k)
    probabilities : ndarray, shape (n,)
        Non-negative; over all subsets they sum to 1 up to rounding. The determinants are
        taken of the kernel rebuilt from its thresholded spectrum, so that they sum exactly
        (Cauchy-Binet) to the normaliser :math:`e_k` of the same spectrum.
    """
    K, k, lam, V = _k_dpp_spectrum(L, k)
    e_k = elementary_symmetric(lam, k)[K, k]
    Ls = (V * lam) @ V.T
    if subsets is None:
        subsets = all_subsets(K, k)
    else:
        subsets = np.asarray(subsets, dtype=np.int64).reshape(-1, k)
    blocks = Ls[subsets[:, :, None], subsets[:, None, :]]
    dets = np.clip(np.linalg.det(blocks), 0.0, None)
    return subsets, dets / e_k


def k_dpp_inclusion_probabilities(L, k: int) -> np.ndarray:
    r"""Exact marginals of a k-DPP.

    .. math::

        P(i \in S) = \sum_n V_{in}^2\, \frac{\lambda_n\, e_{k-1}(\lambda_{-n})}{e_k(\lambda)}

    (Kulesza & Taskar 2012, Eq. 5.9 with Prop. 5.1), where :math:`\lambda_{-n}` omits the n-th
    eigenvalue. They sum to k.

    Returns
    -------
    p : ndarray, shape (K,)
    """
    K, k, lam, V = _k_dpp_spectrum(L, k)
    # ratios of elementary symmetric polynomials in log space (they overflow for large K)
    log_e_k = log_elementary_symmetric(lam, k)[K, k]
    weight = np.zeros(K)
    for n in range(K):
        if lam[n] > 0:
            log_others = log_elementary_symmetric(np.delete(lam, n), k - 1)[K - 1, k - 1]
            weight[n] = np.exp(np.log(lam[n]) + log_others - log_e_k)
    return (V**2) @ weight


def _select_eigenvectors(lam: np.ndarray, logE: np.ndarray, k: int, rng) -> np.ndarray:
    """Kulesza & Taskar (2012), Alg. 8: choose k eigenvector indices (``logE`` from
    :func:`log_elementary_symmetric`)."""
    selected = []
    remaining = k
    for n in range(lam.shape[0], 0, -1):
        if remaining == 0:
            break
        if n == remaining:  # E[n-1, n] = 0: the ratio below is exactly 1
            selected.extend(range(n))
            break
        if lam[n - 1] <= 0.0:
            continue
        if logE[n - 1, remaining] == -np.inf:  # skipping item n is impossible
            p = 1.0
        else:
            p = float(np.exp(np.log(lam[n - 1]) + logE[n - 1, remaining - 1]
                             - logE[n, remaining]))
        if rng.random() < p:
            selected.append(n - 1)
            remaining -= 1
    return np.array(selected, dtype=np.int64)


def _sample_elementary(V: np.ndarray, rng) -> list[int]:
    """Sample the projection DPP onto the orthonormal columns of ``V`` (N, k), exactly.

    The chain rule with incremental Gram-Schmidt (the second phase of Kulesza & Taskar 2012,
    Alg. 1, organised as in DPPy's ``proj_dpp_sampler_eig_GS``): item ``j`` is drawn with
    probability ``||P_rest V_j||^2 / (k - t)`` and the residual norms are updated with the new
    orthonormal direction. O(N k^2) instead of a QR per step.
    """
    N, k = V.shape
    norms2 = np.einsum("ij,ij->i", V, V)
    C = np.zeros((k, N))
    Y: list[int] = []
    for t in range(k):
        p = np.clip(norms2, 0.0, None)
        p[Y] = 0.0
        total = p.sum()
        i = int(np.searchsorted(np.cumsum(p), rng.random() * total, side="right"))
        i = min(i, N - 1)
        while p[i] == 0.0:  # round-off at the cumsum boundary
            i -= 1
        Y.append(i)
        c = V @ V[i] - C[:t].T @ C[:t, i]
        c /= np.sqrt(p[i])
        C[t] = c
        norms2 -= c * c
    return sorted(Y)


def sample_k_dpp(L, k: int, size: int = 1, seed: int | np.random.Generator | None = None
                 ) -> np.ndarray:
    """Exact samples of a k-DPP by the spectral method (Kulesza & Taskar 2012, Alg. 8 + Alg. 1).

    Parameters
    ----------
    L : array_like, shape (K, K)
        PSD kernel with ``rank(L) >= k``.
    k : int
    size : int
        Number of independent samples.
    seed : int or numpy.random.Generator

    Returns
    -------
    samples : ndarray of int, shape (size, k)
        Each row sorted ascending.
    """
    K, k, lam, V = _k_dpp_spectrum(L, k)
    logE = log_elementary_symmetric(lam, k)
    rng = as_generator(seed)
    out = np.empty((int(size), k), dtype=np.int64)
    for s in range(int(size)):
        idx = _select_eigenvectors(lam, logE, k, rng)
        out[s] = _sample_elementary(V[:, idx], rng)
    return out


def k_dpp_map_greedy(L, k: int) -> np.ndarray:
    r"""Greedy MAP subset: start empty, repeatedly add the item maximising :math:`\det L_S`.

    Ties go to the lower index. This is the standard greedy approximation of
    :math:`\arg\max_{|S|=k} \det L_S` (the exact maximum is NP-hard; Kulesza & Taskar 2012, §2.4).

    Returns
    -------
    S : ndarray of int, shape (k,)
        Sorted ascending.
    """
    K, k, lam, V = _k_dpp_spectrum(L, k)
    Ls = (V * lam) @ V.T
    S: list[int] = []
    for _ in range(k):
        cand = [i for i in range(K) if i not in S]
        idx = np.array([S + [i] for i in cand], dtype=np.int64)
        dets = np.linalg.det(Ls[idx[:, :, None], idx[:, None, :]])
        S.append(cand[int(np.argmax(dets))])
    return np.array(sorted(S), dtype=np.int64)
