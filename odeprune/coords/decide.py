r"""Pruning decisions on a coordinate law: masks chosen by the network's own weights, exactly.

A rule that keeps ``w_ij`` by a function of the coordinate ``u_j`` (and a threshold set by the
kept fraction) acts on the particles exactly as on the N coordinates of a real network
(``docs/theory.md`` §11): no Gaussian assumption. The thresholds are weighted quantiles over the
particles of each replica (each replica decides on its own particles, as each real network does).
Rules decide among the weights kept so far, so repeated decisions (iterative, gradual) refine the
mask:

- ``magnitude`` -- keep the largest ``|w_ij|`` (per row, or over the layer with
  ``scope="global"``);
- ``snip`` -- keep the largest ``|w_ij g_ij|``, ``g_ij`` the population gradient coordinate
  ``a_i (sum_c U_ic u_cj + b_i w_ij)`` (the first-order term of the ODE, :mod:`odeprune.ode.rhs`);
- ``random`` -- keep each weight independently with probability ``c``;
- ``dpp`` -- the per-row diagonal-kernel DPP of the edge rules: keep with probability
  ``lambda_i w^2 / (1 + lambda_i w^2)``, ``lambda_i`` set by ``c``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize

from .._validate import as_generator
from ..activations import get_activation
from ..ode.rhs import i3_coefficients
from .law import CoordinateLaw

__all__ = ["RULES", "decide", "rule_and_scope"]

#: rule -> whether it has a global scope
RULES = {"magnitude": True, "snip": True, "random": False, "dpp": False}

#: the edge-rule names of :func:`odeprune.prune` that decide on weights -> (rule, scope)
PRUNE_NAMES = {"magnitude_edge": ("magnitude", "row"),
               "magnitude_edge_global": ("magnitude", "global"),
               "snip_edge": ("snip", "row"), "snip_edge_global": ("snip", "global"),
               "random_edge": ("random", "row"), "dpp_edge": ("dpp", "row")}


def rule_and_scope(name: str, scope: str | None = None) -> tuple[str, str]:
    """``(rule, scope)`` from a rule name of this module or an edge-rule name of ``prune``."""
    if name in PRUNE_NAMES:
        rule, sc = PRUNE_NAMES[name]
        if scope is not None and scope != sc:
            raise ValueError(f"rule {name!r} has scope {sc!r}; got scope={scope!r}")
        return rule, sc
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; expected one of "
                         f"{sorted(RULES) + sorted(PRUNE_NAMES)}")
    scope = "row" if scope is None else scope
    if scope not in ("row", "global"):
        raise ValueError(f"scope={scope!r} must be 'row' or 'global'")
    if scope == "global" and not RULES[name]:
        raise ValueError(f"rule {name!r} has no global scope")
    return name, scope


def _keep_top(scores: np.ndarray, weights: np.ndarray, frac: float) -> np.ndarray:
    """Boolean keep of the largest ``scores`` holding the weighted fraction ``frac`` of the
    candidates (``scores`` and ``weights`` 1-D over the candidates)."""
    order = np.argsort(-scores, kind="stable")
    cum = np.cumsum(weights[order])
    n = int(np.searchsorted(cum, frac * cum[-1] * (1 + 1e-12), side="right"))
    keep = np.zeros(scores.size, bool)
    keep[order[:n]] = True
    return keep


def _gradient_coordinates(law: CoordinateLaw, r: int) -> np.ndarray:
    """Population gradient coordinates ``g`` (S, K) of replica ``r`` (up to a positive factor
    common to all weights)."""
    K = law.K
    st = law.replica_state(r)
    C = np.ascontiguousarray(st.covariance(), float)
    a = np.concatenate([st.v, -st.v_star])
    U, b = np.empty((K, C.shape[0])), np.empty(K)
    i3_coefficients(get_activation(law.activation).code, C, a, K, U, b)
    u = np.hstack([law.w[r], law.w_star[r]])
    return a[:K] * (u @ U.T + b * law.w[r])


def decide(law: CoordinateLaw, rule: str, c: float, *, scope: str | None = None,
           seed: Any = 0) -> CoordinateLaw:
    """Keep the fraction ``c`` of the currently kept first-layer weights by ``rule`` (per row,
    or over the layer with ``scope="global"``); pruned weights are set to zero. ``rule`` is one of
    :data:`RULES` or an edge-rule name of :func:`odeprune.prune` (``magnitude_edge``, ...)."""
    rule, scope = rule_and_scope(rule, scope)
    if isinstance(c, bool) or not np.isfinite(c) or not 0 <= c <= 1:
        raise ValueError(f"c={c!r} must be in [0, 1] (the kept fraction of the kept weights)")
    rng = as_generator(seed)
    mask = np.array(law.mask)
    for r in range(law.replicas):
        m, wt = mask[r], law.weights[r]
        if rule == "random":
            mask[r] = m & (rng.random(m.shape) < c)
            continue
        if rule == "magnitude":
            score = np.abs(law.w[r])
        elif rule == "snip":
            score = np.abs(law.w[r] * _gradient_coordinates(law, r))
        else:  # dpp: independent keeps with probability lambda w^2 / (1 + lambda w^2)
            w2 = np.square(law.w[r])
            for i in range(law.K):
                sel = m[:, i]
                if not sel.any() or c >= 1:
                    continue
                if c <= 0:
                    m[:, i] = False
                    continue
                ww, x = wt[sel], w2[sel, i]
                tot = ww.sum()

                def frac(log_l, ww=ww, x=x, tot=tot):
                    lx = np.exp(log_l) * x
                    return float((ww * lx / (1 + lx)).sum() / tot) - c
                log_l = optimize.brentq(frac, -60.0, 60.0, xtol=1e-12)
                lx = np.exp(log_l) * x
                keep = rng.random(x.size) < lx / (1 + lx)
                col = m[:, i].copy()
                col[sel] = keep
                m[:, i] = col
            mask[r] = m
            continue
        if scope == "row":
            for i in range(law.K):
                sel = np.flatnonzero(m[:, i])
                if sel.size:
                    m[sel, i] = _keep_top(score[sel, i], wt[sel], c)
        else:
            rows, cols = np.nonzero(m)
            m[rows, cols] = _keep_top(score[rows, cols], wt[rows], c)
        mask[r] = m
    return law.replace(mask=mask)
