r"""Closed forms of Acharyya et al. (2021) on the specialised ansatz, as plain functions.

The ansatz (assumptions A1-A7; Goldt et al. 2019, S58-S60): ``K = Z M`` student units, ``Z``
per teacher unit, ``Q_ik = 1`` within a block and 0 across, ``R_in = 1`` on the block of ``n``,
``T = I``, ``v_i = v*/Z``, activation ``g(x) = erf(x/sqrt 2)``, noiseless labels. Every function
is vectorised: its numeric arguments broadcast against each other (Figure 4 evaluates them on a
``Z x c`` grid).

Equal parameter count (Eq. 1) means ``k_n = c K = c Z M``. That is an integer only on a grid
of ``c``; the comparisons :func:`theorem2_difference` and :func:`theorem3_difference` evaluate
Lemma 2 at the *real* ``k = c Z M`` (Eq. 9 and Eq. 10 are linear in ``k``, so this is the linear
interpolation between the integer values; Eq. 14 in the proof of Theorem 3 writes the same thing
as ``M v*^2 (1 - Z c) / 6``). The public functions take the paper's integer counts
(``M, Z >= 1``, ``0 <= k <= M`` for Lemma 2, ``0 <= k <= K = ZM`` for random node pruning) and
refuse anything else with one ``ValueError`` naming the argument and the allowed range.

All errors are :math:`\epsilon_g` for noiseless labels, as in the paper.
"""

from __future__ import annotations

import numpy as np
from scipy.special import comb

from .._validate import check_integer_range

__all__ = [
    "lemma2_dpp_node",
    "lemma2_dpp_node_reweighted",
    "lemma3_node_subset",
    "lemma3_node_subset_reweighted",
    "lemma4_random_edge",
    "theorem3_rescaled_edge",
    "theorem2_difference",
    "theorem3_difference",
    "random_node_expected",
    "random_node_expected_reweighted",
]


def _bound(symbol: str, value) -> str:
    """``"M=2"`` for a scalar bound, ``"M"`` for an array of them."""
    value = np.asarray(value)
    if value.size == 1:
        x = float(value.ravel()[0])
        return f"{symbol}={int(x) if x == round(x) else x:g}"
    return symbol


def _domain(M=None, Z=None, k=None, c=None, v_star=None, k_max: str = "M", c_max_Z=False):
    """The one validator of this module: every argument of the paper's closed forms.

    ``M, Z``: integers >= 1; ``k``: integer in ``0..M`` (``k_max="M"``, Lemma 2) or ``0..ZM``
    (``k_max="K"``, random node pruning); ``c``: real in ``[0, 1]`` (and ``<= 1/Z`` with
    ``c_max_Z``, where Lemma 2 is evaluated at ``k = cZM``); ``v_star``: finite. Returns the
    float arrays, broadcast against each other."""
    out = {}
    if M is not None:
        out["M"] = check_integer_range("M", M, 1, np.inf, ">= 1 (teacher units)")
    if Z is not None:
        out["Z"] = check_integer_range("Z", Z, 1, np.inf, ">= 1 (student units per teacher unit)")
    if k is not None:
        if k_max == "M":
            hi = out["M"]
            allowed = f"0 <= k <= {_bound('M', hi)} (Lemma 2 keeps at most one unit per block)"
        else:
            hi = out["Z"] * out["M"]
            allowed = f"0 <= k <= {_bound('K=Z*M', hi)}"
        out["k"] = check_integer_range("k", k, 0, hi, allowed)
    if c is not None:
        out["c"] = check_integer_range("c", c, 0.0, 1.0, "0 <= c <= 1", integer=False)
        if c_max_Z:
            check_integer_range("c", out["c"], 0.0, 1.0 / out["Z"] * (1 + 1e-12),
                                f"0 <= c <= 1/Z (Lemma 2 needs k = cZM <= M; "
                                f"{_bound('Z', out['Z'])})", integer=False)
    if v_star is not None:
        out["v_star"] = check_integer_range("v_star", v_star, -np.inf, np.inf,
                                            "a finite real number", integer=False)
    names = list(out)
    arrays = np.broadcast_arrays(*(out[n] for n in names))
    return dict(zip(names, arrays, strict=True))


def _scalar(out):
    return out[()] if out.ndim == 0 else out


def _eq9(M, Z, k, v_star):
    return v_star**2 * (k / 6.0 * (1.0 - 1.0 / Z) ** 2 + (M - k) / 6.0)


def _eq10(M, k, v_star):
    return (M - k) * v_star**2 / 6.0


def lemma2_dpp_node(M, Z, k, v_star=1.0):
    r"""Error after DPP node pruning to ``k <= M`` units, no reweighting (Lemma 2, Eq. 9).

    .. math::

        \epsilon^{DPP\,Node}_{k} = (v^*)^2\left[\frac{k}{6}\left(1 - \frac1Z\right)^2
        + \frac{M - k}{6}\right]

    Parameters
    ----------
    M, Z : array_like
        Teacher units and students per teacher unit.
    k : array_like
        Kept units, an integer ``0 <= k <= M`` (``theorem2_difference`` evaluates the formula,
        linear in ``k``, at the real ``k = cZM``).
    v_star : array_like
        Teacher second-layer weight (the same for every teacher unit).
    """
    a = _domain(M=M, Z=Z, k=k, v_star=v_star)
    return _scalar(_eq9(a["M"], a["Z"], a["k"], a["v_star"]))


def lemma2_dpp_node_reweighted(M, Z, k, v_star=1.0):
    r"""Error after DPP node pruning with reweighting (Lemma 2, Eq. 10).

    .. math:: \hat\epsilon^{DPP\,Node}_{k} = (M - k)\,\frac{(v^*)^2}{6}

    ``Z`` does not enter; it is an argument for symmetry with :func:`lemma2_dpp_node`.
    """
    a = _domain(M=M, Z=Z, k=k, v_star=v_star)
    return _scalar(_eq10(a["M"], a["k"], a["v_star"]))


def lemma3_node_subset(M, Z, counts, v_star=1.0):
    r"""Error after keeping ``l_m`` units of block ``m`` (Lemma 3, Eq. 21).

    .. math:: \epsilon = \sum_{m=1}^M \frac{(v^*_m)^2}{6}\left(1 - \frac{l_m}{Z}\right)^2

    The paper states it for :math:`\sum_m l_m \le M`; the derivation (Eq. 17-20) holds for any
    ``0 <= l_m <= Z``, and so does this function.

    Parameters
    ----------
    M : int
    Z : int
    counts : array_like, shape (..., M)
        Kept units per teacher block, ``0 <= l_m <= Z``.
    v_star : float or array_like, shape (M,)
        Teacher second layer (a scalar is broadcast to all units).
    """
    counts, v_star = _block_counts(M, Z, counts, v_star)
    return np.sum(v_star**2 / 6.0 * (1.0 - counts / Z) ** 2, axis=-1)


def lemma3_node_subset_reweighted(M, Z, counts, v_star=1.0):
    r"""Lemma 3 after reweighting: a block with at least one kept unit is explained exactly.

    .. math:: \hat\epsilon = \sum_{m:\,l_m = 0} \frac{(v^*_m)^2}{6}

    (the argument of the proof of Lemma 2, Eq. 10, applied to any subset; the reweightings
    ``"preact"``, ``"activation"`` and ``"refit"`` all give it on the ansatz).
    """
    counts, v_star = _block_counts(M, Z, counts, v_star)
    return np.sum(np.where(counts == 0, v_star**2 / 6.0, 0.0), axis=-1)


def _block_counts(M, Z, counts, v_star):
    """Lemma 3's arguments: scalar integers ``M, Z >= 1``; ``counts`` (..., M) integers in
    ``0..Z``; ``v_star`` a scalar or (M,), finite."""
    for name, value in (("M", M), ("Z", Z)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name}={value!r} must be one integer >= 1 here (counts carries "
                             "the batch axes)")
    a = _domain(M=M, Z=Z)
    M_i, Z_i = int(a["M"]), int(a["Z"])
    counts = np.asarray(counts)
    if counts.shape[-1:] != (M_i,):
        raise ValueError(f"counts must have shape (..., M={M_i}), got {counts.shape}")
    counts = check_integer_range("counts", counts, 0, Z_i, f"0 <= l_m <= Z={Z_i}")
    v_star = np.asarray(v_star)
    if v_star.shape not in ((), (M_i,)):
        raise ValueError(f"v_star must be a scalar or have shape (M={M_i},), got {v_star.shape}")
    v_star = check_integer_range("v_star", v_star, -np.inf, np.inf, "a finite real number",
                                 integer=False)
    return counts, np.broadcast_to(v_star, (M_i,))


def _edge_terms(Z, c):
    """Coefficients of Eq. 15 (in units of M v*^2/pi): ``a`` of ``A^2``, ``b`` of ``-2A``."""
    a = (np.arcsin(c / (1.0 + c)) / Z + (1.0 - 1.0 / Z) * np.arcsin(c * c / (1.0 + c)))
    b = np.arcsin(c / np.sqrt(2.0 * (1.0 + c)))
    return a, b


def lemma4_random_edge(M, Z, c, v_star=1.0):
    r"""Error of the expected network after random edge pruning (Lemma 4, Eq. 11).

    .. math::

        \epsilon^{Rand\,Edge}_c = \frac{M (v^*)^2}{\pi}\Big[\frac1Z\arcsin\frac{c}{1+c}
        + \Big(1 - \frac1Z\Big)\arcsin\frac{c^2}{1+c} + \frac\pi6
        - 2\arcsin\frac{c}{\sqrt{2(1+c)}}\Big]
    """
    d = _domain(M=M, Z=Z, c=c, v_star=v_star)
    M, Z, c, v_star = d["M"], d["Z"], d["c"], d["v_star"]
    a, b = _edge_terms(Z, c)
    return _scalar(M * v_star**2 / np.pi * (a + np.pi / 6.0 - 2.0 * b))


def theorem3_rescaled_edge(M, Z, c, v_star=1.0):
    r"""Minimum over ``A`` of the error of random edge pruning with ``v' = A v`` (Eq. 15).

    .. math::

        \epsilon(A) = \frac{M (v^*)^2}{\pi}\left[a A^2 + \frac\pi6 - 2 b A\right],\quad
        A^* = \frac{b}{a},\quad \min_A \epsilon = \frac{M (v^*)^2}{\pi}
        \left[\frac\pi6 - \frac{b^2}{a}\right]

    with :math:`a = \frac1Z\arcsin\frac{c}{1+c} + (1-\frac1Z)\arcsin\frac{c^2}{1+c}` and
    :math:`b = \arcsin\frac{c}{\sqrt{2(1+c)}}`. At ``c = 0`` (``a = b = 0``) the error does not
    depend on ``A``; ``A = 1`` is returned there.

    Returns
    -------
    eg_min : ndarray or float
    A : ndarray or float
        The minimiser.
    """
    d = _domain(M=M, Z=Z, c=c, v_star=v_star)
    M, Z, c, v_star = d["M"], d["Z"], d["c"], d["v_star"]
    a, b = _edge_terms(Z, c)
    pos = a > 0
    A = np.where(pos, b / np.where(pos, a, 1.0), 1.0)
    eg = M * v_star**2 / np.pi * (np.pi / 6.0 - np.where(pos, b * A, 0.0))
    if eg.ndim == 0:
        return eg[()], A[()]
    return eg, A


def theorem2_difference(Z, c, M=1, v_star=1.0):
    r"""Lemma 2 minus Lemma 4 at equal parameter count ``k = c Z M`` (Theorem 2, Figure 4A).

    .. math:: \epsilon^{DPP\,Node}_{cZM} - \epsilon^{Rand\,Edge}_c

    The paper claims it is ``>= 0`` for ``Z >= 4`` and ``0 <= c <= 1/Z``. ``k = cZM`` is used as a
    real number (see the module docstring); ``c`` must satisfy ``c <= 1/Z`` (Lemma 2 needs
    ``k <= M``).
    """
    d = _domain(M=M, Z=Z, c=c, v_star=v_star, c_max_Z=True)
    M, Z, c, v_star = d["M"], d["Z"], d["c"], d["v_star"]
    k = np.minimum(c * Z * M, M)  # real k: Eq. 9 is linear in k (module docstring)
    return _scalar(_eq9(M, Z, k, v_star) - lemma4_random_edge(M, Z, c, v_star))


def theorem3_difference(Z, c, M=1, v_star=1.0):
    r"""Reweighted DPP node (Eq. 10 = Eq. 14) minus the best rescaled random edge (Eq. 15).

    .. math:: \frac{M (v^*)^2}{6}(1 - Zc) - \min_A \epsilon^{Rand\,Edge}_c(A)

    The paper (Theorem 3, Figure 4B) claims it is ``<= 0`` for ``Z >= 4`` and ``0 <= c <= 1/Z``.
    """
    d = _domain(M=M, Z=Z, c=c, v_star=v_star, c_max_Z=True)
    M, Z, c, v_star = d["M"], d["Z"], d["c"], d["v_star"]
    k = np.minimum(c * Z * M, M)  # real k: Eq. 10 is linear in k (module docstring)
    eg_edge, _ = theorem3_rescaled_edge(M, Z, c, v_star)
    return _scalar(_eq10(M, k, v_star) - eg_edge)


def random_node_expected(M, Z, k, v_star=1.0):
    r"""Expected Lemma-3 error of uniform random node pruning to ``k`` of ``K = ZM`` units.

    Not in the paper; it follows from Lemma 3 because each block count ``l`` is
    hypergeometric (``K`` units, ``Z`` in the block, ``k`` drawn):

    .. math::

        E[\epsilon] = \frac{M (v^*)^2}{6}\Big[\Big(1 - \frac{E l}{Z}\Big)^2
        + \frac{\mathrm{Var}\,l}{Z^2}\Big],\quad E l = \frac{k}{M},\quad
        \mathrm{Var}\,l = k\frac{Z}{K}\Big(1 - \frac{Z}{K}\Big)\frac{K - k}{K - 1}
    """
    d = _domain(M=M, Z=Z, k=k, v_star=v_star, k_max="K")
    M, Z, k, v_star = d["M"], d["Z"], d["k"], d["v_star"]
    K = Z * M
    mean = k / M
    p = Z / K
    var = np.where(K > 1, k * p * (1.0 - p) * (K - k) / np.where(K > 1, K - 1.0, 1.0), 0.0)
    out = M * v_star**2 / 6.0 * ((1.0 - mean / Z) ** 2 + var / Z**2)
    return out[()] if out.ndim == 0 else out


def random_node_expected_reweighted(M, Z, k, v_star=1.0):
    r"""Expected reweighted error of random node pruning: ``M v*^2/6`` times the probability
    that a block loses all its units, :math:`\binom{K-Z}{k}/\binom{K}{k}` (from Lemma 3)."""
    d = _domain(M=M, Z=Z, k=k, v_star=v_star, k_max="K")
    M, Z, k, v_star = d["M"], d["Z"], d["k"], d["v_star"]
    K = Z * M
    p_empty = comb(K - Z, k) / comb(K, k)
    out = M * v_star**2 / 6.0 * p_empty
    return out[()] if out.ndim == 0 else out
