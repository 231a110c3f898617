r"""The order-parameter right-hand side in JAX (float64): the array expressions behind
:mod:`odeprune.ode.jax_backend`, and :func:`rhs` / :func:`eg` to evaluate them once.

The right-hand side is the one of :mod:`odeprune.ode.rhs` (docs/theory.md §4; Goldt et al. 2019,
supplementary S3-S4; Saad & Solla 1995), written as array expressions over the joint covariance

.. math:: C = \begin{pmatrix} Q & R \\ R^\top & T \end{pmatrix},\qquad a = (v, -v^*),

with the same packed state vector (upper triangle of ``Q`` row-major, then ``R`` row-major, then
``v``):

- the ``I3`` sums :math:`S_3[i,b] = \sum_c a_c I_3(i,b,c)` are two matrix products (for erf,
  :math:`I_3(i,b,c) \propto (C_{bc}(1+C_{ii}) - C_{ib}C_{ic}) / \sqrt{\Lambda_3(i,c)}`);
- the ``I4`` sum :math:`\sum_{c,d} a_c a_d I_4(i,k,c,d)` is one batched tensor expression over the
  pairs ``i <= k`` (Q is symmetric) and all ``(c, d)``: ``K(K+1)/2 * L**2`` arcsines,
  ``L = K + M``, each with a branch-free rational approximation (fdlibm's) that XLA vectorises;
  for ReLU each entry is the 1-D path integral of :func:`odeprune.activations.relu_I4` on a
  fixed 252-node rule (``docs/relu.md``).

The activation is dispatched by its registry code (:mod:`odeprune.activations`); an unknown one
raises ``ValueError`` when the function is traced.

JAX is an optional dependency (``pip install -e ".[jax]"``): importing this module without it
raises an ``ImportError`` that says how to install it.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..activations import CODES, ERF, LINEAR, RELU, get_activation
from ..activations._core import _2_PI, _4_PI2  # (the constants, defined once)
from ..options import Dynamics, gather
from ..state import OrderParams
from .rhs import pack

INSTALL_HINT = 'pip install -e ".[jax]"'

try:  # pragma: no cover - exercised only without JAX
    import diffrax  # noqa: F401  (the backend needs it: say so here, once)
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        f"backend='jax' needs jax, jaxlib and diffrax, which could not be imported ({exc}). "
        f"Install the optional extra with: {INSTALL_HINT}"
    ) from exc

__all__ = ["rhs", "eg", "INSTALL_HINT"]



# fdlibm's rational approximation of asin (e_asin.c, Sun Microsystems 1993), branch-free: a few
# ulp on [-1, 1]. XLA's f64 arcsin on the CPU costs ~30 ns per element, ~10x this; the I4 sum
# is dominated by arcsines, so this is what makes the batched right-hand side fast.
_PS = (1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
       -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05)
_QS = (-2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01,
       7.70381505559019352791e-02)


def _asin(x):
    """``arcsin(clip(x, -1, 1))``, elementwise; agrees with ``jnp.arcsin`` to a few ulp."""
    z = jnp.minimum(jnp.abs(x), 1.0)
    small = z < 0.5
    t = jnp.where(small, z * z, (1.0 - z) * 0.5)
    p = t * (_PS[0] + t * (_PS[1] + t * (_PS[2] + t * (_PS[3] + t * (_PS[4] + t * _PS[5])))))
    q = 1.0 + t * (_QS[0] + t * (_QS[1] + t * (_QS[2] + t * _QS[3])))
    r = p / q
    s = jnp.sqrt(t)
    res = jnp.where(small, z + z * r, 0.5 * math.pi - 2.0 * (s + s * r))
    return jnp.where(x < 0.0, -res, res)


@functools.cache
def _layout(K: int, M: int):
    """Index arrays (numpy) for the packed state and the symmetric pair sums."""
    L = K + M
    nq = K * (K + 1) // 2
    pi, pk = np.triu_indices(K)  # packing order of Q, and the (i <= k) pairs of the I4 sum
    qidx = np.zeros((K, K), dtype=np.int32)
    qidx[pi, pk] = np.arange(nq)
    qidx[pk, pi] = np.arange(nq)
    return dict(K=K, M=M, L=L, nq=nq, pi=pi, pk=pk, qidx=qidx)


def _cov(y, T, v_star, lay):
    """Covariance ``C`` (L, L) and signed weights ``a`` (L,) from the packed state ``y``."""
    K, M, nq = lay["K"], lay["M"], lay["nq"]
    Q = y[lay["qidx"]]
    R = y[nq:nq + K * M].reshape(K, M)
    v = y[nq + K * M:]
    C = jnp.block([[Q, R], [R.T, T]])
    a = jnp.concatenate([v, -v_star])
    return C, a


def _safe_corr(C, var_a, var_b):
    """Correlations ``C / sqrt(var_a var_b)`` clipped to [-1, 1]; 0 where a variance is 0."""
    den = var_a * var_b
    ok = den > 0.0
    return jnp.where(ok, jnp.clip(C / jnp.sqrt(jnp.where(ok, den, 1.0)), -1.0, 1.0), 0.0)


def _code(activation):
    """The registry code of an activation name; ``ValueError`` for an unknown one."""
    return get_activation(activation).code


def _unknown(code):
    return ValueError(f"unknown activation code {code!r} (expected one of {sorted(CODES)})")


def _I2_rows(C, K, code):
    """``I2(i, c)`` for student ``i`` and every field ``c``: shape (K, L)."""
    if code == LINEAR:
        return C[:K, :]
    d = jnp.diagonal(C)
    if code == ERF:
        d1 = 1.0 + d
        x = C[:K, :] / jnp.sqrt(d1[:K, None] * d1[None, :])
        return _2_PI * _asin(x)
    if code == RELU:
        return _relu_I2(C[:K, :], d[:K, None], d[None, :], _same(K, C.shape[0]))
    raise _unknown(code)


def _relu_I2(cab, caa, cbb, same):
    r""":math:`[\sqrt{C_{aa}C_{bb}-C_{ab}^2} + C_{ab}(\pi/2 + \arcsin\rho)]/(2\pi)` (docs/theory.md §3b).

    ``same`` (broadcastable boolean) marks the entries where ``a`` and ``b`` are the same field:
    there ``rho = 1`` and the root is 0 exactly (XLA's fused arithmetic leaves ~1e-17 there,
    which the square root would turn into ~1e-9).
    """
    rho = jnp.where(same, 1.0, _safe_corr(cab, caa, cbb))
    root = jnp.sqrt(jnp.maximum(caa * cbb, 0.0))
    det = jnp.where(same, 0.0, jnp.maximum((root - cab) * (root + cab), 0.0))
    val = jnp.sqrt(det) + cab * (0.5 * math.pi + _asin(rho))
    return jnp.where((caa > 0.0) & (cbb > 0.0), val / (2.0 * math.pi), 0.0)


def _same(K, L):
    """Boolean (K, L): student ``i`` is field ``c``."""
    return np.arange(K)[:, None] == np.arange(L)[None, :]


def _S3(C, a, K, code):
    r""":math:`S_3[i,b] = \sum_c a_c I_3(i,b,c)`, shape (K, L)."""
    if code == LINEAR:  # I3(i, b, c) = C_bc
        return jnp.broadcast_to(C @ a, (K, C.shape[0]))
    d = jnp.diagonal(C)
    Ci = C[:K, :]
    if code == ERF:
        d1 = 1.0 + d
        lam3 = d1[:K, None] * d1[None, :] - Ci * Ci          # Lambda_3(i, c)
        U = a[None, :] / jnp.sqrt(lam3)                       # a_c / sqrt(Lambda_3(i, c))
        CU = U @ C                                            # sum_c C_bc U_ic  (C symmetric)
        s = jnp.sum(Ci * U, axis=1)                           # sum_c C_ic U_ic
        return _2_PI * (CU - Ci * (s / d1[:K])[:, None])
    if code == RELU:
        # I3(i,b,c) = C_ib sqrt(C_ii C_cc - C_ic^2) / (2 pi C_ii) + C_bc P(i > 0, c > 0)
        dii, dcc = d[:K, None], d[None, :]
        live = (dii > 0.0) & (dcc > 0.0)
        same = _same(K, C.shape[0])
        rho = jnp.where(same, 1.0, _safe_corr(Ci, dii, dcc))
        P2 = jnp.where(live, 0.25 + _asin(rho) / (2.0 * math.pi), 0.0)
        rt = jnp.sqrt(jnp.maximum(dii * dcc, 0.0))
        det = jnp.where(same, 0.0, jnp.maximum((rt - Ci) * (rt + Ci), 0.0))
        root = jnp.where(live, jnp.sqrt(det), 0.0)
        s = (root @ a) / (2.0 * math.pi * jnp.where(d[:K] > 0.0, d[:K], 1.0))
        return (a[None, :] * P2) @ C + Ci * s[:, None]
    raise _unknown(code)


# ReLU I4 (odeprune.activations.relu_I4): the same path integral over R(t) = (1-t) I + t R, with a
# fixed rule (XLA needs static shapes): t = 1 - u^2, 12-node Gauss-Legendre on the u-panels
# [3^-(j+1), 3^-j], j < _RELU_LEVELS, and [0, 3^-_RELU_LEVELS] (252 nodes). The numba kernel
# picks the depth from lambda_min(R) and merges exactly aligned fields; here every entry gets the
# deepest rule and exactly aligned fields (a unit with itself) go through the integral, whose
# integrand is then rougher (singular at t = -1/3 and t = 1): 12 nodes give ~1e-12 there, 8 only
# ~3e-9.
_RELU_LEVELS = 20
_RELU_NODES = 12


@functools.cache
def _relu_nodes():
    x, w = np.polynomial.legendre.leggauss(_RELU_NODES)
    x, w = 0.5 * (x + 1.0), 0.5 * w
    edges = np.concatenate([3.0 ** -np.arange(_RELU_LEVELS + 1), [0.0]])
    u = np.concatenate([lo + (hi - lo) * x for hi, lo in zip(edges[:-1], edges[1:])])
    wu = np.concatenate([(hi - lo) * w for hi, lo in zip(edges[:-1], edges[1:])])
    return u, 2.0 * u * wu  # nodes in u and weights for  int_0^1 G(t) dt = int 2u G(1-u^2) du


def _pair_partial_asin(rij, rik, ril, rjk, rjl, rkl):
    dij = 1.0 - rij * rij
    num = rkl * dij - (rik * ril + rjk * rjl) + rij * (rik * rjl + rjk * ril)
    vk = dij - rik * rik - rjk * rjk + 2.0 * rij * rik * rjk
    vl = dij - ril * ril - rjl * rjl + 2.0 * rij * ril * rjl
    return num, vk, vl, _asin(num / jnp.sqrt(jnp.maximum(vk * vl, 1e-300)))


def _one_minus_sq(p, s):
    """``1 - r**2`` for ``r = (1 - s) p`` without cancellation (as in the numba kernel)."""
    ap = jnp.abs(p)
    om = (1.0 - ap) + s * ap
    return om * (2.0 - om)


def _relu_G(s, p01, p02, p03, p12, p13, p23):
    """The integrand of :func:`odeprune.activations._relu_m4` at ``t = 1 - s`` (the last
    moment of :func:`odeprune.activations.relu_m4._relu_m4_moments`)."""
    t = 1.0 - s
    r01, r02, r03, r12, r13, r23 = (t * p01, t * p02, t * p03, t * p12, t * p13, t * p23)
    n01, v2, v3, a01 = _pair_partial_asin(r01, r02, r03, r12, r13, r23)
    a02 = _pair_partial_asin(r02, r01, r03, r12, r23, r13)[3]
    a03 = _pair_partial_asin(r03, r01, r02, r13, r23, r12)[3]
    a12 = _pair_partial_asin(r12, r01, r13, r02, r23, r03)[3]
    a13 = _pair_partial_asin(r13, r01, r12, r03, r23, r02)[3]
    a23 = _pair_partial_asin(r23, r02, r12, r03, r13, r01)[3]
    i2p = 1.0 / (2.0 * math.pi)
    o01, o02, o03 = _one_minus_sq(p01, s), _one_minus_sq(p02, s), _one_minus_sq(p03, s)
    o12, o13, o23 = _one_minus_sq(p12, s), _one_minus_sq(p13, s), _one_minus_sq(p23, s)
    q01 = (0.25 + i2p * a01) / jnp.sqrt(o01)
    q02 = (0.25 + i2p * a02) / jnp.sqrt(o02)
    q03 = (0.25 + i2p * a03) / jnp.sqrt(o03)
    q12 = (0.25 + i2p * a12) / jnp.sqrt(o12)
    q13 = (0.25 + i2p * a13) / jnp.sqrt(o13)
    q23 = (0.25 + i2p * a23) / jnp.sqrt(o23)
    D01 = ((jnp.sqrt(jnp.maximum(v2 * v3 - n01 * n01, 0.0)) + n01 * (0.5 * math.pi + a01))
           * i2p * i2p / (o01 * jnp.sqrt(o01)))
    D02 = (r13 - r03 * r01) * q01 + (r23 - r03 * r02) * q02 + o03 * q03
    D03 = (r12 - r02 * r01) * q01 + o02 * q02 + (r23 - r02 * r03) * q03
    D12 = (r03 - r13 * r01) * q01 + (r23 - r13 * r12) * q12 + o13 * q13
    D13 = (r02 - r12 * r01) * q01 + o12 * q12 + (r23 - r12 * r13) * q13
    dP4 = p01 * q01 + p02 * q02 + p03 * q03 + p12 * q12 + p13 * q13 + p23 * q23
    return p01 * D01 + i2p * (p02 * D02 + p03 * D03 + p12 * D12 + p13 * D13 + p23 * s * dP4)


@functools.cache
def _relu_merges(K: int, M: int):
    """Index coincidences of the ReLU ``I4(i, k, c, d)`` entries, for the pairs ``i <= k`` of
    :func:`_layout` and all ``(c, d)``: arrays of shape (P, L, L) with the number ``n`` of distinct
    fields, the first-appearance representatives ``g0, g1, g2`` of the groups and the positions
    ``p, q`` of the groups of ``c`` and ``d`` (as the numba kernel merges them)."""
    lay = _layout(K, M)
    L, pi, pk = lay["L"], lay["pi"], lay["pk"]
    shape = (pi.size, L, L)
    n = np.zeros(shape, np.int64)
    g = np.zeros((3,) + shape, np.int64)
    pq = np.zeros((2,) + shape, np.int64)
    for e, (i, k) in enumerate(zip(pi, pk)):
        for c in range(L):
            for d in range(L):
                reps: list[int] = []
                pos = []
                for f in (i, k, c, d):
                    if f not in reps:
                        reps.append(f)
                    pos.append(reps.index(f))
                n[e, c, d] = len(reps)
                for j, f in enumerate(reps[:3]):
                    g[j, e, c, d] = f
                pq[:, e, c, d] = pos[2], pos[3]
    return n, g, pq


def _relu_m3(R01, R02, R12, p, q):
    r""":math:`E[Y_p Y_q 1\{Y>0\}]` for three unit-variance fields, broadcast (as
    :func:`odeprune.activations._relu_m3`, Tallis 1961); valid for ``|R_kl| < 1``."""
    Rm = jnp.stack([jnp.stack([jnp.ones_like(R01), R01, R02], -1),
                    jnp.stack([R01, jnp.ones_like(R01), R12], -1),
                    jnp.stack([R02, R12, jnp.ones_like(R01)], -1)], -2)      # (..., 3, 3)
    Rp = jnp.take_along_axis(Rm, p[..., None, None], axis=-2)[..., 0, :]    # R[p, :]
    Rq = jnp.take_along_axis(Rm, q[..., None, None], axis=-2)[..., 0, :]    # R[q, :]
    Rpq = jnp.take_along_axis(Rp, q[..., None], axis=-1)[..., 0]
    P3 = 0.125 + (_asin(R01) + _asin(R02) + _asin(R12)) / (4.0 * math.pi)
    term = 0.0
    for k in range(3):
        for l in range(3):
            if l != k:
                rkl = Rm[..., k, l]
                term = term + Rp[..., k] * (Rq[..., l] - rkl * Rq[..., k]) / jnp.sqrt(
                    jnp.maximum(1.0 - rkl * rkl, 1e-300))
    return Rpq * P3 + term / (4.0 * math.pi)


def _relu_S4(C, a, lay):
    r""":math:`\sum_{c,d} a_c a_d I_4(i,k,c,d)` for ReLU over the pairs ``i <= k``, shape (P,).

    Entries with coinciding indices (``i = k``, ``c = i``, ``c = d``, ...) use the merged closed
    forms, as the numba kernel does; the others the fixed-node path integral, run as a
    ``fori_loop`` over nodes of (P, L, L) arrays (also where two distinct fields happen to be
    exactly aligned, e.g. the specialised ansatz).
    """
    pi, pk = lay["pi"], lay["pk"]
    n, g, pq = _relu_merges(lay["K"], lay["M"])
    d = jnp.diagonal(C)
    live = d > 0.0
    rho = jnp.where(np.eye(C.shape[0], dtype=bool), 1.0, _safe_corr(C, d[:, None], d[None, :]))
    p01 = rho[pi, pk][:, None, None]
    p02 = rho[pi, :][:, :, None]
    p03 = rho[pi, :][:, None, :]
    p12 = rho[pk, :][:, :, None]
    p13 = rho[pk, :][:, None, :]
    p23 = rho[None, :, :]
    u, w = (jnp.asarray(z) for z in _relu_nodes())

    def body(j, acc):
        return acc + w[j] * _relu_G(u[j] * u[j], p01, p02, p03, p12, p13, p23)

    F0 = jnp.broadcast_to(0.125 / math.pi + p23 / 16.0, (pi.size,) + C.shape)
    F = jax.lax.fori_loop(0, u.size, body, F0)
    # merged entries: n = 1, 2 (continuous up to |rho| = 1) and 3 (when no pair is aligned)
    r2 = rho[g[0], g[1]]
    s1 = jnp.sqrt(jnp.maximum(1.0 - r2 * r2, 0.0))
    F2 = jnp.where(pq[0] == pq[1], 0.25 + (_asin(r2) + r2 * s1) / (2.0 * math.pi),
                   (s1 + r2 * (0.5 * math.pi + _asin(r2))) / (2.0 * math.pi))
    R01, R02, R12 = rho[g[0], g[1]], rho[g[0], g[2]], rho[g[1], g[2]]
    ok3 = jnp.maximum(jnp.maximum(jnp.abs(R01), jnp.abs(R02)), jnp.abs(R12)) < 1.0
    F3 = _relu_m3(R01, R02, R12, jnp.asarray(pq[0]), jnp.asarray(pq[1]))
    F = jnp.where(n == 1, 0.5, jnp.where(n == 2, F2, jnp.where((n == 3) & ok3, F3, F)))
    sd = jnp.sqrt(jnp.where(live, d, 0.0))
    ok = (live[pi] & live[pk])[:, None, None] & live[None, :, None] & live[None, None, :]
    I4 = jnp.where(ok, F * sd[None, :, None] * sd[None, None, :], 0.0)
    return jnp.einsum("pcd,c,d->p", I4, a, a)


def _S4_J2(C, a, lay, code):
    r"""Over the pairs ``i <= k``: :math:`\sum_{c,d} a_c a_d I_4(i,k,c,d)` and :math:`J_2(i,k)`.

    For erf, with ``r_c = Lambda_1(i,k,c)^{-1/2}`` the arcsine argument is
    :math:`\Lambda_0 r_c r_d = u^{(1)}_c C_{cd} r_d - u^{(2)}_c C_{kd} r_d - u^{(3)}_c C_{id} r_d`
    with row factors :math:`u^{(1)}_c = \Lambda_4 r_c`,
    :math:`u^{(2)}_c = (C_{kc}(1+C_{ii}) - C_{ik}C_{ic}) r_c`,
    :math:`u^{(3)}_c = (C_{ic}(1+C_{kk}) - C_{ik}C_{kc}) r_c`: one broadcast expression of shape
    (pairs, L, L). It covers all ``(c, d)``; keeping only ``c <= d`` would halve the arcsines but
    needs gathers, which XLA runs slowly on the CPU and very slowly under ``vmap`` (measured:
    up to 7x slower per member at K=20). For ReLU see :func:`_relu_S4`.
    """
    pi, pk = lay["pi"], lay["pk"]
    if code == LINEAR:  # I4(i, k, c, d) = C_cd, J2 = 1
        s = a @ C @ a
        return jnp.full(pi.shape, s), jnp.ones(pi.shape)
    if code == RELU:
        d = jnp.diagonal(C)
        rho = jnp.where(pi == pk, 1.0, _safe_corr(C[pi, pk], d[pi], d[pk]))
        J2 = jnp.where((d[pi] > 0.0) & (d[pk] > 0.0), 0.25 + _asin(rho) / (2.0 * math.pi), 0.0)
        return _relu_S4(C, a, lay), J2
    if code != ERF:
        raise _unknown(code)
    d1 = 1.0 + jnp.diagonal(C)
    Ci = C[pi, :]                                         # C_ic, (P, L)
    Ck = C[pk, :]                                         # C_kc
    cii1, ckk1, cik = d1[pi][:, None], d1[pk][:, None], C[pi, pk][:, None]
    lam4 = cii1 * ckk1 - cik * cik                        # (P, 1)
    lam1 = lam4 * d1[None, :] - Ck * Ck * cii1 - Ci * Ci * ckk1 + 2.0 * cik * Ci * Ck
    r = 1.0 / jnp.sqrt(lam1)                              # Lambda_1(i, k, c)^(-1/2), (P, L)
    u1 = lam4 * r
    u2 = (Ck * cii1 - cik * Ci) * r
    u3 = (Ci * ckk1 - cik * Ck) * r
    x = (u1[:, :, None] * (C[None, :, :] * r[:, None, :]) - u2[:, :, None] * (Ck * r)[:, None, :]
         - u3[:, :, None] * (Ci * r)[:, None, :])         # Lambda_0 r_c r_d, (P, L, L)
    s = jnp.einsum("pcd,c,d->p", _asin(x), a, a)
    inv_sqrt_lam4 = 1.0 / jnp.sqrt(lam4[:, 0])
    return _4_PI2 * inv_sqrt_lam4 * s, _2_PI * inv_sqrt_lam4


def _vector_field(y, T, v_star, eta, eta_v, sigma, lay, code, train_v, sgd):
    """``dy/dalpha`` for the packed state ``y`` (docs/theory.md §4); ``code`` an activation code."""
    K = lay["K"]
    pi, pk = lay["pi"], lay["pk"]
    C, a = _cov(y, T, v_star, lay)
    S3 = _S3(C, a, K, code)
    av = a[:K]
    dQ = -eta * (av[pi] * S3[pi, pk] + av[pk] * S3[pk, pi])
    if sgd:
        S4, J2 = _S4_J2(C, a, lay, code)
        dQ = dQ + eta * eta * av[pi] * av[pk] * (S4 + sigma * sigma * J2)
    dR = -eta * av[:, None] * S3[:, K:]
    if train_v:
        dv = -eta_v * (_I2_rows(C, K, code) @ a)
    else:
        dv = jnp.zeros(K)
    return jnp.concatenate([dQ, dR.ravel(), dv])


def _eg(y, T, v_star, lay, code):
    r""":math:`\epsilon_g = \frac12 \sum_{c,d} a_c a_d I_2(c,d)` (docs/theory.md §5)."""
    C, a = _cov(y, T, v_star, lay)
    d = jnp.diagonal(C)
    if code == ERF:
        d1 = 1.0 + d
        I2 = _2_PI * _asin(C / jnp.sqrt(d1[:, None] * d1[None, :]))
    elif code == LINEAR:
        I2 = C
    elif code == RELU:
        I2 = _relu_I2(C, d[:, None], d[None, :], _same(C.shape[0], C.shape[0]))
    else:
        raise _unknown(code)
    return 0.5 * a @ I2 @ a


# ------------------------------------------------------------------------------ evaluation
@functools.lru_cache(maxsize=64)
def _compiled_rhs(K, M, activation, train_v, sgd):
    lay = _layout(K, M)
    code = _code(activation)
    return jax.jit(lambda y, T, v_star, eta, eta_v, sigma: _vector_field(
        y, T, v_star, eta, eta_v, sigma, lay, code, train_v, sgd))


def rhs(y, K: int, M: int, T, v_star, eta: float, eta_v: float | None = None,
        sigma: float | None = None, activation: str = "erf", **options) -> np.ndarray:
    r"""The right-hand side ``dy/dalpha`` at the packed state ``y``, evaluated with JAX.

    Same packing and arguments as :func:`odeprune.ode.rhs.rhs` (the numba twin).

    Parameters
    ----------
    y : array_like, shape (K(K+1)/2 + K*M + K,)
        Upper triangle of Q (row-major), R (row-major), v.
    K, M : int
    T : array_like, shape (M, M)
    v_star : array_like, shape (M,)
    eta, eta_v, sigma : float
        The learning rates of the two layers (``eta_v`` default ``eta``) and the output noise
        (default 0).
    activation : {"erf", "linear", "relu"}
    **options :
        The rest of the learning rule (:class:`odeprune.options.Dynamics`):
        ``train_second_layer`` (True), ``gradient_flow`` (False); ``weight_decay`` and ``l1``
        are not available here.

    Returns
    -------
    ndarray, shape like ``y``
    """
    rates = {k: v for k, v in (("eta", eta), ("eta_v", eta_v), ("sigma", sigma))
             if v is not None}
    (dyn,) = gather("rhs", {**options, **rates}, (Dynamics,))
    if dyn.weight_decay or dyn.l1:
        raise ValueError("weight_decay and l1 are not available with the JAX right-hand side")
    act = get_activation(activation).name
    f = _compiled_rhs(int(K), int(M), act, dyn.train_second_layer, not dyn.gradient_flow)
    with jax.enable_x64(True):
        out = f(jnp.asarray(y, dtype=jnp.float64), jnp.asarray(T, dtype=jnp.float64),
                jnp.asarray(v_star, dtype=jnp.float64), dyn.eta, dyn.second_layer_rate,
                dyn.sigma)
        return np.asarray(out)


@functools.lru_cache(maxsize=64)
def _compiled_eg(K, M, activation):
    lay = _layout(K, M)
    code = _code(activation)
    return jax.jit(lambda y, T, v_star: _eg(y, T, v_star, lay, code))


def eg(state: OrderParams, activation: str | None = None) -> float:
    """Generalisation error of ``state`` computed with JAX (a check of the numba ``state.eg``).

    ``activation`` defaults to the state's own (and may only repeat it).
    """
    f = _compiled_eg(state.K, state.M, state.check_activation(activation))
    with jax.enable_x64(True):
        y = jnp.asarray(pack(state.Q, state.R, state.v))
        return float(f(y, jnp.asarray(state.T), jnp.asarray(state.v_star)))
