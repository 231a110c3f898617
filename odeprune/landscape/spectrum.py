r"""The exact population Hessian spectrum of :math:`\epsilon_g` and the sharpness, through order
parameters (docs/theory.md §10, "Gradient and Hessian through the order parameters").

The first-layer Hessian has, in natural units :math:`N\lambda`, the **bulk** (the K eigenvalues
:math:`2\mu_a` of :math:`2G`, each with multiplicity ``N - r``) and ``K r`` **outliers** (the
eigenvalues of :math:`F = 2G\otimes I_r + J^T\nabla^2\epsilon_g J` in a basis of the span of
the weights); a masked network has one bulk per mask class. Both are N-independent and exact at
finite N for Gaussian inputs (derivation in :mod:`odeprune.landscape.derivatives`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..state import OrderParams
from .derivatives import (
    _G_HR,
    _activation_name,
    _basis,
    _check_state,
    _classes,
    _derivatives,
    _jacobian,
)

__all__ = ["HessianSpectrum", "Sharpness", "hessian_spectrum", "sharpness"]


@dataclass(frozen=True, eq=False)
class HessianSpectrum:
    r"""Exact population Hessian spectrum of :math:`\epsilon_g` at a state (docs/theory.md §10).

    Attributes
    ----------
    eigenvalues : ndarray, shape (n_bulk + n_outliers,)
        First-layer eigenvalues in natural units :math:`N\lambda`: the bulk values (dense state:
        the K values :math:`2\mu_a`, one entry per eigenvalue of G, so equal values may repeat;
        masked state: the eigenvalues of :math:`2G[s,s]` per mask class ``s``) followed by the
        outliers (``K r`` for a dense state), each part ascending.
    multiplicities : ndarray, shape (n_bulk + n_outliers,)
        At finite ``N``: ``N f - r`` for each bulk entry (dense: ``N - r``; masked: the class's
        coordinates minus the rank of its span) and 1 for each outlier; they sum to the number
        of (kept) first-layer weights. In the limit (``N=None``): the fraction of ``N`` (bulk:
        1, or the class fraction ``f_s``; outliers: 0).
    labels : tuple of str
        ``"bulk"`` or ``"outlier"`` per entry.
    N : int or None
    rank : int
        ``r = dim span{w_k, w*_n}`` (numerical rank of C); for a masked state the sum of the
        per-class ranks.
    G : ndarray, shape (K, K)
        :math:`\partial\epsilon_g/\partial Q` (of the summed order parameters).
    outlier_matrix : ndarray, shape (n_outliers, n_outliers)
        ``F`` (natural units).
    second_layer : ndarray, shape (K,)
        Eigenvalues of :math:`\partial^2\epsilon_g/\partial v^2 = I_2` (student block; raw units).
    second_layer_matrix : ndarray, shape (K, K)
    mixed : ndarray, shape (K, n_outliers)
        :math:`\sqrt N\,\partial^2\epsilon_g/\partial v\,\partial X` in the basis of the span
        (N-independent; zero on the bulk).
    activation : str
    bulk_fraction : ndarray, shape (n_bulk,)
        Fraction of the input coordinates behind each bulk entry (1 dense; ``f_s`` masked).
    bulk_rank : ndarray of int, shape (n_bulk,)
        Rank subtracted from ``N f`` in the multiplicity of each bulk entry.
    bulk_class : ndarray of int, shape (n_bulk,)
        Mask class of each bulk entry (0 for a dense state).
    """

    eigenvalues: np.ndarray
    multiplicities: np.ndarray
    labels: tuple
    N: int | None
    rank: int
    G: np.ndarray
    outlier_matrix: np.ndarray
    second_layer: np.ndarray
    second_layer_matrix: np.ndarray
    mixed: np.ndarray
    activation: str
    bulk_fraction: np.ndarray
    bulk_rank: np.ndarray
    bulk_class: np.ndarray

    @property
    def n_bulk(self) -> int:
        return int(self.bulk_fraction.size)

    @property
    def bulk(self) -> np.ndarray:
        r"""The bulk eigenvalues (natural units); dense: the K values :math:`2\mu_a`, ascending."""
        return self.eigenvalues[: self.n_bulk]

    @property
    def outliers(self) -> np.ndarray:
        """The outlier eigenvalues (natural units), ascending."""
        return self.eigenvalues[self.n_bulk:]

    def bulk_multiplicities(self, N: int | None = None) -> np.ndarray:
        """``round(N f) - r`` per bulk entry at ``N`` (int array)."""
        N = self._need_N(N)
        mult = np.rint(N * self.bulk_fraction).astype(np.int64) - self.bulk_rank
        if np.any(mult < 0):
            raise ValueError(f"N={N} is too small: a class has fewer coordinates than the rank "
                             "of its span")
        return mult

    def first_layer(self, N: int | None = None) -> np.ndarray:
        """Every first-layer eigenvalue at ``N`` with repetition, natural units, ascending;
        shape (number of (kept) first-layer weights,)."""
        mult = np.concatenate([self.bulk_multiplicities(N),
                               np.ones(self.outliers.size, dtype=np.int64)])
        return np.sort(np.repeat(self.eigenvalues, mult))

    def joint(self, N: int | None = None) -> np.ndarray:
        """Every eigenvalue of the Hessian in ``(W, v)`` at ``N``, raw units, ascending. The bulk
        is its natural value over ``N``; the rest is the spectrum of
        ``[[F/N, mixed^T/sqrt N], [mixed/sqrt N, I2]]``."""
        mult = self.bulk_multiplicities(N)
        N = self._need_N(N)
        F, B, V = self.outlier_matrix, self.mixed, self.second_layer_matrix
        big = np.block([[F / N, B.T / math.sqrt(N)], [B / math.sqrt(N), V]])
        finite = np.linalg.eigvalsh(big)
        return np.sort(np.concatenate([np.repeat(self.bulk / N, mult), finite]))

    def _need_N(self, N):
        N = self.N if N is None else N
        if N is None:
            raise ValueError("give N (the input dimension) to expand the spectrum")
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
            raise ValueError(f"N={N!r} must be a positive integer")
        return int(N)


@dataclass(frozen=True)
class Sharpness:
    r"""Trace and top eigenvalue of the first-layer Hessian.

    Attributes
    ----------
    trace : float
        Raw trace :math:`\mathrm{tr}\,\nabla^2_W\epsilon_g = ((N - r)\,2\,\mathrm{tr}G
        + \mathrm{tr}F)/N` at finite N; :math:`2\,\mathrm{tr}G` in the limit.
    top : float
        Largest eigenvalue, natural units :math:`N\lambda_{max}`.
    top_label : str
        ``"bulk"`` or ``"outlier"``.
    bulk_top : float
        Largest bulk value :math:`2\mu_{max}`.
    """

    trace: float
    top: float
    top_label: str
    bulk_top: float



def hessian_spectrum(state: OrderParams, N: int | None = None,
                     activation: str | None = None) -> HessianSpectrum:
    r"""Exact first-layer population Hessian spectrum of :math:`\epsilon_g` (docs/theory.md §10).

    Parameters
    ----------
    state : OrderParams or SparseOrderParams
        A masked network (docs/theory.md §8): its Hessian lives on the kept weights. Per mask
        class ``s`` (units ``s``, fraction ``f_s`` of the coordinates, span of rank ``r_s``) the
        bulk is the eigenvalues of :math:`2G[s,s]` with multiplicity :math:`Nf_s - r_s`; the
        outliers come from one matrix coupling all classes through ``(Q, R)``.
    N : int, optional
        Input dimension for the multiplicities (``N - r`` per bulk value); ``None``: the limit
        (multiplicities as fractions of N).
    activation : {"erf", "linear", "relu"}, optional
        Default: ``state.activation`` when the state carries one, else ``"erf"``.

    Returns
    -------
    HessianSpectrum
        ``eigenvalues`` (natural units :math:`N\lambda`), ``multiplicities``, ``labels``; the
        second-layer block and the mixed block separately.

    Notes
    -----
    .. math:: N\nabla^2_W\epsilon_g = 2G\otimes I_N + J^T\nabla^2_{(Q,R)}\epsilon_g J

    Bulk :math:`2\mu_a` (eigenvalues of 2G) with multiplicity ``N - r``; outliers: eigenvalues of
    :math:`F = 2G\otimes I_r + J^T\nabla^2\epsilon_g J` (``K r`` of them). Exact at finite N for
    Gaussian inputs. Directions of ``C`` with eigenvalue below ``RANK_RTOL`` times the largest
    count as outside the span.
    """
    _check_state(state)
    name = _activation_name(state, activation)
    C, a, K, M, classes = _classes(state)
    D = _derivatives(C, a, K, name)
    G, _ = _G_HR(D, K, M)
    blocks, Js, bulk, frac, ranks, cls = [], [], [], [], [], []
    for c_i, (units, f, Cs) in enumerate(classes):
        A = _basis(Cs)
        r = A.shape[1]
        Gs = G[np.ix_(units, units)]
        mu = np.linalg.eigvalsh(Gs)
        bulk.append(2.0 * mu)
        frac.append(np.full(units.size, f))
        ranks.append(np.full(units.size, r, dtype=np.int64))
        cls.append(np.full(units.size, c_i, dtype=np.int64))
        if r:
            blocks.append(2.0 * np.kron(Gs, np.eye(r)))
            Js.append(_jacobian(A, units, K, D.idx, D.g.size))
    J = np.hstack(Js) if Js else np.zeros((D.g.size, 0))
    n_out = J.shape[1]
    F = np.zeros((n_out, n_out))
    o = 0
    for blk in blocks:
        F[o:o + blk.shape[0], o:o + blk.shape[0]] = blk
        o += blk.shape[0]
    F += J.T @ D.H @ J
    F = 0.5 * (F + F.T)
    bulk_v, frac_v = np.concatenate(bulk), np.concatenate(frac)
    rank_v, cls_v = np.concatenate(ranks), np.concatenate(cls)
    order = np.argsort(bulk_v, kind="stable")
    bulk_v, frac_v, rank_v, cls_v = bulk_v[order], frac_v[order], rank_v[order], cls_v[order]
    out = np.linalg.eigvalsh(F)
    if N is None:
        mult = np.concatenate([frac_v, np.zeros(out.size)])
    else:
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
            raise ValueError(f"N={N!r} must be a positive integer")
        N = int(N)
        bm = np.rint(N * frac_v).astype(np.int64) - rank_v
        if np.any(bm < 0) or np.any(np.abs(N * frac_v - np.rint(N * frac_v)) > 1e-6):
            raise ValueError(f"N={N} does not fit the state: each class needs N f coordinates "
                             "(an integer) at least the rank of its span (dense: N >= r = "
                             f"{int(rank_v.max()) if rank_v.size else 0})")
        mult = np.concatenate([bm, np.ones(out.size, dtype=np.int64)])
    V = D.I2[:K, :K].copy()
    return HessianSpectrum(
        eigenvalues=np.concatenate([bulk_v, out]), multiplicities=mult,
        labels=tuple(["bulk"] * bulk_v.size + ["outlier"] * out.size), N=N,
        rank=int(sum(int(rk[0]) for rk in ranks if rk.size)),
        G=G, outlier_matrix=F, second_layer=np.linalg.eigvalsh(V), second_layer_matrix=V,
        mixed=D.Mv @ J, activation=name, bulk_fraction=frac_v, bulk_rank=rank_v,
        bulk_class=cls_v)


def sharpness(state: OrderParams, N: int | None = None,
              activation: str | None = None) -> Sharpness:
    r"""Trace and largest eigenvalue of the first-layer population Hessian.

    Parameters
    ----------
    state : OrderParams
    N : int, optional
        Finite input dimension (exact trace at N); ``None``: the limit.
    activation : str, optional

    Returns
    -------
    Sharpness
        ``trace`` (raw), ``top`` (natural units), which part holds the top, the top bulk value.
    """
    spec = hessian_spectrum(state, N, activation)
    if N is None:
        trace = float(spec.bulk @ spec.bulk_fraction)
    else:
        trace = float((spec.bulk @ spec.multiplicities[:spec.n_bulk]
                       + np.trace(spec.outlier_matrix)) / N)
    j = int(np.argmax(spec.eigenvalues))
    return Sharpness(trace=trace, top=float(spec.eigenvalues[j]), top_label=spec.labels[j],
                     bulk_top=float(spec.bulk.max()))

