"""The odeprune file format: one ``.npz`` with named arrays plus a JSON ``metadata`` entry.

Every file is written to a temporary name in the target directory and renamed into place, so a
crash or an interrupt never leaves a partial file behind. Every file carries its ``kind`` (which
result class wrote it), a ``format_version`` and the ``odeprune_version`` that wrote it; loading
checks all three and refuses pickled objects.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

#: Version of the on-disk format. Bump when the layout of a result file changes.
#: 2: ``T`` and ``v_star`` of LearningCurve / SimulationResult files are arrays (version 1 kept
#: them in the JSON metadata; still read); every state-holding file records its activation.
FORMAT_VERSION = 2

__all__ = ["FORMAT_VERSION", "write_npz", "read_npz", "atomic_write_text", "atomic_write_path",
           "package_version", "rows_to_csv"]


def package_version() -> str:
    try:
        return version("odeprune")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON serialisable")


def _umask_mode() -> int:
    """``0o666`` masked by the process umask: the mode a plain ``open(..., "w")`` would give
    (``mkstemp`` creates files ``0o600``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ValueError(f"output path {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"output path {str(path)!r}: directory {str(parent)!r} is not writable")
    if path.is_dir():
        raise ValueError(f"output path {str(path)!r} is a directory, expected a file name")


def write_npz(path: str | os.PathLike, kind: str, arrays: dict[str, np.ndarray],
              metadata: dict[str, Any] | None = None) -> Path:
    """Write ``arrays`` and ``metadata`` to ``path`` atomically (temporary file + rename).

    ``.npz`` is appended when missing, as numpy does. Returns the final path.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output path {str(path)!r} is a directory, expected a file name")
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    _check_writable(path)
    meta = dict(metadata or {})
    meta.update(kind=kind, format_version=FORMAT_VERSION, odeprune_version=package_version())
    if "metadata" in arrays:
        raise ValueError("'metadata' is a reserved array name")
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in payload.items():
        if a.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; refusing to pickle")
    payload["metadata"] = np.array(json.dumps(meta, default=_json_default, sort_keys=True))
    return _atomic_write(path, "wb", lambda fh: np.savez(fh, **payload))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (CSV, JSON) atomically."""
    path = Path(path)
    _check_writable(path)
    return _atomic_write(path, "w", lambda fh: fh.write(text))


def atomic_write_path(path: str | os.PathLike, write) -> Path:
    """``write(tmp_path)`` for writers that take a file name (matplotlib's ``savefig``): into a
    uniquely named temporary file beside ``path`` (same suffix, so the format is inferred from
    it), then renamed into place; removed on any failure."""
    path = Path(path)
    _check_writable(path)
    return _via_temporary(path, f".tmp{path.suffix}", write)


def _atomic_write(path: Path, mode: str, write) -> Path:
    """``write(fh)`` into a temporary file beside ``path``, fsync, then rename it into place."""
    def to_file(tmp):
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())

    return _via_temporary(path, ".tmp", to_file)


def _via_temporary(path: Path, suffix: str, write) -> Path:
    """``write(tmp_name)``, then rename the temporary file onto ``path``; on any failure (an
    interrupt included) the temporary file is removed. The temporary name is unique
    (``mkstemp``), so concurrent writers of the same path never share it: the last rename wins,
    and every reader sees one complete file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent or ".")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def read_npz(path: str | os.PathLike, kinds: str | tuple[str, ...] | None = None,
             allow_plain: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an odeprune ``.npz``; check it is one, of an accepted ``kind`` and format version.

    Raises ``ValueError`` with a message naming the file for anything else: a missing file, a file
    that is not a zip/npz, a truncated file, a file without odeprune metadata, a different kind or
    a newer format version. With ``allow_plain``, a ``.npz`` without metadata (``np.savez`` of
    plain arrays) is returned with ``{"kind": "plain", "format_version": 0}``.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(
            f"file {str(path)!r} is not a readable odeprune result (.npz): {exc}"
        ) from None
    if "metadata" not in arrays and allow_plain:
        return arrays, {"kind": "plain", "format_version": 0}
    if "metadata" not in arrays:
        raise ValueError(f"file {str(path)!r} is not an odeprune result: it has no metadata entry")
    try:
        meta = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"file {str(path)!r} has corrupt metadata: {exc}") from None
    if not isinstance(meta, dict) or "kind" not in meta or "format_version" not in meta:
        raise ValueError(f"file {str(path)!r} is not an odeprune result: metadata lacks kind/version")
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise ValueError(
            f"file {str(path)!r} was written with format version {meta['format_version']} by "
            f"odeprune {meta.get('odeprune_version', '?')}; this odeprune reads versions up to "
            f"{FORMAT_VERSION}: upgrade odeprune"
        )
    if kinds is not None:
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        if meta["kind"] not in kinds:
            raise ValueError(
                f"file {str(path)!r} holds a {meta['kind']}, expected {' or '.join(kinds)}"
            )
    return arrays, meta


def rows_to_csv(rows) -> str:
    """Rows (dicts) as long-format CSV text: the union of their columns in first-seen order;
    floats with ``repr`` (round-trip exact), missing values and ``None`` empty."""
    fields: list[str] = []
    for r in rows:
        for k in r:
            if k not in fields:
                fields.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                    for k, v in r.items()})
    return buf.getvalue()
