"""simulate's options come from the records of odeprune.options: flat keywords or records whole,
one TypeError for a keyword no record owns, and the Control options it honours."""

import numpy as np
import pytest

import odeprune
from odeprune.errors import DivergenceError
from odeprune.options import Control, Data, Dynamics, Ensemble, Network
from odeprune.sim import simulate

BASE = dict(N=30, K=2, M=1, alpha_max=1.0, progress=False)


def _same(a, b):
    for name in ("eg", "Q", "R", "v", "w", "P"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.eg_test, b.eg_test)


def test_records_whole_give_the_flat_keywords_run():
    flat = simulate(**BASE, eta=0.4, eta_v=0.2, sigma=0.1, v_star=[2.0], seed=5, n_test=7,
                    n_train=20)
    whole = simulate(**BASE, eta=None, dynamics=Dynamics(eta=0.4, eta_v=0.2, sigma=0.1),
                     network=Network(v_star=[2.0], seed=5), data=Data(n_test=7, n_train=20))
    _same(flat, whole)
    assert flat.metadata["eta_v"] == 0.2 and flat.metadata["n_train"] == 20
    ens = simulate(**BASE, eta=0.4, n_test=0, ensemble=Ensemble(seeds=[3, 1]))
    assert [r.metadata["seed"] for r in ens.runs] == [3, 1]
    _same(ens.runs[0], simulate(**BASE, eta=0.4, n_test=0, seed=3))


def test_unknown_keyword_and_keyword_beside_its_record():
    with pytest.raises(TypeError, match=r"simulate\(\) got unexpected keyword.*'rtol'"):
        simulate(**BASE, eta=0.5, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\['sigma'\] given beside dynamics="):
        simulate(**BASE, eta=None, dynamics=Dynamics(eta=0.5), sigma=0.1)
    with pytest.raises(ValueError, match=r"\['eta'\] given beside dynamics="):
        simulate(**BASE, eta=0.5, dynamics=Dynamics(eta=0.5))


def test_gradient_flow_is_refused_before_any_work():
    with pytest.raises(ValueError, match="gradient_flow=True.*finite N"):
        simulate(**BASE, eta=0.5, gradient_flow=True)


@pytest.mark.parametrize("kw,match", [
    (dict(seeds=[1, 1]), "distinct"), (dict(seeds=[]), "non-empty"),
    (dict(seeds=[1], n_runs=2), "not both"), (dict(n_runs=0), "n_runs=0"),
    (dict(max_workers=0, n_runs=2), "max_workers=0"), (dict(chunk_steps=0), "chunk_steps=0"),
    (dict(train_second_layer=1), "True or False"), (dict(l1=-1.0), "l1"),
])
def test_bad_options_name_themselves(kw, match):
    with pytest.raises(ValueError, match=match):
        simulate(**BASE, eta=0.5, n_test=0, **kw)


def test_chunk_steps_leaves_the_numbers_alone():
    kw = dict(BASE, eta=0.5, n_test=5, seed=2, alpha_max=2.0)
    a = simulate(**kw)
    b = simulate(**kw, chunk_steps=7)
    kw.pop("progress")
    c = simulate(**kw, control=Control(chunk_steps=1, progress=False))
    _same(a, b)
    _same(a, c)


def test_divergence_path_saves_the_last_good_state(tmp_path):
    path = tmp_path / "last.npz"
    with pytest.raises(DivergenceError, match="last good state saved to") as info:
        simulate(20, 2, 1, 50.0, 50, activation="linear", seed=0, n_test=0, progress=False,
                 divergence_path=path)
    saved = odeprune.OrderParams.load(path)
    last = info.value.last_state
    assert info.value.saved_to == str(path)
    np.testing.assert_array_equal(saved.Q, last.Q)
    np.testing.assert_array_equal(saved.R, last.R)
    assert saved.activation == "linear"
