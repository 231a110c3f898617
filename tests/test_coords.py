"""The coordinate law (docs/theory.md §11): its coefficients against the ODE and Monte Carlo, its
sampling, its two engines (linear response and particles) against the ODE and against real
networks at finite N, decisions against the Gaussian edge maps, files and bad input."""

import signal

import numpy as np
import pytest

import odeprune
from odeprune.activations import ACTIVATIONS, I3_at
from odeprune.coords import CoordinateCurve, CoordinateLaw, decide, integrate_law
from odeprune.coords.particles import _Field
from odeprune.ode.rhs import i3_coefficients, make_params, rhs_eval
from odeprune.options import Dynamics
from odeprune.sparse import SparseOrderParams
from odeprune.workflows import schedules
from tests.conftest import random_cov


def _state(K=3, M=2, seed=0, act="erf"):
    rng = np.random.default_rng(seed)
    C = random_cov(rng, K + M)
    return odeprune.OrderParams(C[:K, :K], C[:K, K:], C[K:, K:], rng.normal(size=K),
                                rng.normal(size=M), activation=act)


# ------------------------------------------------------------------ the coefficients
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_drift_identity_G_C_equals_the_I3_sums(act):
    st = _state(act=act)
    K, L = st.K, st.K + st.M
    C = np.ascontiguousarray(st.covariance())
    a = np.concatenate([st.v, -st.v_star])
    U, b = np.empty((K, L)), np.empty(K)
    code = ACTIVATIONS[act].code
    i3_coefficients(code, C, a, K, U, b)
    G = U.copy()
    G[np.arange(K), np.arange(K)] += b
    direct = np.array([[sum(a[c] * I3_at(code, C, i, k, c) for c in range(L))
                        for k in range(L)] for i in range(K)])
    np.testing.assert_allclose(G @ C, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_sde_second_moments_are_the_ode(act):
    """d E[w w^T] of the SDE (drift G C + C G^T, noise eta^2 diag(a) B diag(a)) and d E[w w*^T]
    equal the ODE's dQ, dR; dv is the ODE's."""
    st = _state(act=act)
    K, M = st.K, st.M
    eta, eta_v, sigma = 0.7, 0.3, 0.2
    f = _Field(K, M, st.v_star, st.T, ACTIVATIONS[act].code,
               Dynamics(eta=eta, eta_v=eta_v, sigma=sigma))
    f.w.C[:] = st.covariance()
    f.set_v(st.v)
    G, Bc, dv = f.coefficients()
    dC = G @ st.covariance()  # (K, L): d E[w u^T] from the drift
    dQ = dC[:, :K] + dC[:, :K].T + Bc
    p = make_params(K, M, st.T, st.v_star, eta, eta_v, sigma, ACTIVATIONS[act].code)
    y = np.concatenate([st.Q[np.triu_indices(K)], st.R.ravel(), st.v])
    dy = rhs_eval(y, p)
    nq = K * (K + 1) // 2
    np.testing.assert_allclose(dQ[np.triu_indices(K)], dy[:nq], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dC[:, K:].ravel(), dy[nq:nq + K * M], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dv, dy[nq + K * M:], rtol=1e-10, atol=1e-12)


def test_drift_against_monte_carlo_of_the_sgd_update():
    """E[v_i Delta g'(lambda_i) z_a] by Monte Carlo (1e6 fields) equals -(G C)_ia / eta (the
    mean SGD update of a coordinate, Stein's lemma), within 5 standard errors."""
    st = _state(K=2, M=1, seed=3)
    K, L = 2, 3
    eta = 1.0
    f = _Field(K, 1, st.v_star, st.T, 0, Dynamics(eta=eta, eta_v=eta))
    f.w.C[:] = st.covariance()
    f.set_v(st.v)
    G, _, _ = f.coefficients()
    rng = np.random.default_rng(7)
    z = rng.multivariate_normal(np.zeros(L), st.covariance(), size=1_000_000)
    g = ACTIVATIONS["erf"]
    delta = g.g(z[:, :K]) @ st.v - g.g(z[:, K:]) @ st.v_star
    F = st.v[None, :] * delta[:, None] * g.g_prime(z[:, :K])  # (n, K)
    X = F[:, :, None] * z[:, None, :]                          # (n, K, L)
    mean, se = X.mean(0), X.std(0) / np.sqrt(len(z))
    assert np.all(np.abs(mean + (G @ st.covariance()) / eta) < 5 * se)


# ------------------------------------------------------------------ sampling and files
def test_moment_matched_samples_reproduce_the_state_exactly():
    st = _state(K=4, M=2)
    law = CoordinateLaw.from_state(st, S=500, replicas=3, seed=1)
    for r in range(3):
        Q, R, T = law.moments(r)
        np.testing.assert_allclose(Q, st.Q, atol=1e-12)
        np.testing.assert_allclose(R, st.R, atol=1e-12)
        np.testing.assert_allclose(T, st.T, atol=1e-12)
    assert law.eg()[0] == pytest.approx(st.eg(), abs=1e-12)
    sp = SparseOrderParams.random_mask(st, 0.5)
    law = CoordinateLaw.from_state(sp, S=4000, replicas=2, seed=2)
    sp2 = law.sparse()
    np.testing.assert_allclose(sp2.dense().Q, sp.dense().Q, atol=1e-12)
    np.testing.assert_allclose(sp2.f, sp.f, atol=1e-12)
    assert law.density() == pytest.approx(0.5, abs=1e-12)


def test_from_weights_is_the_finite_network_exactly():
    w, ws, v, vs = odeprune.OrderParams.draw_weights(300, 3, 2, v_star=2.0, seed=4)
    mask = np.random.default_rng(0).random((3, 300)) < 0.5
    law = CoordinateLaw.from_weights(w, ws, v, vs, mask=mask)
    sp = SparseOrderParams.from_weights(w, ws, v, vs, mask)
    np.testing.assert_allclose(law.sparse().dense().Q, sp.dense().Q, atol=1e-12)
    e, se = law.eg()
    assert e == pytest.approx(sp.eg(), rel=1e-12) and np.isnan(se)


def test_from_joint_reproduces_the_two_time_covariance():
    st = _state(K=3, M=1)
    cv = odeprune.integrate(st, 0.5, 5.0, track_initial=True)
    lT, l0 = CoordinateLaw.from_joint(cv, -1, S=400, replicas=2, seed=0)
    sw = np.sqrt(lT.weights[0])[:, None]
    P = (sw * lT.w[0]).T @ (sw * l0.w[0])
    np.testing.assert_allclose(P, cv.P[-1], atol=1e-12)
    np.testing.assert_allclose(l0.moments(0)[0], st.Q, atol=1e-12)


def test_law_and_curve_files_round_trip(tmp_path):
    law = CoordinateLaw.from_state(_state(), S=100, replicas=2, seed=0)
    law.save(tmp_path / "law.npz")
    back = odeprune.load(tmp_path / "law.npz")
    assert isinstance(back, CoordinateLaw) and np.array_equal(back.w, law.w)
    cv = integrate_law(law, 0.5, 1.0)
    cv.save(tmp_path / "c.npz")
    back = odeprune.load(tmp_path / "c.npz")
    assert isinstance(back, CoordinateCurve)
    assert np.array_equal(back.eg, cv.eg) and np.array_equal(back.final.mask, cv.final.mask)


# ------------------------------------------------------------------ engines against the ODE
def test_linear_response_reproduces_the_masked_ode_exactly():
    st = _state(K=3, M=2)
    sp = SparseOrderParams.random_mask(st, 0.6)
    law = CoordinateLaw.from_state(sp, S=3000, replicas=2, seed=0)
    cv = integrate_law(law, 0.5, 10.0, save_at=[2.0, 10.0])
    ode = odeprune.integrate(law.sparse_replica(0)[0], 0.5, 10.0, save_at=[2.0, 10.0],
                             track_initial=True)
    np.testing.assert_allclose(cv.eg_replicas[0], ode.eg, rtol=1e-12)
    # the particles' own moments after the map are the ODE's final state
    np.testing.assert_allclose(cv.final.moments(0)[0], ode.final.dense().Q, atol=1e-9)
    assert cv.method == "linear"


def test_particles_reproduce_the_ode_within_their_error_and_converge_in_dt():
    st = odeprune.OrderParams.random(N=500, K=3, M=2, v_star=2.0, seed=0)
    ode = odeprune.integrate(st, 0.5, 5.0, save_at=[5.0], rtol=1e-10, atol=1e-12)
    law = CoordinateLaw.from_state(st, S=4000, replicas=8, seed=1)
    cv = integrate_law(law, 0.5, 5.0, save_at=[5.0], method="particles", dt=0.05, seed=2)
    assert abs(cv.eg[-1] - ode.eg[-1]) < 4 * cv.eg_se[-1]
    # gradient flow: no noise, the scheme's error is second order in dt
    odg = odeprune.integrate(st, 0.5, 5.0, save_at=[5.0], gradient_flow=True, rtol=1e-11,
                             atol=1e-13)
    one = CoordinateLaw.from_state(st, S=200, replicas=1, seed=1)
    errs = [abs(integrate_law(one, 0.5, 5.0, save_at=[5.0], method="particles", dt=dt,
                              gradient_flow=True).eg[-1] - odg.eg[-1]) for dt in (0.2, 0.1)]
    assert errs[0] / errs[1] > 3.0  # at least second order (4 when the dt^2 term dominates)


def test_particle_error_bar_is_calibrated_and_shrinks_with_S():
    """Over 20 seeds the spread of the particle estimate about the ODE, divided by the reported
    se, is near 1; the se shrinks ~ S^-1/2."""
    st = odeprune.OrderParams.random(N=500, K=2, M=1, v_star=2.0, seed=0)
    exact = odeprune.integrate(st, 0.5, 3.0, save_at=[3.0], rtol=1e-10, atol=1e-12).eg[-1]
    z, ses = [], {}
    for S in (250, 1000):
        for seed in range(20 if S == 250 else 4):
            law = CoordinateLaw.from_state(st, S=S, replicas=5, seed=seed)
            cv = integrate_law(law, 0.5, 3.0, save_at=[3.0], method="particles", dt=0.1,
                               seed=100 + seed)
            ses.setdefault(S, []).append(cv.eg_se[-1])
            if S == 250:
                z.append((cv.eg[-1] - exact) / cv.eg_se[-1])
    # the se of one estimate has ~35 % spread with 5 replicas: the rms z-score of 20 seeds
    # lies in [0.6, 1.6] with probability > 99 % when calibrated (t-distribution, 4 dof)
    rms = float(np.sqrt(np.mean(np.square(z))))
    assert 0.6 < rms < 1.6, rms
    ratio = np.mean(ses[250]) / np.mean(ses[1000])
    assert 1.4 < ratio < 2.9, ratio  # sqrt(4) = 2


# ------------------------------------------------------------------ decisions
def test_magnitude_decision_on_a_gaussian_law_is_the_edge_map():
    st = odeprune.OrderParams.random(N=500, K=3, M=2, v_star=2.0, seed=0)
    law = CoordinateLaw.from_state(st, S=40_000, replicas=4, seed=0)
    for name in ("magnitude_edge", "magnitude_edge_global"):
        dec = decide(law, name, 0.4, seed=0)
        ref = odeprune.prune(st, name, c=0.4).eg_mean
        e, se = dec.eg()
        assert abs(e - ref) < 5 * se + 1e-4, (name, e, se, ref)
        assert dec.density() == pytest.approx(0.4, abs=1e-3)


def test_decisions_refine_the_kept_weights_only():
    law = CoordinateLaw.from_state(_state(K=3, M=1), S=2000, replicas=2, seed=0)
    a = decide(law, "random", 0.5, seed=0)
    b = decide(a, "magnitude", 0.5, scope="global")
    assert np.all(b.mask <= a.mask) and b.density() == pytest.approx(0.25, abs=2e-2)
    assert np.all(b.w[~b.mask] == 0)
    for rule in ("snip", "dpp"):
        c = decide(law, rule, 0.3, seed=1)
        assert c.density() == pytest.approx(0.3, abs=3e-2)


# ------------------------------------------------------------------ against finite N






def test_l1_limit_against_finite_n():
    K, M, lam = 3, 2, 0.05
    gaps, small = [], []
    for s in range(4):
        w, ws, v, vs = odeprune.OrderParams.draw_weights(1000, K, M, v_star=2.0, seed=s)
        sim = odeprune.simulate(1000, K, M, 0.5, 10.0, v_star=2.0, seed=s, l1=lam,
                                save_at=[10.0], n_test=0, progress=False)
        law = CoordinateLaw.from_state(odeprune.OrderParams.from_weights(w, ws, v, vs),
                                       S=4000, replicas=4, seed=s)
        cv = integrate_law(law, 0.5, 10.0, save_at=[10.0], l1=lam, dt=0.1, seed=s)
        assert cv.method == "particles"
        gaps.append(sim.eg[-1] - cv.eg[-1])
        small.append((np.abs(sim.w) < 0.05).mean() - cv.final.fraction_below([0.05])[0])
    gaps, small = np.array(gaps), np.array(small)
    assert abs(gaps.mean()) < 3 * gaps.std(ddof=1) / 2 + 1e-3, gaps
    assert abs(small.mean()) < 0.02, small


def test_weight_decay_ode_particles_and_finite_n():
    """Weight decay: the ODE (dense and masked) against the particle SDE (within its error) and
    the linear engine (exactly); finite N at N = 1000 within its error bar."""
    st = odeprune.OrderParams.random(N=1000, K=3, M=2, v_star=2.0, seed=0)
    g = 0.3
    for state in (st, SparseOrderParams.random_mask(st, 0.5)):
        ode = odeprune.integrate(state, 0.5, 10.0, save_at=[10.0], weight_decay=g)
        law = CoordinateLaw.from_state(state, S=4000, replicas=8, seed=0)
        part = integrate_law(law, 0.5, 10.0, save_at=[10.0], weight_decay=g,
                             method="particles", dt=0.05)
        assert abs(part.eg[-1] - ode.eg[-1]) < 4 * part.eg_se[-1]
        lin = integrate_law(law, 0.5, 10.0, save_at=[10.0], weight_decay=g)
        assert lin.method == "linear"
        assert lin.eg[-1] == pytest.approx(ode.eg[-1], rel=1e-6)
    assert ode.eg[-1] != pytest.approx(odeprune.integrate(state, 0.5, 10.0).eg[-1], rel=1e-2)
    w, ws, v, vs = odeprune.OrderParams.draw_weights(1000, 3, 2, v_star=2.0, seed=0)
    E = [odeprune.simulate(1000, 3, 2, 0.5, 10.0, v_star=2.0, seed=s, init=(w, ws, v),
                           weight_decay=g, save_at=[10.0], n_test=0, progress=False).eg[-1]
         for s in range(6)]
    ref = odeprune.integrate(st, 0.5, 10.0, save_at=[10.0], weight_decay=g).eg[-1]
    assert abs(np.mean(E) - ref) < 4 * np.std(E, ddof=1) / np.sqrt(6) + 2e-3


def test_sgd_regularisers_against_a_plain_numpy_step():
    """simulate(weight_decay=, l1=) against a numpy loop of the documented update with the same
    inputs (recovered from a run with the regulariser off: the first step's inputs)."""
    N, K, M, eta = 50, 2, 1, 0.5
    w, ws, v, vs = odeprune.OrderParams.draw_weights(N, K, M, v_star=1.0, seed=0)
    base = odeprune.simulate(N, K, M, eta, 1.0 / N, v_star=1.0, seed=0, n_test=0,
                             save_at=[1.0 / N], progress=False, train_second_layer=False)
    step = base.w - w  # = -(eta/sqrt N) v Delta g' x, the gradient step of the first input
    for kw in (dict(weight_decay=3.0), dict(l1=4.0)):
        res = odeprune.simulate(N, K, M, eta, 1.0 / N, v_star=1.0, seed=0, n_test=0,
                                save_at=[1.0 / N], progress=False, train_second_layer=False,
                                **kw)
        x = w + step
        if "weight_decay" in kw:
            want = (1 - eta * kw["weight_decay"] / N) * x
        else:
            want = np.sign(x) * np.maximum(np.abs(x) - eta * kw["l1"] / N, 0)
        np.testing.assert_allclose(res.w, want, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ bad input
def test_bad_input_is_refused_before_any_work():
    st = _state()
    law = CoordinateLaw.from_state(st, S=50, replicas=1, seed=0)
    w = np.array(law.w)
    w[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        law.replace(w=w)
    with pytest.raises(ValueError, match="mask must have shape"):
        law.replace(mask=np.ones((1, 50, 2), bool))
    with pytest.raises(ValueError, match="0/1"):
        law.replace(mask=np.full(law.mask.shape, 2))
    with pytest.raises(ValueError, match="l1"):
        integrate_law(law, 0.5, 1.0, l1=-0.1)
    with pytest.raises(ValueError, match="S >= 2|S=1"):
        CoordinateLaw.from_state(st, S=1)
    with pytest.raises(ValueError, match="non-increasing"):
        schedules.gradual_limit(st, ([1.0, 2.0], [0.5, 0.6]), 5.0)
    with pytest.raises(ValueError, match="increase strictly"):
        schedules.gradual_limit(st, ([2.0, 1.0], [0.6, 0.5]), 5.0)
    with pytest.raises(ValueError, match="current"):
        schedules.check_schedule(([1.0], [0.8]), 5.0, density=0.5)
    with pytest.raises(ValueError, match="l1"):
        odeprune.simulate(20, 2, 1, 0.5, 1.0, l1=-1.0, progress=False)


def test_particle_run_interrupt_and_resume_give_the_same_numbers(tmp_path, monkeypatch):
    """SIGTERM during a particle run (simulated by the run control's flag) saves a checkpoint and
    says so; resuming gives the uninterrupted numbers to the last digit."""
    from odeprune.errors import OdepruneInterrupted
    from odeprune.ode import runcontrol as _runcontrol

    st = odeprune.OrderParams.random(N=500, K=2, M=1, v_star=2.0, seed=0)
    law = CoordinateLaw.from_state(st, S=300, replicas=2, seed=0)
    kw = dict(save_at=[0.5, 1.0, 2.0], method="particles", dt=0.1, l1=0.02, seed=5)
    ref = integrate_law(law, 0.5, 2.0, **kw)
    calls = {"n": 0}
    real = _runcontrol.RunControl.chunk_done

    def stop_once(self, position, steps, seconds):
        real(self, position, steps, seconds)
        calls["n"] += 1
        if calls["n"] == 7:
            self._handler(signal.SIGTERM, None)  # what SIGTERM does during the run

    monkeypatch.setattr(_runcontrol.RunControl, "chunk_done", stop_once)
    ck = tmp_path / "ck.npz"
    with pytest.raises(OdepruneInterrupted, match="SIGTERM.*resume"):
        integrate_law(law, 0.5, 2.0, checkpoint=ck, **kw)
    monkeypatch.setattr(_runcontrol.RunControl, "chunk_done", real)
    back = integrate_law(law, 0.5, 2.0, checkpoint=ck, resume=True, **kw)
    assert np.array_equal(back.eg_replicas, ref.eg_replicas)
    assert np.array_equal(back.final.w, ref.final.w)
    with pytest.raises(ValueError, match="another run"):
        integrate_law(law, 0.5, 2.0, checkpoint=ck, resume=True, **dict(kw, dt=0.05))


def test_odeprune_integrate_dispatches_a_coordinate_law():
    st = _state(K=3, M=1)
    law = CoordinateLaw.from_state(st, S=300, replicas=2, seed=0)
    cv = odeprune.integrate(law, 0.5, 2.0, save_at=[1.0, 2.0], rtol=1e-9)
    assert isinstance(cv, CoordinateCurve) and cv.method == "linear"
    ref = odeprune.integrate(st, 0.5, 2.0, save_at=[1.0, 2.0], rtol=1e-9, track_initial=True)
    np.testing.assert_allclose(cv.eg, ref.eg, rtol=1e-10)
    assert odeprune.integrate(law, 0.5, 1.0, l1=0.01, dt=0.1).method == "particles"
    with pytest.raises(ValueError, match="do not apply"):
        odeprune.integrate(law, 0.5, 1.0, track_initial=True)
    with pytest.raises(ValueError, match="coordinate law"):
        odeprune.integrate(st, 0.5, 1.0, l1=0.1)


def test_joint_law_refuses_a_curve_not_saved_from_its_start():
    st = _state(K=3, M=1)
    cv = odeprune.integrate(st, 0.5, 5.0, save_at=[2.0, 5.0], track_initial=True)
    with pytest.raises(ValueError, match="not its start"):
        CoordinateLaw.from_joint(cv, -1, S=100, replicas=1)
    sp = SparseOrderParams.random_mask(st, 0.5)
    cvs = odeprune.integrate(sp, 0.5, 5.0, save_at=[2.0, 5.0], track_initial=True)
    with pytest.raises(ValueError, match="not its start"):
        cvs.joint_covariance(-1)




# ------------------------------------------------------------------ command line
def test_cli_regularisers_imp_rewind_and_gradual(tmp_path, capsys):
    from odeprune.cli import main

    out = tmp_path / "l1.npz"
    assert main(["integrate", "--l1", "0.02", "--K", "2", "--M", "1", "--alpha-max", "2",
                 "--particles", "300", "--replicas", "3", "-o", str(out), "-q"]) == 0
    cv = odeprune.load(out)
    assert isinstance(cv, CoordinateCurve) and cv.metadata["l1"] == 0.02
    assert "eg_se" in capsys.readouterr().out
    assert main(["integrate", "--weight-decay", "0.3", "--K", "2", "--M", "1", "--alpha-max",
                 "2", "-o", str(tmp_path / "wd.npz"), "-q"]) == 0
    st = odeprune.OrderParams.random(500, 2, 1, v_star=4.0, seed=0)
    ref = odeprune.integrate(st, 0.5, 2.0, weight_decay=0.3)
    assert odeprune.load(tmp_path / "wd.npz").eg[-1] == pytest.approx(ref.eg[-1], rel=1e-12)
    assert main(["simulate", "--N", "100", "--K", "2", "--M", "1", "--alpha-max", "1", "--l1",
                 "0.5", "-o", str(tmp_path / "s.npz"), "-q"]) == 0
    assert odeprune.load(tmp_path / "s.npz").metadata["l1"] == 0.5
    assert main(["ticket", "--mode", "imp", "--alpha-rewind", "1", "--K", "2", "--M", "1",
                 "--rounds", "1", "--alpha-train", "3", "--n-samples", "4000", "-q",
                 "-o", str(tmp_path / "imp")]) == 0
    assert odeprune.load(tmp_path / "imp.limit.npz").metadata["rewind_to"] == 1.0
    # a coordinate-law file continues (files chain): alpha goes on from the curve's end
    assert main(["integrate", "--init", str(out), "--alpha-max", "1", "-q", "-o",
                 str(tmp_path / "l1b.npz")]) == 0
    cont = odeprune.load(tmp_path / "l1b.npz")
    assert cont.alpha[0] == pytest.approx(2.0) and cont.alpha[-1] == pytest.approx(3.0)
    assert cont.final.S == cv.final.S and cont.method == "linear"
    assert main(["ticket", "--mode", "gradual", "--c", "0.5", "--K", "2", "--M", "1",
                 "--alpha-max", "4", "--n-prunes", "2", "--n-samples", "4000", "-q"]) == 0
    for bad in (["ticket", "--mode", "gradual", "--c", "0.5", "--prune-window", "3,1"],
                ["integrate", "--l1", "0.1", "--method", "auto"],
                ["integrate", "--particles", "10"]):
        try:
            code = main(bad)
        except SystemExit as e:
            code = e.code
        assert code == 2
        assert "error:" in capsys.readouterr().err


def test_an_edge_pruned_file_is_not_read_as_a_dense_state(tmp_path):
    st = odeprune.integrate(_state(K=3, M=1), 0.5, 5.0).final
    path = odeprune.prune(st, "magnitude_edge", c=0.5).save(tmp_path / "pr.npz")
    with pytest.raises(ValueError, match="masked"):
        odeprune.OrderParams.load(path)
    assert isinstance(odeprune.load(path).sparse_state, SparseOrderParams)
    node = odeprune.prune(st, "importance_node", k=2).save(tmp_path / "node.npz")
    assert odeprune.OrderParams.load(node).K == 2


@pytest.mark.parametrize("act", ["linear", "relu"])
def test_particles_follow_the_ode_for_other_activations(act):
    st = _state(K=2, M=1, seed=4, act=act)
    ode = odeprune.integrate(st, 0.3, 1.0, save_at=[1.0], rtol=1e-10, atol=1e-12).eg[-1]
    law = CoordinateLaw.from_state(st, S=1500, replicas=6, seed=0)
    cv = integrate_law(law, 0.3, 1.0, save_at=[1.0], method="particles", dt=0.05, seed=1)
    assert abs(cv.eg[-1] - ode) < 4 * cv.eg_se[-1], (cv.eg[-1], ode, cv.eg_se[-1])
    assert cv.final.activation == act




