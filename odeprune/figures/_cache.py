"""The figures' cache and data files: a parameter-keyed cache of JSON values and the atomic
``NAME.json`` / ``NAME.csv`` writers.

Every expensive item is stored in ``cache_dir`` under a name made of its kind and a hash of
everything it depends on. Light on purpose (the standard library and ``odeprune._io`` only):
:mod:`odeprune.figures` imports it at start-up, so listing the figures pays for no numerics or
plotting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _io

#: Bump when the meaning of a cached item changes (invalidates every cache entry).
CACHE_VERSION = 1


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_io._json_default))


def param_hash(kind: str, params: dict) -> str:
    """Short stable hash of ``kind``, ``params`` and the cache version."""
    text = json.dumps({"kind": kind, "params": _jsonable(params), "v": CACHE_VERSION},
                      sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_path(cache_dir: Path | None, kind: str, params: dict, suffix: str) -> Path | None:
    if cache_dir is None:
        return None
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir / f"{kind}-{param_hash(kind, params)}{suffix}"


def cached_json(cache_dir: Path | None, kind: str, params: dict,
                compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON-serialisable value), stored in and reused from ``cache_dir``."""
    path = cache_path(cache_dir, kind, params, ".json")
    if path is not None and path.exists():
        try:
            return json.loads(path.read_text())["value"]
        except (json.JSONDecodeError, KeyError):
            pass  # a corrupt entry: recompute
    value = _jsonable(compute())
    if path is not None:
        _io.atomic_write_text(path, json.dumps({"kind": kind, "params": _jsonable(params),
                                                "value": value}))
    return value


#: long-format CSV of rows (dicts): :func:`odeprune._io.rows_to_csv`
rows_to_csv = _io.rows_to_csv


def write_data(out_dir: Path, name: str, data: dict) -> list[Path]:
    """``<name>.json`` (everything: parameters, version, seeds, results) and ``<name>.csv``
    (the long-format ``data["rows"]``), both written atomically."""
    out_dir = Path(out_dir)
    meta = dict(data)
    meta.setdefault("odeprune_version", _io.package_version())
    paths = [_io.atomic_write_text(out_dir / f"{name}.json",
                                   json.dumps(_jsonable(meta), sort_keys=True,
                                              separators=(",", ":")) + "\n")]
    if data.get("rows"):
        paths.append(_io.atomic_write_text(out_dir / f"{name}.csv", rows_to_csv(data["rows"])))
    return paths
