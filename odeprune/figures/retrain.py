"""Does the ranking of pruning methods survive retraining? eps_g before and after retraining.

The paper's trained students (M=2, K=6, N=500, eta=0.5, v*=4, alpha=1600, sigma=0) are pruned by
every node method (random, importance, DPP; without and with the authors' pre-activation
reweighting) and every edge rule (random, magnitude per row and global, SNIP, DPP-edge) at equal
parameter count c = k/K, then retrained for Delta alpha in {10, 100, 1000}
(:func:`odeprune.workflows.retrain`). Lines: the limit (pruning maps and ODEs, edge-pruned
networks as per-class states) from the ODE-trained state of each seed's initial draw, mean over
seeds. Markers: finite N (:func:`odeprune.workflows.retrain_finite`: real trained weights, real
masks / subsets, SGD), mean +- standard error over seeds. A second row (M=5, K=20): node
methods as above; an edge-pruned K=20 network has up to 2^20 mask classes, so its limit is the
coordinate law (docs/theory.md §11): the decision on particles of the trained law, retraining by
the particle SDE (``coords.integrate_law``, Monte-Carlo error from replicas), to Delta alpha =
100 (the particle SDE at K=20 to 1000 is beyond this figure's budget); magnitude edge pruning
also at finite N.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from .. import workflows
from ..coords import CoordinateLaw, decide, integrate_law
from ..plotting import subplots
from ..state import OrderParams
from . import _cache, _common

NAME = "retrain"
METHODS = (("random_node", "none", "C1", "random node"),
           ("random_node", "preact", "C1", "random node + reweight"),
           ("importance_node", "none", "C7", "importance node"),
           ("importance_node", "preact", "C7", "importance node + reweight"),
           ("dpp_node", "none", "C0", "DPP node"),
           ("dpp_node", "preact", "C0", "DPP node + reweight"),
           ("random_edge", "none", "C4", "random edge"),
           ("magnitude_edge", "none", "C3", "magnitude edge (row)"),
           ("magnitude_edge_global", "none", "C8", "magnitude edge (global)"),
           ("snip_edge", "none", "C5", "SNIP edge"),
           ("dpp_edge", "none", "C2", "DPP edge"))
NODE = ("random_node", "importance_node", "dpp_node")
COMMON = dict(eta=0.5, v_star=4.0, alpha_train=1600.0, delta_alphas=[10.0, 100.0, 1000.0],
              n_samples_map=100_000, n_samples_finite=5000, max_outcomes=32)
FULL = dict(COMMON, configs=[
    dict(N=500, K=6, M=2, ks=[1, 2, 3, 4, 5], seeds=[0, 1, 2, 3], edges=True,
         finite_ks=[2, 3], finite_seeds=[0, 1, 2, 3, 4, 5, 6, 7]),
    dict(N=500, K=20, M=5, ks=[2, 5, 10], seeds=[0, 1], edges="particles",
         edge_rules=["random_edge", "magnitude_edge"], edge_ks=[5, 10], edge_seeds=[0],
         particle_alphas=[10.0, 100.0], S=1000, replicas=4, dt=0.1, finite_ks=[10],
         finite_rules=["magnitude_edge"], finite_seeds=[0, 1, 2, 3])])
QUICK = dict(COMMON, alpha_train=20.0, delta_alphas=[2.0, 10.0], n_samples_map=20_000,
             n_samples_finite=500, max_outcomes=4, configs=[
                 dict(N=60, K=3, M=1, ks=[2], seeds=[0], edges=True, finite_ks=[2],
                      finite_seeds=[0, 1])])


def _methods(cfg, finite=False):
    if cfg["edges"] == "particles":
        rules = cfg["finite_rules"] if finite else cfg["edge_rules"]
        return [m for m in METHODS if m[0] in NODE or m[0] in rules]
    return [m for m in METHODS if cfg["edges"] or m[0] in NODE]


def _particle_retrain(trained, method, c, cfg, p, seed):
    """Rows of an edge rule on a trained state by the coordinate law: decide on particles,
    retrain them by the particle SDE (its error from replicas)."""
    law = CoordinateLaw.from_state(trained, S=cfg["S"], replicas=cfg["replicas"], seed=seed)
    pruned = decide(law, method, c, seed=seed)
    e, se = pruned.eg()
    row = dict(workflow="retrain", layer="limit", method=method, k=None, c=c, reweight="none",
               n=cfg["replicas"])
    rows = [dict(row, alpha=0.0, eg=e, eg_se=se)]
    cv = integrate_law(pruned, p["eta"], max(cfg["particle_alphas"]),
                       save_at=cfg["particle_alphas"], method="particles", dt=cfg["dt"],
                       seed=seed)
    rows += [dict(row, alpha=float(a), eg=float(m), eg_se=float(s))
             for a, m, s in zip(cv.alpha, cv.eg, cv.eg_se)]
    return rows


def _size(method, k, K):
    return dict(k=k) if method in NODE else dict(c=k / K)


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    rows = []
    for cfg in p["configs"]:
        N, K, M = cfg["N"], cfg["K"], cfg["M"]
        tp = dict(eta=p["eta"], alpha_max=p["alpha_train"], save_at=[0.0, p["alpha_train"]])
        methods = _methods(cfg)
        # ---------------- limit: every seed's ODE-trained state
        bar = _common.progress_bar(len(cfg["seeds"]) * len(methods) * len(cfg["ks"]),
                                   f"{NAME} limit K={K}", progress)
        for seed in cfg["seeds"]:
            init = OrderParams.random(N, K, M, v_star=p["v_star"], seed=seed)
            trained = _common.ode_curve(cache_dir, init, tp,
                                        key=dict(N=N, K=K, M=M, v_star=p["v_star"],
                                                 seed=seed)).final
            for method, rw, _, _ in methods:
                if cfg["edges"] == "particles" and method not in NODE:
                    if seed not in cfg["edge_seeds"]:
                        continue
                    for k in cfg["edge_ks"]:
                        key = dict(N=N, K=K, M=M, seed=seed, method=method, k=k,
                                   **{n: cfg[n] for n in ("S", "replicas", "dt",
                                                          "particle_alphas")},
                                   **{n: p[n] for n in ("eta", "v_star", "alpha_train")})
                        for r in _cache.cached_json(
                                cache_dir, f"{NAME}-particles", key,
                                lambda method=method, k=k, trained=trained, seed=seed:
                                _particle_retrain(trained, method, k / K, cfg, p, seed)):
                            rows.append(dict(r, K=K, M=M, N=N, seed=seed))
                    continue
                for k in cfg["ks"]:
                    key = dict(N=N, K=K, M=M, seed=seed, method=method, reweight=rw, k=k,
                               **{n: p[n] for n in ("eta", "v_star", "alpha_train",
                                                    "delta_alphas", "n_samples_map",
                                                    "max_outcomes")})

                    def one(method=method, rw=rw, k=k, trained=trained, seed=seed):
                        r = workflows.retrain(trained, method, reweight=rw, eta=p["eta"],
                                              delta_alphas=p["delta_alphas"], seed=seed,
                                              n_samples=p["n_samples_map"],
                                              max_outcomes=p["max_outcomes"],
                                              **_size(method, k, K))
                        return r.table

                    for r in _cache.cached_json(cache_dir, f"{NAME}-limit", key, one):
                        rows.append(dict(r, K=K, M=M, N=N, seed=seed, layer="limit"))
                    bar.update(1)
        bar.close()
        # ---------------- finite N: real trained weights
        if not cfg["finite_ks"]:
            continue
        sp = dict(N=N, K=K, M=M, eta=p["eta"], alpha_max=p["alpha_train"], v_star=p["v_star"],
                  n_test=0, save_at=[p["alpha_train"]])
        sims = _common.simulations(cache_dir, sp, cfg["finite_seeds"], progress,
                                   desc=f"{NAME} train N={N} K={K}")
        fmethods = _methods(cfg, finite=True)
        bar = _common.progress_bar(len(fmethods) * len(cfg["finite_ks"]),
                                   f"{NAME} finite N={N} K={K}", progress)
        for method, rw, _, _ in fmethods:
            for k in cfg["finite_ks"]:
                key = dict(sp, seeds=cfg["finite_seeds"], method=method, reweight=rw, k=k,
                           delta_alphas=p["delta_alphas"], n_samples=p["n_samples_finite"])

                def one(method=method, rw=rw, k=k):
                    r = workflows.retrain_finite(sims, method, reweight=rw, eta=p["eta"],
                                                 delta_alphas=p["delta_alphas"],
                                                 n_samples=p["n_samples_finite"],
                                                 **_size(method, k, K))
                    return r.table

                for r in _cache.cached_json(cache_dir, f"{NAME}-finite", key, one):
                    rows.append(dict(r, K=K, M=M))
                bar.update(1)
        bar.close()
    for r in rows:  # the figure tables' common value column
        r["mean"] = r["eg"]
    return dict(figure=NAME, params=p, rows=rows,
                notes="eps_g (noiseless) right after pruning (alpha=0) and after retraining for "
                      "alpha; c = k/K. limit rows: one per ODE-trained seed (eg_se: Monte Carlo "
                      "of sampled outcomes / coordinate maps); finite rows: mean and standard "
                      "error over seeds, eg_ode the ODE from the same real pruned starts, gap = "
                      "finite - eg_ode paired per seed.")


def summary(rows: list[dict], K: int, method: str, reweight: str, alpha: float, layer: str):
    """``(c, mean, err)`` arrays: the limit's mean over seeds (err: spread over seeds / sqrt n)
    or the finite rows' mean and standard error."""
    sel = [r for r in rows if r["K"] == K and r["method"] == method
           and r["reweight"] == reweight and abs(r["alpha"] - alpha) < 1e-9
           and r["layer"] == layer]
    cs = sorted({round(r["c"], 12) for r in sel})
    out_c, out_m, out_e = [], [], []
    for c in cs:
        vals = [r for r in sel if abs(r["c"] - c) < 1e-9]
        if layer == "limit":
            m, _, se, _ = _common.mean_std([r["eg"] for r in vals])
            if len(vals) == 1:  # one seed: its own Monte-Carlo error (coordinate law)
                se = vals[0].get("eg_se", se)
        else:
            m, se = vals[0]["eg"], vals[0]["eg_se"]
        out_c.append(c)
        out_m.append(m)
        out_e.append(se)
    return np.array(out_c), np.array(out_m), np.array(out_e)


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, rows = data["params"], data["rows"]
    cfgs = p["configs"]
    times = [0.0] + list(p["delta_alphas"])
    fig, axes = subplots(len(cfgs), len(times), figsize=(3.6 * len(times), 3.3 * len(cfgs)),
                             squeeze=False)
    for i, cfg in enumerate(cfgs):
        K = cfg["K"]
        methods = _methods(cfg)
        for j, a in enumerate(times):
            ax = axes[i, j]
            for n, (method, rw, col, _) in enumerate(methods):
                ls = "--" if rw == "preact" else "-"
                c, m, _ = summary(rows, K, method, rw, a, "limit")
                if c.size:
                    ax.plot(c, m, ls, color=col, lw=1.3)
                c, m, e = summary(rows, K, method, rw, a, "finite")
                if c.size:
                    ax.errorbar(c + (n - 5) * 0.006, m, yerr=e, fmt="s" if rw == "preact" else "o",
                                ms=3.2, color=col, mfc="none" if rw == "preact" else col,
                                capsize=2, lw=0.8)
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("c = kept fraction of parameters")
            what = "right after pruning" if a == 0 else f"after retraining Δα={a:g}"
            ax.set_title(f"M={cfg['M']}, K={K}: {what}", fontsize=8.5)
            if j == 0:
                ax.set_ylabel(r"$\epsilon_g$")
        if cfg["edges"] == "particles":
            axes[i, 0].text(0.98, 0.98, "edge rules at K=20 (2^20 mask classes):\n"
                            "coordinate law (particles), Δα ≤ 100", transform=axes[i, 0].transAxes,
                            fontsize=6, va="top", ha="right")
    handles = [Line2D([], [], color=col, ls="--" if rw == "preact" else "-", lw=1.6, label=lab)
               for _, rw, col, lab in METHODS]
    handles += [Line2D([], [], color="k", label="N→∞: maps + ODEs (mean over seeds)"),
                Line2D([], [], color="k", ls="", marker="o",
                       label="finite N=500, real weights (±s.e. over seeds)")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7.5, frameon=False)
    fig.suptitle(f"Prune, then retrain (η={p['eta']}, v*={p['v_star']:g}, trained to "
                 f"α={p['alpha_train']:g})", fontsize=10)
    fig.tight_layout(rect=(0, 0.1 if len(cfgs) > 1 else 0.16, 1, 0.96))
    return _common.save(fig, out_dir, NAME)
