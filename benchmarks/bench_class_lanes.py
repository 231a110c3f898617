"""Issue 27, item 4: would laying the classes side by side speed up a masked evaluation?

The class loop of a masked right-hand side (``odeprune.ode.rhs._assemble_classes``) builds each
class's covariance, its ``S3`` products and its derivatives one class after another; every loop
inside is 1-8 iterations long (classes of 1-6 kept units at K=6). This script measures two
layouts that put classes of one size side by side, the class index innermost, so that one
instruction could serve several classes (SIMD across classes):

- ``lanes4``: classes of one size four at a time (a group padded with copies of its last class,
  whose stores repeat the same values), four accumulators written out per product;
- ``groups``: all classes of one size at once, the class loop innermost (its length known only
  at run time).

Both are bit for bit the current class loop (each class's sums in the same order; checked here).
Printed: microseconds per class loop (with ``dv``, its ``I2`` sums; without the ``I3``
coefficients and the ``I4`` sum, which it reads) in a compiled loop, M=2, K=6, 8, 10 (64, 256,
1024 classes), c=0.5, the paper state; ``--parts`` adds the pieces of ``lanes4`` (its setup,
then the covariances and coefficients, the ``S3`` products, the derivatives: each measured by
stopping the loop after it).

    python benchmarks/bench_class_lanes.py [--repeats 7] [--parts]

numba runs LLVM's loop vectorizer but not, by default, its SLP vectorizer
(``NUMBA_SLP_VECTORIZE=0``), which is what would turn the four accumulators into one vector
operation; the script prints the setting. ``NUMBA_SLP_VECTORIZE=1 NUMBA_CACHE_DIR=<new dir>``
measures the same with it.
"""

from __future__ import annotations

import argparse
import warnings

import numba
import numpy as np
from bench_masked import _times, cpu  # benchmarks/bench_masked.py, beside this script
from numba import njit

from odeprune import OrderParams
from odeprune.ode.rhs import (
    _assemble_classes,
    dv_into,
    make_params,
    make_work,
    pack_classes,
    rhs_into,
)
from odeprune.sparse import SparseOrderParams

W = 4  # lanes per block of lanes4


def lane_rows(nk):
    """``(n_blocks, 1 + W)``: the size and the W classes of each block (equal sizes, the last
    class of a size repeated to fill its last block; classes with no kept unit left out)."""
    rows = []
    for k in range(1, int(nk.max()) + 1):
        cl = np.flatnonzero(nk == k)
        if cl.size:
            cl = np.concatenate([cl, np.full((-cl.size) % W, cl[-1])])
            rows += [[k, *cl[j:j + W]] for j in range(0, cl.size, W)]
    return np.array(rows, dtype=np.int64)


def group_rows(nk):
    """``[k, G, G classes, k', G', ...]``: all classes of each size."""
    out = []
    for k in range(1, int(nk.max()) + 1):
        cl = np.flatnonzero(nk == k)
        if cl.size:
            out += [k, cl.size, *cl]
    return np.array(out, dtype=np.int64)


@njit(cache=True, error_model="numpy", inline="always")
def _mirror(y, o, q, Cs, b1, b2, G):
    """Entry ``q`` of each of ``G`` classes (state offsets ``o``) into ``Cs`` at ``b1`` and at
    its mirror ``b2``."""
    for lane in range(G):
        v = y[o[lane] + q]
        Cs[b1 + lane] = v
        Cs[b2 + lane] = v


@njit(cache=True, error_model="numpy", inline="always")
def _lane_setup(p, cls, nk, G, o, uu, sf):
    """Offsets, kept units and ``eta^2 f_s`` of ``G`` classes of ``nk`` kept units."""
    for lane in range(G):
        s = cls[lane]
        o[lane] = p.off[s]
        sf[lane] = p.eta * p.eta * p.f[s]
        for x in range(nk):
            uu[G * x + lane] = p.units[s, x]


@njit(cache=True, error_model="numpy", inline="always")
def _lane_fields(y, p, U, bv, cls, nk, G, o, uu, Cs, Uc, bc):
    """Each class's covariance over its fields (``Cs`` (Ls, Ls, G)) and its ``U``, ``b`` on them
    (``Uc`` (nk, Ls, G), ``bc`` (nk, G)), the lane index innermost: the gathers of
    ``rhs._assemble_classes``, ``G`` classes side by side."""
    K, M = p.K, p.M
    Ls = nk + M
    q = 0
    for x in range(nk):
        for z in range(x, nk):
            _mirror(y, o, q, Cs, G * (x * Ls + z), G * (z * Ls + x), G)
            q += 1
    for x in range(nk):
        for n in range(M):
            _mirror(y, o, q, Cs, G * (x * Ls + nk + n), G * ((nk + n) * Ls + x), G)
            q += 1
    for n in range(M):
        for m in range(M):
            b1 = G * ((nk + n) * Ls + nk + m)
            for lane in range(G):
                Cs[b1 + lane] = p.T_cls[cls[lane], n, m]
    for x in range(nk):
        for z in range(nk):
            b1 = G * (x * Ls + z)
            for lane in range(G):
                Uc[b1 + lane] = U[uu[G * x + lane], uu[G * z + lane]]
        for n in range(M):
            b1 = G * (x * Ls + nk + n)
            for lane in range(G):
                Uc[b1 + lane] = U[uu[G * x + lane], K + n]
        for lane in range(G):
            bc[G * x + lane] = bv[uu[G * x + lane]]


@njit(cache=True, error_model="numpy")
def lanes4(y, dy, p, w, rows, stop):
    """The class loop, classes four at a time (flat scratch, lane index innermost); ``stop``
    1-3 ends each block after its setup, its covariances and coefficients, its products."""
    K, M = p.K, p.M
    L = K + M
    Cs, Uc, bc, S3 = np.empty(L * L * W), np.empty(K * L * W), np.empty(K * W), np.empty(K * L * W)
    o, uu, sf = np.empty(W, dtype=np.int64), np.empty(K * W, dtype=np.int64), np.empty(W)
    for r in range(rows.shape[0]):
        nk = rows[r, 0]
        cls = rows[r, 1:]
        Ls = nk + M
        _lane_setup(p, cls, nk, W, o, uu, sf)
        if stop == 1:
            continue
        _lane_fields(y, p, w.U, w.b, cls, nk, W, o, uu, Cs, Uc, bc)
        if stop == 2:
            continue
        for x in range(nk):
            for col in range(Ls):
                t0 = t1 = t2 = t3 = 0.0
                for c in range(Ls):
                    j, h = W * (x * Ls + c), W * (col * Ls + c)
                    t0 += Uc[j] * Cs[h]
                    t1 += Uc[j + 1] * Cs[h + 1]
                    t2 += Uc[j + 2] * Cs[h + 2]
                    t3 += Uc[j + 3] * Cs[h + 3]
                h, j = W * (col * Ls + x), W * (x * Ls + col)
                S3[j] = t0 + bc[W * x] * Cs[h]
                S3[j + 1] = t1 + bc[W * x + 1] * Cs[h + 1]
                S3[j + 2] = t2 + bc[W * x + 2] * Cs[h + 2]
                S3[j + 3] = t3 + bc[W * x + 3] * Cs[h + 3]
        if stop == 3:
            continue
        _lane_derivatives(dy, p, w.a, w.S4, Cs, S3, uu, o, sf, nk, Ls, W)
    dv_into(dy, p.off[p.n_cls], p, w.C, w.a)


@njit(cache=True, error_model="numpy", inline="always")
def _lane_derivatives(dy, p, a, S4, Cs, S3, uu, o, sf, nk, Ls, G):
    """``dQ^s``, ``dR^s`` of ``G`` classes side by side (the arithmetic of
    ``rhs._class_derivatives``, term for term)."""
    eta, decay, M = p.eta, p.decay, p.M
    q = 0
    for x in range(nk):
        for z in range(x, nk):
            for lane in range(G):
                i, k = uu[G * x + lane], uu[G * z + lane]
                ai = -eta * a[i]
                d = (ai * S3[G * (x * Ls + z) + lane] - eta * a[k] * S3[G * (z * Ls + x) + lane]
                     - 2.0 * decay * Cs[G * (x * Ls + z) + lane])
                if p.sgd:
                    d += sf[lane] * a[i] * a[k] * S4[i, k]
                dy[o[lane] + q] = d
            q += 1
    for x in range(nk):
        for n in range(M):
            for lane in range(G):
                ai = -eta * a[uu[G * x + lane]]
                j = G * (x * Ls + nk + n) + lane
                dy[o[lane] + q] = ai * S3[j] - decay * Cs[j]
            q += 1


@njit(cache=True, error_model="numpy")
def groups(y, dy, p, w, gt):
    """The class loop, all classes of one size at once, the class loop innermost."""
    K, M = p.K, p.M
    L, S = K + M, p.n_cls
    Cs, Uc, bc, S3 = np.empty(L * L * S), np.empty(K * L * S), np.empty(K * S), np.empty(K * L * S)
    acc, sf = np.empty(S), np.empty(S)
    o, uu = np.empty(S, dtype=np.int64), np.empty(K * S, dtype=np.int64)
    r = 0
    while r < gt.shape[0]:
        nk, G = gt[r], gt[r + 1]
        cls = gt[r + 2:r + 2 + G]
        r += 2 + G
        Ls = nk + M
        _lane_setup(p, cls, nk, G, o, uu, sf)
        _lane_fields(y, p, w.U, w.b, cls, nk, G, o, uu, Cs, Uc, bc)
        for x in range(nk):
            for col in range(Ls):
                for lane in range(G):
                    acc[lane] = 0.0
                for c in range(Ls):
                    j, h = G * (x * Ls + c), G * (col * Ls + c)
                    for lane in range(G):
                        acc[lane] += Uc[j + lane] * Cs[h + lane]
                h, j = G * (col * Ls + x), G * (x * Ls + col)
                for lane in range(G):
                    S3[j + lane] = acc[lane] + bc[G * x + lane] * Cs[h + lane]
        _lane_derivatives(dy, p, w.a, w.S4, Cs, S3, uu, o, sf, nk, Ls, G)
    dv_into(dy, p.off[p.n_cls], p, w.C, w.a)


def per_call(fn, args, n, repeats):
    """CPU seconds of one ``fn(*args)`` in bench_masked's compiled timing loop, min of repeats."""
    _times(fn, 1, args)
    return cpu(lambda: _times(fn, n, args), repeats)[0] / n


def main(repeats: int, parts: bool) -> None:
    warnings.simplefilter("ignore")
    print(f"numba {numba.__version__}, SLP vectorizer "
          f"{'on' if numba.config.SLP_VECTORIZE else 'off'} (NUMBA_SLP_VECTORIZE), loop "
          f"vectorizer {'on' if numba.config.LOOP_VECTORIZE else 'off'}")
    print(f"M=2, c=0.5, the paper state: us of CPU per class loop in a compiled loop, "
          f"min of {repeats}")
    print("| K | classes | current | lanes4 | groups | bit for bit |\n"
          "| ---: | ---: | ---: | ---: | ---: | --- |")
    for K, n in ((6, 20000), (8, 2000), (10, 300)):
        s = OrderParams.random(500, K, 2, v_star=4.0, seed=0)
        sp = SparseOrderParams.random_mask(s, 0.5)
        y = pack_classes(sp.patterns, sp.Q, sp.R, sp.v)
        p = make_params(K, 2, sp.T.sum(0), sp.v_star, 0.5, 0.5, patterns=sp.patterns, f=sp.f,
                        T_cls=sp.T)
        w, rows, gt = make_work(K, 2), lane_rows(p.nk), group_rows(p.nk)
        ref, d = np.empty_like(y), np.empty_like(y)
        rhs_into(y, ref, p, w)  # w now holds this state's sums
        t, same = [], True
        for fn, extra in ((_assemble_classes, ()), (lanes4, (rows, 0)), (groups, (gt,))):
            d[:] = np.nan
            fn(y, d, p, w, *extra)
            same = same and np.array_equal(d.view(np.int64), ref.view(np.int64))
            t.append(per_call(fn, (y, d, p, w, *extra), n, repeats))
        print(f"| {K} | {p.n_cls} | {1e6 * t[0]:.2f} | {1e6 * t[1]:.2f} | {1e6 * t[2]:.2f} | "
              f"{'yes' if same else 'NO'} |")
        if parts and K == 6:
            cum = [per_call(lanes4, (y, d, p, w, rows, stop), n, repeats) for stop in (1, 2, 3, 0)]
            names = ("setup and dv", "covariances and coefficients", "S3 products",
                     "derivatives")
            print("lanes4 at K=6 by piece (us): " + ", ".join(
                f"{nm} {1e6 * (c - (cum[i - 1] if i else 0.0)):.2f}"
                for i, (nm, c) in enumerate(zip(names, cum))))

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--parts", action="store_true", help="lanes4's pieces at K=6")
    a = ap.parse_args()
    main(a.repeats, a.parts)
