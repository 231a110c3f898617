r"""``integrate`` for a coordinate law: the exact per-class ODE with the linear response where the
masks stay fixed and nothing acts per coordinate, the particle SDE where something does (L1) or
where the mask classes are too many to enumerate (``docs/theory.md`` §11).

``method="auto"`` chooses ``"linear"`` (exact: per-class ODE plus linear response,
:mod:`odeprune.coords.linear`; weight decay included) unless ``l1 > 0`` or a replica has more
than
:data:`MAX_LINEAR_CLASSES` distinct mask patterns, then ``"particles"``
(:mod:`odeprune.coords.particles`; its step ``dt`` is a discretisation: halve it to see its
error). Both return a :class:`CoordinateCurve` whose ``eg_se`` is the Monte-Carlo error
(spread over the independent replicas).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _io
from .._stats import sem
from ..ode.dynamics import register_state
from ..options import OPTIONS, PARTICLE_DT, Control, Dynamics, Solver
from .law import KIND as LAW_KIND
from .law import CoordinateLaw
from .linear import train_fixed_masks
from .particles import run_options, run_particles

__all__ = ["CoordinateCurve", "integrate_law", "curve_from_replicas", "load_law",
           "MAX_LINEAR_CLASSES", "METHODS"]

#: above this many distinct mask patterns in a replica, ``auto`` uses particles
MAX_LINEAR_CLASSES = 512
METHODS = ("auto", "linear", "particles")


@dataclass(frozen=True, eq=False)
class CoordinateCurve:
    """A learning curve of a coordinate law: replica means and Monte-Carlo errors.

    Attributes
    ----------
    alpha : ndarray (n,)
    eg, eg_se : ndarray (n,)
        ε_g (mean over replicas) and its standard error (spread over replicas / sqrt(R)).
    eg_replicas : ndarray (R, n)
    Q, R, v : ndarray (n, K, K), (n, K, M), (n, K)
        Replica means.
    final : CoordinateLaw
    method : str
        ``"linear"`` or ``"particles"``.
    metadata : dict
    """

    alpha: np.ndarray
    eg: np.ndarray
    eg_se: np.ndarray
    eg_replicas: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    final: CoordinateLaw
    method: str
    metadata: dict = field(default_factory=dict)

    KIND = "CoordinateCurve"

    @property
    def K(self) -> int:
        return self.Q.shape[1]

    @property
    def M(self) -> int:
        return self.R.shape[2]

    def __len__(self) -> int:
        return self.alpha.shape[0]

    def save(self, path: str | os.PathLike, metadata: dict | None = None):
        """Save as ``.npz``: the curve's arrays and the final law's (``law_*``); atomic."""
        f = self.final
        arrays = dict(alpha=self.alpha, eg=self.eg, eg_se=self.eg_se,
                      eg_replicas=self.eg_replicas, Q=self.Q, R=self.R, v=self.v,
                      law_w=f.w, law_w_star=f.w_star, law_mask=f.mask, law_weights=f.weights,
                      law_v=f.v, law_v_star=f.v_star)
        meta = dict(self.metadata, **(metadata or {}), method=self.method,
                    activation=f.activation)
        return _io.write_npz(path, self.KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CoordinateCurve:
        arrays, meta = _io.read_npz(path, cls.KIND)
        need = {"alpha", "eg", "eg_se", "eg_replicas", "Q", "R", "v", "law_w", "law_w_star",
                "law_mask", "law_weights", "law_v", "law_v_star"}
        missing = sorted(need - set(arrays))
        if missing:
            raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing {missing}")
        act = meta.get("activation", "erf")
        law = CoordinateLaw(arrays["law_w"], arrays["law_w_star"], arrays["law_mask"],
                            arrays["law_weights"], arrays["law_v"], arrays["law_v_star"],
                            activation=act)
        meta = {k: v for k, v in meta.items() if k not in ("kind", "format_version")}
        return cls(arrays["alpha"], arrays["eg"], arrays["eg_se"], arrays["eg_replicas"],
                   arrays["Q"], arrays["R"], arrays["v"], law, meta.pop("method", "linear"),
                   meta)


def load_law(path: str | os.PathLike) -> CoordinateLaw:
    """A :class:`CoordinateLaw` from a law file or the final law of a curve file."""
    _, meta = _io.read_npz(path, (LAW_KIND, CoordinateCurve.KIND))
    if meta["kind"] == LAW_KIND:
        return CoordinateLaw.load(path)
    return CoordinateCurve.load(path).final


def _n_classes(law: CoordinateLaw) -> int:
    return max(np.unique(law.mask[r], axis=0).shape[0] for r in range(law.replicas))


#: the options of the per-class ODE that the linear engine passes on (the particle engine has
#: none of them); ``method`` and ``dt`` are integrate_law's own
_ODE_OPTIONS = ("rtol", "atol", "max_steps", "backend", "threads", "chunk_steps",
                "divergence_path")


def _ode_options(solver: Solver, ctl: Control) -> tuple[dict, list]:
    """``(options, given)``: the options of the per-class ODE (all of them, the defaults
    included) and the names of those that differ from their defaults."""
    if solver.method != OPTIONS["method"].default or solver.dt != OPTIONS["dt"].default:
        raise ValueError("a Solver's method and dt do not apply to a coordinate law: pass "
                         "integrate_law(method=, dt=) (its engine and the particle step)")
    values = {**solver.as_dict(), **ctl.as_dict()}
    out = {n: values[n] for n in _ODE_OPTIONS}
    return out, [n for n in _ODE_OPTIONS if out[n] != OPTIONS[n].default]


def integrate_law(law: CoordinateLaw, eta: float, alpha_max: float, *, save_at=None,
                  method: str = "auto", dt: float = PARTICLE_DT, seed: Any = 0,
                  **options) -> CoordinateCurve:
    """Train the coordinate law ``law`` for ``alpha_max`` (see the module docstring).

    ``method``: ``"auto"``, ``"linear"`` or ``"particles"`` (the engine); ``dt`` the step of
    the particle SDE (default :data:`odeprune.options.PARTICLE_DT`, coarser than the ODE's fixed
    step: the particles' error is Monte Carlo); ``seed`` (int or Generator) its fresh Gaussians.
    ``options``, flat or as whole records (:func:`odeprune.options.gather`): the learning rule
    (:class:`~odeprune.options.Dynamics`: ``eta_v``, ``sigma``, ``gradient_flow``,
    ``train_second_layer``, ``weight_decay`` as in :func:`odeprune.integrate`, ``l1`` the L1
    strength, docs/theory.md §11), the run control (:class:`~odeprune.options.Control`:
    ``progress``/``checkpoint``/``resume`` for the particles, as
    :func:`odeprune.coords.particles.particle_run`) and, for ``method="linear"``, the options of
    the per-class ODE (``rtol``, ``atol``, ``max_steps``, ``backend``, ``threads``,
    ``chunk_steps``, ``divergence_path``).
    """
    if not isinstance(law, CoordinateLaw):
        raise TypeError(f"expected a CoordinateLaw, got {type(law).__name__}")
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    dyn, ctl, solver, alpha_max, dt = run_options("integrate_law", eta, alpha_max, dt, options,
                                                  (Dynamics, Control, Solver))
    ode, ode_given = _ode_options(solver, ctl)
    if method == "auto":
        method = "particles" if dyn.l1 > 0 or _n_classes(law) > MAX_LINEAR_CLASSES else "linear"
    if method == "linear" and (ctl.checkpoint is not None or ctl.resume):
        raise ValueError("checkpoint/resume apply to the particle engine; the linear engine "
                         "(chosen here) runs the per-class ODE of each replica in one go")
    if method == "linear" and dyn.l1 > 0:
        raise ValueError("l1 acts per coordinate (soft-thresholding), which the ODE cannot "
                         "carry: use method='particles' (or 'auto')")
    common = dict(eta_v=dyn.eta_v, sigma=dyn.sigma, gradient_flow=dyn.gradient_flow,
                  train_second_layer=dyn.train_second_layer)
    meta = dict(eta=dyn.eta, alpha_max=alpha_max, l1=dyn.l1, weight_decay=dyn.weight_decay,
                dt=dt, replicas=law.replicas, S=law.S,
                seed=seed if isinstance(seed, int) else None,
                **common, odeprune_version=_io.package_version())
    if method == "linear":
        trained, curves = train_fixed_masks(law, dyn.eta, alpha_max, save_at=save_at, seed=seed,
                                            weight_decay=dyn.weight_decay, **common, **ode)
        return curve_from_replicas(curves, trained, meta)
    if ode_given:
        raise ValueError(f"options {ode_given} apply to method='linear' only")
    trained, out = run_particles(law, alpha_max, save_at, dt, seed, dyn, ctl)
    alpha, E = out["alpha"], out["eg"]
    Q, R, v = out["Q"].mean(0), out["R"].mean(0), out["v"].mean(0)
    return CoordinateCurve(alpha, E.mean(0), _se(E), E, Q, R, v, trained, "particles", meta)


def _se(E: np.ndarray) -> np.ndarray:
    return sem(E) if E.shape[0] > 1 else np.full(E.shape[1], np.nan)


def curve_from_replicas(curves: list, trained: CoordinateLaw, metadata: dict | None = None,
                        offset: float = 0.0) -> CoordinateCurve:
    """The :class:`CoordinateCurve` of the replicas' per-class ODE curves (the linear-response
    engine): replica means, the spread as the error, ``trained`` as the final law; times
    shifted by ``offset``."""
    E = np.array([cv.eg for cv in curves])
    return CoordinateCurve(np.asarray(curves[0].alpha) + offset, E.mean(0), _se(E), E,
                           np.mean([cv.Q for cv in curves], 0),
                           np.mean([cv.R for cv in curves], 0),
                           np.mean([cv.v for cv in curves], 0), trained, "linear",
                           dict(metadata or {}))


register_state(CoordinateLaw, integrate_law)
