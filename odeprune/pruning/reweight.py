r"""Second-layer reweighting after pruning, in the thermodynamic limit (docs/theory.md §6).

Everything is a linear-algebra map on the order parameters and on the Gaussian averages
:math:`I_2` of the (pruned) fields. With ``G = I2`` over all ``K + M`` fields, ``S`` the kept
units and ``rem`` the removed ones:

- ``"preact"``: :math:`v'_S = v_S + Q_{SS}^+ Q_{S,rem} v_{rem}` -- the limit of regressing the
  removed units' pre-activations on the kept ones (the authors' reweighting; Mariet & Sra 2016);
- ``"activation"``: :math:`v'_S = v_S + I_{2,SS}^+ I_{2,S\,rem} v_{rem}` -- the least-squares fit
  of the full student's output by the kept units;
- ``"refit"``: :math:`v'_S = I_{2,SS}^+ I_{2,S\,T} v^*` -- the best second layer for the kept
  units (least-squares fit of the teacher);
- after edge pruning, ``"rescale"``: :math:`v' = A v` with the ``A`` minimising
  :math:`\epsilon_g`, which is quadratic in ``A`` (Acharyya et al. 2021, Theorem 3, Eq. 15):

  .. math:: A^* = \frac{v^T I_{2,KT} v^*}{v^T I_{2,KK} v}.

Kernels of trained students are often singular (units that learned the same teacher), so every
inverse is a Moore-Penrose pseudo-inverse with singular values below ``RCOND`` times the largest
treated as zero: the minimum-norm least-squares solution.
"""

from __future__ import annotations

import numpy as np

from .registry import EDGE_REWEIGHTS, NODE_REWEIGHTS

__all__ = ["NODE_REWEIGHTS", "EDGE_REWEIGHTS", "RCOND", "reweight_node", "rescale_factor",
           "refit_weights", "eg_quadratic"]

#: Relative cut-off of the pseudo-inverses (``numpy.linalg.pinv(..., rcond=RCOND)``).
RCOND = 1e-10


def reweight_node(Q: np.ndarray, G: np.ndarray, v: np.ndarray, v_star: np.ndarray,
                  subsets: np.ndarray, how: str) -> np.ndarray:
    """Second layer of the kept units, for a batch of subsets.

    Parameters
    ----------
    Q : ndarray, shape (K, K)
    G : ndarray, shape (K + M, K + M)
        :math:`I_2` over all fields (students first, then teachers).
    v : ndarray, shape (K,)
    v_star : ndarray, shape (M,)
    subsets : ndarray of int, shape (n, k)
    how : {"none", "preact", "activation", "refit"}

    Returns
    -------
    v_pruned : ndarray, shape (n, k)
    """
    K = v.shape[0]
    v_S = v[subsets]
    if how == "none":
        return v_S
    if how == "refit":
        G_SS = G[subsets[:, :, None], subsets[:, None, :]]
        b = G[subsets, K:] @ v_star
        return np.einsum("nij,nj->ni", np.linalg.pinv(G_SS, rcond=RCOND), b)
    if how in ("preact", "activation"):
        A = Q if how == "preact" else G[:K, :K]
        kept = np.zeros((subsets.shape[0], K), dtype=bool)
        np.put_along_axis(kept, subsets, True, axis=1)
        v_rem = np.where(kept, 0.0, v[None, :])
        A_SS = A[subsets[:, :, None], subsets[:, None, :]]
        b = np.einsum("nij,nj->ni", A[subsets], v_rem)
        return v_S + np.einsum("nij,nj->ni", np.linalg.pinv(A_SS, rcond=RCOND), b)
    raise ValueError(f"reweight={how!r} is unknown for node pruning; allowed {NODE_REWEIGHTS}")


def eg_quadratic(G_SS: np.ndarray, G_ST: np.ndarray, G_TT: np.ndarray, v: np.ndarray,
                 v_star: np.ndarray) -> np.ndarray:
    r"""Generalisation error from :math:`I_2` blocks, batched over a leading axis of ``v``.

    .. math::

        \epsilon_g = \tfrac12\left(v^T I_{2,SS} v - 2 v^T I_{2,ST} v^* + v^{*T} I_{2,TT} v^*\right)

    (docs/theory.md §5; Acharyya et al. 2021, Eq. 5-8).

    Parameters
    ----------
    G_SS : ndarray, shape (..., k, k)
    G_ST : ndarray, shape (..., k, M)
    G_TT : ndarray, shape (M, M)
    v : ndarray, shape (..., k)
    v_star : ndarray, shape (M,)
    """
    f1 = np.einsum("...i,...ij,...j->...", v, G_SS, v)
    f3 = np.einsum("...i,...in,n->...", v, G_ST, v_star)
    f2 = v_star @ G_TT @ v_star
    return 0.5 * (f1 - 2.0 * f3 + f2)


def rescale_factor(G_SS: np.ndarray, G_ST: np.ndarray, v: np.ndarray,
                   v_star: np.ndarray) -> float:
    r"""The optimal scalar :math:`A^* = v^T I_{2,ST} v^* / v^T I_{2,SS} v` (Theorem 3, Eq. 15).

    When the pruned student's output vanishes (:math:`v^T I_{2,SS} v = 0`, e.g. ``c = 0``) the
    error does not depend on ``A`` and ``A = 1`` is returned.
    """
    den = float(v @ G_SS @ v)
    num = float(v @ G_ST @ v_star)
    scale = max(1.0, float(np.max(np.abs(G_SS))) * float(v @ v))
    if den <= 1e-14 * scale:
        return 1.0
    return num / den


def refit_weights(G_SS: np.ndarray, G_ST: np.ndarray, v_star: np.ndarray) -> np.ndarray:
    r"""Best second layer :math:`v' = I_{2,SS}^+ I_{2,ST} v^*` for fixed first-layer weights."""
    return np.linalg.pinv(G_SS, rcond=RCOND) @ (G_ST @ v_star)
