"""The masked-network ODE (docs/theory.md §8) and two-time overlaps (§9).

References: the dense ODE (one class), splitting an unmasked network into classes (the same
network), Lemma 6 (random masks), finite-N masked SGD from the same weights and masks, and
finite differences (P's equation is the derivative of a bilinear overlap).
"""

from __future__ import annotations

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.errors import DivergenceError
from odeprune.ode.dynamics import rhs_state
from odeprune.sparse import (
    SparseLearningCurve,
    SparseOrderParams,
    TwoTimeCurve,
    all_patterns,
)

ETA = 0.5


def _weights(N, K, M, seed):
    return OrderParams.draw_weights(N, K, M, v_star=2.0, seed=seed)


# ------------------------------------------------------------------------------ the state
def test_from_dense_is_one_class_and_dense_roundtrips():
    s = OrderParams.random(300, 4, 2, v_star=3.0, seed=1)
    sp = SparseOrderParams.from_dense(s)
    assert sp.n_classes == 1 and sp.dense() == s
    assert sp.eg() == s.eg()
    np.testing.assert_array_equal(sp.density()[0], np.ones(4))


def test_from_weights_is_exact_at_finite_N(rng):
    w, w_star, v, v_star = _weights(400, 3, 2, 0)
    mask = rng.random(w.shape) < 0.6
    sp = SparseOrderParams.from_weights(w, w_star, v, v_star, mask)
    direct = OrderParams.from_weights(w * mask, w_star, v, v_star)
    np.testing.assert_allclose(sp.dense().Q, direct.Q, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(sp.dense().R, direct.R, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(sp.dense().T, direct.T, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(sp.density()[0], mask.mean(1), rtol=1e-14)
    np.testing.assert_allclose(sp.f.sum(), 1.0, rtol=1e-14)


@pytest.mark.parametrize("c", [0.0, 0.3, 0.5, 1.0])
def test_random_mask_dense_is_lemma6(c):
    s = OrderParams.random(500, 5, 2, v_star=4.0, seed=3)
    sp = SparseOrderParams.random_mask(s, c)
    d = sp.dense()
    Q6 = c * c * s.Q + (c - c * c) * np.diag(np.diag(s.Q))
    np.testing.assert_allclose(d.Q, Q6, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(d.R, c * s.R, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(d.T, s.T, rtol=1e-14, atol=1e-14)
    expect = odeprune.prune(s, "random_edge", c=c).states[0] if c not in (0.0,) else None
    if expect is not None:
        np.testing.assert_allclose(d.Q, expect.Q, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(sp.density()[1], c, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("bad, match", [
    (dict(patterns=np.array([[1, 2]])), "0/1"),
    (dict(f=[1.2]), "outside"),
    (dict(f=[-0.1]), "outside"),
    (dict(patterns=np.array([[True, False]]), ), "non-zero"),
    (dict(Q=np.array([[[1.0, 2.0], [2.0, 1.0]]])), "positive semi-definite"),
    (dict(R=np.zeros((1, 3, 1))), "shape"),
])
def test_bad_sparse_states_are_refused(bad, match):
    kw = dict(patterns=np.ones((1, 2), bool), f=[1.0], Q=np.eye(2)[None], R=np.zeros((1, 2, 1)),
              T=np.eye(1)[None], v=[1.0, 1.0], v_star=[1.0])
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        SparseOrderParams(**kw)


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        SparseOrderParams(patterns=np.ones((2, 1), bool), f=[0.5, 0.6],
                          Q=np.ones((2, 1, 1)), R=np.zeros((2, 1, 1)), T=np.ones((2, 1, 1)),
                          v=[1.0], v_star=[1.0])


def test_mask_shape_and_values_refused():
    w, w_star, v, v_star = _weights(50, 2, 1, 0)
    with pytest.raises(ValueError, match="shape"):
        SparseOrderParams.from_weights(w, w_star, v, v_star, np.ones((2, 49)))
    with pytest.raises(ValueError, match="0/1"):
        SparseOrderParams.from_weights(w, w_star, v, v_star, np.full((2, 50), 0.5))


def test_too_many_classes_refused():
    s = OrderParams.random(50, 13, 1, seed=0)
    with pytest.raises(ValueError, match="2\\^13 mask classes"):
        SparseOrderParams.random_mask(s, 0.5)


def test_save_load_roundtrip(tmp_path):
    s = OrderParams.random(300, 3, 2, v_star=3.0, seed=1)
    sp = SparseOrderParams.random_mask(s, 0.4)
    path = sp.save(tmp_path / "sp.npz")
    assert SparseOrderParams.load(path) == sp


# ------------------------------------------------------------------------------ right-hand side
@pytest.mark.parametrize("act", ["erf", "linear"])
def test_one_class_rhs_is_the_dense_rhs(act):
    s = OrderParams.random(80, 4, 3, v_star=[2.0, -1.0, 1.5], seed=7).replace(activation=act)
    dense = rhs_state(s, eta=0.6, eta_v=0.3, sigma=0.2)
    one = rhs_state(SparseOrderParams.from_dense(s), eta=0.6, eta_v=0.3, sigma=0.2)
    for a, b in zip(dense, one):
        np.testing.assert_allclose(np.squeeze(b), a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_split_classes_sum_to_the_dense_rhs(act):
    # coordinates of an unmasked network split into even / odd j: the per-class derivatives
    # must sum to the dense derivative (the per-class algebra with unequal classes)
    w, w_star, v, v_star = _weights(301, 4, 2, 5)
    s = OrderParams.from_weights(w, w_star, v, v_star, activation=act)
    N = w.shape[1]
    parts = [np.arange(0, N, 2), np.arange(1, N, 2)]
    sp = SparseOrderParams(
        patterns=np.ones((2, 4), bool), f=[len(j) / N for j in parts],
        Q=[w[:, j] @ w[:, j].T / N for j in parts], R=[w[:, j] @ w_star[:, j].T / N for j in parts],
        T=[w_star[:, j] @ w_star[:, j].T / N for j in parts], v=v, v_star=v_star, activation=act)
    dQ, dR, dv = rhs_state(s, eta=ETA, sigma=0.1)
    sQ, sR, sv = rhs_state(sp, eta=ETA, sigma=0.1)
    np.testing.assert_allclose(sQ.sum(0), dQ, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sR.sum(0), dR, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sv, dv, rtol=1e-13)


def test_pruned_entries_stay_zero_and_masked_first_order_terms_are_projected_gradients():
    # gradient flow of a masked network: dQ^s = -(eta/N)-scaled projections of dEg/dW onto kept
    # coordinates. Check against the weights: d w~ = -eta * mask * grad (finite N, exact).
    w, w_star, v, v_star = _weights(200, 3, 2, 2)
    rng = np.random.default_rng(0)
    mask = rng.random(w.shape) < 0.5
    sp = SparseOrderParams.from_weights(w, w_star, v, v_star, mask)
    dQ, dR, _ = rhs_state(sp, eta=ETA, gradient_flow=True)
    m = sp.patterns.astype(float)
    assert np.all(dQ * (1 - m[:, :, None] * m[:, None, :]) == 0)
    assert np.all(dR * (1 - m[:, :, None]) == 0)
    # finite differences of eg along the masked gradient step reproduce the rhs
    N = w.shape[1]
    wm = w * mask
    s0 = OrderParams.from_weights(wm, w_star, v, v_star)

    def eg_of(W):
        return OrderParams.from_weights(W, w_star, v, v_star).eg()

    grad = np.zeros_like(wm)
    h = 1e-6
    for i in range(wm.shape[0]):
        for j in range(N):
            if mask[i, j]:
                e = np.zeros_like(wm)
                e[i, j] = h
                grad[i, j] = (eg_of(wm + e) - eg_of(wm - e)) / (2 * h)
    # SGD: dw = -(eta/sqrt(N)) ... ; in alpha units the gradient-flow drift is -eta N * grad / N
    vel = -ETA * N * grad * mask          # d w~ / d alpha  (alpha = steps / N)
    dQ_fd = (vel @ wm.T + wm @ vel.T) / N
    np.testing.assert_allclose(dQ.sum(0), dQ_fd, atol=2e-6 * max(1, np.abs(dQ_fd).max()))
    np.testing.assert_allclose(dR.sum(0), vel @ w_star.T / N,
                               atol=2e-6 * max(1, np.abs(dQ_fd).max()))
    assert s0.K == 3


# ------------------------------------------------------------------------------ learning curves
def test_one_class_curve_is_the_dense_curve():
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    dense = odeprune.integrate(s, ETA, 200)
    one = odeprune.integrate(SparseOrderParams.from_dense(s), ETA, 200)
    assert isinstance(one, SparseLearningCurve)
    np.testing.assert_array_equal(one.eg, dense.eg)  # the same compiled code, bit for bit
    assert isinstance(one.final, SparseOrderParams)
    np.testing.assert_allclose(one.final.dense().Q, dense.final.Q, rtol=1e-14)


def test_split_network_curve_is_the_dense_curve():
    s = OrderParams.random(500, 4, 2, v_star=3.0, seed=4)
    sp = SparseOrderParams.from_dense(s).split(3)
    dense = odeprune.integrate(s, ETA, 300, rtol=1e-9, atol=1e-12)
    split = odeprune.integrate(sp, ETA, 300, rtol=1e-9, atol=1e-12)
    # the same network: equal up to the integrator's error (the split state vector differs)
    np.testing.assert_allclose(split.eg, dense.eg, rtol=1e-6, atol=1e-9)


def test_masked_curve_keeps_the_mask_and_differs_from_the_dense_summed_state():
    s = OrderParams.random(500, 4, 2, v_star=3.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    c = odeprune.integrate(sp, ETA, 100)
    fin = c.final
    np.testing.assert_array_equal(fin.patterns, sp.patterns)
    m = fin.patterns.astype(float)
    assert np.all(fin.Q * (1 - m[:, :, None] * m[:, None, :]) == 0)
    assert fin.density()[1] == pytest.approx(0.5, rel=1e-14)
    np.testing.assert_allclose(c.eg[0], sp.eg(), rtol=1e-14)
    # the masked network is not the dense network started from the summed state
    d = odeprune.integrate(sp.dense(), ETA, 100)
    assert abs(d.eg[-1] - c.eg[-1]) > 1e-3 * c.eg[-1]


def test_masked_curve_file_roundtrip_and_resume(tmp_path):
    s = OrderParams.random(300, 3, 2, v_star=3.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    c = odeprune.integrate(sp, ETA, 50, track_initial=True)
    path = c.save(tmp_path / "c.npz")
    back = SparseLearningCurve.load(path)
    np.testing.assert_array_equal(back.P_cls, c.P_cls)
    assert back.final == c.final
    assert SparseOrderParams.load(path) == c.final


def test_masked_refusals():
    s = OrderParams.random(100, 3, 2, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    with pytest.raises(ValueError, match="not available with backend='jax'"):
        odeprune.integrate(sp, ETA, 1.0, backend="jax")


# ------------------------------------------------------------------------------ two-time overlaps
def test_P_starts_at_Q_and_its_derivative_matches_finite_differences():
    # d/dalpha (w(alpha) . w(0)) at alpha=0 equals the first-order part of d/dalpha Q's
    # one-sided term: dP_ik(0) = -eta v_i S3[i, k], and P(0) = Q(0)
    s = OrderParams.random(400, 3, 2, v_star=2.0, seed=2)
    c = odeprune.integrate(s, ETA, 1e-3, save_at=[0.0], track_initial=True, rtol=1e-11,
                           atol=1e-14)
    assert isinstance(c, TwoTimeCurve)
    np.testing.assert_array_equal(c.P[0], s.Q)
    dQ_gf = rhs_state(s, eta=ETA, gradient_flow=True)[0]
    # dQ_gf = D + D^T with D_ik = -eta v_i S3[i,k] = dP_ik(0); P's slope is D
    dP = (c.P[-1] - c.P[0]) / 1e-3
    np.testing.assert_allclose(dP + dP.T, dQ_gf, rtol=2e-3, atol=2e-3 * np.abs(dQ_gf).max())


def test_joint_covariance_is_psd_and_consistent():
    s = OrderParams.random(500, 4, 2, v_star=3.0, seed=1)
    c = odeprune.integrate(s, ETA, 100, track_initial=True)
    for j in (0, len(c) // 2, -1):
        J = c.joint_covariance(j)
        assert np.linalg.eigvalsh(J)[0] > -1e-8 * np.abs(J).max()
        np.testing.assert_array_equal(J[4:8, 4:8], c.Q[j])
        np.testing.assert_array_equal(J[:4, :4], c.Q[0])


def _finite_N_masked(N, seeds, alpha, mask_kind, track=False):
    K, M = 4, 2
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, v_star=2.0, seed=100)
    rng = np.random.default_rng(7)
    if mask_kind == "random":
        mask = rng.random(w.shape) < 0.5
    else:  # magnitude mask of the initial weights, half kept per unit
        thr = np.median(np.abs(w), axis=1, keepdims=True)
        mask = np.abs(w) > thr
    sp = SparseOrderParams.from_weights(w, w_star, v, v_star, mask)
    save_at = np.array([0.0, 2.0, 5.0, 10.0, alpha])
    ens = odeprune.simulate(N, K, M, ETA, alpha, save_at=save_at, init=(w, w_star, v),
                            v_star=v_star, mask=mask.astype(float), seeds=list(seeds), n_test=0)
    curve = odeprune.integrate(sp, ETA, alpha, save_at=save_at, track_initial=track)
    egs = np.array([r.eg for r in ens.runs])
    if track:
        return curve, egs, np.array([r.P for r in ens.runs])
    return curve, egs


@pytest.mark.slow
@pytest.mark.parametrize("mask_kind", ["random", "magnitude"])
def test_masked_ode_matches_finite_N_masked_sgd(mask_kind):
    gaps = {}
    for N in (500, 2000):
        curve, egs = _finite_N_masked(N, range(8), 20.0, mask_kind)
        mean = egs.mean(0)
        se = egs.std(0, ddof=1) / np.sqrt(egs.shape[0])
        # each ODE start is the exact state of the weights; the ODE must lie within the seeds'
        # spread (4 standard errors plus the O(1/N) finite-size bias of the mean)
        assert np.all(np.abs(curve.eg - mean) <= 4 * se + 2.0 / N + 1e-12), (N, curve.eg, mean, se)
        gaps[N] = float(np.sqrt(np.mean((curve.eg - mean) ** 2)))
    assert gaps[2000] < gaps[500], gaps


@pytest.mark.slow
def test_two_time_overlaps_match_finite_N():
    # P(alpha) = w(alpha) . w(0) / N of real masked SGD vs the masked ODE's P, same start
    gaps = {}
    for N in (500, 2000):
        curve, _, P = _finite_N_masked(N, range(8), 20.0, "random", track=True)
        mean = P.mean(0)
        se = P.std(0, ddof=1) / np.sqrt(P.shape[0])
        np.testing.assert_allclose(P[:, 0], np.broadcast_to(curve.P[0], P[:, 0].shape),
                                   rtol=1e-12, atol=1e-15)  # the same start, summed in another order
        z = np.abs(curve.P - mean) / np.maximum(se, 1e-12)
        assert np.all(np.abs(curve.P - mean) <= 4 * se + 2.0 / N), (N, z.max())
        gaps[N] = float(np.sqrt(np.mean((curve.P - mean) ** 2)))
    assert gaps[2000] < gaps[500], gaps


def test_simulation_records_P_and_roundtrips(tmp_path):
    r = odeprune.simulate(100, 3, 2, ETA, 2.0, seed=0, n_test=0)
    np.testing.assert_allclose(r.P[0], r.Q[0], rtol=1e-13)
    back = type(r).load(r.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(back.P, r.P)
    J = r.joint_covariance(-1)
    assert J.shape == (8, 8) and np.linalg.eigvalsh(J)[0] > -1e-10


def test_all_patterns_order():
    p = all_patterns(3)
    assert p.shape == (8, 3)
    assert len({tuple(r) for r in p}) == 8


def test_divergence_of_masked_run_is_reported():
    s = OrderParams.random(100, 4, 2, v_star=4.0, seed=0).replace(activation="linear")
    sp = SparseOrderParams.random_mask(s, 0.5)
    # frozen second layer: the eta^2 terms run away to a non-finite state (with a trained v the
    # run stays finite and stiff and uses up max_steps: MaxStepsReached, issue 26 item 5)
    with pytest.raises(DivergenceError, match="after alpha="):
        odeprune.integrate(sp, eta=100.0, alpha_max=100, max_steps=5_000,
                           train_second_layer=False)


def test_batch_accepts_masked_states_and_equals_single_calls():
    s = OrderParams.random(300, 3, 2, v_star=3.0, seed=0)
    states = [SparseOrderParams.random_mask(s, c) for c in (0.3, 0.7)]
    batch = odeprune.integrate_batch(states, eta=ETA, alpha_max=20.0)
    for st, curve in zip(states, batch.curves):
        np.testing.assert_array_equal(curve.eg, odeprune.integrate(st, ETA, 20.0,
                                                                   save_at=batch.alpha).eg)
    with pytest.raises(ValueError, match="not available with backend='jax'"):
        odeprune.integrate_batch(states, eta=ETA, alpha_max=1.0, backend="jax")


def test_threaded_rhs_is_bit_identical_for_any_thread_count():
    import numba

    from odeprune.ode import rhs as _rhs
    s = OrderParams.random(300, 16, 3, v_star=2.0, seed=0)
    y = _rhs.pack(s.Q, s.R, s.v)
    p = _rhs.make_params(16, 3, s.T, s.v_star, ETA, ETA, 0.1, 0, threads=True)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _rhs.rhs_eval(y, p)
        numba.set_num_threads(before)
        many = _rhs.rhs_eval(y, p)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    serial = _rhs.rhs_eval(y, p._replace(threads=False))
    np.testing.assert_allclose(many, serial, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("act", ["erf", "relu"])
def test_compile_time_activation_matches_runtime_code(act):
    """Params stores the activation as a compile-time ActivationCode (issue 27: an erf run
    compiles erf code only); a record holding the plain integer code (dispatch at run time)
    gives the same right-hand side, serial and threaded, dense and masked."""
    from odeprune.activations import ActivationCode, get_activation
    from odeprune.ode import rhs as _rhs

    code = get_activation(act).code
    s = OrderParams.random(300, 5, 2, v_star=2.0, seed=1, activation=act)
    sp = SparseOrderParams.random_mask(s, 0.5)
    cases = [(_rhs.pack(s.Q, s.R, s.v),
              _rhs.make_params(5, 2, s.T, s.v_star, ETA, ETA, 0.1, code)),
             (_rhs.pack_classes(sp.patterns, sp.Q, sp.R, sp.v),
              _rhs.make_params(5, 2, sp.T.sum(0), sp.v_star, ETA, ETA, 0.1, code,
                               patterns=sp.patterns, f=sp.f, T_cls=sp.T))]
    for y, p in cases:
        assert isinstance(p.act, ActivationCode) and p.act == code
        static = _rhs.rhs_eval(y, p)
        np.testing.assert_array_equal(static, _rhs.rhs_eval(y, p._replace(act=int(code))))
        np.testing.assert_array_equal(_rhs.rhs_eval(y, p._replace(threads=True)),
                                      _rhs.rhs_eval(y, p._replace(threads=True, act=int(code))))
        np.testing.assert_allclose(_rhs.rhs_eval(y, p._replace(threads=True)), static,
                                   rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="unknown activation code"):
        _rhs.make_params(5, 2, s.T, s.v_star, ETA, ETA, 0.0, 7)


def test_layout_and_threads_are_compile_time_and_give_the_same_numbers():
    """A dense record (one class, every unit kept, no P) has ``classes=None`` and a serial one
    ``threads=None``: their kernels hold neither the class loop nor the parallel sum (issue 27
    item 3). The run-time forms (``classes`` the tables of one full class, ``threads=False``)
    give the same numbers bit for bit, and a masked record runs the class loop."""
    from odeprune.ode import rhs as _rhs
    s = OrderParams.random(300, 5, 2, v_star=2.0, seed=2)
    y = _rhs.pack(s.Q, s.R, s.v)
    p = _rhs.make_params(5, 2, s.T, s.v_star, ETA, ETA, 0.1)
    assert p.classes is None and p.threads is None
    dense = _rhs.rhs_eval(y, p)
    one_class = _rhs.class_tables(np.ones((1, 5), bool), 2)  # the run-time class form
    np.testing.assert_array_equal(dense, _rhs.rhs_eval(y, p._replace(classes=one_class)))
    np.testing.assert_array_equal(dense, _rhs.rhs_eval(y, p._replace(threads=False)))
    sp = SparseOrderParams.random_mask(s, 0.5)
    pm = _rhs.make_params(5, 2, sp.T.sum(0), sp.v_star, ETA, ETA, 0.1, patterns=sp.patterns,
                          f=sp.f, T_cls=sp.T)
    np.testing.assert_array_equal(pm.classes, _rhs.class_tables(sp.patterns, 2))
    with pytest.raises(TypeError, match="threads="):
        _rhs.make_params(5, 2, s.T, s.v_star, ETA, ETA, threads="yes")
    np.testing.assert_array_equal(_rhs.rhs(y, 5, 2, s.T, s.v_star, ETA, ETA, 0.1, act=0), dense)
    with pytest.raises(TypeError, match="the switches are"):
        _rhs.rhs(y, 5, 2, s.T, s.v_star, ETA, ETA, 0.1, actt=0)


def test_params_of_a_dynamics_record_is_make_params():
    """``params_of(state, Dynamics(...), act)`` builds the record that the flat
    ``make_params`` call of the driver builds, for a masked network (with P) and a dense one."""
    from odeprune.ode import rhs as _rhs
    from odeprune.options import Dynamics
    s = OrderParams.random(300, 5, 2, v_star=2.0, seed=4)
    sp = SparseOrderParams.random_mask(s, 0.5)
    dyn = Dynamics(eta=0.5, eta_v=0.3, sigma=0.1, train_second_layer=True,
                   gradient_flow=False, weight_decay=0.01)
    flat = _rhs.make_params(5, 2, sp.T.sum(0), sp.v_star, 0.5, 0.3, 0.1, 0, train_v=True,
                            sgd=True, fast=True,
                            patterns=sp.patterns, f=sp.f, T_cls=sp.T, track_P=True,
                            R0_cls=sp.R, weight_decay=0.01)
    rec = _rhs.params_of(sp, dyn, 0, track_P=True)
    for name, a in flat._asdict().items():
        np.testing.assert_array_equal(np.asarray(getattr(rec, name)), np.asarray(a), err_msg=name)
    y = _rhs.pack_classes(sp.patterns, sp.Q, sp.R, sp.v, sp.Q)
    np.testing.assert_array_equal(_rhs.rhs_eval(y, rec), _rhs.rhs_eval(y, flat))
    frozen = Dynamics(eta=0.5, train_second_layer=False, gradient_flow=True)
    pd = _rhs.params_of(s, frozen, 0)
    assert (pd.eta_v, pd.train_v, pd.sgd, pd.decay, pd.classes) == (0.5, False, False, 0.0, None)
    np.testing.assert_array_equal(pd.T, s.T)
