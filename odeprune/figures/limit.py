"""The fundamental limit of pruning (Zhang et al. 2024) against what pruning reaches, and the
Hessian spectrum through order parameters (docs/theory.md §10, :mod:`odeprune.landscape`).

(a) Kept fraction vs the loss tolerance eps: Zhang et al.'s formula in the limit
    (:func:`~odeprune.landscape.pruning_limit`, with their upper bound and their trace bound) and
    the actual smallest fraction at which one-shot global magnitude pruning keeps
    eps_g <= eps_g* + eps (:func:`~odeprune.landscape.actual_limit`; second layer untouched, or
    refitted; and, for K <= 12, after retraining the masked network by gradient flow). States: minima reached by gradient flow (``integrate(..., gradient_flow=True)``,
    eta=1 so alpha is gradient-flow time) from the paper's random start
    ``OrderParams.random(500, K, M, v_star=4, seed)``, M=2, K=6 and M=5, K=20.
(b) Along the paper's SGD learning curve (eta=0.5, M=2, K=6, v*=4): the bulk values 2 mu_a,
    the top eigenvalue (sharpness) and the smallest eigenvalue (the plateau is a saddle) vs alpha.
(c) At finite N (weights realised exactly with the order parameters of the M=2, K=6 minimum):
    the population spectrum against the dense empirical-loss Hessian on n training samples.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import landscape as ls
from ..plotting import subplots
from ..state import OrderParams
from . import _common

NAME = "limit"
FULL = dict(
    configs=[dict(K=6, M=2, alpha_max=3e4), dict(K=20, M=5, alpha_max=1e5)],
    N0=500, v_star=4.0, seed=0, eta=1.0, rtol=1e-10, atol=1e-12,
    eps=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1], reweights=["none", "refit"],
    xtol=1e-3, upper_samples=20_000, retrain_alpha=1000.0, retrain_max_K=12,
    curve=dict(K=6, M=2, eta=0.5, alpha_max=1600.0, n_times=60),
    finite=dict(K=6, M=2, N=100, n_over_D=[1, 4, 16, 64], seed=1),
)
QUICK = dict(
    FULL, configs=[dict(K=4, M=2, alpha_max=2e4)], v_star=2.0, eps=[1e-3, 1e-2, 1e-1],
    xtol=1e-2, upper_samples=2000, retrain_alpha=50.0,
    curve=dict(K=4, M=2, eta=0.5, alpha_max=50.0, n_times=12),
    finite=dict(K=4, M=2, N=30, n_over_D=[2, 8], seed=1),
)


def _minimum(cache_dir, p, cfg):
    start = OrderParams.random(p["N0"], cfg["K"], cfg["M"], v_star=p["v_star"], seed=p["seed"])
    curve = _common.ode_curve(
        cache_dir, start,
        dict(eta=p["eta"], alpha_max=cfg["alpha_max"], gradient_flow=True, rtol=p["rtol"],
             atol=p["atol"], save_at=[0.0, cfg["alpha_max"]]),
        key=dict(N=p["N0"], K=cfg["K"], M=cfg["M"], v_star=p["v_star"], seed=p["seed"]))
    return curve.final


def _weights_with(state, N, seed):
    """Finite weights whose order parameters are exactly ``state``'s: ``Z = sqrt(N) B U^T`` with
    ``B B^T = C`` and ``U`` (N, L) a random orthonormal frame."""
    C = np.array(state.covariance(), dtype=float)
    lam, V = np.linalg.eigh(C)
    B = V * np.sqrt(np.clip(lam, 0, None))
    U, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((N, C.shape[0])))
    Z = math.sqrt(N) * B @ U.T
    return Z[:state.K], Z[state.K:]


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    rows: list[dict] = []
    panels: dict = {"limit": {}, "curve": {}, "finite": {}}
    bar = _common.progress_bar(len(p["configs"]) * (1 + len(p["reweights"])) + 2,
                               f"{NAME}", progress)
    # (a) predicted vs actual
    for cfg in p["configs"]:
        K, M = cfg["K"], cfg["M"]
        state = _minimum(cache_dir, p, cfg)
        bar.update(1)
        grad = ls.gradient(state)
        spec = ls.hessian_spectrum(state)
        entry = dict(K=K, M=M, alpha=cfg["alpha_max"], eg_star=state.eg(),
                     gradient_norm=grad.norm, min_eigenvalue=float(spec.eigenvalues.min()),
                     bulk=spec.bulk.tolist(), v=state.v.tolist(), eps=p["eps"])
        preds = [ls.pruning_limit(state, e, upper_samples=p["upper_samples"], seed=p["seed"])
                 for e in p["eps"]]
        for kind, attr in (("predicted", "rho"), ("upper_bound", "rho_upper"),
                           ("trace_bound", "rho_trace")):
            entry[kind] = [getattr(r, attr) for r in preds]
        entry["upper_bound_se"] = [r.rho_upper_se for r in preds]
        kinds = ["predicted", "upper_bound", "trace_bound"]
        for rw in p["reweights"]:
            act = ls.actual_limit(state, p["eps"], reweight=rw, xtol=p["xtol"])
            entry[f"actual_{rw}"] = [a.c for a in act]
            entry[f"fallbacks_{rw}"] = list(act[-1].fallbacks)
            kinds.append(f"actual_{rw}")
            bar.update(1)
        if p.get("retrain_alpha") and K <= p["retrain_max_K"]:
            act = ls.actual_limit(state, p["eps"], xtol=p["xtol"], seed=p["seed"],
                                  retrain_alpha=p["retrain_alpha"])
            entry["actual_retrained"] = [a.c for a in act]
            kinds.append("actual_retrained")
        for j, e in enumerate(p["eps"]):
            for kind in kinds:
                rows.append(dict(panel="limit", K=K, M=M, eps=e, quantity=kind,
                                 value=float(entry[kind][j])))
        panels["limit"][f"{K},{M}"] = entry
    # (b) spectrum along the SGD learning curve
    c = p["curve"]
    start = OrderParams.random(p["N0"], c["K"], c["M"], v_star=p["v_star"], seed=p["seed"])
    alphas = np.concatenate([[0.0], np.geomspace(0.1, c["alpha_max"], c["n_times"] - 1)])
    curve = _common.ode_curve(cache_dir, start,
                              dict(eta=c["eta"], alpha_max=c["alpha_max"], save_at=alphas),
                              key=dict(N=p["N0"], K=c["K"], M=c["M"], v_star=p["v_star"],
                                       seed=p["seed"]))
    cur = dict(alpha=[], eg=[], bulk=[], top=[], trace=[], min=[], gradient_norm=[])
    for j, a in enumerate(np.asarray(curve.alpha)):
        s = curve.state(j)
        sp = ls.hessian_spectrum(s)
        sh = ls.sharpness(s)
        vals = dict(alpha=float(a), eg=s.eg(), bulk=sp.bulk.tolist(), top=sh.top,
                    trace=sh.trace, min=float(sp.eigenvalues.min()),
                    gradient_norm=ls.gradient(s).norm)
        for key, val in vals.items():
            cur[key].append(val)
        for q in ("eg", "top", "trace", "min", "gradient_norm"):
            rows.append(dict(panel="curve", K=c["K"], M=c["M"], alpha=float(a), quantity=q,
                             value=float(vals[q])))
    panels["curve"] = cur
    bar.update(1)
    # (c) population vs empirical spectrum at finite N
    f = p["finite"]
    cfg = next(x for x in p["configs"] if x["K"] == f["K"] and x["M"] == f["M"])
    state = _minimum(cache_dir, p, cfg)
    N = f["N"]
    w, w_star = _weights_with(state, N, f["seed"])
    check = OrderParams.from_weights(w, w_star, state.v, state.v_star)
    pop = ls.hessian_spectrum(check, N).first_layer()          # natural units, K N values
    D = f["K"] * N
    fin = dict(N=N, D=D, population=pop.tolist(), empirical={},
               order_parameter_error=float(np.max(np.abs(check.covariance()
                                                         - state.covariance()))))
    rows.append(dict(panel="finite", n=0, quantity="top", value=float(pop[-1])))
    rows.append(dict(panel="finite", n=0, quantity="trace", value=float(pop.sum() / N)))
    for r in f["n_over_D"]:
        n = int(r * D)
        H = ls.empirical_hessian(w, w_star, state.v, state.v_star, n, seed=f["seed"] + r,
                                 second_layer=False)
        emp = np.linalg.eigvalsh(H) * N
        fin["empirical"][str(n)] = emp.tolist()
        w1 = float(np.mean(np.abs(np.sort(emp) - pop)))    # Wasserstein-1 of the two spectra
        for q, val in (("top", emp[-1]), ("trace", emp.sum() / N), ("wasserstein1", w1),
                       ("min", emp[0])):
            rows.append(dict(panel="finite", n=n, quantity=q, value=float(val)))
    panels["finite"] = fin
    bar.update(1)
    bar.close()
    return dict(figure=NAME, params=p, rows=rows, panels=panels,
                notes="kept fraction rho (fraction of first-layer weights kept). predicted: "
                      "Zhang et al.'s formula in the limit (= their lower bound); upper_bound: "
                      "their upper bound (Hessian on the removed coordinates, Monte Carlo); "
                      "trace_bound: their sharpness bound; actual_none/actual_refit: one-shot "
                      "global magnitude pruning, second layer kept/refitted, smallest c with "
                      "eps_g <= eps_g* + eps (to xtol); actual_retrained: the same after "
                      "retraining the masked network by gradient flow for retrain_alpha (K <= "
                      "retrain_max_K, exact mask classes). Eigenvalues in natural units N*lambda; "
                      "the trace is raw (sum of lambda).")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p = data["params"]
    P = data["panels"]
    fig, axes = subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    styles = {"predicted": ("-", "o"), "upper_bound": (":", "^"), "trace_bound": ("-.", "v"),
              "actual_none": ("--", "s"), "actual_refit": ("--", "x"),
              "actual_retrained": ("-", "D")}
    for n, e in enumerate(P["limit"].values()):
        col = f"C{n}"
        for kind, (ls_, mk) in styles.items():
            if kind not in e:
                continue
            ax.plot(e["eps"], e[kind], ls_, marker=mk, ms=4, color=col,
                    label=f"M={e['M']}, K={e['K']}: {kind.replace('_', ' ')}")
    ax.set(xscale="log", xlabel=r"tolerance $\varepsilon$ ($\epsilon_g \leq \epsilon_g^* + "
           r"\varepsilon$)", ylabel=r"kept fraction $\rho$", ylim=(0, 1.02))
    ax.set_title("(a) pruning limit: Zhang et al. (limit) vs global magnitude", fontsize=9)
    ax.legend(fontsize=6, ncol=1)
    ax.grid(alpha=0.3, which="both")

    ax = axes[1]
    c = P["curve"]
    a = np.array(c["alpha"])
    m = a > 0
    bulk = np.array(c["bulk"])
    for j in range(bulk.shape[1]):
        ax.plot(a[m], np.abs(bulk[m, j]), "-", color="0.6", lw=0.8,
                label=r"bulk $|2\mu_a|$" if j == 0 else None)
    ax.plot(a[m], np.array(c["top"])[m], "C3-", lw=1.5, label=r"top $N\lambda_{max}$")
    mins = np.array(c["min"])
    ax.plot(a[m], np.where(mins < 0, -mins, np.nan)[m], "C0--", lw=1.2,
            label=r"$-N\lambda_{min}$ (negative curvature)")
    ax.plot(a[m], np.array(c["eg"])[m], "k:", lw=1.2, label=r"$\epsilon_g$")
    ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$", ylabel="eigenvalue (natural units)")
    cp = p["curve"]
    ax.set_title(f"(b) spectrum along SGD: M={cp['M']}, K={cp['K']}, η={cp['eta']}, "
                 f"v*={p['v_star']:g}", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")

    ax = axes[2]
    fin = P["finite"]
    pop = np.array(fin["population"])
    allv = np.concatenate([pop] + [np.array(v) for v in fin["empirical"].values()])
    top = float(np.max(np.abs(allv)))
    floor = 1e-6 * top          # |values| below are drawn at the floor (flat directions)
    bins = np.geomspace(floor / 1.5, top * 1.5, 70)
    for n, (nn, emp) in enumerate(fin["empirical"].items()):
        emp = np.array(emp)
        ax.hist(np.clip(np.abs(emp), floor, None), bins=bins, histtype="step",
                color=f"C{n + 1}", lw=1.2,
                label=f"empirical, n={nn} (n/D={int(nn) / fin['D']:g})")
    ax.hist(np.clip(np.abs(pop), floor, None), bins=bins, histtype="stepfilled", color="0.3",
            alpha=0.35, label=f"population (exact), N={fin['N']}, D={fin['D']}")
    ax.set(xscale="log", yscale="log", ylabel="count",
           xlabel=r"$|N\lambda|$ (values below $10^{-6}$ max at the left edge)")
    ax.set_title(f"(c) first-layer Hessian at the M={p['finite']['M']}, K={p['finite']['K']} "
                 "minimum", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)
