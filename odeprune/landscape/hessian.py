r"""The loss landscape of the population error through order parameters (docs/theory.md §10).

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
(docs/theory.md §3, §3b), so the module needs no JAX; :func:`population_hessian_weights` (JAX,
optional) and :func:`empirical_hessian` (numpy) are the finite-N counterparts.

The pruning limit of Zhang et al. (2024, "How sparse can we prune a deep network: a fundamental
limit perspective"), :math:`\rho \approx 1 - \frac1D\sum_i r_i^2/(\|w^r\|^2 + r_i^2)`,
:math:`r_i^2 = 2\varepsilon/\lambda_i`, then has the limit (:func:`pruning_limit`)

.. math::

    \rho = 1 - \frac1K \sum_{a=1}^K \frac{\varepsilon/\mu_a}{m_r(\rho) + \varepsilon/\mu_a},
    \qquad m_r(\rho) = \|w^r\|^2/N = \sum_i E\big[w_i^2\, 1\{|w_i| < \tau(\rho)\}\big],

with :math:`w \sim N(0, Q)` the coordinate law of the student's rows and :math:`\tau(\rho)` the
global magnitude threshold that keeps a fraction :math:`\rho` of all first-layer weights.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy.integrate import quad

from ..activations import get_activation
from ..errors import OdepruneAccuracyWarning
from ..ode.dynamics import integrate
from ..pruning import prune
from ..pruning.node import activation_gram_all
from ..pruning.reweight import refit_weights
from ..sparse import SparseOrderParams
from ..state import OrderParams, as_generator

__all__ = [
    "ActualLimit",
    "Gradient",
    "HessianSpectrum",
    "PruningLimit",
    "Sharpness",
    "actual_limit",
    "empirical_hessian",
    "gradient",
    "hessian_spectrum",
    "population_hessian_weights",
    "pruning_limit",
    "magnitude_global_map",
    "removed_mass",
    "sharpness",
]

#: Activations with analytic derivative tables of I2 here.
SUPPORTED = ("erf", "linear", "relu")
#: Eigenvalues of C below this fraction of its largest eigenvalue are treated as 0 (rank of S).
RANK_RTOL = 1e-12
#: Default tolerance on the gradient norm (``Gradient.norm``, natural units) in
#: :func:`pruning_limit`. Gradient flow approaches the degenerate minima of K > M students by a
#: power law (e.g. M=2, K=6, v*=4: 3e-4 at alpha=1e3, 4e-8 at 3e4), while random states and
#: saddles sit at 1e-2..10.
GRAD_TOL = 1e-4
#: Default tolerance on negative curvature, relative to the largest |N lambda| (unconverged
#: gradient-flow states near a degenerate minimum show negative outliers of the order of the
#: gradient norm).
CURVATURE_RTOL = 1e-6

_2_PI = 2.0 / math.pi


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


@dataclass(frozen=True)
class PruningLimit:
    r"""The limit of Zhang et al.'s pruning-ratio formula at a minimum (see :func:`pruning_limit`).

    Attributes
    ----------
    eps : float
        Loss tolerance: :math:`\epsilon_g \le \epsilon_g^* + \varepsilon`.
    rho : float
        Predicted smallest kept fraction (their formula, = their lower bound), fixed point of
        :math:`\rho = 1 - \frac1K\sum_a \frac{\varepsilon/\mu_a}{m_r(\rho) + \varepsilon/\mu_a}`.
    rho_upper : float
        Their upper bound with the eigenvalues of the Hessian restricted to the removed
        coordinates, evaluated with ``k`` and :math:`\|w^r\|` at ``rho`` (Monte Carlo over the
        coordinates, standard error ``rho_upper_se``); NaN when ``upper_samples=0``.
    rho_upper_se : float
    rho_trace : float
        Their sharpness bound :math:`1 - \frac{2\varepsilon D}{\|w^r\|^2\mathrm{Tr}H + 2\varepsilon D}`
        at ``rho`` (limit: :math:`1 - \frac{K\varepsilon}{m_r\,\mathrm{tr}G + K\varepsilon}`),
        an upper bound on ``rho`` (Jensen).
    removed_mass : float
        :math:`m_r(\rho) = \|w^r\|^2/N`.
    threshold : float
        Global magnitude threshold :math:`\tau(\rho)` on :math:`|w_{ij}|`.
    mu : ndarray, shape (K,)
        Eigenvalues of G (half the bulk).
    eg_star : float
    gradient_norm : float
    min_curvature : float
        Smallest first-layer eigenvalue (natural units).
    """

    eps: float
    rho: float
    rho_upper: float
    rho_upper_se: float
    rho_trace: float
    removed_mass: float
    threshold: float
    mu: np.ndarray
    eg_star: float
    gradient_norm: float
    min_curvature: float


@dataclass(frozen=True)
class ActualLimit:
    r"""Smallest kept fraction at which one-shot global magnitude pruning keeps
    :math:`\epsilon_g \le \epsilon_g^* + \varepsilon` (see :func:`actual_limit`).

    Attributes
    ----------
    eps : float
    c : float
        The kept fraction (to ``xtol``).
    eg : float
        :math:`\epsilon_g` of the pruned network at ``c``.
    eg_star : float
    reweight : str
        The second-layer treatment, or ``"retrained(alpha=...)"``.
    evaluations : int
        Pruned errors computed so far (cumulative over the ``eps`` of one call).
    fallbacks : tuple of float
        Kept fractions at which :func:`odeprune.prune` failed and :func:`magnitude_global_map`
        was used (cumulative).
    """

    eps: float
    c: float
    eg: float
    eg_star: float
    reweight: str
    evaluations: int
    fallbacks: tuple = ()


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


# ---------------------------------------------------------------------------------------------
# global magnitude pruning in the coordinate picture
# ---------------------------------------------------------------------------------------------
def _phi(t):
    return np.exp(-0.5 * np.square(t)) / math.sqrt(2.0 * math.pi)


def _kept_fraction(tau: float, sd: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        t = np.where(sd > 0, tau / np.where(sd > 0, sd, 1.0), np.inf)
    return float(np.mean(special.erfc(t / math.sqrt(2.0))))


def global_threshold(Q: np.ndarray, rho: float) -> float:
    r"""Threshold :math:`\tau` with :math:`\frac1K\sum_i P(|w_i| > \tau) = \rho`,
    :math:`w_i \sim N(0, Q_{ii})` (global magnitude pruning keeping a fraction ``rho``)."""
    sd = np.sqrt(np.clip(np.diag(np.asarray(Q, float)), 0, None))
    if rho >= 1.0:
        return 0.0
    if rho <= 0.0 or not np.any(sd > 0):
        return math.inf
    if rho > float(np.mean(sd > 0)):
        return 0.0
    hi = float(sd.max())
    while _kept_fraction(hi, sd) > rho:
        hi *= 2.0
    return optimize.brentq(lambda t: _kept_fraction(t, sd) - rho, 0.0, hi,
                           xtol=1e-15 * float(sd.max()), rtol=1e-14)


def removed_mass(Q: np.ndarray, rho: float) -> float:
    r""":math:`m_r(\rho) = \|w^r\|^2/N = \sum_i E[w_i^2 1\{|w_i| < \tau(\rho)\}]`,
    :math:`w_i \sim N(0, Q_{ii})`, for global magnitude pruning keeping a fraction ``rho``.

    .. math:: E[w^2 1\{|w|<\tau\}] = s^2\,[\mathrm{erf}(t/\sqrt2) - 2t\varphi(t)],\ t = \tau/s.
    """
    Q = np.asarray(Q, float)
    d = np.clip(np.diag(Q), 0, None)
    tau = global_threshold(Q, rho)
    if math.isinf(tau):
        return float(d.sum())
    sd = np.sqrt(d)
    pos = sd > 0
    t = tau / sd[pos]
    return float(np.sum(d[pos] * (special.erf(t / math.sqrt(2.0)) - 2.0 * t * _phi(t))))


def _trunc_first_moment(mu, s, tau):
    r""":math:`E[Y 1\{|Y| > \tau\}]`, :math:`Y \sim N(\mu, s^2)` (vectorised in mu; s >= 0)."""
    mu = np.asarray(mu, dtype=float)
    if s <= 0:
        return np.where(np.abs(mu) > tau, mu, 0.0)
    a, b = (tau - mu) / s, (-tau - mu) / s
    return (mu * (0.5 * special.erfc(a / math.sqrt(2.0)) + special.ndtr(b))
            + s * (_phi(a) - _phi(b)))


def _pair_moment(Qii, Qik, Qkk, tau):
    r""":math:`E[x\,1\{|x|>\tau\}\; y\,1\{|y|>\tau\}]` for :math:`(x, y)` centred Gaussian with
    covariance ``[[Qii, Qik], [Qik, Qkk]]``: an integral over ``x`` of the exact conditional
    moment of ``y``, with breakpoints at the threshold and around ``x = ±tau/beta`` where the
    inner function turns over within ``s/|beta|`` (nearly aligned units have ``s -> 0``)."""
    sx = math.sqrt(Qii)
    if sx == 0 or Qkk == 0:
        return 0.0
    beta = Qik / Qii
    s = math.sqrt(max(Qkk - Qik * Qik / Qii, 0.0))
    pts = {tau, 12.0 * sx}
    if beta != 0:
        for k in (0.0, 1.0, 3.0, 8.0):
            for sign in (-1.0, 1.0):
                pts.add(tau / abs(beta) + sign * k * s / abs(beta))
    edges = sorted(p for p in pts if tau <= p <= 12.0 * sx)

    def f(x):
        dens = math.exp(-0.5 * (x / sx) ** 2) / (sx * math.sqrt(2 * math.pi))
        both = (x * float(_trunc_first_moment(beta * x, s, tau))
                + (-x) * float(_trunc_first_moment(-beta * x, s, tau)))   # x and -x
        return dens * both

    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            total += quad(f, lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    return total


def magnitude_global_map(state: OrderParams, c: float) -> OrderParams:
    r"""Order parameters after one-shot global magnitude pruning keeping a fraction ``c``.

    .. math:: Q'_{ii} = E[w_i^2 1\{|w_i|>\tau\}],\ R'_{in} = \frac{R_{in}}{Q_{ii}} Q'_{ii},\
              Q'_{ik} = E[w_i 1\{|w_i|>\tau\}\, w_k 1\{|w_k|>\tau\}],\ w\sim N(0, Q)

    The same map as ``odeprune.prune(state, "magnitude_edge_global", c=c)`` (the coordinate
    picture of :mod:`odeprune.pruning.edge_rules`), computed here with breakpoints that keep
    nearly aligned units (the duplicated units of a trained K > M student) accurate;
    :func:`actual_limit` uses it where that map fails its positive-semi-definiteness check.
    """
    Q = np.array(state.Q, dtype=float)
    K = Q.shape[0]
    tau = global_threshold(Q, c)
    d = np.diag(Q)
    Qp = np.zeros((K, K))
    if math.isinf(tau):
        return state.replace(Q=Qp, R=np.zeros_like(state.R))
    for i in range(K):
        if d[i] > 0:
            t = tau / math.sqrt(d[i])
            Qp[i, i] = d[i] * (1.0 - float(special.erf(t / math.sqrt(2.0))) + 2.0 * t * _phi(t))
    for i in range(K):
        for k in range(i + 1, K):
            Qp[i, k] = Qp[k, i] = _pair_moment(d[i], Q[i, k], d[k], tau)
    scale = np.where(d > 0, Qp.diagonal() / np.where(d > 0, d, 1.0), 0.0)
    return state.replace(Q=Qp, R=np.array(state.R) * scale[:, None])


def _terms(mu: np.ndarray, eps: float, m: float) -> np.ndarray:
    r""":math:`r^2/(\|w^r\|^2 + r^2)` per bulk value in the limit: ``eps / (m mu + eps)``
    (1 for flat directions, mu = 0)."""
    mu = np.clip(mu, 0.0, None)
    return eps / (m * mu + eps)


def pruning_limit(state: OrderParams, eps: float, activation: str | None = None,
                  grad_tol: float = GRAD_TOL, curvature_rtol: float = CURVATURE_RTOL,
                  check: str = "raise", upper_samples: int = 20_000,
                  seed: int | np.random.Generator | None = 0) -> PruningLimit:
    r"""The limit of Zhang et al.'s (2024) pruning-ratio formula at a minimum.

    Parameters
    ----------
    state : OrderParams
        A minimum of :math:`\epsilon_g` (e.g. the end of
        ``integrate(state, eta, alpha_max, gradient_flow=True)``).
    eps : float
        Loss tolerance :math:`\varepsilon > 0`: keep :math:`\epsilon_g \le \epsilon_g^* + \varepsilon`.
    activation : str, optional
        Default: ``state.activation`` when present, else ``"erf"``.
    grad_tol : float
        Largest accepted :math:`\|\nabla\epsilon_g\|` (``Gradient.norm``, natural units).
    curvature_rtol : float
        Largest accepted negative eigenvalue of the first-layer Hessian, relative to its largest
        :math:`|N\lambda|`.
    check : {"raise", "warn", "ignore"}
        What to do at a state that is not a minimum (gradient above ``grad_tol`` or negative
        curvature): ``ValueError``, ``RuntimeWarning``, or nothing.
    upper_samples : int
        Coordinates for the Monte Carlo of the upper bound (0: skip it).
    seed : int or Generator
        For the upper-bound Monte Carlo.

    Returns
    -------
    PruningLimit

    Notes
    -----
    With :math:`D = KN` first-layer weights, bulk eigenvalues :math:`\lambda = 2\mu_a/N` (each a
    fraction :math:`1/K` of all eigenvalues; the ``K r`` outliers have weight 0 in the limit),
    :math:`r^2 = 2\varepsilon/\lambda = N\varepsilon/\mu_a` and :math:`\|w^r\|^2 = N m_r(\rho)`:

    .. math:: \rho = 1 - \frac1K\sum_a\frac{\varepsilon}{m_r(\rho)\mu_a + \varepsilon}.

    The right-hand side decreases in :math:`\rho` (less removed mass), so the fixed point is
    unique; it is found by Brent's method. Flat directions (:math:`\mu_a = 0`) contribute 1.

    Upper bound (their Theorem, second inequality, as we read it): the sum runs over the
    :math:`D-k` eigenvalues of the Hessian restricted to the removed coordinates. In the limit
    that restriction is block-diagonal over input coordinates ``j``: :math:`2G[s_j, s_j]` with
    :math:`s_j = \{i: |w_{ij}| < \tau\}` (outliers again weight 0), so
    :math:`\rho_U = 1 - \frac1K E_j\big[\sum_{\nu\in\mathrm{eig}\,G[s_j,s_j]}
    \frac{\varepsilon}{m_r\nu + \varepsilon}\big]`, a Monte Carlo over :math:`w_j\sim N(0,Q)`.
    By Cauchy interlacing :math:`\rho_U \ge \rho`.
    """
    _check_state(state, dense_only=True)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(eps)) or eps <= 0:
        raise ValueError(f"eps={eps!r} must be a positive finite number (the loss tolerance)")
    if check not in ("raise", "warn", "ignore"):
        raise ValueError(f"check={check!r} must be 'raise', 'warn' or 'ignore'")
    eps = float(eps)
    name = _activation_name(state, activation)
    grad = gradient(state, name)
    spec = hessian_spectrum(state, None, name)
    lam_min = float(spec.eigenvalues.min())
    scale = float(np.max(np.abs(spec.eigenvalues))) or 1.0
    problems = []
    if grad.norm > grad_tol:
        problems.append(f"gradient norm {grad.norm:.3g} > grad_tol={grad_tol:g}")
    if lam_min < -curvature_rtol * scale:
        problems.append(f"negative curvature (smallest Hessian eigenvalue N*lambda = "
                        f"{lam_min:.3g})")
    if problems and check != "ignore":
        msg = ("pruning_limit needs a minimum of eps_g, but this state has "
               + " and ".join(problems) + "; converge it first with "
               "odeprune.integrate(state, eta, alpha_max, gradient_flow=True) "
               "(or pass check='warn')")
        if check == "raise":
            raise ValueError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    mu = 0.5 * spec.bulk
    Q = np.array(state.Q, float)

    def excess(rho):
        return rho - (1.0 - float(np.mean(_terms(mu, eps, removed_mass(Q, rho)))))

    lo, hi = 0.0, 1.0
    if excess(lo) >= 0:
        rho = 0.0
    else:
        rho = optimize.brentq(excess, lo, hi, xtol=1e-13, rtol=1e-12)
    m = removed_mass(Q, rho)
    tau = global_threshold(Q, rho)
    trG = float(np.sum(mu))
    K = state.K
    rho_trace = 1.0 - K * eps / (m * max(trG, 0.0) + K * eps)
    up, up_se = math.nan, math.nan
    if upper_samples:
        up, up_se = _upper_bound(Q, spec.G, eps, m, tau, int(upper_samples), as_generator(seed))
    return PruningLimit(eps=eps, rho=float(rho), rho_upper=up, rho_upper_se=up_se,
                        rho_trace=float(rho_trace), removed_mass=m, threshold=float(tau), mu=mu,
                        eg_star=grad.eg, gradient_norm=grad.norm, min_curvature=lam_min)


def _upper_bound(Q, G, eps, m, tau, n, rng):
    """Monte Carlo of the upper bound: per sampled coordinate, the eigenvalues of ``G[s, s]`` on
    its removed rows ``s`` (computed once per distinct pattern)."""
    K = Q.shape[0]
    lam, U = np.linalg.eigh(Q)
    A = U * np.sqrt(np.clip(lam, 0, None))
    w = rng.standard_normal((n, K)) @ A.T
    removed = np.abs(w) < tau
    patterns, inverse = np.unique(removed, axis=0, return_inverse=True)
    per_pattern = np.zeros(patterns.shape[0])
    for j, pat in enumerate(patterns):
        if pat.any():
            nu = np.linalg.eigvalsh(G[np.ix_(pat, pat)])
            per_pattern[j] = _terms(nu, eps, m).sum() / K
    t = per_pattern[np.asarray(inverse).ravel()]
    return float(1.0 - t.mean()), float(t.std(ddof=1) / math.sqrt(t.size))


def actual_limit(state: OrderParams, eps, reweight: str = "refit",
                 activation: str | None = None, xtol: float = 1e-3, grid: int = 11,
                 method: str = "magnitude_edge_global", engine: str = "prune",
                 retrain_alpha: float | None = None, retrain_eta: float = 1.0,
                 seed: int = 0):
    r"""Smallest kept fraction ``c`` at which one-shot edge pruning keeps
    :math:`\epsilon_g \le \epsilon_g^* + \varepsilon` (no retraining).

    Parameters
    ----------
    state : OrderParams
    eps : float or array_like of float
        Tolerance :math:`\varepsilon > 0`; :math:`\epsilon_g^*` is the unpruned error. Several
        values share the pruned errors already computed.
    reweight : {"refit", "none", "rescale", "rescale_rows"}
        Second-layer treatment after pruning (``"refit"``: the best second layer for the pruned
        first layer), passed to :func:`odeprune.prune`.
    activation : str, optional
    xtol : float
        Bracket width on ``c`` at which the bisection stops.
    grid : int
        Points of the coarse scan of ``c`` in [0, 1]. The bracket is taken below the smallest
        grid point above which every grid point meets the tolerance, so ``c`` is the smallest
        kept fraction with :math:`\epsilon_g(c') \le \epsilon_g^* + \varepsilon` for every grid
        point ``c' >= c`` (the pruned error need not be monotone in ``c``).
    method : str
        Edge method of :func:`odeprune.prune` (default global magnitude pruning).
    engine : {"prune", "quadrature"}
        ``"prune"``: :func:`odeprune.prune`; where its map fails its positive-semi-definiteness
        check (nearly aligned units of a trained K > M student, whose pair moments it computes
        to about 1e-5 there), global magnitude pruning falls back to
        :func:`magnitude_global_map` (listed in ``ActualLimit.fallbacks``). ``"quadrature"``:
        :func:`magnitude_global_map` throughout.

    retrain_alpha : float, optional
        Retrain the pruned network before measuring: the masked network
        (``prune(...).sparse_state``, docs/theory.md §8; exact classes, so ``K <= 12``) is
        integrated by gradient flow (second layer trained too) for ``retrain_alpha`` at learning
        rate ``retrain_eta``, and its final :math:`\epsilon_g` is compared with
        :math:`\epsilon_g^* + \varepsilon`. ``reweight`` is then ignored (retraining moves
        ``v``). The per-class state is a coordinate Monte Carlo: one ``seed`` for every ``c``
        (common random numbers), so the bisection sees a smooth function; its standard error is
        that of ``PruneResult.sparse_state_se``.
    retrain_eta : float
    seed : int
        Seed of the per-class Monte Carlo (with ``retrain_alpha``).

    Returns
    -------
    ActualLimit or list of ActualLimit
        One per ``eps`` (a list when ``eps`` is an array). ``c`` is the upper end of the final
        bracket, where the tolerance holds.
    """
    _check_state(state, dense_only=True)
    eps_arr = np.atleast_1d(np.asarray(eps, dtype=float))
    if eps_arr.ndim != 1 or eps_arr.size == 0 or not np.all(np.isfinite(eps_arr)) \
            or np.any(eps_arr <= 0):
        raise ValueError(f"eps={eps!r} must be positive finite number(s) (the loss tolerance)")
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid={grid!r} must be an integer >= 2")
    if not (0 < xtol < 1):
        raise ValueError(f"xtol={xtol!r} must be in (0, 1)")
    if engine not in ("prune", "quadrature"):
        raise ValueError(f"engine={engine!r} must be 'prune' or 'quadrature'")
    if engine == "quadrature" and (method != "magnitude_edge_global"
                                   or reweight not in ("none", "refit")):
        raise ValueError("engine='quadrature' computes magnitude_edge_global with reweight "
                         "'none' or 'refit' only")
    name = _activation_name(state, activation)
    eg_star = float(state.eg(name))
    memo: dict = {}
    fallbacks: list = []

    def local(c):
        pruned = magnitude_global_map(state, c)
        if reweight == "refit":
            Gp = activation_gram_all(pruned, name)
            K = state.K
            pruned = pruned.replace(v=refit_weights(Gp[:K, :K], Gp[:K, K:],
                                                    np.array(state.v_star)))
        return float(pruned.eg(name))

    if retrain_alpha is not None:
        if not (math.isfinite(retrain_alpha) and retrain_alpha > 0):
            raise ValueError(f"retrain_alpha={retrain_alpha!r} must be a positive time")

        def retrained(c):
            pr = prune(state, method, c=c, activation=name, seed=seed)
            sparse = pr.sparse_state
            with warnings.catch_warnings():  # eps >= 1e-3 here: tiny eps_g digits do not matter
                warnings.simplefilter("ignore", OdepruneAccuracyWarning)
                curve = integrate(sparse, retrain_eta, float(retrain_alpha), gradient_flow=True,
                                  save_at=[0.0, float(retrain_alpha)])
            # the recorded eps_g of the summed state (reading .final would re-validate every
            # class, and tiny classes can drift past the PSD tolerance by rounding)
            return float(curve.eg[-1])

    def eg_at(c):
        c = float(c)
        if c not in memo:
            if retrain_alpha is not None:
                memo[c] = retrained(c) if c > 0 else float(
                    prune(state, method, c=0.0, activation=name).eg_mean)
            elif engine == "quadrature":
                memo[c] = local(c)
            else:
                try:
                    memo[c] = prune(state, method, c=c, reweight=reweight,
                                    activation=name).eg_mean
                except ValueError:
                    if method != "magnitude_edge_global" or reweight not in ("none", "refit"):
                        raise
                    memo[c] = local(c)
                    fallbacks.append(c)
        return memo[c]

    label = reweight if retrain_alpha is None else f"retrained(alpha={float(retrain_alpha):g})"
    cs = np.linspace(0.0, 1.0, int(grid))
    egs = np.array([eg_at(c) for c in cs])
    out = []
    for e in eps_arr:
        target = eg_star + float(e)
        ok = egs <= target
        if not ok[-1]:
            raise ValueError(f"even c=1 misses eg* + eps with reweight={reweight!r} "
                             f"(eg={egs[-1]:.6g} > {target:.6g})")
        j = len(cs) - 1
        while j > 0 and ok[j - 1]:
            j -= 1
        if j == 0:
            out.append(ActualLimit(eps=float(e), c=0.0, eg=float(egs[0]), eg_star=eg_star,
                                   reweight=label, evaluations=len(memo),
                                   fallbacks=tuple(fallbacks)))
            continue
        lo, hi = float(cs[j - 1]), float(cs[j])
        while hi - lo > xtol:
            mid = 0.5 * (lo + hi)
            if eg_at(mid) <= target:
                hi = mid
            else:
                lo = mid
        out.append(ActualLimit(eps=float(e), c=hi, eg=eg_at(hi), eg_star=eg_star,
                               reweight=label, evaluations=len(memo),
                               fallbacks=tuple(fallbacks)))
    return out if np.ndim(eps) else out[0]


# ---------------------------------------------------------------------------------------------
# finite N: the population Hessian of real weights (JAX) and the empirical Hessian (numpy)
# ---------------------------------------------------------------------------------------------
def _weights(w, w_star, v, v_star):
    w, w_star = np.asarray(w, float), np.asarray(w_star, float)
    v, v_star = np.asarray(v, float).ravel(), np.asarray(v_star, float).ravel()
    if w.ndim != 2 or w_star.ndim != 2 or w.shape[1] != w_star.shape[1]:
        raise ValueError(f"w (K, N) and w_star (M, N) must share N; got {w.shape} and "
                         f"{w_star.shape}")
    if v.shape != (w.shape[0],) or v_star.shape != (w_star.shape[0],):
        raise ValueError(f"v must have shape ({w.shape[0]},) and v_star ({w_star.shape[0]},); "
                         f"got {v.shape} and {v_star.shape}")
    return w, w_star, v, v_star


def population_hessian_weights(w, w_star, v, v_star, activation: str = "erf") -> np.ndarray:
    r"""Dense Hessian of the population error :math:`\epsilon_g(W, v)` of finite weights, by JAX.

    Parameters
    ----------
    w : array_like, shape (K, N)
    w_star : array_like, shape (M, N)
    v : array_like, shape (K,)
    v_star : array_like, shape (M,)
    activation : {"erf", "linear", "relu"}

    Returns
    -------
    ndarray, shape (K N + K, K N + K)
        Over ``(w.ravel(), v)`` (row-major ``w``), raw units.

    Notes
    -----
    :math:`\epsilon_g = \frac12 a^T I_2(C) a` with :math:`C` from :math:`Q = WW^T/N`,
    :math:`R = WW^{*T}/N` (docs/theory.md §5), differentiated twice by ``jax.hessian`` in float64
    (a scoped ``jax.enable_x64``). Needs the optional JAX extra (imported here only). The
    independent check of :func:`hessian_spectrum`.
    """
    import jax
    import jax.numpy as jnp

    name = get_activation(activation).name
    w, w_star, v, v_star = _weights(w, w_star, v, v_star)
    K, N = w.shape

    with jax.enable_x64(True):
        ws, vs = jnp.asarray(w_star), jnp.asarray(v_star)

        def eg(theta):
            W = theta[: K * N].reshape(K, N)
            a = jnp.concatenate([theta[K * N:], -vs])
            Z = jnp.concatenate([W, ws])
            C = Z @ Z.T / N
            d = jnp.diag(C)
            if name == "erf":
                I2 = _2_PI * jnp.arcsin(C / jnp.sqrt(jnp.outer(1 + d, 1 + d)))
            elif name == "linear":
                I2 = C
            else:  # relu: off-diagonal closed form, diagonal C_cc / 2 (safe where-trick)
                L = C.shape[0]
                off = ~jnp.eye(L, dtype=bool)
                xz = jnp.outer(d, d)
                Dm = jnp.where(off, xz - C * C, 1.0)
                rho = jnp.where(off, C / jnp.sqrt(xz), 0.0)
                I2 = jnp.where(off, (jnp.sqrt(Dm) + C * (jnp.pi / 2 + jnp.arcsin(rho)))
                               / (2 * jnp.pi), 0.5 * C)
            return 0.5 * a @ I2 @ a

        theta = jnp.concatenate([jnp.asarray(w).ravel(), jnp.asarray(v)])
        H = jax.jit(jax.hessian(eg))(theta)
        return np.asarray(H, dtype=float)


def _g_second(name: str, x: np.ndarray) -> np.ndarray:
    if name == "erf":
        return -x * math.sqrt(2.0 / math.pi) * np.exp(-0.5 * x * x)
    return np.zeros_like(x)     # linear; ReLU almost everywhere


def empirical_hessian(w, w_star, v, v_star, n: int, seed: int | np.random.Generator | None = 0,
                      activation: str = "erf", sigma: float = 0.0,
                      second_layer: bool = True) -> np.ndarray:
    r"""Dense Hessian of the empirical loss on ``n`` fresh Gaussian samples (numpy).

    .. math:: \hat L(W, v) = \frac{1}{2n}\sum_{\mu=1}^n (\phi(x_\mu) - y_\mu)^2,\quad
              \nabla^2\hat L = \frac1n\sum_\mu \big[\nabla\phi\nabla\phi^T + \Delta_\mu\nabla^2\phi\big]

    with :math:`\nabla_{w_i}\phi = v_i g'(\lambda_i)x/\sqrt N`, :math:`\nabla_{v_i}\phi = g(\lambda_i)`,
    :math:`\nabla^2_{w_iw_i}\phi = v_i g''(\lambda_i)xx^T/N`,
    :math:`\nabla^2_{v_iw_i}\phi = g'(\lambda_i)x/\sqrt N`. For ReLU :math:`g'' = 0` almost everywhere
    (the kink has measure zero for a finite sample).

    Parameters
    ----------
    w : array_like, shape (K, N)
    w_star : array_like, shape (M, N)
    v : array_like, shape (K,)
    v_star : array_like, shape (M,)
    n : int
        Training-set size; inputs :math:`x\sim N(0, I_N)`, labels
        :math:`y = \sum_n v^*_n g(\nu_n) + \sigma\zeta`.
    seed : int or Generator
    activation : {"erf", "linear", "relu"}
    sigma : float
        Label-noise standard deviation.
    second_layer : bool
        Include ``v`` (shape ``(K N + K, K N + K)``) or only ``W`` (``(K N, K N)``).

    Returns
    -------
    ndarray
        Over ``(w.ravel(), v)`` as :func:`population_hessian_weights`.
    """
    act = get_activation(activation)
    name = act.name
    w, w_star, v, v_star = _weights(w, w_star, v, v_star)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer (training-set size)")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma={sigma!r} must be >= 0")
    rng = as_generator(seed)
    K, N = w.shape
    x = rng.standard_normal((n, N))
    lam = x @ w.T / math.sqrt(N)
    nu = x @ w_star.T / math.sqrt(N)
    y = act.g(nu) @ v_star + sigma * rng.standard_normal(n)
    gl, g1, g2 = act.g(lam), act.g_prime(lam), _g_second(name, lam)
    delta = gl @ v - y
    # J: (n, K N): d phi / d w_ij = v_i g'(lam_i) x_j / sqrt(N)
    Jw = ((v * g1)[:, :, None] * x[:, None, :]).reshape(n, K * N) / math.sqrt(N)
    H = Jw.T @ Jw / n
    for i in range(K):
        blk = slice(i * N, (i + 1) * N)
        H[blk, blk] += (x * (delta * v[i] * g2[:, i])[:, None]).T @ x / (n * N)
    if not second_layer:
        return H
    Hv = gl.T @ gl / n
    Hwv = Jw.T @ gl / n                            # (K N, K): Gauss-Newton cross term
    for i in range(K):
        Hwv[i * N:(i + 1) * N, i] += x.T @ (delta * g1[:, i]) / (n * math.sqrt(N))
    return np.block([[H, Hwv], [Hwv.T, Hv]])
