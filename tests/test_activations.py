"""Gaussian averages against plain Monte Carlo (EQUATIONS.md §3)."""

import numpy as np
import pytest
from conftest import random_cov
from scipy.special import erf

from odeprune import activations as A
from odeprune.activations import ACTIVATIONS, CODES, get_activation

N_MC = 1_000_000


def _g(name, x):
    # independent of the registry's numpy functions
    return {"erf": lambda: erf(x / np.sqrt(2)), "linear": lambda: x,
            "relu": lambda: np.where(x > 0, x, 0.0)}[name]()


def _gp(name, x):
    return {"erf": lambda: np.sqrt(2 / np.pi) * np.exp(-x * x / 2),
            "linear": lambda: np.ones_like(x), "relu": lambda: (x > 0).astype(float)}[name]()


def _check(samples, exact):
    mean = samples.mean()
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    # 5 standard errors: a false alarm has probability ~6e-7 per check
    assert abs(mean - exact) < 5 * se + 1e-12, (mean, exact, se)


@pytest.mark.parametrize("name", ["erf", "linear", "relu"])
@pytest.mark.parametrize("case", range(4))
def test_integrals_match_monte_carlo(name, case):
    rng = np.random.default_rng(100 + case)
    C = random_cov(rng, 4, scale=[0.3, 1.0, 3.0, 1.5][case])
    x = rng.multivariate_normal(np.zeros(4), C, size=N_MC, method="cholesky").T
    act = get_activation(name)
    g = _g(name, x)
    gp = _gp(name, x)
    _check(g[0] * g[1], act.I2(C, 0, 1))
    _check(g[2] * g[2], act.I2(C, 2, 2))
    _check(gp[0] * x[1] * g[2], act.I3(C, 0, 1, 2))
    _check(gp[1] * x[1] * g[1], act.I3(C, 1, 1, 1))
    _check(gp[3] * x[0] * g[0], act.I3(C, 3, 0, 0))
    _check(gp[0] * gp[1] * g[2] * g[3], act.I4(C, 0, 1, 2, 3))
    _check(gp[0] * gp[0] * g[1] * g[1], act.I4(C, 0, 0, 1, 1))
    _check(gp[2] * gp[1] * g[2] * g[0], act.I4(C, 2, 1, 2, 0))
    _check(gp[0] * gp[3], act.J2(C, 0, 3))
    _check(gp[1] * gp[1], act.J2(C, 1, 1))


def test_i2_matrix_is_pairwise_i2(rng):
    C = random_cov(rng, 5)
    act = get_activation("erf")
    M = act.I2_matrix(C)
    expected = np.array([[act.I2(C, a, b) for b in range(5)] for a in range(5)])
    np.testing.assert_allclose(M, expected, rtol=0, atol=0)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation='tanh' is unknown"):
        get_activation("tanh")
    with pytest.raises(ValueError, match="is not registered"):
        get_activation(A.Activation("tanh", 7, "g(x) = tanh x", np.tanh, np.tanh))


def test_registry_is_consistent():
    assert sorted(a.code for a in ACTIVATIONS.values()) == sorted(CODES)
    assert all(get_activation(name).name == name for name in ACTIVATIONS)
    x = np.linspace(-3, 3, 13)
    for name, act in ACTIVATIONS.items():
        np.testing.assert_allclose(act.g(x), _g(name, x), rtol=1e-15, atol=0)
        np.testing.assert_allclose(act.g_prime(x), _gp(name, x), rtol=1e-15, atol=0)
        # the compiled scalar helpers agree with the numpy ones
        np.testing.assert_allclose([A.g(act.code, xi) for xi in x], act.g(x), rtol=1e-15,
                                   atol=1e-300)
        np.testing.assert_allclose([A.g_prime(act.code, xi) for xi in x], act.g_prime(x),
                                   rtol=1e-15, atol=0)


@pytest.mark.parametrize("fn, args", [
    (A.I2, (1.0, 0.2, 1.0)), (A.J2, (1.0, 0.2, 1.0)), (A.I3, (1.0, 0.2, 0.1, 0.3, 1.0)),
    (A.I4, (1.0, 0.1, 0.2, 0.3, 1.0, 0.1, 0.2, 1.0, 0.3, 1.0)), (A.g, (0.5,)), (A.g_prime, (0.5,)),
    (A.check_code, ())])
@pytest.mark.parametrize("code", [-1, 3, 99])
def test_unknown_code_raises_in_compiled_dispatch(fn, args, code):
    with pytest.raises(ValueError, match="unknown activation code"):
        fn(code, *args)


def test_unknown_code_raises_in_matrix_helpers():
    C = np.eye(3)
    with pytest.raises(ValueError, match="unknown activation code"):
        A.I2_matrix(5, C)
    with pytest.raises(ValueError, match="unknown activation code"):
        A.eg_from_cov(5, C, np.ones(3))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_I3_is_linear_in_cab_and_cbc(name, rng):
    """I3(a, b, c) = cab * I3|(1,0) + cbc * I3|(0,1) for fixed (caa, cac, ccc): the masked ODE
    (EQUATIONS.md §8) evaluates it at unit vectors."""
    code = get_activation(name).code
    for _ in range(20):
        C = random_cov(rng, 2, scale=rng.uniform(0.1, 3))
        caa, cac, ccc = C[0, 0], C[0, 1], C[1, 1]
        e1 = A.I3(code, caa, 1.0, cac, 0.0, ccc)
        e2 = A.I3(code, caa, 0.0, cac, 1.0, ccc)
        assert A.I3(code, caa, 0.0, cac, 0.0, ccc) == 0.0
        for cab, cbc in rng.normal(size=(5, 2)) * 3:
            np.testing.assert_allclose(A.I3(code, caa, cab, cac, cbc, ccc), cab * e1 + cbc * e2,
                                       rtol=1e-13, atol=1e-15)


def test_fast_asin_accuracy():
    from numba import njit

    from odeprune.ode.rhs import fast_asin

    @njit
    def ev(x):
        out = np.empty_like(x)
        for j in range(x.size):
            out[j] = fast_asin(x[j])
        return out

    xs = np.concatenate([np.linspace(-1, 1, 100_001),
                         np.random.default_rng(0).uniform(-1, 1, 100_000),
                         [0.5, np.nextafter(0.5, 0), 1.0, -1.0, 0.0, 1e-300]])
    exact = np.arcsin(xs)
    # within 3 ulp of numpy's (correctly rounded to ~0.5 ulp) arcsin
    ulp = np.spacing(np.abs(exact))
    assert np.all(np.abs(ev(xs) - exact) <= 3 * ulp)


def test_erf_g_equals_scipy_erf():
    """The numpy-side erf activation (compiled math.erf) against scipy.special.erf."""
    from scipy.special import erf

    from odeprune.activations import get_activation

    g = get_activation("erf").g
    x = np.random.default_rng(0).standard_normal((200, 7)) * 3
    for arr in (x, x.T, x[:, ::2], x[0, 0]):
        ref = erf(np.asarray(arr) / np.sqrt(2))
        got = g(arr)
        assert np.shape(got) == np.shape(ref)
        np.testing.assert_allclose(got, ref, rtol=4 * np.finfo(float).eps, atol=1e-300)


def test_activation_code_is_its_integer_in_python():
    """An ActivationCode (what Params stores) behaves as its plain integer code in Python."""
    import pickle

    for code in CODES:
        c = A.activation_code(code)
        assert c == code and code == c and int(c) == code and hash(c) == hash(code)
        assert c != code + 1 and not (c != code)
        assert {code: "x"}[c] == "x"
        assert pickle.loads(pickle.dumps(c)) == c
        assert type(pickle.loads(pickle.dumps(c))) is type(c)
        assert A.activation_code(c) is c
    assert A.activation_code(A.ERF) != A.activation_code(A.RELU)
    for bad in (-1, 3, 2.0, True, "erf", None):
        with pytest.raises(ValueError, match="unknown activation code"):
            A.activation_code(bad)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_compile_time_dispatch_equals_runtime_dispatch(name, rng):
    """The compiled averages give the same numbers (bit for bit) whether the activation is a
    compile-time ActivationCode or a run-time integer code."""
    code = get_activation(name).code
    static = A.activation_code(code)
    for _ in range(10):
        C = random_cov(rng, 4, scale=rng.uniform(0.2, 2))
        args4 = (C[0, 0], C[0, 1], C[0, 2], C[0, 3], C[1, 1], C[1, 2], C[1, 3], C[2, 2],
                 C[2, 3], C[3, 3])
        args2 = (C[0, 0], C[0, 1], C[1, 1])
        for fn, args in ((A.I2, args2), (A.J2, args2), (A.I4, args4),
                         (A.I3, (C[0, 0], C[0, 1], C[0, 2], C[1, 2], C[2, 2])),
                         (A.g, (C[0, 1],)), (A.g_prime, (C[0, 1],))):
            value = fn(static, *args)
            assert np.isfinite(value) and value == fn(code, *args)
        A.check_code(static)


def _fresh_process_output(script, cache_dir):
    """What ``script`` prints, split into words, run in a new Python with an empty numba cache
    (``cache_dir``): what it compiles is then what it needs, nothing loaded from earlier runs."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True).stdout.split()


def test_compile_time_code_compiles_only_that_activation(tmp_path):
    """A kernel compiled for erf's ActivationCode does not compile the ReLU I4 (the first run's
    main cost, issue 27); an integer code does (positive control). Fresh process and cache."""
    script = (
        "from odeprune import activations as A\n"
        "args = (1.0, 0.1, 0.2, 0.3, 1.0, 0.1, 0.2, 1.0, 0.3, 1.0)\n"
        "A.I4(A.activation_code(A.ERF), *args)\n"
        "print(len(A.relu_I4.signatures), len(A.erf_I4.signatures))\n"
        "A.I4(A.ERF, *args)\n"
        "print(len(A.relu_I4.signatures))\n")
    out = _fresh_process_output(script, tmp_path)
    assert out == ["0", "1", "1"]


def test_erf_run_compiles_only_what_it_needs(tmp_path):
    """A default erf ``integrate`` (explicit and implicit phases) compiles none of the ReLU
    kernels: the ReLU whole-bracket sum is chosen when compiling, not by a run-time test (a
    folded ``p.act == RELU`` branch still compiled it: 6 s of a first run, issue 27). Nor, for
    the default M=2/K=6 state (39 entries), the structured Jacobian: its BDF differences the
    right-hand side (``jacobian.FD_JACOBIAN_MAX_N``; the structured one cost 7 s of a first
    run). Positive controls: the ReLU bracket and the structured Jacobian compiled directly show
    up in the same counts. Fresh process and numba cache."""
    script = (
        "import numpy as np\n"
        "import odeprune\n"
        "from odeprune import activations as A\n"
        "from odeprune.ode import jacobian as J\n"
        "s = odeprune.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)\n"
        "c = odeprune.integrate(s, eta=0.5, alpha_max=300)\n"
        "assert c.metadata['njev'] > 0, 'the implicit phase did not run'\n"
        "kernels = (A.relu_s4_sums, A.relu_I4, A.relu_I4_merged, J.jacobian_exact,\n"
        "           J.erf_s4_gradient)\n"
        "print(*[len(k.signatures) for k in kernels])\n"
        "A.relu_s4_sums(np.eye(6), np.ones(6), 4, np.zeros((4, 4)))\n"
        "A.I4(A.RELU, 1.0, 0.1, 0.2, 0.3, 1.0, 0.1, 0.2, 1.0, 0.3, 1.0)\n"
        "from odeprune.ode.drivers import jacobian_columns\n"
        "from odeprune.ode.rhs import make_params, make_work, pack\n"
        "p = make_params(6, 2, s.T, s.v_star, 0.5, 0.5, 0.0)\n"
        "y = pack(s.Q, s.R, s.v)\n"
        "J.jacobian_into(y, p, make_work(6, 2), make_work(6, 2), jacobian_columns(p),\n"
        "                np.empty((y.size, y.size)))\n"
        "print(*[min(len(k.signatures), 1) for k in kernels])\n")
    out = _fresh_process_output(script, tmp_path)
    assert out == ["0"] * 5 + ["1"] * 5
