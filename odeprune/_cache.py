"""The one cache of computed results, used by the sweep (one file per grid point) and the figures
(one file per simulation seed, ODE curve or figure item).

An entry is a file ``DIR/<kind>-<hash><suffix>``: ``hash`` covers ``kind``, every parameter the
value depends on (JSON) and :data:`CACHE_VERSION`; a caller whose values depend on the package
version (the sweep) puts the version among the parameters. Every write is atomic (a temporary file
beside the entry, then a rename: :mod:`odeprune._io`), so a killed run leaves whole entries or
none, and every entry is an ordinary file (``.json``, or an odeprune ``.npz`` that
:func:`odeprune.load` reads). An entry that cannot be read (a disk error, a foreign file) is
computed again and replaced.

Light on purpose (the standard library and :mod:`odeprune._io`): the figure registry imports it
at start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _io

__all__ = ["CACHE_VERSION", "jsonable", "entry_hash", "entry_name", "entry", "cache_dir",
           "cached_json", "cached_file"]

#: Bump when the meaning of cached values changes (invalidates every entry, sweep and figures).
CACHE_VERSION = 1


def jsonable(obj: Any) -> Any:
    """``obj`` through JSON and back (numpy scalars and arrays as numbers and lists)."""
    return json.loads(json.dumps(obj, default=_io._json_default))


def entry_hash(kind: str, params: dict) -> str:
    """Short stable hash of ``kind``, ``params`` and :data:`CACHE_VERSION`."""
    text = json.dumps({"kind": kind, "params": jsonable(params), "v": CACHE_VERSION},
                      sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_dir(path: str | os.PathLike, what: str = "cache") -> Path:
    """``path`` as a cache directory, created with its parents; one line when it cannot be one
    (``what`` names the argument in the message)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what}={str(path)!r} is a file; the cache is a directory (give "
                         "another path, or delete the file)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what}={str(path)!r}: cannot create the directory "
                         f"({exc.strerror or exc})") from None
    return path


def entry_name(kind: str, params: dict, suffix: str) -> str:
    """The file name of the entry ``(kind, params)``: ``<kind>-<hash><suffix>``."""
    return f"{kind}-{entry_hash(kind, params)}{suffix}"


def entry(directory: str | os.PathLike | None, kind: str, params: dict,
          suffix: str) -> Path | None:
    """The file of the entry ``(kind, params)`` in ``directory`` (created if needed); None
    without a directory (nothing is cached)."""
    if directory is None:
        return None
    directory = Path(directory)
    if not directory.is_dir():
        cache_dir(directory)
    return directory / entry_name(kind, params, suffix)


def cached_json(directory: str | os.PathLike | None, kind: str, params: dict,
                compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON-serialisable value), stored in and reused from ``directory``."""
    path = entry(directory, kind, params, ".json")
    if path is not None and path.exists():
        try:
            return json.loads(path.read_text())["value"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
            pass  # a corrupt entry: recompute
    value = jsonable(compute())
    if path is not None:
        _io.atomic_write_text(path, json.dumps({"kind": kind, "params": jsonable(params),
                                                "value": value}))
    return value


def cached_file(directory: str | os.PathLike | None, kind: str, params: dict,
                compute: Callable[[], Any], load: Callable[[Path], Any]) -> Any:
    """``compute()``, an object with ``save(path)`` (an odeprune result: written atomically),
    stored in and reused from ``directory`` (read back by ``load``; a file it refuses with
    ``ValueError`` is computed again)."""
    path = entry(directory, kind, params, ".npz")
    if path is not None and path.exists():
        try:
            return load(path)
        except ValueError:
            pass
    value = compute()
    if path is not None:
        value.save(path)
    return value
