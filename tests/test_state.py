import numpy as np
import pytest

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
