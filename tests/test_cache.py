"""odeprune._cache: the one cache of the sweep and the figures. Entry names are the documented
hash (computed here independently, so existing figure caches stay valid), writes are atomic and
leave ordinary files, unreadable entries are computed again, a file in the directory's place is
one clear line, and the sweep's point files are entries of this cache."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import odeprune
from odeprune import _cache
from odeprune._io import package_version


def _documented_hash(kind: str, params: dict) -> str:
    text = json.dumps({"kind": kind, "params": params, "v": 1}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def test_entry_name_is_the_documented_hash(tmp_path):
    params = {"N": 500, "eta": 0.5, "seeds": [1, 2], "sigma": np.float64(0.25),
              "K": np.int64(6)}
    plain = {"N": 500, "eta": 0.5, "seeds": [1, 2], "sigma": 0.25, "K": 6}
    path = _cache.entry(tmp_path / "new" / "dir", "sim", params, ".npz")
    assert path == tmp_path / "new" / "dir" / f"sim-{_documented_hash('sim', plain)}.npz"
    assert path.parent.is_dir()
    assert _cache.entry(None, "sim", params, ".npz") is None


def test_cached_json_computes_once_and_recomputes_a_corrupt_entry(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3), "y": 0.1}

    first = _cache.cached_json(tmp_path, "item", {"a": 1}, compute)
    assert first == {"x": [0, 1, 2], "y": 0.1} and len(calls) == 1
    assert _cache.cached_json(tmp_path, "item", {"a": 1}, compute) == first and len(calls) == 1
    (path,) = tmp_path.glob("item-*.json")
    assert json.loads(path.read_text())["value"] == first  # an ordinary JSON file
    path.write_text("{trunc")
    assert _cache.cached_json(tmp_path, "item", {"a": 1}, compute) == first and len(calls) == 2
    assert _cache.cached_json(tmp_path, "item", {"a": 2}, compute) == first and len(calls) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_cached_file_reloads_the_saved_result(tmp_path):
    s = odeprune.OrderParams.random(100, 2, 1, v_star=1.0, seed=0)
    calls = []

    def compute():
        calls.append(1)
        return odeprune.integrate(s, 0.5, 3.0)

    a = _cache.cached_file(tmp_path, "ode", {"eta": 0.5}, compute, odeprune.LearningCurve.load)
    b = _cache.cached_file(tmp_path, "ode", {"eta": 0.5}, compute, odeprune.LearningCurve.load)
    assert len(calls) == 1
    np.testing.assert_array_equal(a.eg, b.eg)
    (path,) = tmp_path.glob("ode-*.npz")
    assert type(odeprune.load(path)).__name__ == "LearningCurve"
    path.write_bytes(b"not a zip file")
    _cache.cached_file(tmp_path, "ode", {"eta": 0.5}, compute, odeprune.LearningCurve.load)
    assert len(calls) == 2


def test_a_file_in_place_of_the_directory_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"cache='.*f' is a file; the cache is a directory"):
        _cache.entry(tmp_path / "f", "k", {}, ".json")


def test_sweep_points_are_entries_of_the_one_cache(tmp_path):
    pytest.importorskip("xarray")
    from odeprune.sweeps import cache as sweep_cache
    from odeprune.sweeps import check, sweep

    sweep("integrate", {"eta": [0.5]}, fixed={"alpha_max": 1.0, "N": 50}, executor="serial",
          progress=False, cache=tmp_path)
    (p,) = check("integrate", {"eta": [0.5]}, {"alpha_max": 1.0, "N": 50}).points
    params = {"task": "integrate", "params": json.loads(json.dumps(p, sort_keys=True)),
              "odeprune_version": package_version()}
    (path,) = tmp_path.glob("*.npz")
    assert path.name == f"integrate-{_documented_hash('integrate', params)}.npz"
    assert path == sweep_cache.point_file(tmp_path, "integrate", p)
