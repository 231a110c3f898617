"""Finite-N online SGD (odeprune.sim): reproducibility, the compiled step against a plain
numpy twin, eg from order parameters against an empirical test error, agreement with the ODEs
(tolerance from the seed-to-seed spread, shrinking with N), checkpoint/resume, errors, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

import odeprune
from odeprune._rng import normals_numpy
from odeprune.errors import DivergenceError, OdepruneInterrupted
from odeprune.sim import SimulationEnsemble, SimulationResult, sgd_streams, simulate
from odeprune.sim import run as sim

ARRAYS = ("alpha", "eg", "Q", "R", "v", "eg_test", "eg_test_se", "w", "w_star", "T", "v_star")


def assert_same(a: SimulationResult, b: SimulationResult) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ------------------------------------------------------------------ plain-numpy twin
def numpy_sgd(w, v, w_star, v_star, seed, n_steps, eta, eta_v, sigma, activation="erf",
              train_v=True, n_train=None):
    """The update of docs/theory.md §1 written plainly in numpy, on the documented streams."""
    w, v = w.copy(), v.copy()
    K, N = w.shape
    rng, noise_rng, _ = sgd_streams(seed)
    start, noise_start = rng.bit_generator.state, noise_rng.bit_generator.state
    if activation == "erf":
        def g(z):
            return np.array([math.erf(t / math.sqrt(2)) for t in np.atleast_1d(z)])

        def gp(z):
            return math.sqrt(2 / math.pi) * np.exp(-0.5 * z ** 2)
    else:
        def g(z):
            return z

        def gp(z):
            return np.ones_like(z)
    for step in range(n_steps):
        if n_train is not None and step % n_train == 0:
            rng.bit_generator.state = start
            noise_rng.bit_generator.state = noise_start
        x = normals_numpy(rng, N)  # the documented input stream (odeprune._rng)
        y = v_star @ g(w_star @ x / math.sqrt(N))
        if sigma > 0:
            y += sigma * noise_rng.standard_normal()
        lam = w @ x / math.sqrt(N)
        delta = v @ g(lam) - y
        w_new = w - (eta / math.sqrt(N)) * (v * delta * gp(lam))[:, None] * x[None, :]
        if train_v:
            v = v - (eta_v / N) * delta * g(lam)
        w = w_new
    return w, v


@pytest.mark.parametrize("activation,sigma,train_v,n_train", [
    ("erf", 0.0, True, None), ("erf", 0.3, True, None), ("linear", 0.2, True, None),
    ("erf", 0.0, False, None), ("erf", 0.25, True, 7),
])
def test_kernel_matches_numpy_twin(activation, sigma, train_v, n_train):
    N, K, M, steps = 20, 3, 2, 40
    res = simulate(N, K, M, eta=0.7, alpha_max=steps / N, eta_v=0.3, sigma=sigma, v_star=1.5,
                   activation=activation, seed=11, n_test=0, train_second_layer=train_v,
                   n_train=n_train)
    w0, w_star, v0, v_star = odeprune.OrderParams.draw_weights(N, K, M, 1.5, 11)
    w, v = numpy_sgd(w0, v0, w_star, v_star, 11, steps, 0.7, 0.3, sigma, activation, train_v,
                     n_train)
    np.testing.assert_allclose(res.w, w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.v_final, v, rtol=1e-12, atol=1e-12)
    assert res.metadata["steps"] == steps


# ------------------------------------------------------------------ reproducibility
def test_same_seed_identical_different_seed_differs():
    kw = dict(N=60, K=3, M=2, eta=0.5, alpha_max=4, sigma=0.1, n_test=500)
    a, b, c = simulate(**kw, seed=3), simulate(**kw, seed=3), simulate(**kw, seed=4)
    assert_same(a, b)
    assert not np.array_equal(a.w, c.w)
    assert not np.array_equal(a.eg, c.eg)


def test_initial_state_equals_orderparams_random():
    for seed in (0, 7):
        res = simulate(100, 4, 3, 0.5, 1, v_star=[1.0, 2.0, 4.0], seed=seed, n_test=0)
        assert res.initial == odeprune.OrderParams.random(100, 4, 3, [1.0, 2.0, 4.0], seed)
        w, w_star, _, _ = odeprune.OrderParams.draw_weights(100, 4, 3, [1.0, 2.0, 4.0], seed)
        np.testing.assert_array_equal(res.w_star, w_star)


def test_result_independent_of_block_size(monkeypatch):
    kw = dict(N=30, K=3, M=2, eta=0.5, alpha_max=5, save_at=[1, 2.5], sigma=0.2, n_test=100,
              seed=5)
    a = simulate(**kw)
    monkeypatch.setattr(sim, "MAX_CHUNK_STEPS", 7)
    assert_same(a, simulate(**kw))


def test_explicit_init_weights():
    w, w_star, v, _ = odeprune.OrderParams.draw_weights(40, 3, 2, 4.0, 9)
    a = simulate(40, 3, 2, 0.5, 2, seed=9, n_test=0)
    b = simulate(40, 3, 2, 0.5, 2, seed=9, n_test=0, init=(w, w_star, v))
    np.testing.assert_array_equal(a.w, b.w)
    np.testing.assert_array_equal(a.eg, b.eg)


def test_online_equals_large_training_set():
    kw = dict(N=30, K=3, M=2, eta=0.5, alpha_max=3, sigma=0.2, n_test=0, seed=2)
    assert_same(simulate(**kw), simulate(**kw, n_train=10_000))
    assert not np.array_equal(simulate(**kw).w, simulate(**kw, n_train=20).w)


# ------------------------------------------------------------------ eg two ways
def test_eg_from_order_parameters_matches_test_error():
    res = simulate(200, 4, 2, 0.5, 10, save_at=[0.5, 2, 5], seed=1, n_test=20_000)
    z = (res.eg - res.eg_test) / res.eg_test_se
    assert np.all(np.abs(z) < 5), z
    np.testing.assert_allclose(res.eg_test_noisy, res.eg_test)  # sigma = 0
    lin = simulate(200, 3, 2, 0.2, 2, save_at=[1], activation="linear", v_star=1.0, seed=2,
                   n_test=20_000)
    assert np.all(np.abs(lin.eg - lin.eg_test) < 5 * lin.eg_test_se)


# ------------------------------------------------------------------ against the ODEs
def _gaps(N, seeds, alpha_max, save_at, **kw):
    """eg_sim - eg_ode per seed (ODE started from that seed's initial order parameters)."""
    ens = simulate(N, kw.pop("K", 6), kw.pop("M", 2), 0.5, alpha_max, save_at=save_at,
                   seeds=seeds, n_test=0, **kw)
    ode_kw = {k: kw[k] for k in ("activation", "train_second_layer", "sigma") if k in kw}
    gaps = [r.eg - odeprune.integrate(r.initial, 0.5, alpha_max, save_at=r.alpha, **ode_kw).eg
            for r in ens]
    return np.array(gaps)


@pytest.mark.slow
def test_simulation_agrees_with_odes_and_gap_shrinks_with_N():
    # M=2, K=6, eta=0.5, v*=4 (Acharyya et al. 2021, Fig. 1 setting), through the plateau.
    save_at = [1, 2, 5, 10, 15, 20, 25, 30]
    rms = {}
    for N in (500, 2000):
        D = _gaps(N, list(range(8)), 30, save_at)
        mean, sem = D.mean(axis=0), D.std(axis=0, ddof=1) / math.sqrt(D.shape[0])
        # the average gap is zero within the seed-to-seed standard error of the mean
        assert np.all(np.abs(mean) <= 5 * sem), (N, mean, sem)
        rms[N] = float(np.sqrt(np.mean(D ** 2)))
    # fluctuations around the ODE shrink like 1/sqrt(N): expect a ratio ~2 for N x4
    assert rms[2000] < 0.8 * rms[500], rms


def test_simulation_agrees_with_odes_linear_and_frozen_second_layer():
    save_at = [0.5, 1, 2, 4]
    D = _gaps(400, list(range(6)), 4, save_at, K=3, M=2, activation="linear", v_star=1.0)
    sem = D.std(axis=0, ddof=1) / math.sqrt(D.shape[0])
    assert np.all(np.abs(D.mean(axis=0)) <= 5 * sem), (D.mean(axis=0), sem)
    D = _gaps(400, list(range(6)), 10, [1, 2, 5, 10], K=4, M=2, train_second_layer=False,
              v_star=1.0, sigma=0.25)
    sem = D.std(axis=0, ddof=1) / math.sqrt(D.shape[0])
    assert np.all(np.abs(D.mean(axis=0)) <= 5 * sem), (D.mean(axis=0), sem)


# ------------------------------------------------------------------ ensembles
def test_ensemble_equals_individual_runs():
    kw = dict(N=40, K=3, M=2, eta=0.5, alpha_max=3, n_test=200)
    ens = simulate(**kw, seed=4, n_runs=3)
    assert isinstance(ens, SimulationEnsemble) and len(ens) == 3 and ens.seeds == [4, 5, 6]
    for run, seed in zip(ens, (4, 5, 6)):
        assert_same(run, simulate(**kw, seed=seed))
    eg = np.stack([r.eg for r in ens])
    np.testing.assert_allclose(ens.eg_mean, eg.mean(axis=0))
    np.testing.assert_allclose(ens.eg_std, eg.std(axis=0, ddof=1))
    np.testing.assert_allclose(ens.eg_sem, ens.eg_std / math.sqrt(3))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        ens2 = simulate(**kw, seeds=[6, 4], executor=ex, progress=True)
    assert_same(ens2[0], ens[2])


def test_ensemble_save_load(tmp_path):
    ens = simulate(30, 2, 1, 0.5, 1, n_test=50, seeds=[1, 2])
    back = SimulationEnsemble.load(ens.save(tmp_path / "ens.npz"))
    for a, b in zip(ens, back):
        assert_same(a, b)


# ------------------------------------------------------------------ files
def test_save_load_round_trip(tmp_path):
    res = simulate(50, 3, 2, 0.5, 2, sigma=0.25, seed=1, n_test=100)
    path = res.save(tmp_path / "run.npz")
    for back in (SimulationResult.load(path), odeprune.load(path)):
        assert isinstance(back, SimulationResult)
        assert_same(res, back)
        assert back.metadata["seed"] == 1 and back.metadata["sigma"] == 0.25
    assert odeprune.OrderParams.load(path) == res.final
    np.testing.assert_allclose(res.eg_test_noisy, res.eg_test + 0.25 ** 2 / 2)
    assert res.to_csv().startswith("alpha,eg,eg_test,eg_test_se\n")


# ------------------------------------------------------------------ checkpoint / resume
@pytest.mark.parametrize("n_train", [None, 45])
def test_interrupt_and_resume_is_bit_identical(tmp_path, monkeypatch, n_train):
    kw = dict(N=30, K=3, M=2, eta=0.5, alpha_max=6, save_at=[0.5, 1, 2, 3, 4, 5], sigma=0.2,
              n_test=200, seed=8, n_train=n_train)
    monkeypatch.setattr(sim, "MAX_CHUNK_STEPS", 13)
    ref = simulate(**kw)
    real = sim.sgd_steps
    calls = {"n": 0}

    def interrupted_kernel(*args):
        out = real(*args)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # Ctrl-C arriving just after a compiled block returned
        return out

    ckpt = tmp_path / "run.ckpt.npz"
    monkeypatch.setattr(sim, "sgd_steps", interrupted_kernel)
    with pytest.raises(OdepruneInterrupted, match="resume"):
        simulate(**kw, checkpoint=ckpt)
    assert ckpt.exists()
    res = simulate(**kw, checkpoint=ckpt, resume=True)
    assert_same(ref, res)
    assert not ckpt.exists()


def test_periodic_checkpoint_and_ensemble_resume(tmp_path, monkeypatch):
    kw = dict(N=30, K=2, M=1, eta=0.5, alpha_max=3, save_at=[1, 2], n_test=50, seeds=[0, 1])
    ref = simulate(**kw)
    monkeypatch.setenv("ODEPRUNE_CHECKPOINT_EVERY_S", "0")
    monkeypatch.setattr(sim, "MAX_CHUNK_STEPS", 11)
    real = sim.sgd_steps
    calls = {"n": 0}

    def interrupted_kernel(*args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sim, "sgd_steps", interrupted_kernel)
    ckpt = tmp_path / "ens.npz"
    with pytest.raises(OdepruneInterrupted):
        simulate(**kw, checkpoint=ckpt, max_workers=1)
    monkeypatch.setattr(sim, "sgd_steps", real)
    res = simulate(**kw, checkpoint=ckpt, resume=True)
    for a, b in zip(ref, res):
        assert_same(a, b)
    assert not list(tmp_path.glob("ens*"))


def test_resume_with_other_parameters_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "MAX_CHUNK_STEPS", 5)
    real = sim.sgd_steps

    def interrupted_kernel(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "sgd_steps", interrupted_kernel)
    ckpt = tmp_path / "c.npz"
    with pytest.raises(OdepruneInterrupted):
        simulate(20, 2, 1, 0.5, 2, n_test=0, checkpoint=ckpt)
    monkeypatch.setattr(sim, "sgd_steps", real)
    with pytest.raises(ValueError, match="other parameters"):
        simulate(20, 2, 1, 0.4, 2, n_test=0, checkpoint=ckpt, resume=True)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw,match", [
    (dict(N=0), "N=0"), (dict(K=0), "K=0"), (dict(M=-1), "M=-1"), (dict(N=2.5), "N=2.5"),
    (dict(eta=0.0), "eta=0.0"), (dict(eta=-1.0), "eta=-1.0"), (dict(eta=float("nan")), "eta"),
    (dict(eta_v=-0.1), "eta_v"), (dict(sigma=-1), "sigma"), (dict(alpha_max=0), "alpha_max"),
    (dict(activation="tanh"), "tanh"), (dict(n_test=-1), "n_test"), (dict(n_train=0), "n_train"),
    (dict(seed=-3), "seed"), (dict(v_star=[1, 2, 3]), "v_star"),
    (dict(save_at=[100]), "save_at"), (dict(resume=True), "checkpoint"),
    (dict(seeds=[1, 1]), "distinct"), (dict(seeds=[1], n_runs=2), "not both"),
])
def test_bad_input(kw, match):
    args = dict(N=10, K=2, M=1, eta=0.5, alpha_max=1, n_test=0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        simulate(**args)


def test_non_finite_initial_weights():
    w, w_star, v, _ = odeprune.OrderParams.draw_weights(10, 2, 1, 1.0, 0)
    w[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"init: w .*non-finite.*\(1, 3\)"):
        simulate(10, 2, 1, 0.5, 1, init=(w, w_star, v))
    with pytest.raises(ValueError, match="shape"):
        simulate(10, 2, 1, 0.5, 1, init=(w[:, :5], w_star, v))


def test_divergence_reports_alpha_and_suggests_smaller_eta():
    with pytest.raises(DivergenceError, match=r"alpha=.*smaller eta") as info:
        simulate(20, 2, 1, 50.0, 50, activation="linear", seed=0, n_test=0)
    assert 0 < info.value.alpha < 50
    assert info.value.last_state is None or isinstance(info.value.last_state,
                                                       odeprune.OrderParams)
    # this run saved states before it diverged (alpha=0.5): the last one comes with the error
    last = info.value.last_state
    assert isinstance(last, odeprune.OrderParams) and last.activation == "linear"
    assert (last.K, last.M) == (2, 1) and np.isfinite(last.eg())


# ------------------------------------------------------------------ CLI
def test_cli_simulate(tmp_path, capsys):
    from odeprune.cli import main

    out = tmp_path / "sim.npz"
    assert main(["simulate", "--N", "40", "--K", "3", "--M", "2", "--alpha-max", "2",
                 "--n-test", "100", "--output", str(out), "--quiet"]) == 0
    res = odeprune.load(out)
    assert isinstance(res, SimulationResult) and res.N == 40
    assert (tmp_path / "sim.csv").exists()
    out2 = tmp_path / "ens.npz"
    assert main(["simulate", "--N", "30", "--K", "2", "--M", "1", "--alpha-max", "1",
                 "--n-test", "0", "--runs", "2", "--output", str(out2), "--quiet"]) == 0
    assert len(SimulationEnsemble.load(out2)) == 2
    capsys.readouterr()


@pytest.mark.parametrize("argv", [["--N", "0"], ["--eta", "-1"], ["--K", "x"],
                                  ["--runs", "2", "--seeds", "1,2"]])
def test_cli_bad_arguments_exit_2(argv, capsys):
    from odeprune.cli import main

    with pytest.raises(SystemExit) as info:
        code = main(["simulate", *argv, "--quiet"])
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1
