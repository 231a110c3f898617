"""The lottery-ticket papers in their own setting: sparse teachers (``docs/sparse_teacher.md``).

A teacher whose units have supports of density c_t (Zhang et al. 2021, 2023), an erf student
(K=4, M=2, v*=1, eta=0.5). Panels:

(a) eps_g of the ticket arms at one density: dense, oracle ticket (mask = the matched teacher
    unit's support), the magnitude ticket (one-shot from the dense student trained to alpha_T,
    rewound to 0: exact coordinate law with its Monte-Carlo band), IMP with rewinding, a random
    mask of the same density; lines the limit (from the order parameters of N_init draws, mean
    over draws), markers finite N (SGD, mean +- s.e. over seeds);
(b) alpha needed to reach eps_g <= theta against the kept fraction (= c_t);
(c) does magnitude pruning of the trained dense student find the support: P(kept | on support)
    and P(kept | off support) against alpha_T (exact limit; finite N = 500, 2000);
(d) "good at initialisation stays good": Spearman correlation of |w| at 0 and at alpha_T, and the
    overlap of the magnitude masks at 0 and alpha_T (limit: joint-law particles; finite N).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from .. import teachers
from .._stats import sem
from ..plotting import subplots
from . import _cache, _common

NAME = "sparse-teacher"
ARMS = (("dense", "k", "dense student"), ("oracle", "C3", "oracle ticket (teacher support)"),
        ("magnitude", "C0", "magnitude ticket (one-shot, rewound)"),
        ("imp", "C2", "IMP ticket (rewound)"), ("random", "C1", "random mask"))
FULL = dict(K=4, M=2, eta=0.5, v_star=1.0, densities=[0.1, 0.2, 0.5], panel_density=0.2,
            alpha_max=1000.0, alpha_T=100.0, thresholds=[1e-2, 1e-3], imp_rounds=3,
            S=20_000, replicas=8, N_init=500, init_seeds=[0, 1, 2, 3],
            finite_N=500, finite_seeds=list(range(8)),
            recovery=dict(alpha_T=[2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0], N=[500, 2000],
                          seeds=list(range(8)), S=20_000, replicas=8))
QUICK = dict(FULL, K=3, densities=[0.25], panel_density=0.25, alpha_max=40.0, alpha_T=10.0,
             thresholds=[3e-2], imp_rounds=1, S=2000, replicas=4, N_init=200, init_seeds=[0],
             finite_N=200, finite_seeds=[0, 1],
             recovery=dict(alpha_T=[5.0, 10.0], N=[200], seeds=[0, 1], S=2000, replicas=4))


def _lists(d):
    if isinstance(d, dict):
        return {k: _lists(v) for k, v in d.items()}
    if isinstance(d, np.ndarray):
        return d.tolist()
    if isinstance(d, (np.floating, np.integer)):
        return d.item()
    return d


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    K, M = p["K"], p["M"]
    base = {n: p[n] for n in ("K", "M", "eta", "v_star", "alpha_max", "alpha_T", "thresholds")}
    rows, curves = [], {"limit": [], "finite": []}
    rec = p["recovery"]
    n_items = len(p["densities"]) * (len(p["init_seeds"]) + 1) + len(p["densities"]) * len(rec["N"])
    bar = _common.progress_bar(n_items, NAME, progress)
    for c in p["densities"]:
        for seed in p["init_seeds"]:
            key = dict(base, c=c, seed=seed, N_init=p["N_init"], S=p["S"],
                       replicas=p["replicas"], imp_rounds=p["imp_rounds"])

            def one(c=c, seed=seed):
                out = teachers.convergence_limit(
                    K, M, c, N_init=p["N_init"], seed=seed, eta=p["eta"], v_star=p["v_star"],
                    alpha_max=p["alpha_max"], alpha_T=p["alpha_T"], thresholds=p["thresholds"],
                    imp_rounds=p["imp_rounds"], S=p["S"], replicas=p["replicas"])
                return _lists(out)

            out = _cache.cached_json(cache_dir, f"{NAME}-limit", key, one)
            for arm, a in out["arms"].items():
                curves["limit"].append(dict(c_t=c, seed=seed, arm=arm, alpha=a["alpha"],
                                            eg=a["eg"], eg_se=a["eg_se"]))
                for k, th in enumerate(p["thresholds"]):
                    rows.append(dict(kind="convergence", layer="limit", c_t=c, seed=seed,
                                     arm=arm, c=a["c"], theta=th,
                                     alpha_theta=a["alpha_theta"][k],
                                     alpha_theta_se=a["alpha_theta_se"][k],
                                     eg_final=a["eg"][-1], eg_final_se=a["eg_se"][-1]))
            if "recovery" in out:
                rows.append(dict(kind="ticket_recovery", layer="limit", c_t=c, seed=seed,
                                 alpha_T=p["alpha_T"], **out["recovery"]))
            bar.update(1)
        key = dict(base, c=c, N=p["finite_N"], seeds=p["finite_seeds"])

        def one_finite(c=c):
            return _lists(teachers.convergence_finite(
                K, M, c, N=p["finite_N"], seeds=p["finite_seeds"], eta=p["eta"],
                v_star=p["v_star"], alpha_max=p["alpha_max"], alpha_T=p["alpha_T"],
                thresholds=p["thresholds"]))

        out = _cache.cached_json(cache_dir, f"{NAME}-finite", key, one_finite)
        for arm, a in out["arms"].items():
            curves["finite"].append(dict(c_t=c, arm=arm, N=p["finite_N"], alpha=a["alpha"],
                                         eg=a["eg_mean"], eg_se=a["eg_se"]))
            for k, th in enumerate(p["thresholds"]):
                rows.append(dict(kind="convergence", layer="finite", N=p["finite_N"], c_t=c,
                                 arm=arm, c=a["c"], theta=th, alpha_theta=a["alpha_theta"][k],
                                 alpha_theta_se=a["alpha_theta_se"][k],
                                 reached=a["reached"][k], eg_final=a["eg_mean"][-1],
                                 eg_final_se=a["eg_se"][-1]))
        bar.update(1)
        for N in rec["N"]:
            key = dict(base, c=c, N=N, rec=rec)

            def one_rec(c=c, N=N):
                return teachers.support_recovery_experiment(
                    K, M, c, alpha_T=rec["alpha_T"], N=N, seeds=rec["seeds"], eta=p["eta"],
                    v_star=p["v_star"], S=rec["S"] if N == rec["N"][0] else 0,
                    replicas=rec["replicas"])

            rows += [dict(r, kind="recovery") for r in
                     _cache.cached_json(cache_dir, f"{NAME}-recovery", key, one_rec)]
            bar.update(1)
    bar.close()
    for r in rows:  # the figure tables' common value column (always defined): the final
        r["mean"] = r.get("eg_final", r.get("p_on"))  # error, or P(kept | on support)
    return dict(figure=NAME, params=p, rows=rows, curves=curves,
                notes="column mean: eg_final (convergence rows) or p_on (recovery rows). "
                      "convergence rows: alpha to reach eps_g <= theta (time since the ticket's "
                      "training started) per arm; limit rows one per initial draw (seed, "
                      "N_init) with the Monte-Carlo error of the coordinate-law arms; finite rows "
                      "mean and s.e. over seeds (NaN when a seed never reaches theta). recovery "
                      "rows: per seed, N, alpha_T and kept fraction c: P(kept | on / off the "
                      "matched teacher's support) after magnitude pruning of the dense student "
                      "trained to alpha_T, rho = Spearman(|w(0)|, |w(alpha_T)|), overlap of the "
                      "magnitude masks at 0 and alpha_T; limit rows from the same initial "
                      "weights as the finite rows.")


def _agg(rows, key, **sel):
    xs = [r[key] for r in rows if all(r.get(k) == v for k, v in sel.items())
          and r.get(key) is not None and np.isfinite(r[key])]
    if not xs:
        return np.nan, np.nan
    return float(np.mean(xs)), float(sem(xs)) if len(xs) > 1 else 0.0


def _recovery_lines(ax, rows, rec, key, c, col, ls, limit_N) -> None:
    """One recovery quantity ``key`` against alpha_T at teacher density ``c``: the limit (the
    line, from the initial draws of size ``limit_N``) and every finite N (markers, +- s.e.)."""
    A = rec["alpha_T"]
    lim = [_agg(rows, key, kind="recovery", layer="limit", c_t=c, alpha_T=float(a), N=limit_N)
           for a in A]
    ax.plot(A, [m for m, _ in lim], ls, color=col, lw=1.3)
    for q, N in enumerate(rec["N"]):
        fin = [_agg(rows, key, kind="recovery", layer="finite", c_t=c, alpha_T=float(a), N=N)
               for a in A]
        ax.errorbar(np.array(A) * (1 + 0.05 * q), [m for m, _ in fin],
                    yerr=[e for _, e in fin], fmt="os"[q % 2], color=col, ms=3.2,
                    mfc="none" if q else col, capsize=2, ls="none")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, cv, rows = data["params"], data["curves"], data["rows"]
    fig, axes = subplots(1, 4, figsize=(17.5, 4.2), squeeze=False)
    axes = axes[0]
    # (a) curves at one density
    ax = axes[0]
    c0 = p["panel_density"]
    for n, (arm, col, _) in enumerate(ARMS):
        lim = [x for x in cv["limit"] if x["arm"] == arm and abs(x["c_t"] - c0) < 1e-12]
        if lim:
            a = np.array(lim[0]["alpha"])
            E = np.array([x["eg"] for x in lim])
            se = np.sqrt(np.sum(np.array([x["eg_se"] for x in lim]) ** 2, 0)) / len(lim)
            m = E.mean(0)
            ax.plot(a[1:], m[1:], "-", color=col, lw=1.3)
            ax.fill_between(a[1:], (m - 2 * se)[1:], (m + 2 * se)[1:], color=col, alpha=0.25,
                            lw=0)
        fin = [x for x in cv["finite"] if x["arm"] == arm and abs(x["c_t"] - c0) < 1e-12]
        if fin:
            a, E, se = (np.array(fin[0][k]) for k in ("alpha", "eg", "eg_se"))
            sel = np.unique(np.geomspace(2, a.size - 1, 10).astype(int))
            ax.errorbar(a[sel] * (1 + 0.04 * (n - 2)), E[sel], yerr=se[sel], fmt="o", ms=3,
                        color=col, capsize=2, lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$ since training started",
           ylabel=r"$\epsilon_g$")
    ax.set_title(f"(a) teacher density c_t = {c0:g}, kept fraction = c_t", fontsize=9)
    # (b) alpha_theta vs kept fraction
    ax = axes[1]
    marks = ["o", "s", "^", "D"]
    for arm, col, _ in ARMS:
        for k, th in enumerate(p["thresholds"]):
            xs, ys, es, xf, yf, ef = [], [], [], [], [], []
            for c in p["densities"]:
                m, e = _agg(rows, "alpha_theta", kind="convergence", layer="limit", arm=arm,
                            c_t=c, theta=th)
                if np.isfinite(m):
                    xs.append(1.0 if arm == "dense" else c)
                    ys.append(m)
                    es.append(e)
                fr = [r for r in rows if r["kind"] == "convergence" and r["layer"] == "finite"
                      and r["arm"] == arm and r["c_t"] == c and r["theta"] == th]
                if fr and fr[0]["alpha_theta"] is not None and np.isfinite(fr[0]["alpha_theta"]):
                    xf.append((1.0 if arm == "dense" else c) * 1.04)
                    yf.append(fr[0]["alpha_theta"])
                    ef.append(fr[0]["alpha_theta_se"])
            if arm == "dense" and ys:  # one dense student per teacher density
                ax.errorbar(np.array(p["densities"])[:len(ys)] * 0 + 1.0, ys, yerr=es,
                            fmt=marks[k], color=col, ms=4, capsize=2, ls="none")
            elif ys:
                ax.errorbar(xs, ys, yerr=es, fmt=marks[k] + "-", color=col, ms=4, capsize=2,
                            lw=1.1)
            if yf:
                ax.errorbar(xf, yf, yerr=ef, fmt=marks[k], color=col, mfc="none", ms=5,
                            capsize=2, ls="none")
    ax.set(xscale="log", yscale="log", xlabel="kept fraction (= teacher density c_t)",
           ylabel=r"$\alpha$ to reach $\epsilon_g \leq \theta$")
    ax.set_title("(b) " + ", ".join(f"{marks[k]}: θ={t:g}" for k, t in
                                    enumerate(p["thresholds"])) + "; open: finite N", fontsize=9)
    # (c) support recovery vs alpha_T
    ax = axes[2]
    rec = p["recovery"]
    for j, c in enumerate(p["densities"]):
        col = f"C{j + 4}"
        for key, ls in (("p_on", "-"), ("p_off", "--")):
            _recovery_lines(ax, rows, rec, key, c, col, ls, limit_N=rec["N"][-1])
        ax.axhline(c, color=col, lw=0.6, ls=":")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel=r"$\alpha_T$ (dense training before pruning)",
           ylabel="P(kept | on support) —, P(kept | off) - -")
    ax.set_title("(c) magnitude pruning, kept fraction c = c_t (dotted)", fontsize=9)
    # (d) rank correlation
    ax = axes[3]
    for j, c in enumerate(p["densities"]):
        col = f"C{j + 4}"
        for key, ls in (("rho", "-"), ("overlap", "--")):
            _recovery_lines(ax, rows, rec, key, c, col, ls, limit_N=rec["N"][0])
    ax.set(xscale="log", ylim=(0, 1.02), xlabel=r"$\alpha_T$",
           ylabel="Spearman(|w(0)|, |w(α_T)|) —, mask overlap - -")
    ax.set_title("(d) good at initialisation stays good?", fontsize=9)
    handles = [Line2D([], [], color=col, label=lab) for _, col, lab in ARMS]
    handles += [Line2D([], [], color=f"C{j + 4}", label=f"c_t = {c:g}")
                for j, c in enumerate(p["densities"])]
    handles += [Line2D([], [], color="0.3", label="N→∞ (same initial weights)"),
                Line2D([], [], color="0.3", ls="", marker="o",
                       label="finite N " + ", ".join(str(n) for n in rec["N"])
                       + " (filled, open; ±s.e.)")]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7.5, frameon=False)
    fig.suptitle(f"Sparse teachers and lottery tickets (erf, K={p['K']}, M={p['M']}, "
                 f"η={p['eta']}, v*={p['v_star']:g}, tickets from α_T={p['alpha_T']:g})",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return _common.save(fig, out_dir, NAME)
