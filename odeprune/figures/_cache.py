"""The figures' data files and their cache.

Every expensive item is an entry of the package's one cache (:mod:`odeprune._cache`, shared with
the sweep): a file in ``cache_dir`` named by its kind and a hash of everything it depends on,
written atomically. This module adds the figures' outputs, the atomic ``NAME.json`` /
``NAME.csv`` writers. Light on purpose (the standard library and ``odeprune._io`` only):
:mod:`odeprune.figures` imports it at start-up, so listing the figures pays for no numerics or
plotting.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import _io
from .._cache import cached_file, cached_json, jsonable

__all__ = ["cached_json", "cached_file", "rows_to_csv", "write_data"]

#: long-format CSV of rows (dicts): :func:`odeprune._io.rows_to_csv`
rows_to_csv = _io.rows_to_csv


def write_data(out_dir: Path, name: str, data: dict) -> list[Path]:
    """``<name>.json`` (everything: parameters, version, seeds, results) and ``<name>.csv``
    (the long-format ``data["rows"]``), both written atomically."""
    out_dir = Path(out_dir)
    meta = dict(data)
    meta.setdefault("odeprune_version", _io.package_version())
    paths = [_io.atomic_write_text(out_dir / f"{name}.json",
                                   json.dumps(jsonable(meta), sort_keys=True,
                                              separators=(",", ":")) + "\n")]
    if data.get("rows"):
        paths.append(_io.atomic_write_text(out_dir / f"{name}.csv", rows_to_csv(data["rows"])))
    return paths
