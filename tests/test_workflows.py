"""Prune-then-train workflows (``odeprune.workflows``): retraining (``workflows.retrain``)
against independent computations (integrating the pruned state by hand), input checks of every
workflow, files, the command line and the quick figures, and the acceptance criterion for
retraining: the limit against its finite-N counterpart on the same seeds, within error bars that
shrink with N (N = 500 and 2000, 8 seeds; the helpers are shared with
``test_workflows_init.py`` and ``test_workflows_tickets.py``). IMP and gradual pruning:
``test_workflows_schedules.py``; what the modules share: ``test_workflows_common.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams, workflows
from odeprune.sparse import SparseOrderParams

ETA = 0.5


@pytest.fixture(scope="module")
def trained():
    init = OrderParams.random(N=500, K=4, M=2, v_star=4.0, seed=3)
    return odeprune.integrate(init, eta=ETA, alpha_max=50.0, progress=False).final


# ------------------------------------------------------------------------ the public API
def test_node_retraining_equals_integrating_the_pruned_state(trained):
    """Deterministic node method: the workflow's curve is integrate() of prune().state."""
    r = workflows.retrain(trained, "importance_node", k=2, reweight="preact",
                          delta_alphas=[5, 20])
    arm = r.arms[0]
    ref = odeprune.integrate(odeprune.prune(trained, "importance_node", k=2,
                                            reweight="preact").state,
                             eta=ETA, alpha_max=20.0, save_at=r.alpha[arm], progress=False)
    np.testing.assert_allclose(r.eg[arm], ref.eg, rtol=1e-12, atol=0)
    np.testing.assert_allclose(r.eg_at(arm, 20.0), ref.eg[-1], rtol=1e-12)
    row0 = [x for x in r.table if x["alpha"] == 0.0][0]
    np.testing.assert_allclose(row0["eg"], odeprune.prune(trained, "importance_node", k=2,
                                                          reweight="preact").eg_mean, rtol=1e-10)


def test_random_node_retraining_is_the_probability_weighted_mean(trained):
    r = workflows.retrain(trained, "random_node", k=2, delta_alphas=[10])
    pr = odeprune.prune(trained, "random_node", k=2)
    arm = r.arms[0]
    curves = [odeprune.integrate(s, eta=ETA, alpha_max=10.0, save_at=r.alpha[arm],
                                 progress=False).eg for s in pr.states]
    np.testing.assert_allclose(r.eg[arm], np.asarray(pr.probabilities) @ np.array(curves),
                               rtol=1e-12)
    assert r.table[0]["n"] == 6 and r.table[0]["eg_se"] == 0.0  # exact over C(4,2)


def test_sampled_outcomes_report_their_standard_error(trained):
    r = workflows.retrain(trained, "random_node", k=2, delta_alphas=[5], max_outcomes=4,
                          seed=1)
    assert r.metadata["outcomes_sampled"] and r.table[-1]["n"] == 4
    assert r.table[-1]["eg_se"] > 0


def test_random_edge_retraining_is_the_random_mask_state(trained):
    r = workflows.retrain(trained, "random_edge", c=0.5, delta_alphas=[10])
    arm = r.arms[0]
    ref = odeprune.integrate(SparseOrderParams.random_mask(trained, 0.5), eta=ETA,
                             alpha_max=10.0, save_at=r.alpha[arm], progress=False)
    np.testing.assert_allclose(r.eg[arm], ref.eg, rtol=1e-12)
    # Lemma 6 before retraining
    np.testing.assert_allclose(r.eg[arm][0], odeprune.prune(trained, "random_edge",
                                                            c=0.5).eg_mean, rtol=1e-10)






@pytest.mark.parametrize("call, match", [
    (lambda s: workflows.retrain(s, "importance_node", k=5), "out of range"),
    (lambda s: workflows.retrain(s, "random_edge", c=1.5), "c="),
    (lambda s: workflows.retrain(s, "nope", k=1), "unknown"),
    (lambda s: workflows.retrain(s, "random_edge", c=0.5, reweight="preact"), "reweight"),
    (lambda s: workflows.retrain(s, "random_node", k=1, delta_alphas=[0]), "delta_alphas"),
    (lambda s: workflows.prune_at_init(s, "dpp_node", 0.5), "unknown"),
    (lambda s: workflows.prune_at_init(s, "random_edge", -0.1), "c="),
    (lambda s: workflows.lottery_ticket(s, 0.5, alpha_T=1, alpha_rewind=2), "alpha_rewind"),
    (lambda s: workflows.lottery_ticket(s, 0.5, arms=("dense", "lucky")), "arms"),
    (lambda s: workflows.lottery_ticket(s, 0.5, scope="layer"), "scope"),
    (lambda s: workflows.iterative_magnitude_pruning(s, prune_fraction=1.0), "prune_fraction"),
    (lambda s: workflows.retrain(s, "random_edge", c=0.5, k=2), "k="),
])
def test_bad_input_is_refused_before_any_work(trained, call, match):
    with pytest.raises(ValueError, match=match):
        call(trained)


def test_edge_rules_on_large_K_point_to_finite_N():
    big = OrderParams.random(N=200, K=14, M=2, v_star=4.0, seed=0)
    with pytest.raises(ValueError, match="finite"):
        workflows.retrain(big, "random_edge", c=0.5)




def test_result_file_round_trip_and_csv(trained, tmp_path):
    r = workflows.retrain(trained, "random_edge", c=0.5, delta_alphas=[5])
    path = r.save(tmp_path / "wf.npz")
    back = workflows.WorkflowResult.load(path)
    assert back.arms == r.arms and back.table == r.table and back.layer == "limit"
    np.testing.assert_array_equal(back.eg[r.arms[0]], r.eg[r.arms[0]])
    lines = r.to_csv().splitlines()
    assert lines[0].split(",")[:3] == ["workflow", "layer", "arm"] and len(lines) == 3


# ------------------------------------------------------------------------ limit vs finite N
SEEDS = list(range(8))
K, M, V_STAR = 4, 2, 4.0


def _paired(limit_eg, finite_eg):
    """Mean and standard error of the per-seed difference finite - limit."""
    d = np.asarray(finite_eg) - np.asarray(limit_eg)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size)), float(np.sqrt(np.mean(
        d ** 2)))


def _check_shrinks(stats):
    """``stats[N] = (mean gap, se, rms)``: every mean gap within 3 standard errors of 0, and the
    per-seed gap shrinks with N."""
    for N, (mean, se, _) in stats.items():
        assert abs(mean) < 3 * se + 1e-12, (N, mean, se)
    assert stats[2000][2] < stats[500][2], stats


@pytest.mark.slow
@pytest.mark.parametrize("method, kw", [("importance_node", dict(k=2)),
                                        ("magnitude_edge", dict(c=0.5))])
def test_retrain_limit_matches_finite_N(method, kw):
    """Train 10, prune, retrain 10: the limit workflow from each seed's initial order
    parameters against the real protocol on the same seed; and the masked ODE from the real
    pruned start against SGD from it (the finite-N effect of retraining alone)."""
    alpha_T, d_alpha = 10.0, 10.0
    stats, stats_ode = {}, {}
    for N in (500, 2000):
        sims = odeprune.simulate(N, K, M, ETA, alpha_T, save_at=[alpha_T], v_star=V_STAR,
                                 seeds=SEEDS, n_test=0, progress=False)
        fin = workflows.retrain_finite(sims, method, delta_alphas=[d_alpha], n_samples=2000,
                                       **kw)
        arm = fin.arms[0]
        j = int(np.argmin(np.abs(fin.alpha[arm] - d_alpha)))
        lim = []
        for s in SEEDS:
            tr = odeprune.integrate(OrderParams.random(N, K, M, V_STAR, seed=s), eta=ETA,
                                    alpha_max=alpha_T, progress=False).final
            r = workflows.retrain(tr, method, delta_alphas=[d_alpha], seed=s, n_samples=50_000,
                                  **kw)
            lim.append(r.eg_at(r.arms[0], d_alpha))
        stats[N] = _paired(lim, fin.eg[arm][:, j])
        stats_ode[N] = _paired(fin.eg_ode[arm][:, j], fin.eg[arm][:, j])
    _check_shrinks(stats)
    _check_shrinks(stats_ode)






# ------------------------------------------------------------------------ command line, figures
def test_cli_retrain_writes_files_the_next_command_reads(tmp_path, capsys):
    from odeprune.cli import main

    trained = tmp_path / "trained.npz"
    assert main(["integrate", "--K", "4", "--M", "2", "--alpha-max", "20", "-o",
                 str(trained)]) == 0
    out = tmp_path / "re"
    assert main(["retrain", str(trained), "--method", "importance_node,random_edge", "--k", "2",
                 "--delta-alpha", "5", "-q", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "importance_node k=2 none" in text and "random_edge c=0.5 none" in text
    res = workflows.WorkflowResult.load(tmp_path / "re.npz")
    assert len(res.arms) == 2 and (tmp_path / "re.csv").read_text().startswith("workflow,")
    # the retrained networks continue with integrate --init (dense and masked)
    for arm in ("importance_node_k_2_none", "random_edge_c_0.5_none"):
        assert main(["integrate", "--init", str(tmp_path / f"re.{arm}.npz"), "--alpha-max",
                     "2", "-o", str(tmp_path / f"cont.{arm}.npz")]) == 0
    cont = odeprune.load(tmp_path / "cont.importance_node_k_2_none.npz")
    np.testing.assert_allclose(cont.alpha[0], 5.0)
    np.testing.assert_allclose(cont.eg[0], res.eg_at(res.arms[0], 5.0), rtol=1e-10)


def test_cli_retrain_finite_and_ticket(tmp_path, capsys):
    from odeprune.cli import main

    sims = tmp_path / "sims.npz"
    assert main(["simulate", "--N", "100", "--K", "3", "--M", "1", "--alpha-max", "5",
                 "--seeds", "0,1", "--n-test", "0", "-o", str(sims)]) == 0
    assert main(["retrain", str(sims), "--finite", "--method", "magnitude_edge", "--c", "0.5",
                 "--delta-alpha", "2", "-q", "-o", str(tmp_path / "rf")]) == 0
    ens = odeprune.load(tmp_path / "rf.magnitude_edge_c_0.5_none.npz")
    assert len(ens) == 2 and np.all(np.mean(np.asarray(ens[0].w) != 0, axis=1) == 0.5)
    assert main(["ticket", "--mode", "imp", "--N", "100", "--K", "3", "--M", "1", "--rounds",
                 "1", "--alpha-train", "2", "--n-samples", "20000", "--layer", "both",
                 "--seeds", "0,1", "-q", "-o", str(tmp_path / "imp")]) == 0
    text = capsys.readouterr().out
    assert "# imp, N -> inf" in text and "# imp, finite N=100, 2 seeds" in text
    assert workflows.WorkflowResult.load(tmp_path / "imp.finite.npz").table[1]["c"] == 0.8


@pytest.mark.parametrize("argv, match", [
    (["ticket", "--c", "0.5", "--mode", "imp"], "--c does not apply"),
    (["ticket"], "needs --c"),
    (["ticket", "--c", "0.5", "--alpha-rewind", "600"], "--alpha-rewind"),
    (["ticket", "--mode", "init", "--c", "0.5", "--rounds", "2"], "--mode imp only"),
])
def test_cli_refuses_contradictions_in_one_line(argv, match, capsys):
    from odeprune.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["retrain", "init-pruning", "tickets"])
def test_quick_figure(name, tmp_path):
    from odeprune.figures import make

    res = make(name, tmp_path, quick=True, cache_dir=tmp_path / "cache", progress=False)
    rows = res["data"]["rows"]
    layers = {r["layer"] for r in rows}
    assert layers == {"limit", "finite"}
    assert np.all(np.isfinite([r["eg"] for r in rows]))
    for suffix in (".png", ".pdf", ".json", ".csv"):
        assert (tmp_path / f"{name}{suffix}").stat().st_size > 0
    # a re-plot comes from the cache
    again = make(name, tmp_path, quick=True, cache_dir=tmp_path / "cache", progress=False)
    assert again["data"]["rows"] == rows
