"""The implicit steps of a network of classes (odeprune.ode.blocks): the Jacobian as
block-diagonal plus low rank against central differences, the Woodbury solve against a dense
solve, the compiled BDF with it against a tight explicit reference and against the dense LU,
no n x n array at 256 classes, and when "auto" switches (exact resume: test_integrate_stiff)."""

from __future__ import annotations

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.ode.blocks import blocks_factor, blocks_jacobian, blocks_solve, new_blocks
from odeprune.ode.drivers import AutoDriver
from odeprune.ode.explicit import CHUNK, Control
from odeprune.ode.rhs import make_params, make_work, pack_classes, rhs_eval
from odeprune.sparse import SparseOrderParams


def _masked(K=6, c=0.5, track_P=False, gamma=0.0):
    s = OrderParams.random(500, K, 2, v_star=4.0, seed=0)
    sp = SparseOrderParams.random_mask(s, c)
    P = sp.Q.copy() if track_P else None
    y = pack_classes(sp.patterns, sp.Q, sp.R, sp.v, P)
    p = make_params(K, 2, sp.T.sum(0), sp.v_star, 0.5, 0.5, patterns=sp.patterns, f=sp.f,
                    T_cls=sp.T, track_P=track_P, R0_cls=sp.R if track_P else None,
                    weight_decay=gamma)
    return sp, p, y


def _assembled(b, p, n):
    """``D + U S^T`` as a dense matrix."""
    A = np.zeros((n, n))
    off = p.off
    for t in range(p.n_cls):
        nt = off[t + 1] - off[t]
        A[off[t]:off[t + 1], off[t]:off[t + 1]] = b.Dk[b.boff[t]:b.boff[t] + nt * nt].reshape(
            nt, nt)
    for j in range(n):
        if b.gidx[j] >= 0:
            A[:, j] += b.UT[b.gidx[j]]
    return A


def _central(p, y):
    n = y.size
    J = np.empty((n, n))
    for j in range(n):
        h = 1e-6 * max(abs(y[j]), 1e-3)
        yp, ym = y.copy(), y.copy()
        yp[j] += h
        ym[j] -= h
        J[:, j] = (rhs_eval(yp, p) - rhs_eval(ym, p)) / (2 * h)
    return J


@pytest.mark.parametrize("track_P,gamma", [(False, 0.0), (True, 0.0), (False, 1e-3)])
def test_block_jacobian_against_central_differences(track_P, gamma):
    """``D + U S^T`` is the Jacobian: the entries between classes (``U S^T`` alone) to the
    rounding of forward differences (``eps |f| / h``: measured 2e-7 of the largest entry), the
    class blocks to 1e-4 of it (their columns move every class at once, so the global part of
    the response, ``U S^T delta``, is subtracted from each: measured 1.6e-5; plain forward
    differences: 1.3e-6 from the same central ones). A positive control: the blocks without
    the second column of each global entry (``U`` on the first entry's own class taken from
    its own column) are off by the block's own derivative."""
    sp, p, y = _masked(track_P=track_P, gamma=gamma)
    n = y.size
    b = new_blocks(sp.patterns, 6, 2, track_P, p.off)
    assert b.UT.shape == (21 + 12 + 6, n) and p.n_cls == 64
    blocks_jacobian(y, p, make_work(6, 2), b)
    A, Jc = _assembled(b, p, n), _central(p, y)
    scale = np.abs(Jc).max()
    same = b.cls[:, None] == b.cls[None, :]
    blk = same & (b.cls[:, None] >= 0)
    assert np.abs(A - Jc)[~blk].max() < 1e-6 * scale
    assert np.abs(A - Jc)[blk].max() < 1e-4 * scale
    # positive control: U on the first entry's class from its own column
    bad = b._replace(second=np.full_like(b.second, -1), UT=b.UT.copy(), Dk=b.Dk.copy())
    blocks_jacobian(y, p, make_work(6, 2), bad)
    assert np.abs(_assembled(bad, p, n) - Jc)[blk].max() > 1e-2 * scale


def test_woodbury_solve_against_a_dense_solve():
    sp, p, y = _masked()
    n = y.size
    b = new_blocks(sp.patterns, 6, 2, False, p.off)
    blocks_jacobian(y, p, make_work(6, 2), b)
    A = _assembled(b, p, n)
    rng = np.random.default_rng(1)
    for c in (1e-3, 0.7, 30.0):
        blocks_factor(b, p, c)
        Mx = np.eye(n) - c * A
        r = rng.standard_normal(n)
        x = r.copy()
        blocks_solve(b, p, x, np.empty(b.UT.shape[0]))
        ref = np.linalg.solve(Mx, r)
        cond = np.linalg.cond(Mx)
        assert np.abs(x - ref).max() <= 50 * np.finfo(float).eps * cond * np.abs(ref).max()
        assert np.abs(Mx @ x - r).max() < 1e-12 * np.abs(Mx).max() * np.abs(x).max()


def _driver(blocks, K=6, alpha=1e3, method="bdf"):
    sp, p, y = _masked(K=K)
    t = np.array([0.0, 10.0, 100.0, alpha])
    Y = np.zeros((t.size, y.size))
    drv = AutoDriver(method, p, y, rhs_eval(y, p), 0.0, t, Y,
                     Control(1e-7, 1e-10, 0.0, 1, 1e-9), blocks=blocks)
    return drv, Y


def test_bdf_with_blocks_matches_the_dense_lu_and_a_tight_reference():
    """The same BDF with the Woodbury solve and with a dense LU of the whole state (n = 822):
    both within the method's tolerance of a tight explicit reference, and of each other."""
    out = {}
    for blocks in (True, False):
        drv, Y = _driver(blocks)
        assert (drv.blk is not None) == blocks
        while drv.advance(100) == CHUNK:
            pass
        out[blocks] = (Y, drv.counts())
    sp = _masked()[0]
    ref = odeprune.integrate(sp, 0.5, 1e3, save_at=[0.0, 10.0, 100.0, 1e3], method="dopri5",
                             rtol=1e-11, atol=1e-14)
    yref = np.array([pack_classes(sp.patterns, ref.Q_cls[j], ref.R_cls[j], ref.v[j])
                     for j in range(4)])
    for Y, counts in out.values():
        assert counts["nlu"] > 10
        # BDF at rtol=1e-7 (global error ~10x the local tolerance, drivers.AUTO_BDF_TOL)
        np.testing.assert_allclose(Y, yref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-5, atol=1e-8)


def test_4096_classes_run_at_the_defaults():
    """K=12 at c=0.5 (4 096 classes, n = 141 324): the default method used to allocate its
    implicit phase's dense Jacobian and LU up front and failed at once (MemoryError, 149 GiB)."""
    s = OrderParams.random(500, 12, 2, v_star=4.0, seed=0)
    c = odeprune.integrate(SparseOrderParams.random_mask(s, 0.5), 0.5, 0.5, save_at=[0.5])
    assert c.metadata["status"] == "success" and np.isfinite(c.eg).all()


def test_256_classes_hold_no_dense_matrix():
    """K=8 at c=0.5: 256 classes, n = 4 872. A dense Jacobian and LU would be 2 x 190 MB and
    an LU ~30 s; the blocks hold m = 60 columns."""
    drv, _ = _driver(None, K=8, method="auto")
    assert drv.blk is not None and drv.bdf.J.size == 0 and drv.bdf.LU.size == 0
    assert drv.blk.UT.shape == (36 + 16 + 8, 4872)
    dense, _ = _driver(None, K=6, method="auto")
    assert dense.blk is not None


def test_auto_goes_implicit_on_classes_only_when_that_costs_less():
    """``blocks.implicit_cost``: at 1024 classes (K=10) a solve costs ~7 evaluations and a
    factorisation ~90, so to alpha=1e3 ``auto`` stays explicit (bit for bit dopri5); at 64
    classes it switches (the implicit phase then cost 31 ms against 47 ms explicit)."""
    from odeprune.ode.blocks import implicit_cost

    s = OrderParams.random(500, 10, 2, v_star=4.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    auto = odeprune.integrate(sp, 0.5, 1e3, save_at=[1e3])
    dp = odeprune.integrate(sp, 0.5, 1e3, save_at=[1e3], method="dopri5")
    assert auto.metadata["final_phase"] == "explicit"
    np.testing.assert_array_equal(auto.eg, dp.eg)
    costs = []
    for K in (6, 8, 10):
        drv, _ = _driver(None, K=K, method="auto")
        costs.append(implicit_cost(drv.blk))
        assert drv.min_remaining_steps == int(np.ceil(costs[-1] / 6))
    assert costs[0] < costs[1] < costs[2]


def test_implicit_methods_refuse_what_memory_cannot_hold(monkeypatch):
    """Before any step: scipy's Radau factorises the whole state (4 n^2 numbers: 21.6 MB at
    n = 822) and is refused in one line where that does not fit; ``auto``/``bdf`` hold the
    blocks (2 n m + 2 sum n_s^2: 0.7 MB) and run."""
    import odeprune._validate as v

    sp = _masked()[0]
    monkeypatch.setattr(v, "available_memory", lambda: 2e6)
    with pytest.raises(ValueError, match=r"method='radau' on a state of 822 entries needs about"
                                         r".*use method='auto' or 'bdf'"):
        odeprune.integrate(sp, 0.5, 10.0, method="radau")
    c = odeprune.integrate(sp, 0.5, 10.0, method="bdf")
    assert c.metadata["status"] == "success"
