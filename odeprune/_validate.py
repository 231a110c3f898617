"""Argument checks shared by the public entry points: each returns the clean value or raises a
``ValueError`` that names the parameter, its value and what is allowed."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .activations import get_activation

__all__ = ["check_size", "check_real", "check_array", "check_activation", "check_integer_range",
           "check_tolerances", "MIN_RTOL", "check_memory", "check_workers"]

#: the smallest relative tolerance float64 can honour: 100 machine epsilons, as scipy's
#: ``solve_ivp`` (which raises smaller ones to it with a warning; odeprune refuses them)
MIN_RTOL = 100 * float(np.finfo(float).eps)


def check_size(name: str, value: Any) -> int:
    """A positive integer (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} must be a positive integer")
    if value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer (>= 1)")
    return int(value)


def check_workers(name: str, value: Any) -> int | None:
    """A worker count: None (the default: every available core) or a positive integer; the one
    rule of every ``workers`` / ``n_workers`` / ``max_workers`` argument (bools refused: ``True``
    is not a count)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer (or None: every "
                         "available core)")
    return int(value)


def check_real(name: str, value: Any, allow_zero: bool = False) -> float:
    """A finite real number ``> 0`` (or ``>= 0`` with ``allow_zero``); bools refused."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be a real number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a real number") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'} and finite")
    return x


def check_tolerances(rtol: Any, atol: Any) -> tuple[float, float]:
    """``(rtol, atol)`` of an adaptive integrator: finite, ``> 0``, and ``rtol >= MIN_RTOL``
    (``100 eps = 2.2e-14``). Below that a step's error test asks for differences under the
    roundoff of ``y`` itself: the controller would shrink the step until it underflows, after
    minutes, and end in a bogus divergence."""
    rtol = check_real("rtol", rtol)
    atol = check_real("atol", atol)
    if rtol < MIN_RTOL:
        raise ValueError(f"rtol={rtol:g} is below what float64 can honour; the minimum is "
                         f"rtol={MIN_RTOL:.3g} (100 machine epsilons, as scipy's solve_ivp)")
    return rtol, atol


def available_memory() -> int:
    """Bytes of memory available to a new allocation: ``MemAvailable`` of ``/proc/meminfo``
    (Linux), else the physical memory (``os.sysconf``), else no limit."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - exotic platforms
        return 1 << 62


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


def check_memory(what: str, n_floats: float, hint: str) -> None:
    """Refuse, before allocating, a computation whose arrays need ``n_floats`` float64 numbers
    (an estimate of the largest arrays it holds at once) when they exceed the available memory
    (:func:`available_memory`): one line naming ``what`` (e.g. ``"N=10^12, K=6, M=2"``), the
    estimate, what is available and ``hint`` (what to change). Without it numpy raised
    ``MemoryError`` tracebacks (or the kernel killed the process) after the work had started."""
    need = 8.0 * float(n_floats)
    have = available_memory()
    if need > have:
        raise ValueError(f"{what} needs about {_bytes(need)} of memory, more than the "
                         f"{_bytes(have)} available; {hint}")


def check_activation(activation: Any, recorded: str | None, source: str = "the input") -> str:
    """The activation to use: ``recorded`` (the one the input carries, e.g. a simulation's
    ``metadata["activation"]``) unless ``activation`` is given; a given one that differs from a
    recorded one is refused (it would compute another network's numbers). Neither: erf."""
    rec = None if recorded is None else get_activation(recorded).name
    if activation is None:
        return rec or "erf"
    name = get_activation(activation).name
    if rec is not None and name != rec:
        raise ValueError(f"activation={activation!r} conflicts with the activation {rec!r} of "
                         f"{source}; omit it (the recorded one is used)")
    return name


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """One integer (not a bool) in ``lo..hi`` (``hi=None``: no upper bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value!r} must be an integer ({allowed})")
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value!r} is out of range; allowed {allowed}")
    return int(value)


def check_integer_range(name: str, value: Any, lo: Any = -math.inf, hi: Any = math.inf,
                        allowed: str | None = None, integer: bool = True) -> np.ndarray:
    """An array_like of numbers (integers when ``integer``), every entry within ``[lo, hi]``
    (bounds broadcast against ``value``); returns it as a float array of ``value``'s shape.

    One ``ValueError`` naming ``name``, the first offending entry as the user wrote it (``3``,
    not ``3.0``) and what is allowed (``allowed``, default ``lo..hi``)."""
    rng = allowed or f"{_num(lo)}..{_num(hi)}"
    try:
        x = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged lists and the like
        x = np.asarray(None)
    if x.dtype == bool or x.dtype.kind not in "iuf":
        raise ValueError(f"{name}={value!r} must be {'an integer' if integer else 'a real number'}"
                         f" ({rng})")
    xf = x.astype(float)
    xb, lo_b, hi_b = np.broadcast_arrays(xf, np.asarray(lo, dtype=float),
                                         np.asarray(hi, dtype=float))
    nonfinite = ~np.isfinite(xb)
    if integer:
        frac = ~nonfinite & (xb != np.round(xb))
        if np.any(frac):
            first = _num(xb[frac].ravel()[0])
            raise ValueError(f"{name}={first} must be an integer; allowed {rng}")
    bad = nonfinite | (xb < lo_b) | (xb > hi_b)
    if np.any(bad):
        raise ValueError(f"{name}={_num(xb[bad].ravel()[0])} is out of range; allowed {rng}")
    return xf


def _num(x: Any) -> str:
    """A number as the user would have written it (3, not 3.0)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return repr(x)
    if math.isfinite(f) and f == round(f) and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def check_mask(name: str, value: Any, shape: tuple | None = None, what: str = "") -> np.ndarray:
    """A 0/1 (or bool) mask as a fresh bool array; ``shape`` (optional) its required shape, with
    ``what`` naming its axes in the message (e.g. ``"(K, N)"``)."""
    m = np.asarray(value)
    if shape is not None and m.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {what + ' = ' if what else ''}{tuple(shape)}, "
                         f"got {m.shape}")
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.number) or np.iscomplexobj(m) \
                or not np.all((m == 0) | (m == 1)):
            raise ValueError(f"{name} must contain only 0/1 (or False/True) entries")
        m = m.astype(bool)
    return m.copy()


def check_array(name: str, value: Any, ndim: int) -> np.ndarray:
    """A read-only float array with ``ndim`` dimensions and finite entries (the copy is new).
    Complex and boolean input is refused (numpy would drop the imaginary part with only a
    ``ComplexWarning``, or read True as 1)."""
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):
        kind = None  # ragged input: the float conversion below names it
    if kind in ("c", "b"):
        what = "complex" if kind == "c" else "boolean"
        raise ValueError(f"{name} must be a real array, got {what} values")
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real array, got {type(value).__name__}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains a non-finite value ({float(arr[tuple(bad)])}) at index "
                         f"{tuple(int(i) for i in bad)}")
    arr.setflags(write=False)
    return arr


def readonly(a, dtype=float) -> np.ndarray:
    """A read-only copy of ``a`` (result containers are immutable)."""
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


def check_save_at(save_at: Any, alpha_max: float) -> np.ndarray:
    """``save_at`` as sorted unique finite times in ``[0, alpha_max]``, ``alpha_max`` added."""
    t = np.array(save_at, dtype=float).ravel()
    if t.size == 0:
        raise ValueError("save_at must contain at least one time")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"save_at must contain finite times >= 0, got {t}")
    if np.any(t > alpha_max * (1 + 1e-12)):
        raise ValueError(f"save_at contains {float(t.max())!r} > alpha_max={alpha_max!r}")
    t = np.unique(np.concatenate([t, [alpha_max]]))
    return t


# ------------------------------------------------------------------------------ seeds
def check_seed(name: str, value: Any) -> int:
    """A run's seed: a non-negative integer (it names streams and checkpoint files)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer")
    return int(value)


def check_rng_seed(seed: Any, name: str = "seed") -> Any:
    """``seed`` if numpy can seed a Generator with it (an int >= 0, a SeedSequence, a
    Generator, or None for fresh entropy); one-line ``ValueError`` otherwise."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    return check_seed(name, seed)


def as_generator(seed: Any) -> np.random.Generator:
    """Turn ``seed`` (int, SeedSequence, Generator or None) into a ``numpy.random.Generator``
    (a Generator is used as it is: its stream continues)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_rng_seed(seed))
