"""Results by composition (``odeprune/results.py``): one trajectory type with typed activation
and status and optional two-time overlaps; the masked curve, the two-time curve and the
simulation hold one; every result class owns its file and ``odeprune.load`` reads it once."""

import dataclasses
import json

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.results import LearningCurve, Status
from odeprune.sim import SimulationEnsemble, SimulationResult
from odeprune.sparse import MaskClasses, SparseLearningCurve, SparseOrderParams, TwoTimeCurve


@pytest.fixture(scope="module")
def state():
    return OrderParams.random(60, 3, 2, v_star=1.5, seed=3, activation="linear")


@pytest.fixture(scope="module")
def curves(state):
    sp = SparseOrderParams.random_mask(state, 0.6)
    return dict(
        dense=odeprune.integrate(state, 0.4, 3.0, save_at=[1.0]),
        two=odeprune.integrate(state, 0.4, 3.0, save_at=[0.0, 1.0], track_initial=True),
        masked=odeprune.integrate(sp, 0.4, 3.0, save_at=[0.0, 1.0], track_initial=True),
        masked_no_p=odeprune.integrate(sp, 0.4, 3.0, save_at=[1.0]),
        sim=odeprune.simulate(60, 3, 2, 0.4, 1.0, v_star=1.5, seed=3, n_test=20,
                              activation="linear"),
    )


def _json(meta: dict) -> str:
    """Metadata as its file holds it (NaN compares equal to itself there)."""
    return json.dumps(meta, sort_keys=True)


def _flat(curve: LearningCurve) -> dict:
    return dict(alpha=curve.alpha, eg=curve.eg, Q=curve.Q, R=curve.R, v=curve.v, T=curve.T,
                v_star=curve.v_star, metadata=curve.metadata)


# ------------------------------------------------------------------ the status, one enum
def test_the_status_is_the_engines_status():
    """The engine's codes are the results' (``odeprune.ode.explicit`` is to import this one)."""
    from odeprune.ode import explicit

    assert [(s.name, int(s)) for s in explicit.Status] == [(s.name, int(s)) for s in Status]
    assert (explicit.OK, explicit.MAX_STEPS) == (Status.SUCCESS, Status.MAX_STEPS)
    assert Status.of("success") is Status.of("SUCCESS") is Status.of(0) is Status.SUCCESS
    assert Status.of(Status.NOT_PSD) is Status.NOT_PSD and str(Status.NOT_PSD) == "not_psd"
    assert f"{Status.MAX_STEPS}" == "max_steps"
    for bad in ("diverged", 9, True, None, 1.0):
        with pytest.raises(ValueError, match="is not a run status: one of \\['success', "):
            Status.of(bad)
    with pytest.raises(ValueError, match="'chunk' is not final"):
        Status.of("chunk")


# ------------------------------------------------------------------ typed fields
def test_activation_and_status_are_fields_mirrored_in_the_metadata(curves):
    c = curves["dense"]
    assert c.activation == "linear" and c.status is Status.SUCCESS
    assert c.metadata["activation"] == "linear" and c.metadata["status"] == "success"
    assert c.metadata["message"] == "integration reached alpha_max"  # free-form provenance
    arrays = {k: getattr(c, k) for k in ("alpha", "eg", "Q", "R", "v", "T", "v_star")}
    # given as fields, or through the metadata (as the engine and old files give them)
    a = LearningCurve(**arrays, activation="linear", status="max_steps")
    assert a.activation == "linear" and a.status is Status.MAX_STEPS
    assert a.metadata == {"activation": "linear", "status": "max_steps"}
    b = LearningCurve(**arrays, metadata={"activation": "linear", "status": "not_psd", "x": 1})
    assert (b.activation, b.status, b.metadata["x"]) == ("linear", Status.NOT_PSD, 1)
    d = LearningCurve(**arrays)
    assert d.activation == "erf" and d.status is Status.SUCCESS
    # the state carries the field's activation: its eg is the linear network's
    np.testing.assert_allclose(a.final.eg(), c.eg[-1], rtol=1e-12)
    assert d.final.eg() != pytest.approx(c.eg[-1], rel=1e-3)
    with pytest.raises(ValueError, match=r"activation=erf conflicts with "
                                         r"metadata\['activation'\]='linear'"):
        LearningCurve(**arrays, activation="erf", metadata={"activation": "linear"})
    with pytest.raises(ValueError, match="status=success conflicts"):
        LearningCurve(**arrays, status=0, metadata={"status": "nonfinite"})
    with pytest.raises(ValueError, match=r"activation='tanh' is unknown; expected one of "):
        LearningCurve(**arrays, activation="tanh")
    with pytest.raises(ValueError, match="'chunk' is not final"):
        LearningCurve(**arrays, status="chunk")
    with pytest.raises(ValueError, match=r"P must have the shape of Q \(2, 3, 3\)"):
        LearningCurve(**arrays, P=np.zeros((2, 3, 2)))


def test_a_file_keeps_the_typed_fields(curves, tmp_path):
    c = curves["dense"]
    arrays = {k: getattr(c, k) for k in ("alpha", "eg", "Q", "R", "v", "T", "v_star")}
    odd = LearningCurve(**arrays, metadata=dict(c.metadata, status="max_steps"))
    back = odeprune.load(odd.save(tmp_path / "odd.npz"))
    assert back.status is Status.MAX_STEPS and back.activation == "linear"
    assert _json(back.metadata) == _json(dict(odd.metadata, odeprune_version=odeprune.__version__))
    _, meta = odeprune._io.read_npz(tmp_path / "odd.npz")
    assert (meta["status"], meta["activation"]) == ("max_steps", "linear")


# ------------------------------------------------------------------ composition
@pytest.mark.parametrize("name", ["two", "masked", "masked_no_p", "sim"])
def test_results_hold_one_curve_and_inherit_nothing(curves, name):
    r = curves[name]
    assert type(r.curve) is LearningCurve
    assert LearningCurve not in type(r).__mro__[1:]  # no inheritance ...
    assert isinstance(r, LearningCurve)  # ... but a learning curve for every isinstance check
    for field in ("alpha", "eg", "Q", "R", "v", "T", "v_star", "P", "metadata"):
        assert getattr(r, field) is getattr(r.curve, field), field
    assert (r.activation, r.status, r.K, r.M, len(r)) == ("linear", Status.SUCCESS, 3, 2,
                                                          len(r.curve))
    assert r.state(1) == r.curve.state(1) and r.at(float(r.alpha[1])) == r.curve.state(1)


def test_masked_curve_is_its_class_sums(curves, state):
    """The masked curve's network is the sum of its classes (``docs/theory.md`` §8), P too."""
    c = curves["masked"]
    np.testing.assert_allclose(c.Q, c.Q_cls.sum(1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(c.R, c.R_cls.sum(1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(c.P, c.P_cls.sum(1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(c.T, c.T_cls.sum(0), rtol=1e-14)
    np.testing.assert_array_equal(c.T_cls, c.classes.T)
    # the curve's states are the class sums of its per-class states
    for i in (0, -1):
        dense = c.sparse_state(i).dense()
        np.testing.assert_allclose(dense.Q, c.state(i).Q, rtol=1e-15, atol=1e-16)
        np.testing.assert_allclose(dense.R, c.state(i).R, rtol=1e-15, atol=1e-16)
    assert c.final == c.sparse_state(-1)
    start = SparseOrderParams.random_mask(state, 0.6)
    np.testing.assert_allclose(c.initial.Q, start.Q, rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(c.initial.patterns, start.patterns)
    assert curves["masked_no_p"].P is None and curves["masked_no_p"].P_cls is None


def test_per_class_joint_covariances_sum_to_the_networks(curves):
    """sum_s f_s J_s is the joint covariance of (w(0), w(alpha), w*) of the whole network,
    built here by hand from the curve's Q, R, P and T."""
    c = curves["masked"]
    J = c.joint_covariance(-1)
    K, M = c.K, c.M
    assert J.shape == (c.f.size, 2 * K + M, 2 * K + M)
    total = np.einsum("s,sab->ab", c.f, J)
    by_hand = np.zeros((2 * K + M, 2 * K + M))
    blocks = [(slice(0, K), c.Q[0]), (slice(K, 2 * K), c.Q[-1]), (slice(2 * K, None), c.T)]
    for sl, block in blocks:
        by_hand[sl, sl] = block
    by_hand[K:2 * K, :K] = c.P[-1]
    by_hand[:K, 2 * K:] = c.R[0]
    by_hand[K:2 * K, 2 * K:] = c.R[-1]
    by_hand = np.triu(by_hand) + np.triu(by_hand, 1).T
    by_hand[:K, K:2 * K] = c.P[-1].T
    by_hand[K:2 * K, :K] = c.P[-1]
    np.testing.assert_allclose(total, by_hand, rtol=1e-12, atol=1e-14)
    # the dense two-time curve gives the same blocks for its own network
    t = curves["two"]
    Jt = t.joint_covariance(-1)
    np.testing.assert_array_equal(Jt[K:2 * K, :K], t.P[-1])
    np.testing.assert_array_equal(Jt[:K, :K], t.Q[0])
    np.testing.assert_array_equal(Jt[2 * K:, K:2 * K], t.R[-1].T)
    with pytest.raises(ValueError, match="no two-time overlaps: integrate with track_initial"):
        curves["dense"].joint_covariance(-1)


def test_the_flat_keywords_and_the_composed_form_agree(curves):
    t = curves["two"]
    again = TwoTimeCurve(**_flat(t.curve), P=t.P)
    assert type(again) is TwoTimeCurve and again.final == t.final
    np.testing.assert_array_equal(again.joint_covariance(-1), t.joint_covariance(-1))
    assert TwoTimeCurve(t.curve).curve is t.curve
    m = curves["masked"]
    flat = SparseLearningCurve(**_flat(m.curve), patterns=m.patterns, f=m.f, T_cls=m.T_cls,
                               Q_cls=m.Q_cls, R_cls=m.R_cls, P_cls=m.P_cls)
    np.testing.assert_array_equal(flat.P, m.P)
    assert flat.final == m.final
    composed = SparseLearningCurve(m.curve, MaskClasses(m.patterns, m.f, m.T_cls, m.Q_cls,
                                                        m.R_cls, m.P_cls))
    assert composed.final == m.final and composed.curve is m.curve
    s = curves["sim"]
    sim = SimulationResult(s.curve, eg_test=s.eg_test, eg_test_se=s.eg_test_se, w=s.w,
                           w_star=s.w_star)
    assert sim.final == s.final and sim.N == 60
    np.testing.assert_allclose(sim.eg_test_noisy, s.eg_test, rtol=0)  # sigma = 0
    # dataclasses.replace changes the held curve (the CLI shifts a continued run's alpha)
    shifted = dataclasses.replace(t, alpha=t.alpha + 2.0)
    np.testing.assert_array_equal(shifted.alpha, t.alpha + 2.0)
    assert type(shifted) is TwoTimeCurve and shifted.P is not None
    np.testing.assert_array_equal(shifted.P, t.P)


def test_composed_results_refuse_what_does_not_fit(curves):
    t, m, s = curves["two"], curves["masked"], curves["sim"]
    with pytest.raises(TypeError, match="unexpected keyword argument 'Pcls'"):
        TwoTimeCurve(**_flat(t.curve), P=t.P, Pcls=t.P)
    with pytest.raises(ValueError, match="a TwoTimeCurve needs the two-time overlaps P"):
        TwoTimeCurve(**_flat(t.curve))
    with pytest.raises(TypeError, match="TwoTimeCurve holds a LearningCurve, got TwoTimeCurve"):
        TwoTimeCurve(t)
    with pytest.raises(ValueError, match=r"per-class Q must have shape \(3, 8, 3, 3\)"):
        SparseLearningCurve(**_flat(m.curve), patterns=m.patterns, f=m.f, T_cls=m.T_cls,
                            Q_cls=m.Q_cls[:, :, :2], R_cls=m.R_cls)
    with pytest.raises(ValueError, match="do not match the curve"):
        SparseLearningCurve(curves["dense"], m.classes)
    with pytest.raises(ValueError, match="the curve's Q is not the sum over classes of the "
                                         "per-class Q"):
        SparseLearningCurve(m.curve, dataclasses.replace(m.classes, Q=m.Q_cls * 1.001))
    with pytest.raises(ValueError, match="P and P_cls go together"):
        SparseLearningCurve(m.curve, dataclasses.replace(m.classes, P=None))
    with pytest.raises(ValueError, match=r"eg_test must have shape \(\d+,\)"):
        SimulationResult(s.curve, eg_test=s.eg_test[:1], eg_test_se=s.eg_test_se, w=s.w,
                         w_star=s.w_star)
    with pytest.raises(ValueError, match="do not match K=3, M=2"):
        SimulationResult(s.curve, eg_test=s.eg_test, eg_test_se=s.eg_test_se, w=s.w[:2],
                         w_star=s.w_star)


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("name", ["dense", "two", "masked", "masked_no_p", "sim"])
def test_each_class_owns_its_file_and_load_reads_it_once(curves, name, tmp_path, monkeypatch):
    from odeprune import _io

    r = curves[name]
    path = r.save(tmp_path / f"{name}.npz")
    reads = []
    real = _io.read_npz
    monkeypatch.setattr(_io, "read_npz", lambda *a, **k: reads.append(a) or real(*a, **k))
    back = odeprune.load(path)
    assert len(reads) == 1
    assert type(back) is type(r) and _io.read_npz(path)[1]["kind"] == type(r).KIND
    for field in ("alpha", "eg", "Q", "R", "v", "T", "v_star", "P", "Q_cls", "R_cls", "P_cls",
                  "T_cls", "patterns", "f", "eg_test", "eg_test_se", "w", "w_star"):
        if hasattr(r, field):
            got, want = getattr(back, field), getattr(r, field)
            assert (got is None) == (want is None), field
            if want is not None:
                np.testing.assert_array_equal(got, want, err_msg=field)
    assert _json(back.metadata) == _json(dict(r.metadata, odeprune_version=odeprune.__version__))
    assert back.status is r.status
    assert back.final == r.final and back.to_csv() == r.to_csv()


def test_ensemble_files_keep_every_runs_P(tmp_path):
    ens = odeprune.simulate(40, 2, 1, 0.5, 1.0, seeds=[1, 2], n_test=5, activation="linear")
    assert isinstance(ens, SimulationEnsemble)
    back = odeprune.load(ens.save(tmp_path / "e.npz"))
    for a, b in zip(back, ens):
        np.testing.assert_array_equal(a.P, b.P)
        np.testing.assert_allclose(a.P[0], a.Q[0], rtol=1e-13)  # P starts at Q
        assert a.activation == "linear" and a.metadata == b.metadata
    np.testing.assert_array_equal(back.eg_mean, ens.eg_mean)


def test_truncated_files_name_what_they_lack(curves, tmp_path):
    from odeprune import _io

    for name, drop in (("two", "P"), ("masked", "Q_cls"), ("sim", "w"), ("dense", "T")):
        r = curves[name]
        arrays, meta = _io.read_npz(r.save(tmp_path / "x.npz"))
        del arrays[drop]
        p = _io.write_npz(tmp_path / "cut.npz", meta["kind"], arrays, meta)
        with pytest.raises(ValueError, match=rf"is a truncated {type(r).__name__}: missing "
                                             rf"\['{drop}'\]"):
            odeprune.load(p)


def test_format1_curves_are_read_by_one_function(tmp_path):
    """Format 1 kept a curve's T and v_star in the JSON metadata; ``_io._from_format_1`` moves
    them into the arrays, so every reader sees format 2."""
    from conftest import DATA

    from odeprune import _io

    arrays, meta = _io.read_npz(DATA / "v1_curve.npz")
    assert meta["format_version"] == 1 and "T" not in meta and "v_star" not in meta
    np.testing.assert_array_equal(arrays["v_star"], [1.0, 2.0])
    curve = odeprune.load(DATA / "v1_curve.npz")
    s = OrderParams.load(DATA / "v1_orderparams.npz")
    np.testing.assert_array_equal(curve.T, s.T)
    assert curve.status is Status.SUCCESS and curve.activation == "erf"
    # saved again: a format-2 file with the same numbers
    again = odeprune.load(curve.save(tmp_path / "v2.npz"))
    assert _io.read_npz(tmp_path / "v2.npz")[1]["format_version"] == _io.FORMAT_VERSION
    np.testing.assert_array_equal(again.T, curve.T)
    np.testing.assert_array_equal(again.eg, curve.eg)
