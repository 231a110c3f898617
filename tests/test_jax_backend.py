"""The JAX/diffrax backend against the numba one: right-hand side, learning curves, divergence.

Skipped when JAX is not installed (CI installs it with the ``[test]`` extra).
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("diffrax")

import odeprune as op  # noqa: E402
from odeprune.activations import get_activation  # noqa: E402
from odeprune.ode import jax_backend as jax_backend  # noqa: E402
from odeprune.ode.rhs import pack, rhs  # noqa: E402
from odeprune.options import Dynamics  # noqa: E402

ETA = 0.5
TIGHT = dict(rtol=1e-10, atol=1e-13)
SAVE_AT = np.concatenate([[0.0], np.geomspace(0.01, 300.0, 60)])


def _states():
    """Valid states of several shapes and scales: fresh draws (small N gives large overlaps)
    and a partly trained one."""
    out = [op.OrderParams.random(N, K, M, v_star=4.0, seed=seed)
           for seed, (N, K, M) in enumerate([(500, 6, 2), (20, 3, 4), (10, 1, 1)])]
    trained = op.integrate(out[0], ETA, 50.0, save_at=[50.0]).final
    return out + [trained]


@pytest.mark.parametrize("activation", ["erf", "linear"])
@pytest.mark.parametrize("gradient_flow", [False, True])
@pytest.mark.parametrize("train_v", [True, False])
def test_rhs_equals_numba(activation, gradient_flow, train_v):
    code = get_activation(activation).code
    for s in _states():
        y = pack(s.Q, s.R, s.v)
        expect = rhs(y, s.K, s.M, np.ascontiguousarray(s.T), np.ascontiguousarray(s.v_star), ETA,
                     0.3, 0.25, act=code, train_v=train_v, sgd=not gradient_flow, fast=True)
        got = jax_backend.rhs(y, s.K, s.M, s.T, s.v_star, ETA, 0.3, 0.25, activation,
                              train_second_layer=train_v, gradient_flow=gradient_flow)
        scale = np.max(np.abs(expect))
        np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12 * scale)


def test_eg_equals_numba():
    for s in _states():
        for act in ("erf", "linear"):
            sa = s.replace(activation=act)
            np.testing.assert_allclose(jax_backend.eg(sa, act), sa.eg(act), rtol=1e-13)


def test_fast_asin_matches_arcsin():
    x = np.concatenate([np.linspace(-1.0, 1.0, 200_001), [0.5, -0.5, np.nextafter(0.5, 0)]])
    with jax.enable_x64(True):
        got = np.asarray(jax_backend._asin(jax.numpy.asarray(x)))
    np.testing.assert_allclose(got, np.arcsin(x), rtol=1e-15, atol=1e-15)
    with jax.enable_x64(True):
        clipped = np.asarray(jax_backend._asin(jax.numpy.asarray([1.0 + 1e-12, -1.5])))
    np.testing.assert_allclose(clipped, [np.pi / 2, -np.pi / 2], rtol=1e-15)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(sigma=0.25),
    dict(activation="linear"),
    dict(train_second_layer=False),
    dict(gradient_flow=True),
], ids=["erf", "sigma", "linear", "frozen_v", "gradient_flow"])
def test_learning_curve_parity(kwargs):
    """eps_g agrees to 1e-6 relative with the numba backend, at tight tolerances for both."""
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    s = s.replace(activation=kwargs.get("activation", "erf"))  # the state carries it
    cn = op.integrate(s, ETA, 300.0, save_at=SAVE_AT, **TIGHT, **kwargs)
    cj = op.integrate(s, ETA, 300.0, save_at=SAVE_AT, backend="jax", **TIGHT, **kwargs)
    assert cj.metadata["backend"] == "jax" and cj.metadata["status"] == "success"
    np.testing.assert_array_equal(cj.alpha, cn.alpha)
    # linear students learn the teacher exactly: eps_g -> 0, hence the tiny absolute floor
    floor = 1e-10 * np.max(np.abs(cn.eg))
    np.testing.assert_allclose(cj.eg, cn.eg, rtol=1e-6, atol=floor)
    for name in ("Q", "R", "v"):
        a, b = getattr(cj, name), getattr(cn, name)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8 * max(1.0, np.max(np.abs(b))))
    assert cj.metadata["nfev"] > 0 and cj.metadata["n_accept"] > 0


def test_divergence_raises_with_alpha():
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0).replace(activation="linear")
    save_at = np.concatenate([[0.0], np.geomspace(0.01, 10.0, SAVE_AT.size - 1)])
    with pytest.raises(op.DivergenceError, match=r"alpha=.*smaller eta") as info:
        op.integrate(s, 20.0, 10.0, save_at=save_at, activation="linear",
                     train_second_layer=False, backend="jax")
    assert 0.0 <= info.value.alpha < 1.0
    assert info.value.last_state is None or isinstance(info.value.last_state, op.OrderParams)


def test_x64_stays_scoped():
    before = jax.config.read("jax_enable_x64")
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=1)
    curve = op.integrate(s, ETA, 300.0, save_at=SAVE_AT, backend="jax", **TIGHT)
    assert curve.eg.dtype == np.float64
    assert jax.config.read("jax_enable_x64") == before


def test_unknown_solver():
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=1)
    with pytest.raises(ValueError, match="solver"):
        jax_backend.integrate(s, Dynamics(eta=ETA),
                              jax_backend.JaxRun(1.0, np.array([0.0, 1.0]), solver="euler"))


def test_metadata_keys_match_the_numba_backend():
    """Issue 11: the two backends describe a run with the same metadata keys (JAX adds its
    step statistics; numba its fixed-step dt)."""
    s = op.OrderParams.random(100, 3, 2, v_star=1.0, seed=0)
    a = op.integrate(s, eta=0.5, alpha_max=2.0, backend="numba", progress=False).metadata
    b = op.integrate(s, eta=0.5, alpha_max=2.0, backend="jax", progress=False).metadata
    missing = set(a) - set(b) - {"dt"}
    assert not missing, missing
