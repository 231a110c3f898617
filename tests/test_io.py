"""The file format (``odeprune/_io.py``): malformed, truncated, newer and pickled files, and
atomic writes."""

import json
import os

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune._io import FORMAT_VERSION, read_npz, write_npz


def test_not_an_npz(tmp_path):
    p = tmp_path / "x.npz"
    p.write_text("hello")
    with pytest.raises(ValueError, match="not a readable odeprune result"):
        odeprune.load(p)


def test_npz_without_metadata(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, Q=np.eye(2))
    with pytest.raises(ValueError, match="has no metadata entry"):
        OrderParams.load(p)


def test_truncated_file(tmp_path):
    s = OrderParams.specialised(2, 2, 1.0)
    p = s.save(tmp_path / "s.npz")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable odeprune result"):
        OrderParams.load(p)


def test_newer_format_version(tmp_path):
    p = write_npz(tmp_path / "s.npz", "OrderParams", {"Q": np.eye(1)})
    with np.load(p) as d:
        arrays_ = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays_.pop("metadata")))
    meta["format_version"] = FORMAT_VERSION + 1
    np.savez(p, metadata=np.array(json.dumps(meta)), **arrays_)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*upgrade"):
        read_npz(p)


def test_wrong_kind_and_missing_arrays(tmp_path):
    curve = odeprune.integrate(OrderParams.random(50, 2, 1, seed=0), 0.5, 1.0)
    p = curve.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="holds a LearningCurve, expected SimulationResult"):
        read_npz(p, "SimulationResult")
    q = write_npz(tmp_path / "o.npz", "OrderParams", {"Q": np.eye(1)})
    with pytest.raises(ValueError, match="lacks array"):
        OrderParams.load(q)


def test_pickled_objects_are_refused(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, metadata=np.array(json.dumps({"kind": "OrderParams", "format_version": 1})),
             Q=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="not a readable odeprune result"):
        OrderParams.load(p)


def test_unwritable_output(tmp_path):
    s = OrderParams.specialised(1, 1, 1.0)
    with pytest.raises(ValueError, match="does not exist"):
        s.save(tmp_path / "missing" / "s.npz")
    with pytest.raises(ValueError, match="is a directory"):
        s.save(tmp_path)
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ValueError, match="not writable"):
            s.save(ro / "s.npz")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    s = OrderParams.specialised(1, 2, 1.0)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        s.save(tmp_path / "s.npz")
    assert list(tmp_path.iterdir()) == []

