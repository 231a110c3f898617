"""Repeated magnitude decisions: one-shot pruning, IMP with rewinding and gradual pruning, exact.

The final ε_g against the final kept fraction of the first layer for three protocols of
magnitude pruning (per row), from the paper's initial network (M=2, K=6, η=0.5, v*=4, σ=0;
the limit starts from the order parameters of the same N=1000 draws as the finite-N runs):

- **one-shot**: train dense for ``alpha_per_round``, keep the fraction d of largest magnitude,
  rewind to the initial weights, train the masked network for ``alpha_per_round``;
- **IMP**: the same, pruning ``prune_fraction`` of the kept weights per round
  (:func:`odeprune.workflows.iterative_magnitude_pruning`): every density of IMP is a round;
- **gradual** (Zhu & Gupta): a cubic schedule from 1 to d over ``[0.1, 0.6] x alpha_gradual``
  during training, no rewinding, training on to ``alpha_gradual``
  (:func:`odeprune.workflows.gradual_magnitude_pruning`).

Lines: the limit (coordinate law: exact up to the Monte-Carlo error of the decisions, shaded
band ± 2 se over replicas), from each seed's initial order parameters, mean over seeds.
Markers: finite N on real weights (same protocol, ± s.e. over seeds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from .. import workflows
from ..plotting import subplots
from ..state import OrderParams
from ..workflows import schedules
from . import _cache, _common

NAME = "gradual"
FULL = dict(N=1000, K=6, M=2, eta=0.5, v_star=4.0, alpha_per_round=200.0,
            alpha_gradual=400.0, rounds=5, prune_fraction=0.3, n_prunes=8,
            seeds=list(range(6)), finite_N=1000, finite_seeds=list(range(6)), n_samples=160_000)
QUICK = dict(FULL, N=100, K=3, M=1, alpha_per_round=10.0, alpha_gradual=20.0, rounds=2,
             prune_fraction=0.4, n_prunes=3, seeds=[0], finite_N=100, finite_seeds=[0, 1],
             n_samples=16_000)
ARMS = (("one-shot", "C0", "s"), ("IMP", "C3", "o"), ("gradual", "C2", "^"))


def _densities(p: dict) -> list[float]:
    return [(1 - p["prune_fraction"]) ** r for r in range(1, p["rounds"] + 1)]


def _schedule(p: dict, d: float):
    a = p["alpha_gradual"]
    return schedules.zhu_gupta_schedule(d, 0.1 * a, 0.6 * a, p["n_prunes"])


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    N, K, M = p["N"], p["K"], p["M"]
    dens = _densities(p)
    common = dict(eta=p["eta"], n_samples=p["n_samples"], progress=False)
    rows = []
    bar = _common.progress_bar(len(p["seeds"]) * (1 + 2 * len(dens)), f"{NAME} limit",
                               progress)
    for seed in p["seeds"]:
        init = OrderParams.random(N, K, M, v_star=p["v_star"], seed=seed)
        key = dict(p, seed=seed, layer="limit")

        def imp(init=init, seed=seed):
            r = workflows.iterative_magnitude_pruning(
                init, rounds=p["rounds"], prune_fraction=p["prune_fraction"],
                alpha_per_round=p["alpha_per_round"], seed=seed, **common)
            return [dict(arm="IMP", c=x["c"], eg=x["eg"], eg_se=x["eg_se"]) for x in r.table]
        rows += [dict(x, seed=seed, layer="limit")
                 for x in _cache.cached_json(cache_dir, f"{NAME}-imp", key, imp)]
        bar.update(1)
        for d in dens:
            def one_shot(init=init, seed=seed, d=d):
                r = workflows.iterative_magnitude_pruning(
                    init, rounds=1, prune_fraction=1 - d, alpha_per_round=p["alpha_per_round"],
                    seed=seed, **common)
                x = r.table[-1]
                return dict(arm="one-shot", c=x["c"], eg=x["eg"], eg_se=x["eg_se"])

            def gradual(init=init, seed=seed, d=d):
                r = workflows.gradual_magnitude_pruning(init, _schedule(p, d),
                                                        p["alpha_gradual"], seed=seed, **common)
                x = r.table[-1]
                return dict(arm="gradual", c=x["c"], eg=x["eg"], eg_se=x["eg_se"])

            for name, fn in (("one-shot", one_shot), ("gradual", gradual)):
                x = _cache.cached_json(cache_dir, f"{NAME}-{name}", dict(key, d=d), fn)
                rows.append(dict(x, seed=seed, layer="limit"))
                bar.update(1)
    bar.close()
    Nf, seeds = p["finite_N"], p["finite_seeds"]
    net = dict(eta=p["eta"], v_star=p["v_star"], seeds=seeds, progress=False)
    bar = _common.progress_bar(1 + 2 * len(dens), f"{NAME} N={Nf}", progress)
    key = dict(p, layer="finite")

    def imp_f():
        r = workflows.iterative_magnitude_pruning_finite(
            Nf, K, M, rounds=p["rounds"], prune_fraction=p["prune_fraction"],
            alpha_per_round=p["alpha_per_round"], **net)
        return [dict(arm="IMP", c=x["c"], eg=x["eg"], eg_se=x["eg_se"]) for x in r.table]
    rows += [dict(x, layer="finite", N=Nf)
             for x in _cache.cached_json(cache_dir, f"{NAME}-imp-finite", key, imp_f)]
    bar.update(1)
    for d in dens:
        def one_shot_f(d=d):
            x = workflows.iterative_magnitude_pruning_finite(
                Nf, K, M, rounds=1, prune_fraction=1 - d,
                alpha_per_round=p["alpha_per_round"], **net).table[-1]
            return dict(arm="one-shot", c=x["c"], eg=x["eg"], eg_se=x["eg_se"])

        def gradual_f(d=d):
            x = workflows.gradual_magnitude_pruning_finite(Nf, K, M, _schedule(p, d),
                                                           p["alpha_gradual"], **net).table[-1]
            return dict(arm="gradual", c=x["c"], eg=x["eg"], eg_se=x["eg_se"])

        for name, fn in (("one-shot", one_shot_f), ("gradual", gradual_f)):
            x = _cache.cached_json(cache_dir, f"{NAME}-{name}-finite", dict(key, d=d), fn)
            rows.append(dict(x, layer="finite", N=Nf))
            bar.update(1)
    bar.close()
    for r in rows:
        r["mean"] = r["eg"]
    return dict(figure=NAME, params=p, rows=rows,
                notes="final eps_g (noiseless) vs final kept fraction c of the first layer; "
                      "limit rows per seed's initial order parameters with eg_se the Monte-"
                      "Carlo error of the coordinate law; finite rows mean and s.e. over seeds")


def summary(rows: list, arm: str, layer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(c, eg, se)`` of ``arm`` in ``layer``, averaged over seeds at each density (limit: the
    mean of the seeds' values with their Monte-Carlo errors combined)."""
    sel = [r for r in rows if r["arm"] == arm and r["layer"] == layer and r["c"] < 1 - 1e-9]
    cs = sorted({round(r["c"], 3) for r in sel}, reverse=True)
    c, e, s = [], [], []
    for ci in cs:
        g = [r for r in sel if round(r["c"], 3) == ci]
        c.append(np.mean([r["c"] for r in g]))
        e.append(np.mean([r["eg"] for r in g]))
        s.append(np.sqrt(np.sum(np.square([r["eg_se"] for r in g]))) / len(g))
    return np.array(c), np.array(e), np.array(s)


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, rows = data["params"], data["rows"]
    fig, ax = subplots(1, 1, figsize=(5.6, 4.2))
    dense = np.mean([r["eg"] for r in rows if r["layer"] == "limit" and r["arm"] == "IMP"
                     and r["c"] > 1 - 1e-9])
    ax.axhline(dense, color="k", lw=0.8, ls="--")
    for n, (arm, col, mk) in enumerate(ARMS):
        c, e, s = summary(rows, arm, "limit")
        ax.plot(c, e, "-", color=col, lw=1.4)
        ax.fill_between(c, e - 2 * s, e + 2 * s, color=col, alpha=0.2, lw=0)
        c, e, s = summary(rows, arm, "finite")
        ax.errorbar(c * (1 + 0.015 * (n - 1)), e, yerr=s, fmt=mk, color=col, ms=4, capsize=2,
                    lw=0.8, mfc="none")
    ax.set(xscale="log", yscale="log", xlabel="final kept fraction of the first layer",
           ylabel=r"final $\epsilon_g$")
    ax.invert_xaxis()
    ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color=col, marker=mk, mfc="none", label=lab)
               for lab, col, mk in ARMS]
    handles += [Line2D([], [], color="0.3", label="N→∞ (coordinate law, ±2 s.e.)"),
                Line2D([], [], color="0.3", ls="", marker="o", mfc="none",
                       label=f"finite N={p['finite_N']} (±s.e., {len(p['finite_seeds'])} "
                             "seeds)"),
                Line2D([], [], color="k", ls="--", lw=0.8, label="dense, after round 0")]
    ax.legend(handles=handles, fontsize=7)
    ax.set_title(f"Magnitude pruning protocols (M={p['M']}, K={p['K']}, η={p['eta']}, "
                 f"v*={p['v_star']:g})\none-shot/IMP: α={p['alpha_per_round']:g} per round, "
                 f"rewind to 0; gradual: cubic over [0.1, 0.6]×{p['alpha_gradual']:g}",
                 fontsize=8.5)
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)
