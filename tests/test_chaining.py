"""Every file a command writes is a valid input of the command that naturally follows it
(issue 17, items 8-10 and the general rule), with the activation carried along the chain."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.cli import main

DATA = Path(__file__).parent / "data"
SMALL = ["--K", "3", "--M", "2", "--N", "60", "--v-star", "1.5"]


def cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every kind of file the commands write, for a *linear* network (so that a consumer that
    forgot the activation would compute erf numbers)."""
    d = tmp_path_factory.mktemp("chain")
    f = {}
    assert cli("integrate", "-q", *SMALL, "--activation", "linear", "--alpha-max", "5",
               "-o", d / "curve.npz") == 0
    f["curve"] = d / "curve.npz"
    assert cli("simulate", "-q", *SMALL, "--activation", "linear", "--alpha-max", "1",
               "--n-test", "10", "-o", d / "sim.npz") == 0
    f["sim"] = d / "sim.npz"
    assert cli("simulate", "-q", *SMALL, "--activation", "linear", "--alpha-max", "1",
               "--n-test", "10", "--runs", "2", "-o", d / "ens.npz") == 0
    f["ens"] = d / "ens.npz"
    assert cli("prune", f["curve"], "--method", "importance_node", "--k", "2",
               "-o", d / "pr1.npz") == 0
    f["prune_single"] = d / "pr1.npz"
    assert cli("prune", f["curve"], "--method", "random_node", "--k", "2",
               "-o", d / "prn.npz") == 0
    f["prune_many"] = d / "prn.npz"
    assert cli("prune", f["curve"], "--method", "all", "--k", "2", "-o", d / "all") == 0
    f["prune_all_member"] = d / "all.dpp_node.none.k2.npz"
    assert cli("prune", f["curve"], "--method", "random_edge", "--c", "0.5",
               "-o", d / "edge.npz") == 0
    f["prune_edge"] = d / "edge.npz"
    state = odeprune.load(f["curve"]).final
    state.save(d / "op.npz")
    f["orderparams"] = d / "op.npz"
    np.savez(d / "plain.npz", activation=np.array("linear"), **state.to_arrays())
    f["plain"] = d / "plain.npz"
    w, w_star, v, v_star = OrderParams.draw_weights(60, 3, 2, 1.5, seed=1)
    np.savez(d / "weights.npz", w=w, w_star=w_star, v=v, v_star=v_star,
             activation=np.array("linear"))
    f["weights"] = d / "weights.npz"
    return f


# which option picks the state when a file holds several
CHOICE = {"ens": ["--run", "1"], "prune_many": ["--pick", "likeliest"],
          "prune_all_member": ["--pick", "0"]}
STATE_FILES = ["curve", "sim", "ens", "prune_single", "prune_many", "prune_all_member",
               "prune_edge", "orderparams", "plain"]


@pytest.mark.parametrize("producer", STATE_FILES)
def test_integrate_init_accepts_every_state_file(files, producer, tmp_path):
    out = tmp_path / "next.npz"
    assert cli("integrate", "-q", "--init", files[producer], *CHOICE.get(producer, []),
               "--alpha-max", "2", "-o", out) == 0
    curve = odeprune.load(out)
    assert curve.activation == "linear"
    np.testing.assert_allclose(curve.final.eg(), curve.eg[-1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("producer", [f for f in STATE_FILES if f != "prune_edge"])
def test_prune_accepts_every_state_file(files, producer, tmp_path, capsys):
    out = tmp_path / "pruned.npz"
    assert cli("prune", files[producer], *CHOICE.get(producer, []), "--method",
               "importance_node", "--k", "1", "-o", out) == 0
    assert "activation=linear" in capsys.readouterr().out
    r = odeprune.load(out)
    assert r.activation == "linear" and r.states[0].activation == "linear"
    np.testing.assert_allclose(r.eg_mean, r.states[0].eg(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("producer", ["weights", "sim", "ens"])
@pytest.mark.parametrize("command", ["integrate", "prune", "simulate"])
def test_weights_option(files, producer, command, tmp_path):
    out = tmp_path / "out.npz"
    run = ["--run", "0"] if producer == "ens" else []
    extra = {"integrate": ["-q", "--alpha-max", "1"], "prune": ["--method", "dpp_map_node",
                                                             "--k", "2"],
             "simulate": ["-q", "--alpha-max", "0.5", "--n-test", "10"]}[command]
    assert cli(command, "--weights", files[producer], *run, *extra, "-o", out) == 0
    res = odeprune.load(out)
    assert res.activation == "linear"


def test_integrate_from_a_curve_continues_alpha(files, tmp_path):
    first = odeprune.load(files["curve"])
    out = tmp_path / "more.npz"
    assert cli("integrate", "-q", "--init", files["curve"], "--alpha-max", "3", "-o", out) == 0
    more = odeprune.load(out)
    assert more.alpha[0] == first.alpha[-1]
    np.testing.assert_allclose(more.alpha[-1], first.alpha[-1] + 3, rtol=1e-12)
    assert more.initial == first.final


def test_simulate_from_a_simulation_continues_its_weights(files, tmp_path):
    sim = odeprune.load(files["sim"])
    out = tmp_path / "more.npz"
    assert cli("simulate", "-q", "--weights", files["sim"], "--alpha-max", "0.5", "--n-test",
               "10", "-o", out) == 0
    more = odeprune.load(out)
    np.testing.assert_array_equal(more.w_star, sim.w_star)
    assert more.initial == sim.final


# ------------------------------------------------------------------ plain arrays (item 8)
def test_plain_arrays_load_everywhere(tmp_path, capsys):
    s = OrderParams.random(80, 4, 2, v_star=2.0, seed=3)
    p = tmp_path / "op.npz"
    np.savez(p, **s.to_arrays())
    assert OrderParams.load(p) == s
    assert odeprune.load(p) == s
    assert cli("prune", p, "--method", "importance_node", "--k", "2") == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no odeprune metadata" in err and "'erf' assumed" in err
    # --activation sets it for a file that does not record one
    assert cli("prune", p, "--activation", "linear", "--method", "importance_node",
               "--k", "4") == 0
    out = capsys.readouterr().out
    assert f"eg_unpruned={s.replace(activation='linear').eg():.6g}" in out
    assert cli("integrate", "-q", "--init", p, "--alpha-max", "1") == 0
    # weights, and an activation array
    w, w_star, v, v_star = OrderParams.draw_weights(80, 4, 2, 2.0, seed=3)
    q = tmp_path / "w.npz"
    np.savez(q, w=w, w_star=w_star, v=v, v_star=v_star, activation=np.array("linear"))
    assert OrderParams.load(q) == s.replace(activation="linear")


def test_plain_file_lacking_arrays_names_them(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, Q=np.eye(2), R=np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"has no metadata entry.*lacks array\(s\) \['T', 'v', "
                                         r"'v_star'\]"):
        OrderParams.load(p)


# ------------------------------------------------------------------ old files (item 10)
def test_format1_files_still_load():
    """Files written by odeprune before T/v_star became arrays and before the activation was
    part of the state (tests/data/make_v1_fixtures.py, run at commit 313d364)."""
    curve = odeprune.load(DATA / "v1_curve.npz")
    np.testing.assert_allclose(curve.eg[-1], 0.361048074534414, rtol=1e-15)
    assert curve.T.shape == (2, 2) and curve.activation == "erf"
    first = odeprune.load(DATA / "v1_orderparams.npz")  # the state the curve started from
    np.testing.assert_array_equal(curve.T, first.T)
    np.testing.assert_array_equal(curve.v_star, first.v_star)
    again = odeprune.integrate(first, eta=0.5, alpha_max=2.0, save_at=[1.0])  # its protocol
    np.testing.assert_allclose(again.eg, curve.eg, rtol=1e-6)
    lin = odeprune.load(DATA / "v1_curve_linear.npz")
    assert lin.activation == "linear" and lin.final.activation == "linear"
    np.testing.assert_allclose(lin.final.eg(), lin.eg[-1], rtol=1e-12)
    sim = odeprune.load(DATA / "v1_sim.npz")
    np.testing.assert_allclose(sim.eg[-1], 0.47477258417132784, rtol=1e-15)
    np.testing.assert_allclose(sim.final.eg(), sim.eg[-1], rtol=1e-12)
    ens = odeprune.load(DATA / "v1_ens.npz")
    assert len(ens) == 2
    pr = odeprune.load(DATA / "v1_prune.npz")
    np.testing.assert_allclose(pr.eg_mean, 0.501218264138477, rtol=1e-15)
    op = OrderParams.load(DATA / "v1_orderparams.npz")
    assert op.activation == "erf" and op.K == 3
    assert OrderParams.load(DATA / "v1_curve.npz") == curve.final


def test_new_files_store_T_and_v_star_as_arrays(files):
    for name in ("curve", "sim"):
        with zipfile.ZipFile(files[name]) as z:
            assert {"T.npy", "v_star.npy"} <= set(z.namelist())
            meta = json.loads(str(np.load(files[name])["metadata"]))
        assert "T" not in meta and "v_star" not in meta


# ------------------------------------------------------------------ concurrency
_WRITER = """
import sys
import numpy as np
from odeprune import OrderParams
from odeprune.plotting import save_figure, subplots
s = OrderParams.random(30, 3, 2, seed=int(sys.argv[2]))
for _ in range(25):
    s.save(sys.argv[1])
fig, ax = subplots()
ax.plot([0, 1], [0, int(sys.argv[2])])
save_figure(fig, sys.argv[1] + ".png")
"""


def test_concurrent_writers_of_one_path(tmp_path):
    """Two processes writing the same output path never collide on a temporary name; the
    result is one complete file from one of them."""
    target = tmp_path / "same.npz"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(i)],
                              stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    got = OrderParams.load(target)
    assert got in (OrderParams.random(30, 3, 2, seed=1), OrderParams.random(30, 3, 2, seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.npz", "same.npz.png"]


def test_jax_backend_continues_a_curve_too(files, tmp_path):
    pytest.importorskip("diffrax")
    first = odeprune.load(files["curve"])
    out = tmp_path / "more.npz"
    assert cli("integrate", "-q", "--init", files["curve"], "--alpha-max", "2", "--backend",
               "jax", "-o", out) == 0
    more = odeprune.load(out)
    assert more.alpha[0] == first.alpha[-1] and more.activation == "linear"


def test_integrate_from_a_last_good_state_continues_its_alpha(tmp_path):
    """``integrate`` saves the last good state of a diverged run (with its alpha) beside
    --output; --init from it continues the clock."""
    s = OrderParams.random(60, 3, 2, v_star=1.5, seed=4)
    p = s.save(tmp_path / "run.last_good.npz", metadata={"alpha": 7.5, "reason": "divergence"})
    out = tmp_path / "again.npz"
    assert cli("integrate", "-q", "--init", p, "--alpha-max", "1", "-o", out) == 0
    again = odeprune.load(out)
    assert again.alpha[0] == 7.5 and again.initial == s


def test_masked_network_files(tmp_path, capsys):
    """A masked network's state and curve continue under integrate --init; prune, which maps
    dense states, refuses them with one line; odeprune.load reads every kind."""
    sparse = pytest.importorskip("odeprune.sparse")
    s = sparse.SparseOrderParams.random_mask(OrderParams.random(60, 3, 2, 1.5, seed=0), 0.5)
    p = s.save(tmp_path / "sp.npz")
    assert isinstance(odeprune.load(p), sparse.SparseOrderParams)
    for name in ("patterns", "f", "Q", "R", "T", "v", "v_star"):
        np.testing.assert_array_equal(getattr(odeprune.load(p), name), getattr(s, name))
    out = tmp_path / "spc.npz"
    assert cli("integrate", "-q", "--init", p, "--alpha-max", "1", "-o", out) == 0
    curve = odeprune.load(out)
    assert isinstance(curve, sparse.SparseLearningCurve)
    np.testing.assert_allclose(curve.eg[-1], odeprune.integrate(s, 0.5, 1.0).eg[-1], rtol=1e-6)
    out2 = tmp_path / "spc2.npz"
    assert cli("integrate", "-q", "--init", out, "--alpha-max", "1", "-o", out2) == 0
    np.testing.assert_allclose(odeprune.load(out2).alpha[-1], 2.0, rtol=1e-12)
    capsys.readouterr()
    assert cli("prune", out, "--method", "importance_node", "--k", "1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "masked network" in err


def test_concurrent_commands_into_one_directory(tmp_path, paper_state):
    """Several CLI runs writing the same outputs (and their default checkpoints) at once all
    succeed; what is left is complete files, no temporaries."""
    cmds = [["integrate", "-q", "--alpha-max", "30", "-o", "curve.npz", "--plot", "curve.png"],
            ["simulate", "-q", "--N", "60", "--alpha-max", "2", "--n-test", "10", "-o",
             "sim.npz"]]
    procs = [subprocess.Popen([sys.executable, "-m", "odeprune", *c], cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for c in cmds for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    curve = odeprune.load(tmp_path / "curve.npz")
    assert isinstance(curve, odeprune.LearningCurve)
    # the CLI's default network is the paper's
    np.testing.assert_allclose(curve.eg[-1], odeprune.integrate(paper_state, 0.5, 30.0).eg[-1],
                               rtol=1e-6)
    assert odeprune.load(tmp_path / "sim.npz").N == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.csv", "curve.npz", "curve.png",
                                                          "sim.csv", "sim.npz"]


# ------------------------------------------------------------------ masked networks (issue 26, item 1)
@pytest.fixture(scope="module")
def edge_pruned(tmp_path_factory):
    d = tmp_path_factory.mktemp("masked")
    assert cli("integrate", "-q", "--K", "4", "--M", "2", "--N", "200", "--v-star", "2",
               "--alpha-max", "200", "-o", d / "trained.npz") == 0
    assert cli("prune", d / "trained.npz", "--method", "magnitude_edge", "--k", "2",
               "-o", d / "pr.npz") == 0
    return d


def test_prune_then_integrate_trains_the_masked_network(edge_pruned, tmp_path):
    """`prune --method magnitude_edge -o pr` then `integrate --init pr.npz` used to train the
    dense summed network (eps_g below the unpruned one); it must give the masked retraining."""
    d = edge_pruned
    out = tmp_path / "re.npz"
    assert cli("integrate", "-q", "--init", d / "pr.npz", "--alpha-max", "50", "-o", out) == 0
    curve = odeprune.load(out)
    assert isinstance(curve, odeprune.SparseLearningCurve)
    result = odeprune.load(d / "pr.npz")
    ref = odeprune.integrate(result.sparse_state, eta=0.5, alpha_max=50)
    np.testing.assert_allclose(curve.eg[-1], ref.eg[-1], rtol=1e-6)
    # the masked network does not beat the unpruned one (the dense summed network did)
    dense = odeprune.integrate(result.state, eta=0.5, alpha_max=50)
    assert abs(curve.eg[-1] - dense.eg[-1]) > 10 * 1e-6 * dense.eg[-1]
    # and it is the number retrain gives for the same pruning
    fresh = odeprune.prune(odeprune.load(d / "trained.npz").final, "magnitude_edge", c=0.5,
                           seed=0)
    np.testing.assert_allclose(
        curve.eg[-1], odeprune.integrate(fresh.sparse_state, 0.5, 50).eg[-1], rtol=1e-6)


def test_prune_result_keeps_its_masked_network_in_the_file(tmp_path):
    state = OrderParams.random(200, 3, 2, v_star=2.0, seed=4)
    for method in ("magnitude_edge", "random_edge", "snip_edge"):
        r = odeprune.prune(state, method, c=0.5, seed=1)
        path = r.save(tmp_path / f"{method}.npz")
        back = odeprune.load(path)
        assert back.sparse_state == r.sparse_state  # array for array
        for name in ("Q", "R", "T", "f", "dense_Q", "dense_R", "eg_batches"):
            np.testing.assert_array_equal(getattr(back.sparse_state_se, name),
                                          getattr(r.sparse_state_se, name))
        assert float(back.sparse_state_se) == float(r.sparse_state_se)
        # saved again from the loaded result: still there
        again = odeprune.load(back.save(tmp_path / f"{method}.2.npz"))
        assert again.sparse_state == r.sparse_state


def test_masked_files_are_refused_where_a_dense_network_is_needed(edge_pruned, capsys):
    pr = edge_pruned / "pr.npz"
    for args in (("retrain", pr, "--k", "1"), ("ticket", "--init", pr, "--c", "0.5")):
        assert cli(*args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "masked network" in err
        assert "odeprune integrate --init" in err


def test_old_edge_prune_file_without_its_mask_is_refused_by_integrate(edge_pruned, tmp_path,
                                                                     capsys):
    arrays, meta = odeprune._io.read_npz(edge_pruned / "pr.npz")
    old = {k: v for k, v in arrays.items() if not k.startswith("masked_")}
    odeprune._io.write_npz(tmp_path / "old.npz", "PruneResult", old, meta)
    assert cli("integrate", "-q", "--init", tmp_path / "old.npz", "--alpha-max", "1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without its masked network" in err and "retrain" in err
    with pytest.raises(ValueError, match="without its masked network"):
        _ = odeprune.load(tmp_path / "old.npz").sparse_state


def test_prune_refuses_an_edge_pruned_network_like_every_masked_network(files, capsys):
    """An edge rule's PruneResult is a masked network (issue 26, item 1): prune, which maps
    dense states, refuses it as it refuses SparseOrderParams files (it used to prune the summed
    state as if it were dense)."""
    assert cli("prune", files["prune_edge"], "--method", "importance_node", "--k", "1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "masked network" in err and "integrate --init" in err
