"""The odeprune file format: one ``.npz`` with named arrays plus a JSON ``metadata`` entry.

Every file is written to a temporary name in the target directory and renamed into place, so a
crash or an interrupt never leaves a partial file behind. Every file carries its ``kind`` (which
result class wrote it), a ``format_version`` and the ``odeprune_version`` that wrote it; loading
checks all three and refuses pickled objects.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

#: Version of the on-disk format. Bump when the layout of a result file changes.
#: 2: ``T`` and ``v_star`` of LearningCurve / SimulationResult files are arrays (version 1 kept
#: them in the JSON metadata; still read); every state-holding file records its activation.
FORMAT_VERSION = 2

__all__ = ["FORMAT_VERSION", "write_npz", "read_npz", "atomic_write_text", "atomic_write_path",
           "package_version", "rows_to_csv", "SCHEMAS", "check_arrays", "KINDS", "STATE_READERS",
           "register_kind", "result_class", "load"]

# ------------------------------------------------------------------------------ the schemas
#: what the symbolic axis names of :data:`SCHEMAS` stand for (all at least 1 long)
AXES = {"n": "saved times", "K": "student units", "M": "teacher units", "S": "mask classes",
        "N": "inputs", "r": "runs", "o": "outcomes", "k": "kept units"}

_CURVE = {"alpha": (("n",), "real"), "eg": (("n",), "real"), "Q": (("n", "K", "K"), "real"),
          "R": (("n", "K", "M"), "real"), "v": (("n", "K"), "real"),
          "T": (("M", "M"), "real"), "v_star": (("M",), "real")}
_STATE = {"Q": (("K", "K"), "real"), "R": (("K", "M"), "real"), "T": (("M", "M"), "real"),
          "v": (("K",), "real"), "v_star": (("M",), "real")}
_SPARSE = {"patterns": (("S", "K"), "mask"), "f": (("S",), "real"),
           "Q": (("S", "K", "K"), "real"), "R": (("S", "K", "M"), "real"),
           "T": (("S", "M", "M"), "real"), "v": (("K",), "real"), "v_star": (("M",), "real")}
_RUN = {"eg_test": (("n",), "real"), "eg_test_se": (("n",), "real"),
        "w": (("K", "N"), "real"), "w_star": (("M", "N"), "real"), "P": (("n", "K", "K"), "real")}

#: kind -> {array name: (symbolic shape, dtype class)}: what :func:`read_npz` checks of every
#: array a file holds (arrays a loader needs but the file lacks are the loader's "truncated"
#: message). dtype classes: ``real`` (integer or float; not bool, not complex), ``int``,
#: ``mask`` (bool, or integers 0/1). Every other array of any kind is refused when complex.
SCHEMAS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "OrderParams": _STATE,
    "plain": {**_STATE, "w": (("K", "N"), "real"), "w_star": (("M", "N"), "real")},
    "LearningCurve": {**_CURVE, "P": (("n", "K", "K"), "real")},
    "TwoTimeCurve": {**_CURVE, "P": (("n", "K", "K"), "real")},
    "SimulationResult": {**_CURVE, **_RUN},
    "SimulationEnsemble": {name: (("r", *shape), cls) for name, (shape, cls)
                           in {**_CURVE, **_RUN}.items()},
    "SparseOrderParams": _SPARSE,
    "SparseLearningCurve": {**_CURVE, "patterns": (("S", "K"), "mask"), "f": (("S",), "real"),
                            "T_cls": (("S", "M", "M"), "real"),
                            "Q_cls": (("n", "S", "K", "K"), "real"),
                            "R_cls": (("n", "S", "K", "M"), "real"),
                            "P_cls": (("n", "S", "K", "K"), "real")},
    "PruneResult": {"subsets": (("o", "k"), "int"), "probabilities": (("o",), "real"),
                    "eg_values": (("o",), "real"), "Q": (("o", "k", "k"), "real"),
                    "R": (("o", "k", "M"), "real"), "v": (("o", "k"), "real"),
                    "T": (("M", "M"), "real"), "v_star": (("M",), "real"),
                    **{f"masked_{name}": (tuple("K" if a == "k" else a for a in shape), cls)
                       for name, (shape, cls) in _SPARSE.items()}},
}


def check_arrays(path, kind: str, arrays: dict[str, np.ndarray]) -> None:
    """Check the arrays of a file of ``kind`` against :data:`SCHEMAS`: dimensions, dtype and
    consistent axis lengths (each at least 1). One ``ValueError`` line naming the file, the
    array and what was expected; the loaders then only see well-formed arrays."""
    schema = SCHEMAS.get(kind, {})
    sizes: dict[str, tuple[int, str]] = {}
    for name, a in arrays.items():
        where = f"file {str(path)!r}: array {name!r}"
        if a.dtype.kind == "c":
            raise ValueError(f"{where} is complex ({a.dtype}); odeprune results are real")
        if name not in schema:
            continue
        shape, cls = schema[name]
        axes = ", ".join(AXES.get(x, x) for x in shape)
        if a.ndim != len(shape):
            raise ValueError(f"{where} must have {len(shape)} dimension(s) ({axes}), got shape "
                             f"{a.shape}")
        if cls == "mask":
            if a.dtype.kind not in "biu" or (a.dtype.kind != "b" and a.size
                                              and not np.all((a == 0) | (a == 1))):
                bad = (a.ravel()[0] if a.dtype.kind not in "biu"
                       else a[(a != 0) & (a != 1)][0]).item()
                raise ValueError(f"{where} is a mask: its entries must be 0/1 or True/False, "
                                 f"got {bad!r} (dtype {a.dtype})")
        elif cls == "int" and a.dtype.kind not in "iu":
            raise ValueError(f"{where} must hold integers, got dtype {a.dtype}")
        elif cls == "real" and a.dtype.kind not in "iuf":
            raise ValueError(f"{where} must hold real numbers, got dtype {a.dtype}")
        for sym, length in zip(shape, a.shape):
            if length < 1:
                raise ValueError(f"{where} has no {AXES.get(sym, sym)} (shape {a.shape}); at "
                                 "least one is needed")
            if sym in sizes and sizes[sym][0] != length:
                raise ValueError(f"{where} has {length} {AXES.get(sym, sym)} (shape {a.shape}) "
                                 f"where array {sizes[sym][1]!r} has {sizes[sym][0]}")
            sizes.setdefault(sym, (length, name))


def _check_metadata(path: Path, meta: Any) -> None:
    """``kind`` a string, ``format_version`` a non-negative integer: one line naming the file
    and the field otherwise."""
    if not isinstance(meta, dict) or "kind" not in meta or "format_version" not in meta:
        raise ValueError(f"file {str(path)!r} is not an odeprune result: metadata lacks "
                         "kind/version")
    if not isinstance(meta["kind"], str):
        raise ValueError(f"file {str(path)!r}: metadata field 'kind' must be a string (the "
                         f"result class, e.g. 'LearningCurve'), got {meta['kind']!r}")
    version_ = meta["format_version"]
    if isinstance(version_, bool) or not isinstance(version_, int) or version_ < 0:
        raise ValueError(f"file {str(path)!r}: metadata field 'format_version' must be a "
                         f"non-negative integer, got {version_!r}")


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
    that is not a zip/npz, a truncated file, a file without odeprune metadata, metadata whose
    ``kind`` / ``format_version`` are not a string / an integer, a different kind, a newer
    format version, or arrays that do not fit the kind's schema (:func:`check_arrays`:
    dimensions, dtype, axis lengths; complex arrays anywhere). With ``allow_plain``, a ``.npz`` without metadata (``np.savez`` of
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
        check_arrays(path, "plain", arrays)
        return arrays, {"kind": "plain", "format_version": 0}
    if "metadata" not in arrays:
        raise ValueError(f"file {str(path)!r} is not an odeprune result: it has no metadata entry")
    try:
        meta = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"file {str(path)!r} has corrupt metadata: {exc}") from None
    _check_metadata(path, meta)
    if meta["format_version"] == 1:
        _from_format_1(arrays, meta)
    if meta["format_version"] > FORMAT_VERSION:
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
    check_arrays(path, meta["kind"], arrays)
    return arrays, meta


def _from_format_1(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """A format-1 file as format 2, in place: curves and simulations kept ``T`` and ``v_star``
    in the JSON metadata (every other kind's layout is unchanged)."""
    if meta["kind"] not in ("LearningCurve", "SimulationResult"):
        return
    for name in ("T", "v_star"):
        if name not in arrays and isinstance(meta.get(name), list):
            arrays[name] = np.asarray(meta.pop(name), dtype=float)


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


# ------------------------------------------------------------------------------ the kinds
#: kind stored in a file -> ``"module:Class"``, the result class that owns the format (imported
#: on first use, so that reading one kind never imports the others). The class reads the file
#: with its ``from_npz(path, arrays, metadata)`` (the file is then read once), or, when it has
#: none, with ``load(path)``. ``"plain"`` is a ``np.savez`` file without odeprune metadata.
KINDS: dict[str, str] = {
    "plain": "odeprune.state:OrderParams",
    "OrderParams": "odeprune.state:OrderParams",
    "LearningCurve": "odeprune.results:LearningCurve",
    "SimulationResult": "odeprune.sim:SimulationResult",
    "SimulationEnsemble": "odeprune.sim:SimulationEnsemble",
    "PruneResult": "odeprune.pruning:PruneResult",
    "SparseOrderParams": "odeprune.sparse:SparseOrderParams",
    "SparseLearningCurve": "odeprune.sparse:SparseLearningCurve",
    "TwoTimeCurve": "odeprune.sparse:TwoTimeCurve",
    "WorkflowResult": "odeprune.workflows:WorkflowResult",
    "CoordinateLaw": "odeprune.coords:CoordinateLaw",
    "CoordinateCurve": "odeprune.coords:CoordinateCurve",
    "SweepPoint": "odeprune.sweeps:SweepPoint",  # a sweep's cached point
}

#: kind -> the reader of the one set of dense order parameters a file of that kind holds
#: (``reader(path, arrays, metadata, select) -> (state, info)``, see
#: :func:`odeprune.state.load_state`), or a string: why a file of that kind holds none (what
#: to do instead). Kinds without an entry hold no order parameters.
STATE_READERS: dict[str, Callable | str] = {}


def register_kind(kind: str, target: str | type, state_reader: Callable | str | None = None,
                  replace: bool = False) -> None:
    """Register a kind of file: ``odeprune.load`` reads it with ``target`` (a class, or
    ``"module:Class"`` imported on first use), :func:`odeprune.state.load_state` with
    ``state_reader`` (optional). A kind already registered to another target is refused unless
    ``replace``."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind={kind!r} must be a non-empty string")
    if kind.endswith("Checkpoint"):
        raise ValueError(f"kind={kind!r}: checkpoints are resumed, not loaded as results")
    if not isinstance(target, str):
        target = f"{target.__module__}:{target.__qualname__}"
    if ":" not in target:
        raise ValueError(f"target={target!r} must be 'module:Class' or a class")
    if kind in KINDS and KINDS[kind] != target and not replace:
        raise ValueError(f"kind {kind!r} is already read by {KINDS[kind]}; pass replace=True")
    KINDS[kind] = target
    if state_reader is not None:
        STATE_READERS[kind] = state_reader


def result_class(kind: str, path: Any = "?") -> type:
    """The class registered for ``kind``; one line naming the file for a checkpoint or an
    unknown kind."""
    if kind.endswith("Checkpoint"):
        raise ValueError(f"file {str(path)!r} is a checkpoint ({kind}), not a result: continue "
                         "its run with resume=True (CLI: the same command with --resume)")
    if kind not in KINDS:
        raise ValueError(f"file {str(path)!r} holds an unknown kind {kind!r}; odeprune.load "
                         f"reads {sorted(k for k in KINDS if k != 'plain')}")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def load(path: str | os.PathLike) -> Any:
    """Load any odeprune result file, dispatching on the ``kind`` stored in it (:data:`KINDS`).

    A plain ``.npz`` without odeprune metadata (``np.savez`` of ``Q, R, T, v, v_star``, or of
    the weights ``w, w_star, v, v_star``) loads as an :class:`~odeprune.state.OrderParams`.
    """
    arrays, meta = read_npz(path, allow_plain=True)
    cls = result_class(meta["kind"], path)
    from_npz = getattr(cls, "from_npz", None)
    return cls.load(path) if from_npz is None else from_npz(path, arrays, meta)

