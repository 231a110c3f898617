"""The compiled Jacobian of the implicit phase (``odeprune.ode.jacobian``, issue 16).

It is the forward-difference Jacobian with the increments of ``_stiff.fd_jacobian`` computed by
recomputing only the I4 terms a column moves, so against the plain forward differences (same
increments ``h_j``) the only difference is rounding in the sums: ``|dJ_ij| <= c eps max|f| / h_j``
with ``c`` at most the number of terms of one sum (``L^2``). Against central differences
(an independent computation, truncation ``O(h^2)``) it agrees to the forward-difference error.
For erf the I4 bracket enters with its exact gradient (``erf_s4_gradient``, the default), checked
on its own against central differences with a Richardson error estimate.
"""

from __future__ import annotations

import numpy as np
import pytest

import odeprune as op
from odeprune.activations import get_activation
from odeprune.ode.dynamics import _problem
from odeprune.ode.jacobian import (
    FD_JACOBIAN_MAX_N,
    column_entries,
    erf_s4_gradient,
    fd_jacobian_into,
    jacobian_into,
)
from odeprune.ode.rhs import make_params, make_work, rhs_eval, s4_sums, unpack_cov
from odeprune.ode.stiff import fd_jacobian
from odeprune.options import Dynamics

EPS = np.finfo(float).eps


def _increments(y):
    h = np.sqrt(EPS) * np.maximum(np.abs(y), 1e-3)
    return (y + h) - y


def _both(state, sigma=0.2, act="erf", train_v=True, sgd=True, fast=True, track_P=False,
          exact_i4=True):
    p, y, sp = _problem(state, Dynamics(eta=0.5, eta_v=0.4, sigma=sigma,
                                        train_second_layer=train_v, gradient_flow=not sgd),
                        get_activation(act).code, track_P, fast=fast)
    f0 = rhs_eval(y, p)
    J_plain = fd_jacobian(lambda x: rhs_eval(x, p), y, f0)
    J = np.empty_like(J_plain)
    f_struct = jacobian_into(y, p, make_work(p.K, p.M), make_work(p.K, p.M),
                             column_entries(sp.patterns, p.K, p.M, track_P), J, exact_i4)
    return p, y, f0, f_struct, J, J_plain


CASES = [
    dict(act="erf"),
    dict(act="erf", fast=False),
    dict(act="erf", sigma=0.0, train_v=False),
    dict(act="erf", sgd=False),
    dict(act="linear"),
    dict(act="relu"),
]


@pytest.mark.parametrize("exact_i4", [True, False])
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_dense_jacobian_equals_plain_forward_differences(kw, exact_i4):
    state = op.OrderParams.random(500, 5, 3, v_star=2.0, seed=3,
                                  activation=kw.get("act", "erf"))
    p, y, f0, f_struct, J, J_plain = _both(state, exact_i4=exact_i4, **kw)
    L = p.K + p.M
    np.testing.assert_allclose(f_struct, f0, rtol=1e-12, atol=1e-14)
    bound = L * L * EPS * np.abs(f0).max() / _increments(y)
    assert np.all(np.abs(J - J_plain) <= bound[None, :])
    assert np.abs(J).max() > 0.1  # not a trivial Jacobian


@pytest.mark.parametrize("exact_i4", [True, False])
def test_masked_jacobian_with_two_time_overlaps(exact_i4):
    state = op.OrderParams.random(500, 4, 2, v_star=2.0, seed=1)
    sp = op.SparseOrderParams.random_mask(state, 0.6)
    assert sp.patterns.shape[0] > 1
    p, y, f0, _, J, J_plain = _both(sp, track_P=True, exact_i4=exact_i4)
    L = p.K + p.M
    bound = L * L * EPS * np.abs(f0).max() / _increments(y)
    assert np.all(np.abs(J - J_plain) <= bound[None, :])
    # the P columns move no field overlap: only the P rows of their own class respond
    cols = column_entries(sp.patterns, p.K, p.M, True)
    assert (cols[:, 0] == -1).sum() == sum(int(k) ** 2 for k in p.nk)


@pytest.mark.parametrize("masked", [False, True])
def test_compiled_plain_differences_are_stiff_fd_jacobian_bit_for_bit(masked):
    """``fd_jacobian_into`` (the compiled BDF's Jacobian of a small state) forms
    :func:`odeprune.ode.stiff.fd_jacobian` of the compiled right-hand side: the same increments
    and arithmetic, so the same numbers bit for bit (that reference is checked against the
    structured Jacobian above and against central differences below)."""
    state = op.OrderParams.random(500, 4, 2, v_star=2.0, seed=1)
    if masked:
        state = op.SparseOrderParams.random_mask(state, 0.6)
    p, y, _ = _problem(state, Dynamics(eta=0.5, eta_v=0.4, sigma=0.2), get_activation("erf").code,
                       track_P=masked)
    f0 = rhs_eval(y, p)
    J = np.full((y.size, y.size), np.nan)
    f = fd_jacobian_into(y, p, make_work(p.K, p.M), J)
    assert np.array_equal(f, f0)
    assert np.array_equal(J, fd_jacobian(lambda x: rhs_eval(x, p), y, f0))
    assert np.abs(J).max() > 0.1


def test_bdf_jacobian_by_state_size():
    """The compiled BDF differences the whole right-hand side for a state of at most
    ``FD_JACOBIAN_MAX_N`` entries (the default M=2/K=6 curve: 39) and uses the structured
    Jacobian above; ``fd_jacobian`` overrides the choice."""
    from odeprune.ode.drivers import AutoDriver
    from odeprune.ode.explicit import Control
    from odeprune.ode.rhs import pack

    def driver(K, **kw):
        s = op.OrderParams.random(500, K, 2, v_star=4.0, seed=0)
        p = make_params(K, 2, s.T, s.v_star, 0.5, 0.5, 0.0)
        y = pack(s.Q, s.R, s.v)
        t = np.array([0.0, 1.0])
        return y.size, AutoDriver("auto", p, y, rhs_eval(y, p), 0.0, t,
                                  np.zeros((2, y.size)), Control(1e-7, 1e-10, 0.0, 1, 1e-9), **kw)

    n, small = driver(6)
    assert n == 39 <= FD_JACOBIAN_MAX_N and small.cols is None
    n, large = driver(8)
    assert n == 60 > FD_JACOBIAN_MAX_N and large.cols.shape == (n, 2)
    assert driver(6, fd_jacobian=False)[1].cols is not None
    assert driver(8, fd_jacobian=True)[1].cols is None


def test_jacobian_against_central_differences():
    state = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    p, y, f0, _, J, _ = _both(state, sigma=0.1)
    n = y.size
    Jc, Jc2 = np.empty((n, n)), np.empty((n, n))
    for j in range(n):
        for out, h in ((Jc, 1e-5), (Jc2, 2e-5)):
            yp, ym = y.copy(), y.copy()
            yp[j] += h
            ym[j] -= h
            out[:, j] = (rhs_eval(yp, p) - rhs_eval(ym, p)) / (2 * h)
    central_err = np.abs(Jc - Jc2).max() / 3  # Richardson: error(h) ~ (J(2h) - J(h)) / 3
    # forward differences: truncation h |f''| / 2 plus rounding eps |f| / h, per column
    h = _increments(y)
    fwd_err = h * np.abs(Jc).max() + 4 * EPS * np.abs(f0).max() / h
    assert np.all(np.abs(J - Jc) <= 10 * fwd_err[None, :] + 10 * central_err)


def test_column_entries_layout():
    cols = column_entries(np.ones((1, 3), dtype=bool), 3, 2, False)
    # Q upper triangle (0,0) (0,1) (0,2) (1,1) (1,2) (2,2), then R rows, then v
    assert cols[:6].tolist() == [[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 2]]
    assert cols[6:12].tolist() == [[0, 3], [0, 4], [1, 3], [1, 4], [2, 3], [2, 4]]
    assert cols[12:].tolist() == [[-2, 0], [-2, 1], [-2, 2]]


def _s4_of(C, a, K, M, sigma):
    """``S4`` (upper triangle) of the compiled sum at covariance ``C`` and weights ``a``."""
    p = make_params(K, M, C[K:, K:], -a[K:], 0.5, 0.5, sigma)
    w = make_work(K, M)
    w.C[:], w.a[:] = C, a
    s4_sums(p, w)
    return np.triu(w.S4)


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_erf_s4_gradient_against_central_differences(sigma):
    """Every entry of the exact gradient (covariance entries, both halves moved, and weights)
    against central differences of the compiled sum, within their Richardson error estimate
    (``|D(h) - D(2h)| / 3``) plus rounding (``1e3 eps |S4| / h``)."""
    K, M = 4, 2
    s = op.OrderParams.random(500, K, M, v_star=2.0, seed=5)
    p, y, _ = _problem(s, Dynamics(eta=0.5, sigma=sigma), 0)
    w = make_work(K, M)
    unpack_cov(y, p, w.C, w.a)
    C, a, L = w.C.copy(), w.a.copy(), K + M
    G, Ga = erf_s4_gradient(C, a, K, L, sigma)
    iu = np.triu_indices(K)
    scale = np.abs(_s4_of(C, a, K, M, sigma)).max()

    def central(move, h):
        return (_s4_of(*move(h), K, M, sigma) - _s4_of(*move(-h), K, M, sigma))[iu] / (2 * h)

    def check(exact, move):
        h = 1e-4
        d1, d2 = central(move, h), central(move, 2 * h)
        tol = np.abs(d1 - d2) / 3 + 1e3 * EPS * scale / h
        assert np.all(np.abs(exact - d1) <= tol), (np.abs(exact - d1).max(), tol.max())

    n_checked = 0
    for x in range(L):
        for z in range(x, L):
            if x >= K and z >= K:
                continue  # the teacher block is fixed

            def move(h, x=x, z=z):
                Cp = C.copy()
                Cp[x, z] += h
                if z != x:
                    Cp[z, x] += h
                return Cp, a

            check(G[:, x, z], move)
            n_checked += 1
    for e in range(K):
        def move_a(h, e=e):
            ap = a.copy()
            ap[e] += h
            return C, ap

        check(Ga[:, e], move_a)
    assert n_checked == K * (K + 1) // 2 + K * M
    assert np.abs(G).max() > 0.1 and np.abs(Ga).max() > 0.1  # not trivially zero
