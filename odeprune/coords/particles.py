r"""The particle SDE of the coordinate law (``docs/theory.md`` §11), for what the ODE cannot
carry: a per-coordinate nonlinearity acting continuously (the L1 proximal step) and masks on any
number of units (each particle carries its own pattern; no ``2^K`` classes).

Each particle ``u_j = (w_j, w*_j)`` of a replica moves by

.. math::

    dw_j = m_j \odot \big( -\eta\, \mathrm{diag}(a) G(C) u_j\, d\alpha - \eta\gamma\, w_j\, d\alpha
           + \eta\, \mathrm{diag}(a) B(C)^{1/2} d\beta_j \big),\qquad
    w \leftarrow \mathrm{sign}(w)\max(|w| - \eta\lambda\, d\alpha, 0),

with ``a`` the student's second layer, ``G_ia = U_ia + b_i delta_ia`` the I3 coefficients of
:mod:`odeprune.ode.rhs` (so that ``G C`` is the ODE's first-order term), ``B`` the bracket of its
``eta^2`` term (``sum a_c a_d I4 + sigma^2 J2``), ``C`` the replica's own second moments
(McKean–Vlasov), ``gamma`` the weight decay and ``lambda`` the L1 strength; ``v`` follows the
ODE's ``dv/dalpha`` on the same ``C``. Gradient flow drops the noise.

Scheme: stochastic Heun for the drift (the mean field re-evaluated at the predictor; additive
noise drawn once per step, its covariance taken at the step's midpoint by extrapolation from the
previous step: the start value alone leaves a first-order bias while the noise changes fast) with
the L1 proximal step split symmetrically around it (Strang).
The step ``dt`` is a choice: halve it to see its error (the tests and
``benchmarks/bench_coords.py`` do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from .. import _io
from .._rng import fill_normals
from .._validate import as_generator
from ..activations import I2_matrix, eg_from_cov, get_activation
from ..errors import DivergenceError
from ..grid import save_times
from ..ode.rhs import i3_coefficients, make_params, make_work, s4_sums
from ..ode.runcontrol import RunControl, interrupted_error
from ..options import OPTIONS, PARTICLE_DT, Control, Dynamics, gather
from .law import CoordinateLaw, sqrt_psd

__all__ = ["particle_run", "run_particles", "run_options", "soft_threshold", "log_times"]


def log_times(alpha_max: float, n: int = 20) -> np.ndarray:
    """The default saved times of a coordinate-law run: :func:`odeprune.grid.save_times` with
    ``n`` log-spaced times from ``min(1, alpha_max)`` (plus 0 and ``alpha_max``)."""
    return save_times(alpha_max, n, lo=min(1.0, alpha_max))


def soft_threshold(w: np.ndarray, t: float) -> np.ndarray:
    """The L1 proximal map ``sign(w) max(|w| - t, 0)``."""
    return np.sign(w) * np.maximum(np.abs(w) - t, 0.0)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _moments(X, Y, wt, C):
    """``C = sum_j wt_j u_j u_j^T`` (upper triangle mirrored), ``u_j = (X_j, Y_j)``."""
    S, K = X.shape
    M = Y.shape[1]
    L = K + M
    C[:, :] = 0.0
    u = np.empty(L)
    for j in range(S):
        for a in range(K):
            u[a] = X[j, a]
        for n in range(M):
            u[K + n] = Y[j, n]
        wj = wt[j]
        for a in range(L):
            ua = wj * u[a]
            for b in range(a, L):
                C[a, b] += ua * u[b]
    for a in range(L):
        for b in range(a + 1, L):
            C[b, a] = C[a, b]


@njit(cache=True, error_model="numpy", inline="always")
def _drift(G, X, Y, j, i, decay):
    """The drift of weight ``i`` of particle ``j``: ``(G u_j)_i - decay w_ij``."""
    K = X.shape[1]
    d = -decay * X[j, i]
    for a in range(K):
        d += G[i, a] * X[j, a]
    for n in range(Y.shape[1]):
        d += G[i, K + n] * Y[j, n]
    return d


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _predict(P, G, Bh, Z, h, decay, W):
    """Heun's predictor for every particle of ``P = (X, Y, m, wt)`` (weights, teacher
    coordinates, mask, particle weights) into the scratch ``W = (D1, Nz, Xp, C)``: noise
    ``Nz = Bh z sqrt(h)``, ``D1 = (G u - decay w) h + Nz`` (masked), ``Xp = X + D1``; the
    weighted moments of the predictor into ``C``."""
    X, Y, m, wt = P
    D1, Nz, Xp, C = W
    S, K = X.shape
    sh = np.sqrt(h)
    for j in range(S):
        for i in range(K):
            if m[j, i]:
                d = _drift(G, X, Y, j, i, decay)
                nz = 0.0
                for k in range(K):
                    nz += Bh[i, k] * Z[j * K + k]
                Nz[j, i] = nz * sh
                D1[j, i] = d * h + Nz[j, i]
            else:
                D1[j, i] = 0.0
                Nz[j, i] = 0.0
            Xp[j, i] = X[j, i] + D1[j, i]
    _moments(Xp, Y, wt, C)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _correct(P, G, h, decay, thresh, W):
    """Heun's corrector on ``P = (X, Y, m, wt)`` with the predictor's ``W = (D1, Nz, Xp, C)``:
    ``X += (D1 + Nz + (G up - decay wp) h) / 2`` (the average of the two drifts, the
    predictor's noise once), then the L1 proximal step ``thresh``; the new weighted moments
    into ``C``."""
    X, Y, m, wt = P
    D1, Nz, Xp, C = W
    S, K = X.shape
    for j in range(S):
        for i in range(K):
            if m[j, i]:
                d = _drift(G, Xp, Y, j, i, decay)
                x = X[j, i] + 0.5 * (D1[j, i] + Nz[j, i]) + 0.5 * d * h
                if thresh > 0.0:
                    ax = abs(x) - thresh
                    x = np.sign(x) * ax if ax > 0.0 else 0.0
                X[j, i] = x
    _moments(X, Y, wt, C)


class _Field:
    """The mean-field coefficients of one replica (I3 coefficients, noise bracket, dv)."""

    def __init__(self, K, M, v_star, T, act, dyn: Dynamics):
        eta, eta_v, sgd, train_v = (dyn.eta, dyn.second_layer_rate, not dyn.gradient_flow,
                                    dyn.train_second_layer)
        self.K, self.M, self.L = K, M, K + M
        self.act = act
        self.p = make_params(K, M, T, v_star, eta, eta_v, dyn.sigma, act, train_v=train_v,
                             sgd=sgd)
        self.w = make_work(K, M)
        self.v_star = np.asarray(v_star, float)
        self.eta, self.eta_v, self.sgd, self.train_v = eta, eta_v, sgd, train_v

    def load(self, X, Y, wt, v):
        """Fill the covariance and signed weights of particles ``X`` (S, K), ``Y`` (S, M)."""
        _moments(X, Y, wt, self.w.C)
        self.set_v(v)

    def set_v(self, v):
        self.w.a[:self.K] = v
        self.w.a[self.K:] = -self.v_star

    def coefficients(self):
        """``(G (K, L), Bc (K, K), dv (K,))`` at the loaded state: ``G`` carries the factor
        ``-eta a_i``; ``Bc = eta^2 diag(a) B diag(a)`` is the noise covariance per unit alpha
        (None for gradient flow)."""
        K, C, a = self.K, self.w.C, self.w.a
        i3_coefficients(self.act, C, a, K, self.w.U, self.w.b)
        G = self.w.U.copy()
        G[np.arange(K), np.arange(K)] += self.w.b
        G *= -self.eta * a[:K, None]
        Bh = None
        if self.sgd:
            s4_sums(self.p, self.w)
            B = np.triu(self.w.S4)
            B = B + np.triu(B, 1).T
            Bh = self.eta ** 2 * np.outer(a[:K], a[:K]) * B
        dv = np.zeros(K)
        if self.train_v:
            dv = -self.eta_v * (I2_matrix(self.act, C)[:K] @ a)
        return G, Bh, dv

    def eg(self):
        return eg_from_cov(self.act, self.w.C, self.w.a)


CHECKPOINT_KIND = "ParticleCheckpoint"


@dataclass(frozen=True, eq=False)
class _RunState:
    """What a checkpoint of a particle run holds besides its position: the particles ``X``
    (R, S, K), second layers ``V`` (R, K), the outputs so far ``out``, the generator ``rng`` and
    the previous step's noise covariance ``Bprev`` (R, K, K) and step ``hprev`` (R,). The arrays
    are updated in place by the run."""

    X: np.ndarray
    V: np.ndarray
    out: dict
    rng: np.random.Generator
    Bprev: np.ndarray
    hprev: np.ndarray


def _save_checkpoint(path, fingerprint, law, st: _RunState, k, step, position):
    out = st.out
    arrays = dict(X=st.X, V=st.V, w_star=law.w_star, mask=law.mask, weights=law.weights,
                  Bprev=st.Bprev, hprev=st.hprev,
                  **{f"out_{key}": out[key] for key in ("eg", "Q", "R", "v")})
    meta = dict(fingerprint=fingerprint, k=int(k), step=int(step), position=float(position),
                rng=st.rng.bit_generator.state, activation=law.activation)
    return _io.write_npz(path, CHECKPOINT_KIND, arrays, meta)


def _load_checkpoint(path, fingerprint, law, st: _RunState) -> tuple[int, int]:
    arrays, meta = _io.read_npz(path, CHECKPOINT_KIND)
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(f"checkpoint {str(path)!r} belongs to another run (its options differ "
                         "from this call's)")
    for name in ("w_star", "mask", "weights"):
        if not np.array_equal(arrays[name], getattr(law, name)):
            raise ValueError(f"checkpoint {str(path)!r} belongs to another law ({name} differ)")
    st.X[:] = arrays["X"]
    st.V[:] = arrays["V"]
    st.Bprev[:] = arrays["Bprev"]
    st.hprev[:] = arrays["hprev"]
    for key in ("eg", "Q", "R", "v"):
        st.out[key][:] = arrays[f"out_{key}"]
    st.rng.bit_generator.state = meta["rng"]
    return int(meta["k"]), int(meta["step"])


def _interrupt(rc, checkpoint, fingerprint, law, st: _RunState, k, step, position):
    saved = None
    if checkpoint is not None:
        saved = _save_checkpoint(checkpoint, fingerprint, law, st, k, step, position)
    return interrupted_error("the particle run", rc.interrupted, f"alpha={position:.4g}",
                             saved)


def run_options(where: str, eta, alpha_max, dt, options: dict,
                records=(Dynamics, Control)) -> tuple:
    """The records of a coordinate-law run from its keywords, one rule for
    :func:`particle_run` and :func:`odeprune.coords.integrate_law`: ``records`` built by
    :func:`odeprune.options.gather` (``eta`` joins the :class:`~odeprune.options.Dynamics`; it
    may be None beside a whole ``dynamics=``), then ``alpha_max`` and ``dt`` checked by the
    table. Returns ``(*records, alpha_max, dt)``."""
    kw = dict(options)
    if eta is not None or "dynamics" not in kw:
        kw["eta"] = eta
    recs = gather(where, kw, records)
    return (*recs, OPTIONS["alpha_max"].check(alpha_max), OPTIONS["dt"].check(dt))


def particle_run(law: CoordinateLaw, eta: float, alpha_max: float, *, save_at=None,
                 dt: float = PARTICLE_DT, seed: Any = 0, **options
                 ) -> tuple[CoordinateLaw, dict]:
    """Integrate the particle SDE of every replica of ``law`` to ``alpha_max``.

    Returns the final law and a dict of ``alpha`` (the saved times: ``save_at`` and
    ``alpha_max``, as :func:`odeprune.integrate`; default 0 and 20 log-spaced times), ``eg``
    (R, n), ``Q`` (R, n, K, K), ``R`` (R, n, K, M), ``v`` (R, n, K) per replica.

    ``options``: the learning rule (``eta_v``, ``sigma``, ``l1``, ``weight_decay``,
    ``gradient_flow``, ``train_second_layer``; or ``dynamics=`` whole) and the run control
    (``progress``, ``checkpoint``, ``resume``; or ``control=``), as
    :class:`odeprune.options.Dynamics` and :class:`odeprune.options.Control`.
    ``progress``: a bar when stderr is a terminal (None) or as forced. Ctrl-C and SIGTERM stop
    the run after the current step; with ``checkpoint=PATH`` the state (particles, outputs so
    far, the generator) is saved there and ``resume=True`` continues it to the same numbers as
    an uninterrupted run; without, nothing is saved. :class:`OdepruneInterrupted` says which.
    A non-finite state raises :class:`DivergenceError`.
    """
    dyn, ctl, alpha_max, dt = run_options("particle_run", eta, alpha_max, dt, options)
    return run_particles(law, alpha_max, save_at, dt, seed, dyn, ctl)


def _save_grid(alpha_max: float, save_at) -> tuple[np.ndarray, np.ndarray]:
    """``(wanted, times)``: the saved times (``save_at`` and ``alpha_max``; default
    :func:`log_times`) and the run's segments from 0."""
    if save_at is None:
        wanted = log_times(alpha_max)
    else:
        wanted = np.unique(np.concatenate([np.asarray(save_at, float).ravel(), [alpha_max]]))
    if wanted[0] < 0 or wanted[-1] > alpha_max or not np.all(np.isfinite(wanted)):
        raise ValueError(f"save_at must lie within [0, alpha_max={alpha_max}]")
    return wanted, np.unique(np.concatenate([[0.0], wanted]))  # the run starts at 0


def run_particles(law: CoordinateLaw, alpha_max: float, save_at, dt: float, seed: Any,
                  dyn: Dynamics, ctl: Control) -> tuple[CoordinateLaw, dict]:
    """:func:`particle_run` on checked records (``alpha_max`` and ``dt`` checked too)."""
    if ctl.chunk_steps is not None or ctl.divergence_path is not None:
        raise ValueError("chunk_steps and divergence_path apply to the ODE, not to the particle "
                         "engine")
    eta, eta_v, l1, gamma = dyn.eta, dyn.second_layer_rate, dyn.l1, dyn.weight_decay
    checkpoint = ctl.checkpoint
    wanted, times = _save_grid(alpha_max, save_at)
    rng = as_generator(seed)
    act = get_activation(law.activation).code
    R, S, K, M = law.replicas, law.S, law.K, law.M
    X = np.array(law.w)
    Y = np.array(law.w_star)
    V = np.array(law.v)
    fields = []
    for r in range(R):
        sw = np.sqrt(law.weights[r])[:, None]
        T = (sw * Y[r]).T @ (sw * Y[r])
        fields.append(_Field(K, M, law.v_star, 0.5 * (T + T.T), act, dyn))
    n_t = times.size
    out = dict(alpha=times, eg=np.zeros((R, n_t)), Q=np.zeros((R, n_t, K, K)),
               R=np.zeros((R, n_t, K, M)), v=np.zeros((R, n_t, K)))

    def record(k):
        for r in range(R):
            f = fields[r]
            f.load(X[r], Y[r], law.weights[r], V[r])
            out["eg"][r, k] = f.eg()
            out["Q"][r, k] = f.w.C[:K, :K]
            out["R"][r, k] = f.w.C[:K, K:]
            out["v"][r, k] = V[r]

    mask = np.ascontiguousarray(law.mask)
    wts = np.ascontiguousarray(law.weights)
    D1, Nz, Xp = np.empty((S, K)), np.empty((S, K)), np.empty((S, K))
    Z = np.zeros(S * K)
    decay = eta * gamma
    Bh0 = np.zeros((K, K))
    fingerprint = dict(eta=eta, alpha_max=alpha_max, dt=dt, eta_v=eta_v, sigma=dyn.sigma,
                       l1=l1, weight_decay=gamma, gradient_flow=bool(dyn.gradient_flow),
                       train_second_layer=bool(dyn.train_second_layer), R=R, S=S, K=K, M=M,
                       times=times.tolist())
    Bprev, hprev = np.zeros((R, K, K)), np.zeros(R)  # the previous step's noise covariance
    st = _RunState(X, V, out, rng, Bprev, hprev)
    k0, step0 = 1, 0
    if ctl.resume:
        k0, step0 = _load_checkpoint(checkpoint, fingerprint, law, st)
    else:
        record(0)
    position = times[k0 - 1]
    with RunControl(alpha_max, "coordinate law (particles)", ctl.progress,
                    start=float(position)) as rc:
        for k in range(k0, n_t):
            span = times[k] - times[k - 1]
            n = max(1, int(np.ceil(span / dt - 1e-9)))
            h = span / n
            for r in range(R):
                if l1 and not (k == k0 and step0 > 0):  # Strang: half a proximal step at
                    X[r][:] = soft_threshold(X[r], 0.5 * eta * l1 * h)  # each end of a segment
                fields[r].load(X[r], Y[r], wts[r], V[r])
            for step in range(step0 if k == k0 else 0, n):
                for r in range(R):
                    f, P = fields[r], (X[r], Y[r], mask[r], wts[r])
                    W = (D1, Nz, Xp, f.w.C)
                    G1, Bc, dv1 = f.coefficients()
                    Bh = Bh0
                    if Bc is not None:
                        # the noise covariance at the step's midpoint, extrapolated from this
                        # and the previous step (second order; the start value alone leaves a
                        # first-order bias while the noise changes fast)
                        Bmid = Bc
                        if hprev[r] > 0:
                            Bmid = Bc + (Bc - Bprev[r]) * (0.5 * h / hprev[r])
                        Bprev[r], hprev[r] = Bc, h
                        Bh = sqrt_psd(Bmid)
                        fill_normals(rng, Z)
                    _predict(P, G1, Bh, Z, h, decay, W)
                    f.set_v(V[r] + dv1 * h)
                    G2, _, dv2 = f.coefficients()
                    th = eta * l1 * h * (0.5 if step == n - 1 else 1.0)
                    _correct(P, G2, h, decay, th, W)
                    V[r] += 0.5 * (dv1 + dv2) * h
                    f.set_v(V[r])
                    if not (np.all(np.isfinite(V[r])) and np.all(np.isfinite(f.w.C))):
                        raise DivergenceError(
                            f"the particle run diverged near alpha={position:.4g} (replica "
                            f"{r}): eta={eta} too large for this network, or dt={dt} too "
                            "coarse (halve it)", float(position))
                position += h
                rc.chunk_done(float(position), 1, 0.0)
                if rc.interrupted and step < n - 1:
                    raise _interrupt(rc, checkpoint, fingerprint, law, st, k, step + 1,
                                     position)
            record(k)
            if rc.interrupted and k < n_t - 1:
                raise _interrupt(rc, checkpoint, fingerprint, law, st, k + 1, 0, position)
    keep = np.isin(times, wanted)
    for key in ("alpha", "eg", "Q", "R", "v"):
        out[key] = out[key][keep] if key == "alpha" else out[key][:, keep]
    return law.replace(w=X, v=V), out
