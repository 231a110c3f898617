r"""The loss landscape of the population error through order parameters (docs/theory.md §10,
"Gradient and Hessian through the order parameters"): the derivatives.

:math:`\epsilon_g(W, v)` depends on the first layer ``W`` (K, N) only through
:math:`Q = WW^T/N` and :math:`R = WW^{*T}/N`, at every N. Write :math:`G = \partial\epsilon_g/\partial Q`
(symmetric, so that :math:`d\epsilon_g = \sum_{ik} G_{ik}\, dQ_{ik}`) and
:math:`H_R = \partial\epsilon_g/\partial R`. Then

.. math::

    \nabla_{w_i}\epsilon_g = \frac{2}{N}\sum_k G_{ik} w_k + \frac1N \sum_n (H_R)_{in} w^*_n,
    \qquad
    \nabla^2_W \epsilon_g = \frac2N\, G\otimes I_N + \frac1N J^T \nabla^2_{(Q,R)}\epsilon_g\, J,

where ``J`` maps a perturbation ``dW`` to the first-order change of ``(Q, R)``, which only sees the
components of the rows ``dw_i`` inside :math:`S = \mathrm{span}\{w_k, w^*_n\}` (dimension ``r``).
Hence the first-layer Hessian has, in natural units :math:`N\lambda`,

- the **bulk**: the K eigenvalues :math:`2\mu_a` of :math:`2G`, each with multiplicity ``N - r``
  (directions with rows orthogonal to S);
- the **outliers**: the ``K r`` eigenvalues of :math:`F = 2G\otimes I_r + J^T\nabla^2\epsilon_g J`,
  with ``J`` written in an orthonormal basis of S built from :math:`C = [[Q, R],[R^T, T]] = AA^T`.

Both are N-independent; the decomposition is exact at finite N for Gaussian inputs. The second
layer adds :math:`\partial^2\epsilon_g/\partial v_i\partial v_k = I_2(i, k)` (order 1 in raw units)
and a mixed block :math:`\partial^2\epsilon_g/\partial v\,\partial W` (order :math:`N^{-1/2}`) that
also only sees S. All derivatives here are analytic derivatives of the closed-form :math:`I_2`
(docs/theory.md §3, §3b), so the module needs no JAX. The spectrum is assembled in
:mod:`odeprune.landscape.spectrum`; :mod:`odeprune.landscape.finite_hessian` has the finite-N
counterparts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..activations import get_activation
from ..activations._core import _2_PI  # (the constants, defined once)
from ..sparse import SparseOrderParams
from ..state import OrderParams

__all__ = ["Gradient", "gradient", "SUPPORTED", "RANK_RTOL"]

#: Activations with analytic derivative tables of I2 here.
SUPPORTED = ("erf", "linear", "relu")
#: Eigenvalues of C below this fraction of its largest eigenvalue are treated as 0 (rank of S).
RANK_RTOL = 1e-12



# ---------------------------------------------------------------------------------------------
# derivatives of I2(caa=x, cab=y, cbb=z) and of the diagonal h(x) = I2(x, x, x)
# ---------------------------------------------------------------------------------------------
def _I2_derivs(name: str, x: float, y: float, z: float):
    """``(f, grad (3,), hess (3, 3))`` of :math:`I_2` in ``(C_aa, C_ab, C_bb)``, a != b."""
    if name == "linear":
        return y, np.array([0.0, 1.0, 0.0]), np.zeros((3, 3))
    if name == "erf":
        u, w = 1.0 + x, 1.0 + z
        q = math.sqrt(u * w)
        s = y / q
        one = 1.0 - s * s
        f1 = _2_PI / math.sqrt(one)                 # d f / d s
        f2 = _2_PI * s / one ** 1.5                 # d2 f / d s2
        ds = np.array([-0.5 * s / u, 1.0 / q, -0.5 * s / w])
        d2s = np.array([[0.75 * s / (u * u), -0.5 / (u * q), 0.25 * s / (u * w)],
                        [-0.5 / (u * q), 0.0, -0.5 / (w * q)],
                        [0.25 * s / (u * w), -0.5 / (w * q), 0.75 * s / (w * w)]])
        return _2_PI * math.asin(s), f1 * ds, f2 * np.outer(ds, ds) + f1 * d2s
    if name == "relu":
        D = x * z - y * y
        if not (x > 0 and z > 0 and D > 0):
            raise ValueError("the ReLU Hessian needs linearly independent fields with positive "
                             f"variance (C_aa={x:.3g}, C_ab={y:.3g}, C_bb={z:.3g}: "
                             "|correlation| = 1 or a zero row, where I2 is not twice "
                             "differentiable)")
        sD = math.sqrt(D)
        theta = math.atan2(sD, y)     # = arccos(rho), well conditioned near |rho| = 1
        f = (sD + y * (math.pi - theta)) / (2 * math.pi)
        g = np.array([sD / (4 * math.pi * x), (math.pi - theta) / (2 * math.pi),
                      sD / (4 * math.pi * z)])
        h = np.array([[(2 * y * y - x * z) / (8 * math.pi * x * x * sD),
                       -y / (4 * math.pi * x * sD), 1.0 / (8 * math.pi * sD)],
                      [-y / (4 * math.pi * x * sD), 1.0 / (2 * math.pi * sD),
                       -y / (4 * math.pi * z * sD)],
                      [1.0 / (8 * math.pi * sD), -y / (4 * math.pi * z * sD),
                       (2 * y * y - x * z) / (8 * math.pi * z * z * sD)]])
        return f, g, h
    raise ValueError(f"activation={name!r} has no Hessian here; supported: {SUPPORTED}")


def _diag_derivs(name: str, x: float):
    """``(h, h', h'')`` of :math:`h(x) = I_2(x, x, x) = E[g(a)^2]`, ``a ~ N(0, x)``."""
    if name == "linear":
        return x, 1.0, 0.0
    if name == "relu":
        return 0.5 * x, 0.5, 0.0
    if name == "erf":
        u, t = 1.0 + x, 1.0 + 2.0 * x
        return (_2_PI * math.asin(x / u), _2_PI / (u * math.sqrt(t)),
                -_2_PI * (1.0 / (u * u * math.sqrt(t)) + 1.0 / (u * t ** 1.5)))
    raise ValueError(f"activation={name!r} has no Hessian here; supported: {SUPPORTED}")


def _activation_name(state, activation) -> str:
    own = getattr(state, "activation", None)
    name = get_activation(activation if activation is not None else (own or "erf")).name
    if own is not None and name != get_activation(own).name:
        raise ValueError(f"activation={activation!r} conflicts with the state's activation "
                         f"{own!r}; omit it (the state's is used)")
    if name not in SUPPORTED:
        raise ValueError(f"activation={name!r} has no analytic Hessian here; supported: "
                         f"{SUPPORTED}")
    return name


def _entry_index(K: int, M: int):
    """Index of every free covariance entry: Q (i <= k) row-major, then R (i, n); -1 for T."""
    L = K + M
    idx = -np.ones((L, L), dtype=np.int64)
    p = 0
    for i in range(K):
        for k in range(i, K):
            idx[i, k] = idx[k, i] = p
            p += 1
    for i in range(K):
        for n in range(M):
            idx[i, K + n] = idx[K + n, i] = p
            p += 1
    return idx, p


@dataclass(frozen=True)
class _Derivs:
    eg: float
    g: np.ndarray        # (P,)   d eps / d entry
    H: np.ndarray        # (P, P) d2 eps / d entry2
    Mv: np.ndarray       # (K, P) d2 eps / dv_i d entry
    I2: np.ndarray       # (L, L)
    dv: np.ndarray       # (K,)
    idx: np.ndarray      # (L, L)


def _derivatives(C: np.ndarray, a: np.ndarray, K: int, name: str) -> _Derivs:
    r""":math:`\epsilon_g = \sum_{c<d} a_c a_d I_2(c,d) + \frac12\sum_c a_c^2 h(C_{cc})` and its
    first and second derivatives in the free entries of C (docs/theory.md §5)."""
    L = C.shape[0]
    M = L - K
    idx, P = _entry_index(K, M)
    g = np.zeros(P)
    H = np.zeros((P, P))
    Mv = np.zeros((K, P))
    I2 = np.zeros((L, L))
    eg = 0.0
    for c in range(L):
        h, h1, h2 = _diag_derivs(name, C[c, c])
        I2[c, c] = h
        eg += 0.5 * a[c] ** 2 * h
        e = idx[c, c]
        if e >= 0:
            g[e] += 0.5 * a[c] ** 2 * h1
            H[e, e] += 0.5 * a[c] ** 2 * h2
            Mv[c, e] += a[c] * h1            # d/d entry of sum_d a_d I2(c, d), d = c
        for d in range(c + 1, L):
            f, df, d2f = _I2_derivs(name, C[c, c], C[c, d], C[d, d])
            I2[c, d] = I2[d, c] = f
            eg += a[c] * a[d] * f
            ent = np.array([idx[c, c], idx[c, d], idx[d, d]])
            free = ent >= 0
            if not free.any():
                continue
            ef = ent[free]
            w = a[c] * a[d]
            np.add.at(g, ef, w * df[free])
            H[np.ix_(ef, ef)] += w * d2f[np.ix_(free, free)]
            # d eps / d v_c = sum_d a_d I2(c, d): row c gets a_d dI2, row d gets a_c dI2
            if c < K:
                np.add.at(Mv[c], ef, a[d] * df[free])
            if d < K:
                np.add.at(Mv[d], ef, a[c] * df[free])
    dv = I2[:K] @ a
    return _Derivs(eg=eg, g=g, H=H, Mv=Mv, I2=I2, dv=dv, idx=idx)


def _G_HR(D: _Derivs, K: int, M: int):
    G = np.empty((K, K))
    for i in range(K):
        for k in range(K):
            G[i, k] = D.g[D.idx[i, k]] * (1.0 if i == k else 0.5)
    HR = np.array([[D.g[D.idx[i, K + n]] for n in range(M)] for i in range(K)]).reshape(K, M)
    return G, HR


def _basis(C: np.ndarray):
    """``A`` (L, r) with ``A A^T = C`` on the numerical support (eigenvalues > RANK_RTOL times
    the largest)."""
    lam, U = np.linalg.eigh(C)
    top = float(lam[-1]) if lam.size else 0.0
    keep = lam > RANK_RTOL * top if top > 0 else np.zeros(lam.size, dtype=bool)
    return U[:, keep] * np.sqrt(lam[keep])


def _jacobian(A: np.ndarray, units: np.ndarray, K: int, idx: np.ndarray, P: int) -> np.ndarray:
    """``J`` (P, |u| r): first-order change of the free entries of C per unit of ``X`` (|u|, r),
    the components of the rows ``units`` in an orthonormal basis of their span, in natural units
    (``dW = X`` with the ``1/sqrt(N)`` factored out). ``A`` (|u| + M, r): the fields ``units``
    then the M teachers, ``A A^T`` their (per-class) covariance."""
    nu = units.size
    L, r = A.shape
    fields = np.concatenate([units, K + np.arange(L - nu)])
    J = np.zeros((P, nu * r))
    for a, i in enumerate(units):
        cols = slice(a * r, (a + 1) * r)
        for c, fc in enumerate(fields):
            e = idx[i, fc]
            # dC_ic = X_i . A_c + A_i . X_c: row i's part here, row c's in its own pass
            J[e, cols] += 2.0 * A[a] if c == a else A[c]
    return J


def _classes(state):
    """``(C, a, K, M, classes)``: the summed covariance and, per mask class with kept units,
    ``(units, f, C_s)`` with ``C_s`` the class covariance over (units, teachers). A dense state
    is one class with every unit and f = 1."""
    K, M = state.K, state.M
    if isinstance(state, OrderParams):
        C = np.array(state.covariance(), dtype=float)
        return C, state.signed_weights(), K, M, [(np.arange(K), 1.0, C)]
    dense = state.dense()
    C = np.array(dense.covariance(), dtype=float)
    out = []
    for s in range(state.n_classes):
        units = np.flatnonzero(np.asarray(state.patterns[s], dtype=bool))
        f = float(state.f[s])
        if units.size == 0 or f == 0:
            continue
        Qs = np.asarray(state.Q[s], float)[np.ix_(units, units)]
        Rs = np.asarray(state.R[s], float)[units]
        Ts = np.asarray(state.T[s], float)
        out.append((units, f, np.block([[Qs, Rs], [Rs.T, Ts]])))
    return C, dense.signed_weights(), K, M, out



# ---------------------------------------------------------------------------------------------
# public results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Gradient:
    r"""Gradient of :math:`\epsilon_g` at a state.

    Attributes
    ----------
    dQ : ndarray, shape (K, K)
        :math:`G`, symmetric, with :math:`d\epsilon_g = \sum_{ik} G_{ik}\,dQ_{ik}` (so the
        off-diagonal entries are half the derivative w.r.t. the pair ``Q_ik = Q_ki``).
    dR : ndarray, shape (K, M)
    dv : ndarray, shape (K,)
        :math:`\partial\epsilon_g/\partial v_i = \sum_c a_c I_2(i, c)`.
    weight_norm : float
        :math:`\sqrt N\,\|\nabla_W\epsilon_g\| = \sqrt{\mathrm{tr}(B C B^T)}`, ``B = [2G, H_R]``;
        N-independent.
    norm : float
        :math:`\sqrt{\text{weight\_norm}^2 + \|\partial\epsilon_g/\partial v\|^2}`; zero exactly at
        the stationary points of the gradient-flow ODEs.
    eg : float
    """

    dQ: np.ndarray
    dR: np.ndarray
    dv: np.ndarray
    weight_norm: float
    norm: float
    eg: float

    def weight_gradient(self, w: np.ndarray, w_star: np.ndarray) -> np.ndarray:
        r""":math:`\nabla_W\epsilon_g = (2/N) G W + (1/N) H_R W^*` for finite weights, shape (K, N)."""
        w, w_star = np.asarray(w, float), np.asarray(w_star, float)
        N = w.shape[1]
        return (2.0 * self.dQ @ w + self.dR @ w_star) / N



# ---------------------------------------------------------------------------------------------
# the functions
# ---------------------------------------------------------------------------------------------
def _is_sparse(state) -> bool:
    return isinstance(state, SparseOrderParams)


def _check_state(state, dense_only: bool = False) -> None:
    if isinstance(state, OrderParams):
        return
    if _is_sparse(state):
        if dense_only:
            raise ValueError("this function takes a dense OrderParams (an unpruned network); "
                             "got a SparseOrderParams")
        return
    raise ValueError(f"state must be an OrderParams or a SparseOrderParams, got "
                     f"{type(state).__name__}")


def gradient(state: OrderParams, activation: str | None = None) -> Gradient:
    r"""Gradient of :math:`\epsilon_g` in the order parameters and the norm of the weight gradient.

    Parameters
    ----------
    state : OrderParams or SparseOrderParams
        For a masked network the weight gradient is over the kept weights only (per class ``s``:
        ``B_s = [2G[s,s], H_R[s]]`` on the class covariance).
    activation : {"erf", "linear", "relu"}, optional
        Default: ``state.activation`` when the state carries one, else ``"erf"``.

    Returns
    -------
    Gradient

    Notes
    -----
    .. math:: \nabla_{w_i}\epsilon_g = \frac2N\sum_k G_{ik}w_k + \frac1N\sum_n (H_R)_{in}w^*_n,
              \quad N\|\nabla_W\epsilon_g\|^2 = \mathrm{tr}(BCB^T),\ B = [2G, H_R].

    Analytic derivatives of the closed-form :math:`I_2` (docs/theory.md §3, §10).
    """
    _check_state(state)
    name = _activation_name(state, activation)
    C, a, K, M, classes = _classes(state)
    D = _derivatives(C, a, K, name)
    G, HR = _G_HR(D, K, M)
    sq = 0.0
    for units, _, Cs in classes:   # masked: only kept weights move, class by class
        B = np.hstack([2.0 * G[np.ix_(units, units)], HR[units]])
        sq += float(np.trace(B @ Cs @ B.T))
    wn = math.sqrt(max(0.0, sq))
    return Gradient(dQ=G, dR=HR, dv=D.dv.copy(), weight_norm=wn,
                    norm=math.sqrt(wn * wn + float(D.dv @ D.dv)), eg=D.eg)

