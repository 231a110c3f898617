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

At finite N (:func:`reweight_node_finite`, :func:`reweight_edges_finite`) the same maps act on
the empirical second moments of the fields over ``n`` training inputs (``Q`` and ``I2`` replaced
by :math:`H^TH/n` and :math:`g(\lambda)^Tg(\lambda)/n`): the least-squares fits on those
inputs, so the limit and finite-N reweightings are one implementation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["REWEIGHTINGS", "REWEIGHTS_BY_KIND", "NODE_REWEIGHTS", "EDGE_REWEIGHTS", "SPARSE_REWEIGHTS", "RCOND", "reweight_node", "rescale_factor",
           "refit_weights", "eg_quadratic", "row_scales", "reweight_node_finite",
           "reweight_edges_finite"]

#: every reweighting, in the order of :data:`REWEIGHTS`, with a one-line description
REWEIGHTINGS = {
    "none": "keep the second layer",
    "preact": "regress the removed units' pre-activations on the kept ones (the authors')",
    "activation": "least-squares fit of the full student's output by the kept units",
    "refit": "best second layer for the kept weights (fit of the teacher)",
    "rescale": "one optimal factor A on the second layer (Theorem 3)",
    "rescale_rows": "rescale each pruned row to its old norm (variance-restoring)",
}
#: the reweightings each kind of method accepts, in the order they are tried (``--reweight all``)
REWEIGHTS_BY_KIND = {"node": ("none", "preact", "activation", "refit"),
                      "edge": ("none", "rescale", "refit", "rescale_rows")}
#: reweightings after which an edge-pruned network is still a first-layer mask (a sparse state)
SPARSE_REWEIGHTS = REWEIGHTS_BY_KIND["edge"]


NODE_REWEIGHTS = REWEIGHTS_BY_KIND["node"]
EDGE_REWEIGHTS = REWEIGHTS_BY_KIND["edge"]

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


def row_scales(q_pruned: np.ndarray, q_original: np.ndarray) -> np.ndarray:
    r"""The scales :math:`s_i = \sqrt{Q'_{ii}/Q_{ii}}` of the variance-restoring row rescale
    ``rescale_rows`` (Hayou et al. 2021), from the diagonals of the pruned and original ``Q``;
    1 for empty or zero rows."""
    q0 = np.asarray(q_original, dtype=float)
    s = np.sqrt(np.where(q0 > 0, np.asarray(q_pruned, dtype=float) / np.where(q0 > 0, q0, 1.0),
                         1.0))
    return np.where(s > 0, s, 1.0)


def refit_weights(G_SS: np.ndarray, G_ST: np.ndarray, v_star: np.ndarray) -> np.ndarray:
    r"""Best second layer :math:`v' = I_{2,SS}^+ I_{2,ST} v^*` for fixed first-layer weights."""
    return np.linalg.pinv(G_SS, rcond=RCOND) @ (G_ST @ v_star)


# ---------------------------------------------------------------------------------------------
# finite N: the same maps on the empirical second moments of the fields
# ---------------------------------------------------------------------------------------------
def reweight_node_finite(H: np.ndarray, Gs: np.ndarray, Gt: np.ndarray, v: np.ndarray,
                         v_star: np.ndarray, subsets: np.ndarray, how: str) -> np.ndarray:
    """Second layer of the kept units of real weights, for a batch of subsets: :func:`reweight_node`
    on the empirical moments over ``n`` inputs (the least-squares fits on them).

    Parameters
    ----------
    H : ndarray, shape (n, K)
        Pre-activations of the student on the inputs (``Q`` becomes ``H^T H / n``).
    Gs : ndarray, shape (n, K)
    Gt : ndarray, shape (n, M)
        Activations of the student and the teacher (``I2`` becomes their Gram matrix over n).
    v, v_star, subsets, how
        As :func:`reweight_node`.
    """
    if how == "none":
        return np.asarray(v)[subsets]
    n = H.shape[0]
    G = np.hstack([Gs, Gt])
    return reweight_node(H.T @ H / n, G.T @ G / n, np.asarray(v, dtype=float),
                         np.asarray(v_star, dtype=float), subsets, how)


def reweight_edges_finite(w: np.ndarray, mask: np.ndarray, v: np.ndarray, w_star: np.ndarray,
                          v_star: np.ndarray, reweight: str, X: np.ndarray | None, act
                          ) -> tuple[np.ndarray, np.ndarray]:
    r"""``(w', v')`` of real weights ``w`` (K, N) pruned to ``mask`` and reweighted:
    ``rescale_rows`` restores each row's norm; ``rescale`` and ``refit`` are
    :func:`rescale_factor` and :func:`refit_weights` on the empirical second moments of the
    fields over the inputs ``X`` (n, N) -- the least-squares fits on those inputs (``X`` is
    needed for those two only). ``act`` is the activation (:func:`odeprune.activations.get_activation`).
    """
    wp = w * mask
    vp = np.array(v, dtype=float)
    if reweight == "rescale_rows":
        norms = np.linalg.norm(wp, axis=1)
        full = np.linalg.norm(w, axis=1)
        wp = wp * np.where(norms > 0, full / np.where(norms > 0, norms, 1.0), 1.0)[:, None]
    elif reweight in ("rescale", "refit"):
        if X is None:
            raise ValueError(f"reweight={reweight!r} needs the training inputs X")
        sqrt_n = math.sqrt(w.shape[1])
        Gp = act.g(X @ wp.T / sqrt_n)
        Gt = act.g(X @ w_star.T / sqrt_n)
        G_SS, G_ST = Gp.T @ Gp / len(X), Gp.T @ Gt / len(X)
        vp = (vp * rescale_factor(G_SS, G_ST, vp, v_star) if reweight == "rescale"
              else refit_weights(G_SS, G_ST, v_star))
    elif reweight != "none":
        raise ValueError(f"reweight={reweight!r} is unknown for edge pruning; allowed "
                         f"{EDGE_REWEIGHTS}")
    return wp, vp
