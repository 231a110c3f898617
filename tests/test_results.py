"""Result classes and their files (``odeprune/results.py``): every result carries the
activation; one loader reads every kind."""

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams


def test_every_result_carries_the_activation(tmp_path):
    s = OrderParams.random(60, 3, 2, v_star=1.5, seed=2, activation="linear")
    curve = odeprune.integrate(s, eta=0.3, alpha_max=2.0, activation="linear")
    assert curve.final.activation == "linear" and curve.state(0).activation == "linear"
    np.testing.assert_allclose(curve.final.eg(), curve.eg[-1], rtol=1e-12)
    assert odeprune.load(curve.save(tmp_path / "c.npz")).final == curve.final
    sim = odeprune.simulate(60, 3, 2, 0.3, 1.0, v_star=1.5, seed=2, n_test=10,
                            activation="linear")
    assert sim.final.activation == "linear" and sim.initial == s
    np.testing.assert_allclose(sim.final.eg(), sim.eg[-1], rtol=1e-12)
    assert odeprune.load(sim.save(tmp_path / "s.npz")).final == sim.final
    r = odeprune.prune(s, "dpp_node", k=2)
    assert r.activation == "linear" and all(t.activation == "linear" for t in r.states)
    np.testing.assert_allclose([t.eg() for t in r.states], r.eg_values, rtol=1e-10)
    assert odeprune.load(r.save(tmp_path / "r.npz")).states == r.states
    e = odeprune.prune(s, "snip_edge", c=0.5, seed=0, reweight="rescale")
    np.testing.assert_allclose(e.states[0].eg(), e.eg_mean, rtol=1e-10)
    with pytest.raises(ValueError, match="conflicts with the state's activation"):
        odeprune.prune(s, "random_node", k=2, activation="erf")



# ------------------------------------------------------------------ one loader, a registry
def test_every_registered_kind_names_a_class_that_reads_it():
    from odeprune import _io

    for kind, target in _io.KINDS.items():
        cls = _io.result_class(kind)
        assert f"{cls.__module__.split('.')[0]}" == "odeprune", (kind, target)
        assert callable(getattr(cls, "load", None)), (kind, target)
    assert odeprune.results.KINDS is _io.KINDS and odeprune.load is _io.load


@pytest.mark.parametrize("name", ["v1_orderparams", "v1_curve", "v1_curve_linear", "v1_sim",
                                  "v1_ens", "v1_prune"])
def test_the_one_loader_reads_every_committed_file(name):
    """tests/data holds files of format version 1 (the previous release): odeprune.load gives
    the class the kind names, and what the class's own load gives; load_state the final (or
    chosen) state of the same file."""
    from conftest import DATA

    from odeprune import _io
    from odeprune.state import load_state

    path = DATA / f"{name}.npz"
    _, meta = _io.read_npz(path)
    assert meta["format_version"] == 1
    obj = odeprune.load(path)
    cls = _io.result_class(meta["kind"])
    assert type(obj) is cls
    again = cls.load(path)
    for field in ("alpha", "eg", "Q", "R", "v", "T", "v_star", "eg_values"):
        if isinstance(getattr(obj, field, None), np.ndarray):
            np.testing.assert_array_equal(getattr(obj, field), getattr(again, field))
    select = {"SimulationEnsemble": dict(run=1), "PruneResult": dict(pick=1)}.get(meta["kind"], {})
    state, info = load_state(path, **select)
    assert info["kind"] == meta["kind"]
    if meta["kind"] in ("LearningCurve", "SimulationResult"):
        assert state == obj.final and info["alpha"] == obj.alpha[-1]
    elif meta["kind"] == "SimulationEnsemble":
        assert state == obj[1].final
    elif meta["kind"] == "PruneResult":
        assert state == obj.states[1]
    else:
        assert state == obj


class _Toy:
    """A result class of another module: it owns its format."""

    KIND = "ToyResult"

    def __init__(self, x):
        self.x = x

    def save(self, path):
        from odeprune import _io

        return _io.write_npz(path, self.KIND, {"x": self.x})

    @classmethod
    def load(cls, path):  # pragma: no cover - from_npz is preferred
        raise AssertionError("load() called although the class reads arrays (from_npz)")

    @classmethod
    def from_npz(cls, path, arrays, meta):
        return cls(arrays["x"])


def _toy_state(path, arrays, meta, select):
    return OrderParams.specialised(1, 1), dict(description="toy")


@pytest.fixture
def toy_kind(monkeypatch):
    from odeprune import _io

    monkeypatch.setattr(_io, "KINDS", dict(_io.KINDS))
    monkeypatch.setattr(_io, "STATE_READERS", dict(_io.STATE_READERS))
    _io.register_kind("ToyResult", _Toy, state_reader=_toy_state)
    return _io


def test_a_module_registers_its_own_kind(toy_kind, tmp_path):
    from odeprune.state import load_state

    path = _Toy(np.arange(3.0)).save(tmp_path / "toy.npz")
    got = toy_kind.load(path)
    assert isinstance(got, _Toy)
    np.testing.assert_array_equal(got.x, [0.0, 1.0, 2.0])
    state, info = load_state(path)
    assert state == OrderParams.specialised(1, 1)
    assert info == dict(kind="ToyResult", alpha=None, activation_source="file",
                        description="toy")
    with pytest.raises(ValueError, match=r"^pick=0 applies to a PruneResult file; .* holds a "
                                         r"ToyResult$"):
        load_state(path, pick=0)


def test_registering_is_checked(toy_kind):
    with pytest.raises(ValueError, match="kind 'ToyResult' is already read by .*_Toy; pass "
                                         "replace=True"):
        toy_kind.register_kind("ToyResult", "odeprune.state:OrderParams")
    toy_kind.register_kind("ToyResult", "odeprune.state:OrderParams", replace=True)
    assert toy_kind.KINDS["ToyResult"] == "odeprune.state:OrderParams"
    with pytest.raises(ValueError, match="checkpoints are resumed"):
        toy_kind.register_kind("ToyCheckpoint", _Toy)
    with pytest.raises(ValueError, match="must be 'module:Class' or a class"):
        toy_kind.register_kind("Other", "odeprune.state.OrderParams")
    with pytest.raises(ValueError, match="must be a non-empty string"):
        toy_kind.register_kind("", _Toy)


def test_unknown_kinds_and_checkpoints_one_line(tmp_path):
    from odeprune import _io
    from odeprune.state import load_state

    p = _io.write_npz(tmp_path / "u.npz", "Mystery", {"x": np.zeros(1)})
    with pytest.raises(ValueError, match=r"holds an unknown kind 'Mystery'; odeprune.load reads "
                                         r"\['CoordinateCurve', "):
        odeprune.load(p)
    with pytest.raises(ValueError, match="holds a Mystery, which has no order parameters"):
        load_state(p)
    c = _io.write_npz(tmp_path / "c.npz", "IntegrateCheckpoint", {"x": np.zeros(1)})
    for call in (odeprune.load, load_state):
        with pytest.raises(ValueError, match=r"is a checkpoint \(IntegrateCheckpoint\), not a "
                                             "result: continue its run with resume=True"):
            call(c)
