import re

import numpy as np
import pytest
from conftest import psd_states
from hypothesis import example, given
from hypothesis import strategies as st

import odeprune
from odeprune import OrderParams


def test_specialised_ansatz_has_zero_error():
    for M, Z in [(1, 1), (2, 3), (5, 4)]:
        s = OrderParams.specialised(M, Z, v_star=4.0)
        assert s.K == M * Z
        assert s.eg() == pytest.approx(0.0, abs=1e-14)
        np.testing.assert_allclose(s.v.reshape(M, Z).sum(axis=1), 4.0)


def test_random_matches_from_weights_and_is_seeded():
    a = OrderParams.random(200, 6, 2, v_star=4.0, seed=3)
    b = OrderParams.random(200, 6, 2, v_star=4.0, seed=3)
    c = OrderParams.random(200, 6, 2, v_star=4.0, seed=4)
    assert a == b and not a == c
    w, w_star, v, v_star = OrderParams.draw_weights(200, 6, 2, 4.0, seed=3)
    assert OrderParams.from_weights(w, w_star, v, v_star) == a
    np.testing.assert_array_equal(a.v_star, [4.0, 4.0])
    # Q ~ identity at large N (entries N(0,1) -> Q_ii ~ 1 +- sqrt(2/N))
    assert np.all(np.abs(np.diag(a.Q) - 1) < 6 * np.sqrt(2 / 200))


def test_eg_formula_matches_paper_eq5_to_8():
    s = OrderParams.random(300, 4, 3, v_star=[1.0, 2.0, -1.5], seed=1)
    Q, R, T, v, vs = s.Q, s.R, s.T, s.v, s.v_star
    dq = np.sqrt(1 + np.diag(Q))
    dt = np.sqrt(1 + np.diag(T))
    f1 = (v[:, None] * v[None, :] * np.arcsin(Q / np.outer(dq, dq))).sum() / np.pi
    f2 = (vs[:, None] * vs[None, :] * np.arcsin(T / np.outer(dt, dt))).sum() / np.pi
    f3 = 2 * (v[:, None] * vs[None, :] * np.arcsin(R / np.outer(dq, dt))).sum() / np.pi
    assert s.eg() == pytest.approx(f1 + f2 - f3, rel=1e-13)


def test_eg_matches_monte_carlo_of_networks():
    rng = np.random.default_rng(0)
    w, w_star, v, v_star = OrderParams.draw_weights(100, 3, 2, 2.0, seed=rng)
    s = OrderParams.from_weights(w, w_star, v, v_star)
    from scipy.special import erf

    x = rng.standard_normal((400_000, 100))
    phi = erf(x @ w.T / np.sqrt(100) / np.sqrt(2)) @ v
    y = erf(x @ w_star.T / np.sqrt(100) / np.sqrt(2)) @ v_star
    err = 0.5 * (phi - y) ** 2
    assert abs(err.mean() - s.eg()) < 5 * err.std() / np.sqrt(err.size)


def test_immutable():
    s = OrderParams.specialised(2, 2, 1.0)
    with pytest.raises(ValueError, match="read-only"):
        s.Q[0, 0] = 3.0
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        s.Q = np.eye(4)


def test_save_load_roundtrip(tmp_path):
    s = OrderParams.random(50, 3, 2, v_star=1.5, seed=0)
    path = s.save(tmp_path / "state.npz")
    assert OrderParams.load(path) == s
    with np.load(path) as data:
        assert set(data.files) == {"Q", "R", "T", "v", "v_star", "metadata"}
    assert odeprune.load(path) == s
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary left behind


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(Q=np.ones((2, 3))), r"Q must have shape \(3, 3\)"),
        (dict(v=np.ones((3, 1))), "v must have 1 dimension"),
        (dict(R=np.full((3, 2), np.nan)), "R contains a non-finite value"),
        (dict(Q=np.array([[1.0, 0.5, 0], [0.4, 1, 0], [0, 0, 1]])), "Q must be symmetric"),
        (dict(Q=np.array([[1.0, 2.0, 0], [2.0, 1, 0], [0, 0, 1]])),
         r"\|Q\[0,1\]\|=2 exceeds sqrt\(Q\[0,0\] Q\[1,1\]\)=1"),
        (dict(Q=np.array([[1.0, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]])),
         "not positive semi-definite: smallest eigenvalue -8.000e-01"),
        (dict(Q=-np.eye(3)), r"Q\[0,0\]=-1.0 is negative"),
        (dict(R=np.full((3, 2), 5.0)), r"\|R\[0,0\]\|=5 exceeds sqrt\(Q\[0,0\] T\[0,0\]\)"),
        (dict(v_star=[]), "at least one entry"),
    ],
)
def test_invalid_states(change, match):
    base = dict(Q=np.eye(3), R=np.zeros((3, 2)), T=np.eye(2), v=np.ones(3), v_star=np.ones(2))
    base.update(change)
    with pytest.raises(ValueError, match=match):
        OrderParams(**base)


def test_bad_sizes():
    with pytest.raises(ValueError, match="N=0 must be a positive integer"):
        OrderParams.random(0, 2, 1)
    with pytest.raises(ValueError, match="K=2.5 must be a positive integer"):
        OrderParams.random(10, 2.5, 1)
    with pytest.raises(ValueError, match=r"v_star must be a scalar or have shape \(2,\)"):
        OrderParams.random(10, 2, 2, v_star=[1, 2, 3])


def test_rounding_negative_norms_are_zero_larger_ones_refused():
    """A diagonal negative only by rounding (within the PSD tolerance, as an integration of a
    state of norm 1e-117 leaves it) is a zero norm; beyond the tolerance it is refused."""
    tiny = 1.2e-117
    s = OrderParams(Q=[[-1.5e-111]], R=[[tiny]], T=[[tiny]], v=[3.0], v_star=[0.0])
    assert s.Q[0, 0] == 0.0 and s.eg() == pytest.approx(0.0, abs=1e-200)
    with pytest.raises(ValueError, match=r"Q\[0,0\]=-1e-06 is negative"):
        OrderParams(Q=[[-1e-6]], R=[[0.0]], T=[[1.0]], v=[1.0], v_star=[1.0])


# ------------------------------------------------------------------ random states
# (moved from test_hostile.py)


@given(psd_states())
def test_valid_states_have_nonnegative_error_and_symmetric_Q(s):
    assert np.array_equal(s.Q, s.Q.T)
    assert s.eg() >= -1e-12 * max(1.0, float(np.sum(np.abs(s.v)) + np.sum(np.abs(s.v_star))) ** 2)
    assert np.isfinite(s.eg())


_FIELD = re.compile(r"([QRT])\[(\d+),(\d+)\]")


def _entry(C, K, name):
    """The covariance index pair of ``Q[i,k]`` / ``R[i,n]`` / ``T[n,m]`` in ``[[Q,R],[R^T,T]]``."""
    m = _FIELD.fullmatch(name)
    assert m, name
    which, i, k = m.group(1), int(m.group(2)), int(m.group(3))
    return {"Q": (i, k), "R": (i, K + k), "T": (K + i, K + k)}[which]


@given(psd_states(), st.floats(-3, 3), st.integers(0, 30))
@example(OrderParams(Q=[[1, 0.6, -0.6], [0.6, 1, 0], [-0.6, 0, 1]], R=np.zeros((3, 1)),
                     T=[[1.0]], v=np.ones(3), v_star=[1.0]), 0.9, 5)  # pairs fine, not PSD
def test_corrupted_states_raise_value_error_not_nan(s, shift, idx):
    """Perturb one entry of Q: either still a valid state, or the ValueError that names what is
    wrong (a negative norm, an overlap above the product of the norms, or the smallest
    eigenvalue of the covariance) -- never NaN. Which one is decided here independently."""
    from odeprune.state import PSD_RTOL

    Q = np.array(s.Q)
    i, k = divmod(idx % (s.K * s.K), s.K)
    Q[i, k] += shift
    Q[k, i] = Q[i, k]
    C = np.block([[Q, s.R], [s.R.T, s.T]])
    scale = max(1.0, float(np.max(np.abs(C))))
    tol = PSD_RTOL * scale
    d = np.diag(C)
    lam_min = float(np.linalg.eigvalsh(C)[0])
    try:
        t = s.replace(Q=Q)
    except ValueError as exc:
        msg = str(exc)
        neg = re.fullmatch(r"Q\[(\d+),\1\]=(\S+) is negative; a squared norm must be >= 0", msg)
        corr = re.fullmatch(r"\|(\S+)\|=(\S+) exceeds sqrt\((\S+) (\S+)\)=(\S+): an overlap "
                            r"cannot exceed the product of the norms \(the covariance "
                            r"\[\[Q, R\], \[R\^T, T\]\] must be positive semi-definite\)", msg)
        psd = re.fullmatch(r"covariance \[\[Q, R\], \[R\^T, T\]\] is not positive semi-definite: "
                           r"smallest eigenvalue (\S+) \(allowed down to (\S+)\); check .*", msg)
        if neg:  # the one changed diagonal entry, below the rounding tolerance
            j = int(neg.group(1))
            assert i == k == j and Q[j, j] < -tol and float(neg.group(2)) == Q[j, j], msg
        elif corr:  # the named overlap exceeds the product of the named norms
            a, b = _entry(C, s.K, corr.group(1))
            assert _entry(C, s.K, corr.group(3)) == (a, a), msg
            assert _entry(C, s.K, corr.group(4)) == (b, b), msg
            assert np.all(d >= -tol), msg  # a negative norm is reported first
            assert abs(C[a, b]) > np.sqrt(max(d[a], 0) * max(d[b], 0)) * (1 + PSD_RTOL), msg
            assert float(corr.group(2)) == pytest.approx(abs(C[a, b]), rel=1e-5)
        elif psd:  # the smallest eigenvalue, below the allowed floor
            assert float(psd.group(1)) == pytest.approx(lam_min, rel=2e-3, abs=1e-300), msg
            assert float(psd.group(2)) == pytest.approx(-tol, rel=0.1), msg
            assert lam_min < -tol
        else:
            pytest.fail(f"unexpected message for a corrupted Q: {msg}")
        return
    # accepted: no norm below the tolerance, and the covariance PSD within it
    assert np.all(d >= -tol) and lam_min >= -tol * (1 + 1e-6)
    assert np.isfinite(t.eg()) and t.eg() >= -1e-9 * scale


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entries(bad):
    s = OrderParams.specialised(2, 2, 1.0)
    v = np.array(s.v)
    v[1] = bad
    with pytest.raises(ValueError, match="v contains a non-finite value"):
        s.replace(v=v)


def test_activation_is_part_of_the_state(tmp_path):
    s = OrderParams.random(100, 4, 2, v_star=2.0, seed=1)
    lin = s.replace(activation="linear")
    assert s.activation == "erf" and lin.activation == "linear"
    assert lin != s and "activation='linear'" in repr(lin)
    assert lin.replace(v=lin.v).activation == "linear"
    assert OrderParams.random(100, 4, 2, 2.0, seed=1, activation="linear") == lin
    assert OrderParams.specialised(2, 2, activation="linear").activation == "linear"
    w, w_star, v, v_star = OrderParams.draw_weights(100, 4, 2, 2.0, seed=1)
    assert OrderParams.from_weights(w, w_star, v, v_star, activation="linear") == lin
    # the error is the network's own; an explicit other activation is refused
    C, a = lin.covariance(), lin.signed_weights()
    np.testing.assert_allclose(lin.eg(), 0.5 * a @ C @ a, rtol=1e-12)  # linear: I2 = C
    np.testing.assert_allclose(lin.eg("linear"), lin.eg(), rtol=0)
    with pytest.raises(ValueError, match="activation='erf' conflicts with the state's "
                                         "activation 'linear'"):
        lin.eg("erf")
    with pytest.raises(ValueError, match="activation='tanh' is unknown"):
        s.replace(activation="tanh")
    assert OrderParams.load(lin.save(tmp_path / "lin.npz")) == lin
