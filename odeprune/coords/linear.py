r"""Training a coordinate law with fixed masks, exactly: the per-class ODE plus the linear response.

Between two decisions (masks fixed, no per-coordinate nonlinearity) every coordinate of mask class
``s`` moves by a linear map plus an independent Gaussian (``docs/theory.md`` §11):

.. math::

    w_j(\alpha_1) = \Phi_s w_j(\alpha_0) + \Psi_s w^*_j + \xi_j,\qquad
    \xi_j \sim N(0, \Sigma_s)\ \text{independent of } (w_j(\alpha_0), w^*_j),

whatever the law of ``(w_j(alpha_0), w*_j)``. The coefficients follow from the per-class
two-time overlaps of §8–§9, which the masked-network ODE integrates exactly
(:func:`odeprune.integrate` with ``track_initial=True``) from the particles' own per-class second
moments: ``[Phi_s Psi_s] = [P^s R^s] Cov_s^+`` and ``Sigma_s = (Q^s - [P^s R^s] Cov_s^+ [P^s
R^s]^T) / f_s`` with ``Cov_s = [[Q^s_0, R^s_0], [R^s_0^T, T^s]]`` (pseudo-inverse: directions
without mass carry no particles). The fresh Gaussians are drawn moment-matched (exactly
uncorrelated with the class's particles, exact covariance), so the particles' second moments
after the map are the ODE's to rounding: the only Monte-Carlo error is that of the decisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ode.dynamics import integrate as integrate_ode
from .law import CoordinateLaw, moment_matched_normals, sqrt_psd

__all__ = ["linear_response", "train_fixed_masks"]


def linear_response(sp, curve, s: int, index: int = -1) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """``(B, Sigma, units)`` of class ``s`` between the start of ``curve`` (a masked curve with
    ``P``, integrated from the per-class state ``sp``) and its saved ``index``: ``B = [Phi Psi]``
    (nk, nk + M) on the class's kept units ``units`` and the noise covariance ``Sigma``
    (nk, nk), per coordinate."""
    units = np.flatnonzero(sp.patterns[s])
    Q0 = sp.Q[s][np.ix_(units, units)]
    R0 = sp.R[s][units]
    Cov = np.block([[Q0, R0], [R0.T, sp.T[s]]])
    X = np.hstack([curve.P_cls[index, s][np.ix_(units, units)], curve.R_cls[index, s][units]])
    B = X @ np.linalg.pinv(Cov, rcond=1e-12, hermitian=True)
    Q1 = curve.Q_cls[index, s][np.ix_(units, units)]
    Sig = (Q1 - B @ X.T) / sp.f[s]
    return B, 0.5 * (Sig + Sig.T), units


def train_fixed_masks(law: CoordinateLaw, eta: float, alpha_max: float, *, save_at=None,
                      seed: Any = 0, **ode) -> tuple[CoordinateLaw, list]:
    """Train every replica of ``law`` for ``alpha_max`` with its masks fixed (exact: per-class
    ODE plus linear response). Returns the trained law and the per-replica
    ``SparseLearningCurve``s (their ``eg``, ``Q``, ``R``, ``v`` are exact given the start).

    ``ode``: options of :func:`odeprune.integrate` (``eta_v``, ``sigma``, ``gradient_flow``,
    ``train_second_layer``, ``weight_decay``, ``rtol``, ``atol``, ``method``, ...).
    """
    rng = np.random.default_rng(seed)
    W = np.array(law.w)
    V = np.array(law.v)
    curves = []
    for r in range(law.replicas):
        sp, idx = law.sparse_replica(r)
        cv = integrate_ode(sp, eta, alpha_max, save_at=save_at, track_initial=True,
                           progress=False, **ode)
        curves.append(cv)
        wt = law.weights[r]
        for s in range(sp.f.shape[0]):
            sel = np.flatnonzero(idx == s)
            if not sp.patterns[s].any() or sp.f[s] <= 0:
                continue
            B, Sig, units = linear_response(sp, cv, s)
            old = np.hstack([law.w[r][sel][:, units], law.w_star[r][sel]])
            nk = units.size
            if sel.size > 2 * nk + old.shape[1] + 1:
                xi = moment_matched_normals(rng, sel.size, nk, against=old, weights=wt[sel])
            else:  # too few particles to match moments: plain draws
                xi = rng.standard_normal((sel.size, nk))
            new = old @ B.T + xi @ sqrt_psd(Sig).T
            W[r][np.ix_(sel, units)] = new
        V[r] = cv.v[-1]
    return law.replace(w=W, v=V), curves
