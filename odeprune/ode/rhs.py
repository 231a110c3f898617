r"""The right-hand side of the order-parameter ODEs, for dense and masked networks, compiled.

One right-hand side serves every network (``docs/theory.md`` §4, §8, §9): the input coordinates
are split into **classes** by the mask pattern of the first layer (a dense network is one class
with every unit kept and fraction ``f = 1``). Per class ``s`` the state holds the partial overlaps
``Q^s`` (upper triangle, row-major, ``i <= k``), ``R^s`` (K*M, row-major) and, when the two-time
overlaps are tracked, ``P^s`` (K*K, row-major, ``P^s_ik = w_i(alpha) . w_k(0) / N`` over the
class's coordinates); the second layer ``v`` (K) comes last. The network's ``Q, R`` are the class
sums. Symmetry of each ``Q^s`` holds by construction.

.. math::

    \dot Q^s_{ik} &= m^s_i m^s_k\Big[-\eta v_i S^s_3[i, \lambda^s_k] - \eta v_k S^s_3[k, \lambda^s_i]
                   + \eta^2 f_s v_i v_k \Big(\sum_{c,d} a_c a_d I_4(i,k,c,d)
                   + \sigma^2 J_2(i,k)\Big)\Big] \\
    \dot R^s_{in} &= -m^s_i\, \eta v_i S^s_3[i, \nu^s_n], \qquad
    \dot P^s_{ik} = -m^s_i\, \eta v_i S^s_3[i, \lambda^{0,s}_k] \\
    \dot v_i &= -\eta_v \sum_c a_c I_2(i,c)

(weight decay ``gamma`` adds ``-2 eta gamma Q^s``, ``-eta gamma R^s``, ``-eta gamma P^s``:
``docs/theory.md`` §11)

with ``a = (v, -v_star)``, ``I2, I4, J2`` on the global covariance, and
``S_3[i, y] = sum_c a_c E[g'(z_i) y g(z_c)]``. ``I3(a, b, c)`` is linear in ``(C_ab, C_bc)``
(``docs/theory.md`` §3), so ``E[g'(z_i) y g(z_c)] = A_ic Cov(z_c, y) + B_ic Cov(z_i, y)`` for any
``y`` jointly Gaussian with the fields; with ``U_ic = a_c A_ic`` and ``b_i = sum_c a_c B_ic``:

.. math:: S_3[i, y] = \sum_c U_{ic}\,\mathrm{Cov}(z_c, y) + b_i\,\mathrm{Cov}(z_i, y).

``U`` and ``b`` are computed once per evaluation (2 K L closed-form coefficients); each class
then costs ``O(K L^2)``; the global ``I4`` sum (``i <= k``, ``c <= d``) is done once. Sources:
Saad & Solla (1995); Goldt et al. (2019), supplementary S3–S4; the masked and two-time equations
are this package's (``docs/theory.md`` §8–§9).

Kernels take arrays plus one :class:`Params` record and one :class:`Work` record (numba accepts
NamedTuples with ``cache=True``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from .. import activations as _act
from ..activations import ERF, I2
from .sums import (  # noqa: F401 - the kernels' names stay importable from here
    erf_pair_setup,
    fast_asin,
    i3_coefficients,
    s3_from,
    s3_sums,
    s4_into,
    s4_sums,
    s4_sums_threaded,
)

__all__ = ["Params", "Work", "make_params", "make_work", "n_state", "pack", "unpack",
           "pack_classes", "unpack_classes", "rhs", "rhs_into", "rhs_eval", "unpack_cov",
           "fast_asin", "s3_sums", "threads_flag", "params_of", "class_tables", "class_sums"]


class Params(NamedTuple):
    """Everything the right-hand side needs besides the state (one record, fixed per run).

    ``units`` (S, K): the kept units of each class (the first ``nk[s]``, ascending); ``off``
    (S+1,): where each class's block starts in the state vector (``off[S]``: ``v``); ``f`` (S,),
    ``T_cls`` (S, M, M), ``R0_cls`` (S, K, M) (the initial per-class ``R``, used by the
    two-time overlaps ``P``), ``T`` (M, M), ``v_star`` (M,). ``threads`` (:func:`threads_flag`)
    and ``classes`` are compile-time choices when None: serial, and a dense network (one class,
    every unit kept, no ``P``; its kernels hold no class loop); a bool (threads) or an array
    (``classes``: :func:`class_tables`; the class loop, with the dense form still chosen at run
    time for one full class without ``P``).
    """

    K: int
    M: int
    n_cls: int
    eta: float
    eta_v: float
    sigma: float
    act: int
    train_v: bool
    sgd: bool
    fast: object  # None: each activation's own I4 kernel (make_params' fast=True); False
    track_P: bool
    threads: bool
    T: np.ndarray
    v_star: np.ndarray
    T_cls: np.ndarray
    units: np.ndarray
    nk: np.ndarray
    off: np.ndarray
    f: np.ndarray
    R0_cls: np.ndarray
    decay: float
    classes: object = None


class Work(NamedTuple):
    """Scratch arrays of one evaluation (allocate once per run with :func:`make_work`)."""

    C: np.ndarray      # (L, L) global covariance
    a: np.ndarray      # (L,) signed second-layer weights
    U: np.ndarray      # (K, L)
    b: np.ndarray      # (K,)
    S3: np.ndarray     # (K, L)
    S4: np.ndarray     # (K, K) eta^2 bracket, upper triangle used
    Cw: np.ndarray     # (L, L) scratch of the PSD check


#: the keywords of :func:`make_params` beyond the problem (K, M, T, v_star, eta, eta_v, sigma,
#: act), with their defaults: the rule's switches, the mask classes, the two-time overlaps,
#: threads and weight decay
PARAM_SWITCHES = {"train_v": True, "sgd": True, "fast": True, "patterns": None, "f": None,
                  "T_cls": None, "track_P": False, "R0_cls": None, "threads": False,
                  "weight_decay": 0.0}


def make_params(K, M, T, v_star, eta, eta_v, sigma=0.0, act=ERF, **switches) -> Params:
    """Build a :class:`Params` record (the arrays form; :func:`params_of` builds it from a state
    and a :class:`~odeprune.options.Dynamics`). The keywords of :data:`PARAM_SWITCHES` only
    (``TypeError`` for any other, so that switches cannot be swapped silently): ``train_v``,
    ``sgd`` (False: gradient flow), ``fast`` (stored as None, so that the kernels compiled for
    the record hold each activation's own I4 kernel only; False: the closed forms term by
    term); ``patterns``, ``f``, ``T_cls`` (without
    ``patterns`` the network is dense: one class); ``track_P`` and ``R0_cls``; ``threads``
    (:func:`threads_flag`); ``weight_decay`` ``gamma``: the first-layer decay ``-eta gamma w``
    (``docs/theory.md`` §11), stored as ``decay = eta gamma``. ``act`` (an integer code) is
    stored as an :class:`~odeprune.activations.ActivationCode`, so that the kernels compiled
    for this record hold the code of that activation only (``ValueError`` for an unregistered
    code)."""
    unknown = sorted(set(switches) - set(PARAM_SWITCHES))
    if unknown:
        raise TypeError(f"make_params() got unexpected keyword(s) {unknown}; its keywords are "
                        f"{list(PARAM_SWITCHES)}")
    sw = {**PARAM_SWITCHES, **switches}
    train_v, sgd, fast, track_P = sw["train_v"], sw["sgd"], sw["fast"], sw["track_P"]
    patterns, f, T_cls, R0_cls = sw["patterns"], sw["f"], sw["T_cls"], sw["R0_cls"]
    threads, weight_decay = sw["threads"], sw["weight_decay"]
    K, M = int(K), int(M)
    T = np.ascontiguousarray(T, dtype=float)
    if patterns is None:
        patterns = np.ones((1, K), dtype=bool)
        f = np.ones(1)
        T_cls = T[None].copy()
    patterns = np.asarray(patterns, dtype=bool)
    n_cls = patterns.shape[0]
    units = np.zeros((n_cls, K), dtype=np.int64)
    nk = patterns.sum(1).astype(np.int64)
    for s in range(n_cls):
        units[s, :nk[s]] = np.flatnonzero(patterns[s])
    sizes = nk * (nk + 1) // 2 + nk * M + (nk * nk if track_P else 0)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if R0_cls is None:
        R0_cls = np.zeros((n_cls, K, M))
    return Params(K, M, n_cls, float(eta), float(eta_v), float(sigma), _act.activation_code(act),
                  bool(train_v),
                  bool(sgd), None if fast else False, bool(track_P), threads_flag(threads), T,
                  np.ascontiguousarray(v_star, float),
                  np.ascontiguousarray(T_cls, float), units, nk, off,
                  np.ascontiguousarray(f, float), np.ascontiguousarray(R0_cls, float),
                  float(eta) * float(weight_decay),
                  None if n_cls == 1 and nk[0] == K and not track_P
                  else class_tables(patterns, M, track_P))


def class_tables(patterns, M, track_P=False) -> np.ndarray:
    """The ``classes`` field of :class:`Params` for a network of classes (or with ``P``): where
    the class sums of the global covariance come from, fixed per pattern set. One int64 array
    (one argument to type on each call from Python): ``[E, at_i (E), at_k (E), ptr (E + 1),
    src]``; entry ``e`` of the upper triangle of ``Q`` and of ``R`` is ``C[at_i[e], at_k[e]]``,
    the sum of ``y[src[ptr[e]:ptr[e + 1]]]`` in class order (a gather per entry instead of a
    scattered read-modify-write per class: the same additions in the same order)."""
    patterns = np.asarray(patterns, dtype=bool)
    K = patterns.shape[1]
    lay = _layout(patterns, M, track_P)
    # global entries: (i, k), i <= k < K, row-major, then (i, K + n); each stored entry of a
    # class adds to one of them, in class order (a stable sort keeps the state's order)
    iu, ku = np.triu_indices(K)
    at_i = np.concatenate([iu, np.repeat(np.arange(K), M)])
    at_k = np.concatenate([ku, K + np.tile(np.arange(M), K)])
    entry = np.full((K + M, K + M), -1, dtype=np.int64)
    entry[at_i, at_k] = np.arange(at_i.size)
    e = np.concatenate([entry[lay.Q[1], lay.Q[2]], entry[lay.R[1], K + lay.R[2]]])
    pos = np.concatenate([lay.Q[3], lay.R[3]])
    order = np.argsort(e, kind="stable")
    ptr = np.searchsorted(e[order], np.arange(at_i.size + 1))
    return np.concatenate([[at_i.size], at_i, at_k, ptr, pos[order]]).astype(np.int64)


def params_of(state, dynamics, act, *, track_P=False, threads=False, fast=True) -> Params:
    """The :class:`Params` of a network under a learning rule: ``state`` a
    :class:`~odeprune.sparse.SparseOrderParams` (its classes; ``R`` is the initial ``R`` of the
    two-time overlaps when ``track_P``) or an :class:`~odeprune.state.OrderParams` (one class),
    ``dynamics`` an :class:`odeprune.options.Dynamics` record (``l1`` is not a term of this
    ODE), ``act`` the activation code. The record form of :func:`make_params`."""
    patterns = getattr(state, "patterns", None)
    sparse = patterns is not None
    return make_params(
        state.K, state.M, state.T.sum(0) if sparse else state.T, state.v_star, dynamics.eta,
        dynamics.second_layer_rate, dynamics.sigma, act,
        train_v=dynamics.train_second_layer, sgd=not dynamics.gradient_flow, fast=fast,
        patterns=patterns, f=state.f if sparse else None,
        T_cls=state.T if sparse else None, track_P=track_P,
        R0_cls=(state.R if sparse else state.R[None]) if track_P else None, threads=threads,
        weight_decay=dynamics.weight_decay)


def threads_flag(threads):
    """The ``threads`` field of :class:`Params`: ``False`` -> ``None`` (serial; a kernel compiled
    for it holds no parallel code, and a first run compiles none); ``True`` -> ``True`` and
    ``None`` ("decided per chunk", starting serial) -> ``False``: a bool, read at run time, so
    that ``p._replace(threads=...)`` with a bool between chunks reuses the compiled kernels."""
    if threads is not None and not isinstance(threads, (bool, np.bool_)):
        raise TypeError(f"threads={threads!r}: expected True, False or None")
    if threads is not None and not threads:
        return None
    return threads is not None


@njit(cache=True)
def make_work(K, M):
    L = K + M
    return Work(np.zeros((L, L)), np.zeros(L), np.zeros((K, L)), np.zeros(K), np.zeros((K, L)),
                np.zeros((K, K)), np.zeros((L, L)))


def n_state(K, M, n_cls=1, track_P=False):
    """Length of the state vector of ``n_cls`` classes with every unit kept (a dense network:
    one class)."""
    return n_cls * (K * (K + 1) // 2 + K * M + (K * K if track_P else 0)) + K


def state_layout(patterns, M, track_P):
    """Where each stored entry sits in the state vector: rows ``(class, i, k or n, position)``
    for the upper triangle of ``Q^s`` over kept units, the rows of ``R^s`` of kept units and
    ``P^s`` over kept x kept; and the position of ``v``. (Read-only arrays, memoised per
    pattern set.)"""
    lay = _layout(patterns, M, track_P)
    return lay.Q, lay.R, lay.P, lay.nv


class _Layout(NamedTuple):
    Q: np.ndarray        # (4, nQ): class, i, k, position (upper triangle over kept units)
    R: np.ndarray        # (4, nR): class, i, n, position
    P: np.ndarray | None  # (4, nP): class, i, k, position, or None
    nv: int              # where v starts
    gather: tuple        # Q (S*K*K,), R (S*K*M,) (and P): state position or -1 (zero)
    sums: tuple          # per output (Q, R, P): (ptr, src) of its class sums


def _layout(patterns, M, track_P) -> _Layout:
    patterns = np.asarray(patterns, dtype=bool)
    return _layout_of(patterns.tobytes(), patterns.shape, int(M), bool(track_P))


@functools.lru_cache(maxsize=64)
def _layout_of(key, shape, M, track_P) -> _Layout:
    # every class's entries in state order, all classes at once: np.nonzero lists an (S, K, .)
    # mask in row-major order (class, then kept unit x ascending, then z or n ascending)
    patterns = np.frombuffer(key, dtype=bool).reshape(shape)
    S, K = shape
    nk = patterns.sum(1, dtype=np.int64)
    sizes = [nk * (nk + 1) // 2, nk * M] + ([nk * nk] if track_P else [])
    both = patterns[:, :, None] & patterns[:, None, :]
    blocks = [both & np.triu(np.ones((K, K), dtype=bool)),
              np.broadcast_to(patterns[:, :, None], (S, K, M))] + ([both] if track_P else [])
    before = np.concatenate([[0], np.cumsum(sum(sizes))[:-1]]).astype(np.int64)
    out = []
    for m, size in zip(blocks, sizes):
        s, i, k = np.nonzero(m)
        first = np.cumsum(size) - size  # where each class's entries start in this block's list
        idx = np.stack([s, i, k, before[s] + np.arange(s.size) - first[s]]).astype(np.int64)
        idx.setflags(write=False)
        out.append(idx)
        before = before + size
    # unpacking as gathers: for each entry of the (S, K, K) / (S, K, M) arrays the state's
    # position, or -1: the zero column appended after the state's last
    gather = []
    for idx, width, sym in ((out[0], K, True), (out[1], M, False)) + (
            ((out[2], K, False),) if track_P else ()):
        g = np.full(S * K * width, -1, dtype=np.int64)
        g[(idx[0] * K + idx[1]) * width + idx[2]] = idx[3]
        if sym:
            g[(idx[0] * K + idx[2]) * width + idx[1]] = idx[3]
        g.setflags(write=False)
        gather.append(g)
    return _Layout(out[0], out[1], out[2] if track_P else None, int(before[-1]),
                   tuple(gather), tuple(_sum_tables(g.reshape(S, -1)) for g in gather))


def _sum_tables(g):
    """``(ptr, src)`` of the class sums of one output from its gather ``g (S, O)``: entry ``o``
    is the sum of ``y[src[ptr[o]:ptr[o + 1]]]``, its stored values in class order."""
    o, s = np.nonzero(g.T >= 0)  # row-major: per entry, its classes in ascending order
    ptr = np.searchsorted(o, np.arange(g.shape[1] + 1)).astype(np.int64)
    src = g[s, o].astype(np.int64)
    for a in (ptr, src):
        a.setflags(write=False)
    return ptr, src


# ------------------------------------------------------------------------------ packing
def pack(Q, R, v):
    """Pack a dense (one-class) state; the inverse of :func:`unpack`."""
    K = np.asarray(Q).shape[0]
    iu = np.triu_indices(K)
    return np.concatenate([np.asarray(Q)[iu], np.asarray(R).ravel(), np.asarray(v)])


def unpack(y, K, M):
    """Unpack dense state vector(s) ``y`` (..., n_state) into ``Q (..., K, K)``, ``R``, ``v``."""
    Q, R, _, v = unpack_classes(y, M, np.ones((1, K), dtype=bool), False)
    return Q[..., 0, :, :], R[..., 0, :, :], v


def pack_classes(patterns, Q_cls, R_cls, v, P_cls=None):
    """Pack per-class ``Q (S, K, K)``, ``R (S, K, M)``, optional ``P (S, K, K)`` and ``v``
    (only the entries of kept units are stored)."""
    Q_cls, R_cls = np.asarray(Q_cls, float), np.asarray(R_cls, float)
    qi, ri, pi, nv = state_layout(patterns, R_cls.shape[2], P_cls is not None)
    y = np.empty(nv + len(v))
    y[qi[3]] = Q_cls[qi[0], qi[1], qi[2]]
    y[ri[3]] = R_cls[ri[0], ri[1], ri[2]]
    if P_cls is not None:
        y[pi[3]] = np.asarray(P_cls, float)[pi[0], pi[1], pi[2]]
    y[nv:] = v
    return y


def unpack_classes(y, M, patterns, track_P):
    """Inverse of :func:`pack_classes` for state vector(s) ``y (..., n)``.

    Returns ``Q (..., S, K, K)``, ``R (..., S, K, M)``, ``P (..., S, K, K)`` or None, ``v (..., K)``.
    """
    y = np.asarray(y, dtype=float)
    S, K = np.shape(patterns)
    lead = y.shape[:-1]
    lay = _layout(patterns, M, track_P)
    # gathers from the states with a zero column appended: one pass over each output (a zero
    # fill and two scatters were 4x slower for 201 states of 64 classes, K=6)
    Y = np.empty((int(np.prod(lead, dtype=np.int64)), y.shape[-1] + 1))
    Y[:, :-1] = y.reshape(-1, y.shape[-1])
    Y[:, -1] = 0.0
    Q = Y.take(lay.gather[0], axis=1).reshape(lead + (S, K, K))
    R = Y.take(lay.gather[1], axis=1).reshape(lead + (S, K, M))
    P = Y.take(lay.gather[2], axis=1).reshape(lead + (S, K, K)) if track_P else None
    nv = lay.nv
    return Q, R, P, y[..., nv:].copy()


def class_sums(y, M, patterns, track_P):
    """The network's ``Q (..., K, K)``, ``R (..., K, M)``, ``P (..., K, K)`` or None and
    ``v (..., K)`` of state vector(s) ``y (..., n)``: bit for bit the class sums of
    :func:`unpack_classes`'s arrays (``Q_cls.sum(-3)``: numpy adds the classes in order to
    ``0.0``; the unstored zeros add nothing to a sum that starts at ``0.0``), without building
    the per-class arrays (for 201 states of 64 classes, K=6: ~5 MB)."""
    y = np.asarray(y, dtype=float)
    S, K = np.shape(patterns)
    lead = y.shape[:-1]
    lay = _layout(patterns, M, track_P)
    Y = np.ascontiguousarray(y.reshape(-1, y.shape[-1]))
    out = []
    for (ptr, src), width in zip(lay.sums, (K, M, K)):
        o = np.empty((Y.shape[0], ptr.size - 1))
        _sum_entries(Y, ptr, src, o)
        out.append(o.reshape(lead + (K, width)))
    return out[0], out[1], out[2] if track_P else None, y[..., lay.nv:].copy()


@njit(cache=True, error_model="numpy")
def _sum_entries(Y, ptr, src, out):
    """``out[r, o]``: the class sum of entry ``o`` of state ``Y[r]`` (:func:`_sum_tables`), from
    ``0.0`` in class order, as numpy sums the unpacked classes."""
    for r in range(Y.shape[0]):
        for o in range(ptr.size - 1):
            t = 0.0
            for j in range(ptr[o], ptr[o + 1]):
                t += Y[r, src[j]]
            out[r, o] = t


@njit(cache=True, error_model="numpy", inline="always")
def unpack_cov(y, p, C, a):
    """Fill the global covariance ``C`` (L, L) (class sums) and ``a`` (L,) from the state."""
    K, M = p.K, p.M
    _fill_cov(p.classes, y, p, C)
    for i in range(K):
        for k in range(i + 1, K):
            C[k, i] = C[i, k]
        for n in range(M):
            C[K + n, i] = C[i, K + n]
    q = p.off[p.n_cls]
    for i in range(K):
        a[i] = y[q + i]
    for n in range(M):
        for m in range(M):
            C[K + n, K + m] = p.T[n, m]
        a[K + n] = -p.v_star[n]


@njit(cache=True, error_model="numpy")
def _fill_dense(y, p, C):
    """Upper triangle of ``Q`` and ``R`` in ``C`` from a dense state: Q's triangle, then R."""
    K, M = p.K, p.M
    q = 0
    for i in range(K):
        for k in range(i, K):
            C[i, k] = y[q]
            q += 1
    for i in range(K):
        for n in range(M):
            C[i, K + n] = y[q]
            q += 1


def _fill_cov(classes, y, p, C):  # pragma: no cover - only its overload runs
    raise NotImplementedError


@overload(_fill_cov, jit_options={"error_model": "numpy"})
def _ov_fill_cov(classes, y, p, C):
    # p.classes None (a dense network without P): the dense code only, chosen when compiling.
    # Called, not inlined (this and _assemble_by_layout): numba compiles an inlined overload on
    # its own as well, so inlining compiled it twice (0.7 s of a first run for the two; the
    # curves' speed the same, measured; s4_into stays inlined: called, K=6 ran 6 % slower)
    if isinstance(classes, types.NoneType):
        return lambda classes, y, p, C: _fill_dense(y, p, C)

    def runtime(classes, y, p, C):
        if p.n_cls == 1 and p.nk[0] == p.K:
            _fill_dense(y, p, C)
        else:
            _sum_classes(y, p, C)
    return runtime


@njit(cache=True, error_model="numpy")
def _sum_classes(y, p, C):
    """Upper triangle of ``Q`` and ``R`` in ``C`` as the class sums (:func:`class_tables`)."""
    tb = p.classes
    E = tb[0]
    ptr = 1 + 2 * E  # where ptr starts
    src = ptr + E + 1  # where src starts
    for e in range(E):
        t = 0.0
        for j in range(src + tb[ptr + e], src + tb[ptr + e + 1]):
            t += y[tb[j]]
        C[tb[1 + e], tb[1 + E + e]] = t


# ------------------------------------------------------------------------------ right-hand side
@njit(cache=True, error_model="numpy")
def rhs_into(y, dy, p, w):
    """Write ``d y / d alpha`` into ``dy`` (state layout: see the module docstring)."""
    unpack_cov(y, p, w.C, w.a)
    i3_coefficients(p.act, w.C, w.a, p.K, w.U, w.b)
    if p.sgd:
        s4_into(p.threads, p, w)
    _assemble_inline(y, dy, p, w)


def _assemble(y, dy, p, w):
    """The rest of :func:`rhs_into` once ``w.C``, ``w.a``, ``w.U``, ``w.b`` and (SGD) ``w.S4``
    hold this state's values: the per-class ``S3`` sums and the derivatives."""
    _assemble_by_layout(p.classes, y, dy, p, w)


#: called (the Jacobian) and inlined (rhs_into) forms, as for ``s4_sums``
assemble = njit(cache=True, error_model="numpy")(_assemble)
_assemble_inline = njit(cache=True, error_model="numpy", inline="always")(_assemble)


def _assemble_by_layout(classes, y, dy, p, w):  # pragma: no cover - only its overload runs
    raise NotImplementedError


@overload(_assemble_by_layout, jit_options={"error_model": "numpy"})
def _ov_assemble_by_layout(classes, y, dy, p, w):
    # p.classes None (a dense network without P): no class code typed or compiled; True:
    # the class loop, with the dense form chosen at run time
    if isinstance(classes, types.NoneType):
        return lambda classes, y, dy, p, w: _assemble_dense(dy, p, w)

    def runtime(classes, y, dy, p, w):
        if p.n_cls == 1 and p.nk[0] == p.K and not p.track_P:
            _assemble_dense(dy, p, w)
        else:
            _assemble_classes(y, dy, p, w)
    return runtime


@njit(cache=True, error_model="numpy")
def _assemble_classes(y, dy, p, w):
    """:func:`_assemble` of a network of classes (or with ``P``)."""
    K, M = p.K, p.M
    C, a, U, bv = w.C, w.a, w.U, w.b
    # this class's scratch, local: LLVM then knows that the stores into dy alias none of it
    L = K + M
    Cs, S3, Uc, bc = np.empty((L, L)), np.empty((K, L)), np.empty((K, L)), np.empty(K)
    units, nks, off, T_cls = p.units, p.nk, p.off, p.T_cls
    eta, decay = p.eta, p.decay
    for s in range(p.n_cls):
        nk = nks[s]
        if nk == 0:  # every unit pruned: the class holds no state
            continue
        Ls = nk + M
        q = off[s]
        # this class's covariance over its own fields (kept units, then teachers): Cs (Ls, Ls);
        # the fields of pruned units have zero covariance with this class's partial fields
        for x in range(nk):
            for z in range(x, nk):
                Cs[x, z] = y[q]
                Cs[z, x] = y[q]
                q += 1
        for x in range(nk):
            for n in range(M):
                Cs[x, nk + n] = y[q]
                Cs[nk + n, x] = y[q]
                q += 1
        for n in range(M):
            for m in range(M):
                Cs[nk + n, nk + m] = T_cls[s, n, m]
        # S3[x, col] = sum_c U[u_x, c] Cov(z_c, partial field col) + b[u_x] Cov(z_{u_x}, col):
        # U, b on this class's fields (kept units, then teachers), then the contiguous sums
        for x in range(nk):
            i = units[s, x]
            for z in range(nk):
                Uc[x, z] = U[i, units[s, z]]
            for n in range(M):
                Uc[x, nk + n] = U[i, K + n]
            bc[x] = bv[i]
        s3_from(Uc, bc, Cs, nk, Ls, S3)
        _class_derivatives(y, dy, p, a, S3, w.S4, s)
        if p.track_P:
            q = off[s] + nk * (nk + 1) // 2 + nk * M
            # Cov(z_c, lambda0^s_k) = P^s_ck (c a student), R0^s_kn (c = teacher n)
            for x in range(nk):
                i = units[s, x]
                for z in range(nk):
                    k = units[s, z]
                    t = 0.0
                    for c in range(nk):
                        t += U[i, units[s, c]] * y[q + c * nk + z]
                    for n in range(M):
                        t += U[i, K + n] * p.R0_cls[s, k, n]
                    t += bv[i] * y[q + x * nk + z]
                    dy[q + x * nk + z] = -eta * a[i] * t - decay * y[q + x * nk + z]
    dv_into(dy, p.off[p.n_cls], p, C, a)


@njit(cache=True, error_model="numpy", inline="always")
def _class_derivatives(y, dy, p, a, S3, S4, s):
    """``dQ^s`` and ``dR^s`` of class ``s`` from ``S3`` on the class's fields."""
    units = p.units
    M, eta, decay, nk, q = p.M, p.eta, p.decay, p.nk[s], p.off[s]
    sgd_f = eta * eta * p.f[s]
    for x in range(nk):
        i = units[s, x]
        ai = -eta * a[i]
        for z in range(x, nk):
            k = units[s, z]
            d = ai * S3[x, z] - eta * a[k] * S3[z, x] - 2.0 * decay * y[q]
            if p.sgd:
                d += sgd_f * a[i] * a[k] * S4[i, k]
            dy[q] = d
            q += 1
    for x in range(nk):
        ai = -eta * a[units[s, x]]
        for n in range(M):
            dy[q] = ai * S3[x, nk + n] - decay * y[q]
            q += 1




@njit(cache=True, error_model="numpy", inline="always")
def dv_into(dy, q, p, C, a):
    """``dv_i = -eta_v sum_c a_c I2(i, c)`` into ``dy[q:q + K]`` (zero with a frozen ``v``)."""
    L = p.K + p.M
    for i in range(p.K):
        if p.train_v:
            acc = 0.0
            for c in range(L):
                acc += a[c] * I2(p.act, C[i, i], C[i, c], C[c, c])
            dy[q + i] = -p.eta_v * acc
        else:
            dy[q + i] = 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _assemble_dense(dy, p, w):
    """:func:`assemble` for one class with every unit kept (a dense network) and no ``P``: the
    same sums without the class bookkeeping (measured 10 % of a K=6 evaluation; the tests
    check it against the split-class form)."""
    K, M = p.K, p.M
    L = K + M
    C, a, S3, S4 = w.C, w.a, w.S3, w.S4
    s3_from(w.U, w.b, C, K, L, S3)
    eta, eta2 = p.eta, p.eta * p.eta
    q = 0
    for i in range(K):
        for k in range(i, K):
            d = -eta * a[i] * S3[i, k] - eta * a[k] * S3[k, i] - 2.0 * p.decay * C[i, k]
            if p.sgd:
                d += eta2 * a[i] * a[k] * S4[i, k]
            dy[q] = d
            q += 1
    for i in range(K):
        for n in range(M):
            dy[q] = -eta * a[i] * S3[i, K + n] - p.decay * C[i, K + n]
            q += 1
    dv_into(dy, q, p, C, a)


def rhs_eval(y, p):
    """Allocating form of :func:`rhs_into`, called from Python (tests, benchmarks, a first
    derivative): not compiled itself, so that it does not compile (and optimise) a second copy
    of :func:`rhs_into` on a first run."""
    y = np.ascontiguousarray(y, dtype=float)
    dy = np.empty_like(y)
    rhs_into(y, dy, p, make_work(p.K, p.M))
    return dy


_SWITCHES = {"act": ERF, "train_v": True, "sgd": True, "fast": True}


def rhs(y, K, M, T, v_star, eta, eta_v, sigma=0.0, **switches):
    """Dense right-hand side with plain arguments (a convenience for tests and benchmarks). The
    switches ``act`` (ERF), ``train_v``, ``sgd``, ``fast`` (True) are keywords only, so that
    they cannot be swapped silently; ``TypeError`` for any other keyword."""
    unknown = sorted(set(switches) - set(_SWITCHES))
    if unknown:
        raise TypeError(f"rhs() got unexpected keyword(s) {unknown}; the switches are "
                        f"{list(_SWITCHES)}")
    sw = {**_SWITCHES, **switches}
    p = make_params(K, M, T, v_star, eta, eta_v, sigma, sw["act"], train_v=sw["train_v"],
                    sgd=sw["sgd"], fast=sw["fast"])
    return rhs_eval(np.ascontiguousarray(y, dtype=float), p)
