"""The figure pipeline (``odeprune reproduce --quick``): files, data, shapes, theorem orderings,
agreement with ``odeprune.theory``, the cache and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import check_figure_files

from odeprune import theory
from odeprune.cli import main
from odeprune.figures import FIGURES, get, make

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


#: made and checked by their own modules' tests (test_landscape, test_relu, test_workflows:
#: ``test_*quick_figure``), not made a second time here
ELSEWHERE = ("limit", "relu", "retrain", "init-pruning", "tickets")
HERE = [name for name in FIGURES if name not in ELSEWHERE]
#: made with fewer seeds than QUICK (the figures' own parameters): their checks here are of the
#: layout and the closed forms, which one seed per configuration exercises
ONE_SEED = ("fig2b", "edges")


def params(name: str) -> dict:
    """The parameters a figure is made with here: QUICK, or QUICK with one seed per
    configuration."""
    q = get(name).QUICK
    if name in ONE_SEED:
        return dict(q, configs=[dict(c, seeds=c["seeds"][:1]) for c in q["configs"]])
    return q


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick figures, made once: through the CLI (``reproduce --quick``, cache in
    OUT/.cache-quick), and those of ONE_SEED through ``make`` with the same cache."""
    out = tmp_path_factory.mktemp("figures")
    cli_names = [n for n in HERE if n not in ONE_SEED]
    assert main(["reproduce", "--quick", "--quiet", "--output", str(out), "--only",
                 ",".join(cli_names)]) == 0
    for name in ONE_SEED:
        make(name, out, quick=True, cache_dir=out / ".cache-quick", progress=False,
             params=params(name))
    data = {name: json.loads((out / f"{name}.json").read_text()) for name in HERE}
    return out, data


@pytest.mark.parametrize("name", HERE)
def test_files_exist_and_data_finite(quick, name):
    out, data = quick
    d = data[name]
    check_figure_files(out, name, d, params(name))
    assert (out / "timings-quick.json").exists()
    if name not in ONE_SEED:  # made by the command line: with QUICK, timed
        assert d["params"] == get(name).QUICK
        assert name in json.loads((out / "timings-quick.json").read_text())


def _select(rows, **match):
    sel = sorted((r for r in rows if all(r.get(a) == b for a, b in match.items())),
                 key=lambda r: r["k"])
    return np.array([r["k"] for r in sel]), np.array([r["mean"] for r in sel])


def test_fig2a_shapes_and_theorem1_on_ansatz(quick):
    d = quick[1]["fig2a"]
    p, rows = d["params"], d["rows"]
    K, M = p["K"], p["M"]
    for sigma in p["sigmas"]:
        for m in ("dpp_node", "importance_node", "random_node"):
            for rw in p["limit_reweights"]:
                k, _ = _select(rows, layer="ode", sigma=sigma, method=m, reweight=rw)
                np.testing.assert_array_equal(k, np.arange(1, K + 1))
            for rw in p["finite_reweights"]:
                sim = [r for r in rows if r["layer"] == "sim" and r["sigma"] == sigma
                       and r["method"] == m and r["reweight"] == rw]
                assert len(sim) == K
                assert all(r["n_seeds"] == len(p["seeds"]) for r in sim)
    # Theorem 1 (Eq. 2) on the ansatz closed forms: DPP <= E[random] for k <= M
    Z = K // M
    for rw in ("none", "preact"):
        kd, dpp = _select(rows, layer="theory", method="dpp_node", reweight=rw)
        kr, rnd = _select(rows, layer="theory", method="random_node", reweight=rw)
        np.testing.assert_array_equal(kd, np.arange(1, M + 1))
        assert np.all(dpp <= rnd[:M] + 1e-12)
    np.testing.assert_allclose(
        _select(rows, layer="theory", method="dpp_node", reweight="none")[1],
        theory.lemma2_dpp_node(M, Z, np.arange(1, M + 1), p["v_star"]))


def test_fig2a_limit_and_finite_agree_on_unpruned(quick):
    """k = K keeps everything: every method gives the unpruned error (per layer)."""
    d = quick[1]["fig2a"]
    rows, K = d["rows"], d["params"]["K"]
    for sigma in d["params"]["sigmas"]:
        for layer in ("ode", "sim"):
            un = [r["mean"] for r in rows if r["method"] == "unpruned" and r["layer"] == layer
                  and r["sigma"] == sigma]
            for m in ("dpp_node", "importance_node", "random_node"):
                k, mean = _select(rows, layer=layer, sigma=sigma, method=m, reweight="none")
                np.testing.assert_allclose(mean[k == K], un, rtol=1e-8)


def test_fig2b_shapes_and_closed_forms(quick):
    d = quick[1]["fig2b"]
    rows = d["rows"]
    for cfg in d["params"]["configs"]:
        K, M = cfg["K"], cfg["M"]
        for m, rw in (("dpp_node", "none"), ("random_edge", "none"), ("dpp_node", "preact"),
                      ("random_edge", "rescale")):
            for layer in ("ode", "sim"):
                k, mean = _select(rows, layer=layer, sigma=0.0, K=K, M=M, method=m, reweight=rw)
                np.testing.assert_array_equal(k, cfg.get("ks", np.arange(1, K + 1)))
        k, edge = _select(rows, layer="theory", K=K, M=M, method="random_edge", reweight="none")
        np.testing.assert_allclose(edge, theory.lemma4_random_edge(M, K / M, k / K, 4.0))
        if K == 4 * M:  # Theorem 2 on the ansatz (Z >= 4): edge <= DPP node for k <= M
            kd, node = _select(rows, layer="theory", K=K, M=M, method="dpp_node",
                               reweight="none")
            assert np.all(edge[:M] <= node + 1e-12)
        for r in rows:
            if r["K"] == K and r.get("k") is not None:
                assert r["c"] == pytest.approx(r["k"] / K)


def test_fig3_matrices(quick):
    d = quick[1]["fig3"]
    p, m = d["params"], d["matrices"]
    K, M, k = p["K"], p["M"], p["k"]
    assert np.shape(m["kernel_empirical"]) == (K, K) and np.shape(m["R"]) == (K, M)
    assert np.shape(m["Q_dpp"]) == (k, k) and np.shape(m["R_random"]) == (k, M)
    Q, R, L = np.array(m["Q"]), np.array(m["R"]), np.array(m["kernel_empirical"])
    np.testing.assert_allclose(Q, Q.T)
    # the empirical kernel converges to Q (Lemma 1): error of order |Q| sqrt(2/n)
    assert d["kernel_max_abs_error"] < 6 * np.max(np.diag(Q)) * np.sqrt(2 / p["n_samples"])
    np.testing.assert_allclose(m["kernel_minus_Q"], L - Q, rtol=1e-12, atol=1e-15)
    assert d["kernel_max_abs_error"] == pytest.approx(np.max(np.abs(L - Q)), rel=1e-12)
    S = d["dpp_subset"]
    np.testing.assert_allclose(m["Q_dpp"], Q[np.ix_(S, S)])
    np.testing.assert_allclose(m["R_dpp"], R[S])
    Sr = d["random_subset"]
    assert len(Sr) == len(S) == k and len(set(Sr)) == k
    np.testing.assert_allclose(m["Q_random"], Q[np.ix_(Sr, Sr)])
    np.testing.assert_allclose(m["R_random"], R[Sr])
    assert 0 < d["dpp_subset_probability"] <= 1
    assert sorted(d["order"]) == list(range(K))
    # units drawn block by block (the block = the teacher unit each follows), in unit order
    block = np.asarray(d["block"])
    np.testing.assert_array_equal(block, np.argmax(np.abs(R), axis=1))
    np.testing.assert_array_equal(d["order"], np.lexsort((np.arange(K), block)))


def test_fig4_matches_theory(quick):
    d = quick[1]["fig4"]
    p = d["params"]
    Z = np.arange(p["Z_min"], p["Z_max"] + 1)
    u = np.linspace(0, 1, p["n_u"])
    c = u[None, :] / Z[:, None]
    np.testing.assert_allclose(d["Z"], Z)
    np.testing.assert_allclose(d["c"], c)
    np.testing.assert_allclose(d["A"], theory.theorem2_difference(Z[:, None], c))
    np.testing.assert_allclose(d["B"], theory.theorem3_difference(Z[:, None], c))
    assert np.shape(d["A"]) == (Z.size, p["n_u"])
    # the paper's claims hold on the ansatz closed forms
    assert d["summary"]["A_fail_cells"] == 0 and d["summary"]["B_fail_cells"] == 0
    inside = Z >= p["Z_claim"]
    assert np.min(np.array(d["A"])[inside]) >= -1e-12
    assert np.max(np.array(d["B"])[inside]) <= 1e-12
    # outside the hypothesis (Z = 3, k = M) the sign of 4A flips: DPP node beats random edge
    if 3 in Z:
        assert np.array(d["A"])[Z == 3][0, -1] < 0


def test_curves_shapes(quick):
    d = quick[1]["curves"]
    p = d["params"]
    for N in p["Ns"]:
        c = d["curves"][str(N)]
        n = len(c["alpha"])
        assert np.shape(c["sim"]) == np.shape(c["ode"]) == (len(p["seeds"]), n)
        # both start from the same initial order parameters
        np.testing.assert_allclose(np.array(c["sim"])[:, 0], np.array(c["ode"])[:, 0],
                                   rtol=1e-10)
    # the ODE line of the first N and seed is integrate() from that seed's initial state; the
    # rows are the means over seeds of the per-seed curves
    import odeprune

    N, seed = p["Ns"][0], p["seeds"][0]
    c = d["curves"][str(N)]
    ode = odeprune.integrate(odeprune.OrderParams.random(N, p["K"], p["M"], p["v_star"],
                                                         seed=seed),
                             p["eta"], p["alpha_max"], sigma=p["sigma"], save_at=c["alpha"])
    np.testing.assert_allclose(c["ode"][0], ode.eg, rtol=1e-9, atol=1e-14)
    for layer in ("sim", "ode"):
        means = [r["mean"] for r in d["rows"] if r["N"] == N and r["layer"] == layer]
        np.testing.assert_allclose(means, np.mean(c[layer], axis=0), rtol=1e-12)


def test_edges_shapes_and_full_keep(quick):
    """Every rule at every k, both layers; keeping everything (c = 1) is the unpruned network."""
    from odeprune.figures.edges import METHODS

    d = quick[1]["edges"]
    p, rows = d["params"], d["rows"]
    for cfg in p["configs"]:
        K = cfg["K"]
        unpruned = {r["layer"]: r["mean"] for r in rows
                    if r["method"] == "unpruned" and r["K"] == K}
        for m, _, _ in METHODS:
            for layer in ("ode", "sim"):
                k, mean = _select(rows, layer=layer, method=m, K=K)
                np.testing.assert_array_equal(k, np.arange(1, K + 1))
                assert mean[-1] == pytest.approx(unpruned[layer], rel=1e-9)
                assert np.all(mean[:-1] >= unpruned[layer] - 1e-9)


def test_replot_uses_cache(quick, monkeypatch, tmp_path):
    out, data = quick
    module = get("fig2a")

    def boom(*a, **k):
        raise AssertionError("compute() called although the data is cached")

    monkeypatch.setattr(module, "compute", boom)
    res = make("fig2a", tmp_path, quick=True, cache_dir=out / ".cache-quick", progress=False)
    assert res["data"]["rows"] == data["fig2a"]["rows"]
    assert (tmp_path / "fig2a.png").exists()


def test_resumes_from_cached_items(quick, monkeypatch, tmp_path):
    """Without the figure's data file the per-seed items are reused: no new simulation."""
    out, data = quick
    import shutil

    from odeprune.figures import _common

    cache = tmp_path / "cache"
    shutil.copytree(out / ".cache-quick", cache)
    for f in cache.glob("fig3-data-*.json"):
        f.unlink()

    def boom(*a, **k):
        raise AssertionError("simulate() called although the run is cached")

    monkeypatch.setattr(_common, "simulate", boom)  # the name the figures call
    res = make("fig3", tmp_path, quick=True, cache_dir=cache, progress=False)
    assert res["data"]["matrices"] == data["fig3"]["matrices"]


def test_same_command_same_numbers(quick, tmp_path):
    """The figure computed again from nothing (no cache) gives the numbers of the first
    computation (the fixture's, written to and read back from its JSON)."""
    a = quick[1]["fig3"]
    b = make("fig3", tmp_path / "b", quick=True, cache_dir=None, progress=False)["data"]
    assert a["matrices"] == b["matrices"] and a["random_subset"] == b["random_subset"]


def test_quick_default_output_is_separate(tmp_path, monkeypatch):
    """A quick run without --output never overwrites the full-size figures/."""
    monkeypatch.chdir(tmp_path)
    assert main(["figure", "fig4", "--quick", "--no-cache", "-q"]) == 0
    assert (tmp_path / "figures-quick" / "fig4.png").exists()
    assert not (tmp_path / "figures").exists()


def test_cli_figure_and_errors(tmp_path, capsys):
    assert main(["figure", "fig4", "--quick", "--no-cache", "-q", "--output",
                 str(tmp_path)]) == 0
    assert (tmp_path / "fig4.png").exists() and not (tmp_path / ".cache-quick").exists()
    with pytest.raises(SystemExit) as exc:
        main(["figure", "fig9"])
    assert exc.value.code == 2
    assert main(["reproduce", "--quick", "--only", "fig5", "--output", str(tmp_path)]) == 2
    assert "unknown figure" in capsys.readouterr().err


def _committed(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "figures" / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return json.loads(path.read_text())


def _readme() -> str:
    """figures/README.md with its line breaks as single spaces (sentences wrap)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "figures" / "README.md"
    return " ".join(path.read_text().split())


def _row(rows, layer, m, rw, k, sigma=0.0, **extra):
    (r,) = [r for r in rows if r["layer"] == layer and r["method"] == m and r["reweight"] == rw
            and r["k"] == k and (layer == "theory" or r["sigma"] == sigma)
            and all(r.get(x) == y for x, y in extra.items())]
    return r


def _sci(x: float) -> str:
    """``5.8·10⁻³``, as the README writes small numbers."""
    mant, exp = f"{x:.1e}".split("e")
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{mant}·10{str(int(exp)).translate(sup)}"


def test_committed_full_size_numbers_quoted_in_readme():
    """Every number figures/README.md quotes for Fig. 2A, 2B and 4 is the committed full-size
    data's, rounded as quoted (the sentence is rebuilt from the data and must appear verbatim);
    the ansatz numbers and Fig. 4's counts are recomputed here by ``odeprune.pruning.theory``;
    the statements' directions are checked on the data."""
    text = _readme()
    rows = _committed("fig2a")["rows"]

    def o(m, rw, k, sigma=0.0):  # the ODE mean, as quoted
        return f"{_row(rows, 'ode', m, rw, k, sigma)['mean']:.3f}"

    def s(m, rw, k, sigma=0.0):
        return f"{_row(rows, 'sim', m, rw, k, sigma)['mean']:.3f}"

    def sd(m, rw, k):
        return f"{_row(rows, 'sim', m, rw, k)['std']:.2f}"

    def th(f, *args):  # the ansatz closed form, recomputed
        return f"{float(f(*args)):.3f}"

    M, Z, V = 2, 3, 4.0
    quoted = [
        f"at k=1 only barely: DPP {o('dpp_node', 'none', 1)} ({s('dpp_node', 'none', 1)}) vs "
        f"random {o('random_node', 'none', 1)} ({s('random_node', 'none', 1)})",
        f"at k=2: DPP {o('dpp_node', 'none', 2)} ({s('dpp_node', 'none', 2)}) vs random "
        f"{o('random_node', 'none', 2)} ({s('random_node', 'none', 2)})",
        f"The ansatz gives {th(theory.lemma2_dpp_node, M, Z, 1, V)} = "
        f"{th(theory.random_node_expected, M, Z, 1, V)} at k=1 and "
        f"{th(theory.lemma2_dpp_node, M, Z, 2, V)} vs {th(theory.random_node_expected, M, Z, 2, V)}"
        " at k=2",
        f"DPP {o('dpp_node', 'preact', 1)} ({s('dpp_node', 'preact', 1)} ± "
        f"{sd('dpp_node', 'preact', 1)}) vs random {o('random_node', 'preact', 1)} "
        f"({s('random_node', 'preact', 1)} ± {sd('random_node', 'preact', 1)})",
        f"the ansatz gives {th(theory.lemma2_dpp_node_reweighted, M, Z, 1, V)} for both",
        f"DPP {o('dpp_node', 'preact', 2)} ({s('dpp_node', 'preact', 2)}) vs random "
        f"{o('random_node', 'preact', 2)} ({s('random_node', 'preact', 2)})",
        f"({o('dpp_node', 'preact', 1, 0.25)} vs {o('random_node', 'preact', 1, 0.25)})",
        f"holds: {o('importance_node', 'none', 1)} ≥ {o('dpp_node', 'preact', 1)} (k=1), "
        f"{o('importance_node', 'none', 2)} ≥ {o('dpp_node', 'preact', 2)} (k=2)",
        "importance is better at " + ", ".join(
            f"k={k} ({o('importance_node', 'none', k)} vs {o('dpp_node', 'none', k)})"
            for k in (1, 3, 4, 5)),
        f"DPP is better only at k=2 ({o('dpp_node', 'none', 2)} vs "
        f"{o('importance_node', 'none', 2)})",
        f"({o('dpp_node', 'preact', 1)} vs {o('importance_node', 'preact', 1)}, "
        f"{o('dpp_node', 'preact', 2)} vs {o('importance_node', 'preact', 2)}) and importance at "
        f"k ≥ 3 ({o('importance_node', 'preact', 3)} vs {o('dpp_node', 'preact', 3)} at k=3)",
        "random k=1…5: " + ", ".join(th(theory.random_node_expected, M, Z, k, V)
                                     for k in range(1, 6)) + " vs " +
        ", ".join(o("random_node", "none", k) for k in range(1, 6)),
    ]
    # the directions the text states
    for k in (1, 2):
        assert o("dpp_node", "none", k) <= o("random_node", "none", k)
    assert o("random_node", "preact", 1) < o("dpp_node", "preact", 1)
    for k in (1, 3, 4, 5):
        assert o("importance_node", "none", k) < o("dpp_node", "none", k)

    rows = _committed("fig2b")["rows"]

    def b(layer, m, rw, k, K=20, sigma=0.0, digits=2):
        return f"{_row(rows, layer, m, rw, k, sigma, K=K)['mean']:.{digits}f}"

    quoted += [
        f"k=1: {b('ode', 'random_edge', 'none', 1)} vs {b('ode', 'dpp_node', 'none', 1)}; "
        f"k=5 (c = 1/4): {b('ode', 'random_edge', 'none', 5)} ({b('sim', 'random_edge', 'none', 5)})"
        f" vs {b('ode', 'dpp_node', 'none', 5)} ({b('sim', 'dpp_node', 'none', 5)})",
        f"k=5: {b('ode', 'dpp_node', 'preact', 5)} ({b('sim', 'dpp_node', 'preact', 5)}) vs "
        f"{b('ode', 'random_edge', 'rescale', 5)} ({b('sim', 'random_edge', 'rescale', 5)})",
        f"edge at k=5: {float(theory.lemma4_random_edge(5, 4, 0.25, V)):.2f} vs ODE "
        f"{b('ode', 'random_edge', 'none', 5)}; DPP {float(theory.lemma2_dpp_node(5, 4, 5, V)):.2f}"
        f" vs {b('ode', 'dpp_node', 'none', 5)}",
        f"σ=0, k=1: edge better ({b('ode', 'random_edge', 'none', 1, 6, digits=3)} vs "
        f"{b('ode', 'dpp_node', 'none', 1, 6, digits=3)}); k=2: **DPP better** "
        f"({b('ode', 'dpp_node', 'none', 2, 6, digits=3)} vs "
        f"{b('ode', 'random_edge', 'none', 2, 6, digits=3)})",
        f"(k=1: {float(theory.lemma4_random_edge(M, Z, 1 / 6, V)):.3f} vs "
        f"{th(theory.lemma2_dpp_node, M, Z, 1, V)}; k=2: "
        f"{float(theory.lemma4_random_edge(M, Z, 2 / 6, V)):.3f} vs "
        f"{th(theory.lemma2_dpp_node, M, Z, 2, V)})",
    ]
    for sigma in (0.0, 0.25):
        for layer in ("ode", "sim"):
            for k in range(1, 6):  # Theorem 2 and 3 directions for M=5, K=20 (Z=4)
                def mean(m, rw, k=k, layer=layer, sigma=sigma):
                    return _row(rows, layer, m, rw, k, sigma, K=20)["mean"]
                assert mean("random_edge", "none") < mean("dpp_node", "none")
                assert mean("dpp_node", "preact") < mean("random_edge", "rescale")

    # Fig. 4, recomputed on the committed grid from the closed forms
    f4 = _committed("fig4")
    p = f4["params"]
    Z = np.arange(p["Z_min"], p["Z_max"] + 1)[:, None]
    c = np.linspace(0, 1, p["n_u"])[None, :] / Z
    A, B = theory.theorem2_difference(Z, c), theory.theorem3_difference(Z, c)
    inside = np.broadcast_to(Z >= p["Z_claim"], A.shape)
    a_fail = int(np.sum(A[inside] < -p["tol"]))
    b_fail = int(np.sum(B[inside] > p["tol"]))
    below = int(np.sum(A[~inside] < -p["tol"]))
    assert (a_fail, b_fail) == (0, 0) and below > 0
    summary = f4["summary"]
    assert (summary["A_fail_cells"], summary["B_fail_cells"]) == (a_fail, b_fail)
    assert summary["A_fail_cells_below_Z_claim"] == below
    assert summary["cells"] == inside.sum() and summary["cells_below_Z_claim"] == (~inside).sum()
    n_in = int(inside.sum())
    quoted += [
        f"({a_fail} of {n_in // 1000} {n_in % 1000:03d} cells with the wrong sign; "
        f"4A ∈ [0, {_sci(A[inside].max())}], 4B ∈ [−{_sci(-B[inside].min())}, 0] in units of "
        "M v*²)",
        f"4A is negative in {below} of {int((~inside).sum())} cells",
        f"a difference of {_sci(float(theory.theorem2_difference(4, 0.25)))} M v*²",
    ]
    missing = [q for q in quoted if q not in text]
    assert not missing, "figures/README.md does not quote the data:\n" + "\n".join(missing)


def test_committed_fig2a_limit_layer_is_what_the_package_computes(paper_state):
    """Seed 0 of Fig. 2A's limit layer (sigma=0), recomputed: the ODE from the paper's initial
    state to alpha=1600, then the exact node-pruning maps."""
    import odeprune

    d = _committed("fig2a")
    p = d["params"]
    (item,) = [x for x in d["per_seed"]["0.0"] if x["seed"] == 0]
    curve = odeprune.integrate(paper_state, eta=p["eta"], alpha_max=p["alpha_max"])
    np.testing.assert_allclose(curve.eg[-1], item["eg_ode"], rtol=1e-5)
    for m in ("dpp_node", "importance_node", "random_node"):
        for k in range(1, p["K"] + 1):
            np.testing.assert_allclose(odeprune.prune(curve.final, m, k=k).eg_mean,
                                       item["limit"][f"{m}|none|{k}"], rtol=1e-5)
