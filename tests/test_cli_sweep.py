"""``odeprune sweep`` (``odeprune/cli/_sweep.py``, ``odeprune/sweeps/``): outputs and values
checked before launch, failures loud, boolean axes, the cache."""

import time

import numpy as np
import pytest
from conftest import cli, one_error_line

import odeprune


def test_sweep_outputs_are_checked_before_any_work(tmp_path, capsys):
    pytest.importorskip("xarray")
    (tmp_path / "somefile").write_text("x")
    spec = tmp_path / "s.toml"
    spec.write_text('task = "integrate"\n[fixed]\nalpha_max = 1.0\n[grid]\neta = [0.5]\n')
    for opt in (["-o", tmp_path / "somefile" / "x.nc"], ["--plot", tmp_path / "somefile" / "p.png"],
                ["--cache", tmp_path / "somefile"]):
        assert cli("sweep", spec, "--executor", "serial", *opt) == 2
        one_error_line(capsys, str(tmp_path / "somefile"))


@pytest.fixture
def spec(tmp_path):
    pytest.importorskip("xarray")

    def write(text):
        path = tmp_path / "s.toml"
        path.write_text(text)
        return path
    return write


@pytest.mark.parametrize("body, words", [
    ('[grid]\neta = ["a", "b"]\n', ["grid axis 'eta'", "eta='a'"]),
    ('[fixed]\nalpha_max = -5\n[grid]\neta = [0.5]\n', ["fixed parameter 'alpha_max'", "-5"]),
    ('[grid]\nK = [2, 0]\n', ["grid axis 'K'", "K=0"]),
    ('[grid]\ntrain_second_layer = [1, 0]\n', ["train_second_layer=1", "True or False"]),
    ('[grid]\nactivation = ["erf", "tanh"]\n', ["tanh"]),
    ('[grid]\neta = [true, false]\n', ["eta=True"]),
])
def test_sweep_values_are_checked_before_launch(spec, capsys, body, words):
    """A sweep whose every point failed exited 0 after running them all."""
    path = spec('task = "integrate"\n' + body)
    t0 = time.perf_counter()
    assert cli("sweep", path, "--executor", "serial", "--no-cache", "--no-plot") == 2
    assert time.perf_counter() - t0 < 10
    one_error_line(capsys, *words)
    assert not path.with_suffix(".nc").exists()


def test_a_sweep_whose_every_point_failed_exits_non_zero(spec, capsys):
    path = spec('task = "integrate"\n[fixed]\nalpha_max = 5.0\nK = 3\n[grid]\n'
                'eta = [1e6, 2e6]\n')  # valid values, every run diverges
    assert cli("sweep", path, "--executor", "serial", "--no-cache", "--no-plot") == 1
    err = capsys.readouterr().err
    assert "every point failed" in err and "DivergenceError" in err


def test_boolean_axes_where_the_option_is_boolean(spec, tmp_path, capsys):
    path = spec('task = "integrate"\n[fixed]\nalpha_max = 5.0\nK = 2\n[grid]\n'
                'train_second_layer = [true, false]\n')
    assert cli("sweep", path, "--executor", "serial", "--no-plot") == 0
    ds = odeprune.sweeps.load(path.with_suffix(".nc"))
    assert list(ds["train_second_layer"].values) == [True, False]
    assert ds.attrs["n_failed"] == 0
    a, b = ds["eg"].isel(alpha=-1).values
    assert a != b  # a frozen second layer learns differently


def test_cache_pointing_at_a_file_is_one_clear_line(spec, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    path = spec('task = "integrate"\ncache = "afile"\n[fixed]\nalpha_max = 1.0\n[grid]\n'
                'eta = [0.5]\n')
    assert cli("sweep", path, "--executor", "serial", "--no-plot") == 2
    line = one_error_line(capsys, "afile", "expected a directory")
    assert "Errno" not in line
    with pytest.raises(ValueError, match="is a file; the cache is a directory"):
        odeprune.sweep("integrate", {"eta": [0.5]}, fixed={"alpha_max": 1.0},
                             executor="serial", cache=tmp_path / "afile")


def test_cache_files_are_ordinary_odeprune_files(tmp_path):
    pytest.importorskip("xarray")
    ds = odeprune.sweep("integrate", {"eta": [0.25, 0.5]},
                              fixed={"alpha_max": 2.0, "K": 2}, executor="serial",
                              cache=tmp_path / "c")
    files = sorted((tmp_path / "c").glob("*.npz"))
    assert len(files) == 2
    points = [odeprune.load(f) for f in files]
    assert all(type(p).__name__ == "SweepPoint" for p in points)
    by_eta = {p.params["eta"]: p for p in points}
    for j, eta in enumerate([0.25, 0.5]):
        np.testing.assert_array_equal(by_eta[eta].outputs["eg"], ds["eg"].values[j])
        np.testing.assert_array_equal(by_eta[eta].coords["alpha"], ds["alpha"].values)


def test_sweep_init_of_a_masked_network_trains_it(tmp_path):
    """The integrate task trains an edge-pruned file as the masked network; prune refuses."""
    pytest.importorskip("xarray")
    state = odeprune.OrderParams.random(100, 3, 2, v_star=2.0, seed=0)
    pr = odeprune.prune(state, "magnitude_edge", c=0.5).save(tmp_path / "pr.npz")
    ds = odeprune.sweep("integrate", {"eta": [0.5]},
                              fixed={"alpha_max": 5.0, "init": str(pr)}, executor="serial")
    ref = odeprune.integrate(odeprune.load(pr).sparse_state, 0.5, 5.0)
    np.testing.assert_allclose(ds["eg"].values[0, -1], ref.eg[-1], rtol=1e-12)
    with pytest.raises(ValueError, match="masked network"):
        odeprune.sweeps.check("prune", {"method": ["importance_node"]},
                             {"k": 1, "init": str(pr)})

