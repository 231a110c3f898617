"""The points' cache of a sweep: one file ``DIR/<task>-<hash>.npz`` per finished point, an entry of
the package's one cache (:mod:`odeprune._cache`: atomic writes, ordinary files), the hash covering
the task, the point's full parameters (an ``init`` by its content) and the package version.
:class:`SweepPoint` reads one (as :func:`odeprune.load` does)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _io
from .._cache import entry_hash, entry_name

__all__ = ["SweepPoint", "point_key", "point_file", "write_point", "read_point", "init_token",
           "canonical", "is_orderparams"]

_KIND = "SweepPoint"


def is_orderparams(x) -> bool:
    """Whether ``x`` is a dense :class:`~odeprune.state.OrderParams` (an ``init`` value)."""
    return type(x).__name__ == "OrderParams" and hasattr(x, "to_arrays")


def init_token(init):
    """What identifies an initial state in a cache key: a file by its content, an OrderParams
    by its arrays."""
    if init is None:
        return None
    h = hashlib.sha256()
    if is_orderparams(init):
        for name, a in sorted(init.to_arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(a, dtype=float).tobytes())
        h.update(str(getattr(init, "activation", "")).encode())
        return f"OrderParams:{h.hexdigest()[:16]}"
    h.update(Path(init).read_bytes())
    return f"file:{Path(init).name}:{h.hexdigest()[:16]}"


def canonical(params: dict) -> str:
    """``params`` as sorted JSON (numpy numbers as numbers): the form a key hashes."""
    return json.dumps(params, sort_keys=True, default=_io._json_default)


def _key_params(p: dict) -> dict:
    if p.get("init") is not None:
        p = dict(p, init=init_token(p["init"]))
    return p


def _entry_kind(task_id: str) -> str:
    """The file-name stem of a task's points (``module:function`` -> ``function``)."""
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in task_id.split(":")[-1])


def _entry_params(task_id: str, params: dict) -> dict:
    return {"task": task_id, "params": _key_params(params),
            "odeprune_version": _io.package_version()}


def point_key(task_id: str, params: dict) -> str:
    """Hash of the task, a point's full parameters, the package version and the cache
    version (:func:`odeprune._cache.entry_hash`): the cache file's name."""
    return entry_hash(_entry_kind(task_id), _entry_params(task_id, params))


def point_file(directory: Path, task_id: str, params: dict) -> Path:
    """The cache file of a point in the (existing) cache ``directory``:
    ``directory/<task>-<point_key>.npz``."""
    return Path(directory) / entry_name(_entry_kind(task_id), _entry_params(task_id, params),
                                        ".npz")


def write_point(path: Path, params: dict, result) -> None:
    """Write a finished point (``result``: its ``(data, coords)``) atomically."""
    data, coords = result
    arrays = {f"v:{n}": a for n, (_, a) in data.items()}
    arrays.update({f"c:{n}": a for n, a in coords.items()})
    meta = dict(params=json.loads(canonical(_key_params(params))),
                dims={n: list(d) for n, (d, _) in data.items()},
                order=list(data), coords=list(coords))
    _io.write_npz(path, _KIND, arrays, meta)


@dataclass(frozen=True, eq=False)
class SweepPoint:
    """One cached point of a sweep, as :func:`sweep` writes it to ``DIR/<task>-<hash>.npz``
    (an ordinary odeprune file: :func:`odeprune.load` reads it).

    Attributes
    ----------
    params : dict
        The point's full parameters (defaults included; an ``init`` by its content hash).
    outputs : dict
        Output name -> array (``eg`` over ``alpha`` for the ``integrate`` task, ...).
    dims : dict
        Output name -> its own dimensions (``("alpha",)``).
    coords : dict
        Dimension -> coordinate array (``alpha``).
    metadata : dict
        The rest of the file's metadata (package version, ...).
    """

    params: dict
    outputs: dict
    dims: dict
    coords: dict
    metadata: dict

    KIND = _KIND

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepPoint:
        arrays, meta = _io.read_npz(path, cls.KIND)
        try:
            outputs = {n: arrays[f"v:{n}"] for n in meta["order"]}
            coords = {n: arrays[f"c:{n}"] for n in meta["coords"]}
            dims = {n: tuple(meta["dims"][n]) for n in meta["order"]}
            params = dict(meta["params"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"file {str(path)!r} is a truncated SweepPoint: missing {exc}"
                             ) from None
        rest = {k: v for k, v in meta.items()
                if k not in ("order", "coords", "dims", "params", "kind", "format_version")}
        return cls(params=params, outputs=outputs, dims=dims, coords=coords, metadata=rest)

    def __repr__(self) -> str:
        return f"SweepPoint({self.params}, outputs={list(self.outputs)})"


def read_point(path: Path):
    """A cached point's ``(data, coords)``, or None when the file cannot be read (recompute)."""
    try:
        arrays, meta = _io.read_npz(path, _KIND)
        data = {n: (tuple(meta["dims"][n]), arrays[f"v:{n}"]) for n in meta["order"]}
        coords = {n: arrays[f"c:{n}"] for n in meta["coords"]}
    except (ValueError, KeyError, TypeError):
        return None  # unreadable or foreign: recompute
    return data, coords
