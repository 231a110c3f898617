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
(d)-(f) Zhang et al.'s own protocol (:mod:`odeprune.landscape.protocol`): L1-trained minima
    (gradient flow of the coordinate law with the L1 proximal step, from the paper's random
    start), one-shot global magnitude pruning with no refit, eps free and their eps (the spread
    of the B = 128 batch loss), the formula with the exact spectrum, with |lambda| and with their
    flat-fraction correction. (d) kept fraction vs eps at the L1 minimum (and their protocol at
    the unregularised minimum); (e) eps_g after pruning vs the kept fraction; (f) L1 online SGD
    in the limit against finite N (N = 500, 2000, 8 seeds).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .. import landscape as ls
from ..coords import CoordinateLaw, decide
from ..plotting import subplots
from ..state import OrderParams
from . import _cache, _common

NAME = "limit"
FULL = dict(
    configs=[dict(K=6, M=2, alpha_max=3e4), dict(K=20, M=5, alpha_max=1e5)],
    N0=500, v_star=4.0, seed=0, eta=1.0, rtol=1e-10, atol=1e-12,
    eps=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1], reweights=["none", "refit"],
    xtol=1e-3, upper_samples=20_000, retrain_alpha=1000.0, retrain_max_K=12,
    curve=dict(K=6, M=2, eta=0.5, alpha_max=1600.0, n_times=60),
    finite=dict(K=6, M=2, N=100, n_over_D=[1, 4, 16, 64], seed=1),
    protocol=dict(
        eps=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], B=128, xtol=1e-3, check="ignore",
        gf=dict(K=6, M=2, v_star=4.0, N0=500, seed=0, l1=[0.01], alpha_max=3000.0, S=4000,
                replicas=4, dt=0.05),
        dense_particles=dict(S=20_000, replicas=4),
        sgd=dict(K=3, M=2, v_star=2.0, N0=500, seed=0, l1=0.02, eta=0.5, alpha_max=300.0,
                 S=4000, replicas=8, dt=0.05, Ns=[500, 2000], seeds=8),
        n_rho=41,
    ),
)
QUICK = dict(
    FULL, configs=[dict(K=4, M=2, alpha_max=2e4)], v_star=2.0, eps=[1e-3, 1e-2, 1e-1],
    xtol=1e-2, upper_samples=2000, retrain_alpha=50.0,
    curve=dict(K=4, M=2, eta=0.5, alpha_max=50.0, n_times=12),
    finite=dict(K=4, M=2, N=30, n_over_D=[2, 8], seed=1),
    protocol=dict(
        eps=[1e-3, 1e-2, 1e-1], B=128, xtol=1e-2, check="ignore",
        gf=dict(K=3, M=2, v_star=2.0, N0=500, seed=0, l1=[0.02], alpha_max=200.0, S=1000,
                replicas=2, dt=0.05),
        dense_particles=dict(S=2000, replicas=2),
        sgd=dict(K=3, M=2, v_star=2.0, N0=500, seed=0, l1=0.02, eta=0.5, alpha_max=15.0,
                 S=1000, replicas=4, dt=0.05, Ns=[500], seeds=4),
        n_rho=11,
    ),
)


def _minimum(cache_dir, p, cfg):
    start = OrderParams.random(p["N0"], cfg["K"], cfg["M"], v_star=p["v_star"], seed=p["seed"])
    curve = _common.ode_curve(
        cache_dir, start,
        dict(eta=p["eta"], alpha_max=cfg["alpha_max"], gradient_flow=True, rtol=p["rtol"],
             atol=p["atol"], save_at=[0.0, cfg["alpha_max"]]),
        key=dict(N=p["N0"], K=cfg["K"], M=cfg["M"], v_star=p["v_star"], seed=p["seed"]))
    return curve.final


_QS = ("eps", "actual", "predicted", "predicted_abs", "predicted_theirs", "upper", "trace")


def _summary(pl) -> dict:
    """JSON-able means and standard errors (over replicas or seeds) of a ProtocolLimit."""
    d = dict(eps_labels=list(pl.eps_labels), N=pl.N, l1=pl.l1, replicas=int(pl.eg_star.size))
    for q in ("eg_star", "batch_sd", "nonzero", "flat"):
        v = np.asarray(getattr(pl, q))
        d[q] = float(v.mean())
        d[f"{q}_se"] = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    for q in _QS:
        d[q] = pl.mean(q).tolist()
        d[f"{q}_se"] = np.nan_to_num(pl.se(q), nan=0.0).tolist()
    return d


def _minimum_info(mn) -> dict:
    return dict(stationary=bool(mn.stationary), message=mn.message, eg=mn.eg, eg_se=mn.eg_se,
                eg_drift=mn.eg_drift, residual=float(np.max(mn.residual)),
                residual_tol=mn.residual_tol, velocity=mn.velocity, alpha=mn.alpha,
                histogram=np.asarray(mn.histogram).tolist(),
                zeros=float(np.mean(mn.law.w == 0)))


def _pruned_curve(law, n):
    rhos = np.linspace(0.0, 1.0, n)
    egs = [decide(law, "magnitude_edge_global", float(r)).eg() for r in rhos]
    return dict(rho=rhos.tolist(), eg_pruned=[e[0] for e in egs],
                eg_pruned_se=[0.0 if not np.isfinite(e[1]) else e[1] for e in egs])


def _protocol_gf(cache_dir, pp, dense_state):
    """Their protocol at L1 gradient-flow minima of the coordinate law and (their eps, no refit)
    at the unregularised minimum ``dense_state``."""
    g = pp["gf"]
    common = dict(B=pp["B"], xtol=pp["xtol"], check=pp["check"])
    key = dict(g, eps=pp["eps"], n_rho=pp["n_rho"], **common)

    def compute():
        start = OrderParams.random(g["N0"], g["K"], g["M"], v_star=g["v_star"], seed=g["seed"])
        out = {}
        for lam in g["l1"]:
            t0 = time.perf_counter()
            mn = ls.l1_minimum(start, lam, alpha_max=g["alpha_max"], S=g["S"],
                               replicas=g["replicas"], dt=g["dt"], seed=g["seed"])
            pl = ls.protocol_limit(mn, pp["eps"], **common)
            out[f"{lam:g}"] = dict(_summary(pl), **_minimum_info(mn),
                                   **_pruned_curve(mn.law, pp["n_rho"]),
                                   curve_alpha=np.asarray(mn.curve.alpha).tolist(),
                                   curve_eg=np.asarray(mn.curve.eg).tolist(),
                                   seconds=time.perf_counter() - t0)
        return out

    res = _cache.cached_json(cache_dir, "limit-protocol-gf", key, compute)

    def dense():
        dp = pp["dense_particles"]
        pl = ls.protocol_limit(dense_state, pp["eps"], S=dp["S"], replicas=dp["replicas"],
                               seed=g["seed"], **common)
        # the same Gaussian particles as protocol_limit's (same S, replicas, seed)
        law = CoordinateLaw.from_state(dense_state, S=dp["S"], replicas=dp["replicas"],
                                       seed=g["seed"])
        return dict(_summary(pl), **_pruned_curve(law, pp["n_rho"]))

    key_d = dict(pp["dense_particles"], eps=pp["eps"], n_rho=pp["n_rho"], seed=g["seed"],
                 K=dense_state.K, M=dense_state.M, Q=np.asarray(dense_state.Q).tolist(),
                 **common)
    return res, _cache.cached_json(cache_dir, "limit-protocol-dense", key_d, dense)


def _protocol_sgd(cache_dir, pp):
    """L1 online SGD in the limit (particle SDE) and at finite N, their protocol on both."""
    g = pp["sgd"]
    common = dict(B=pp["B"], xtol=pp["xtol"], check="ignore")
    key = dict(g, eps=pp["eps"], **common)

    def compute():
        start = OrderParams.random(g["N0"], g["K"], g["M"], v_star=g["v_star"], seed=g["seed"])
        t0 = time.perf_counter()
        lim = ls.l1_minimum(start, g["l1"], eta=g["eta"], alpha_max=g["alpha_max"],
                            gradient_flow=False, S=g["S"], replicas=g["replicas"], dt=g["dt"],
                            seed=g["seed"])
        out = dict(limit=dict(_summary(ls.protocol_limit(lim, pp["eps"], **common)),
                              **_minimum_info(lim), seconds=time.perf_counter() - t0))
        for N in g["Ns"]:
            t0 = time.perf_counter()
            fin = ls.l1_minimum_finite(start, N, g["l1"], eta=g["eta"],
                                       alpha_max=g["alpha_max"], seeds=range(g["seeds"]))
            hist = np.array([[float(np.mean(np.abs(fin.law.w[r]) < t))
                              for t in ls.HISTOGRAM_THRESHOLDS]
                             for r in range(fin.law.replicas)])
            info = _minimum_info(fin)
            info["histogram_se"] = (hist.std(0, ddof=1) / math.sqrt(hist.shape[0])).tolist()
            out[str(N)] = dict(_summary(ls.protocol_limit(fin, pp["eps"], **common)), **info,
                               seconds=time.perf_counter() - t0)
        return out

    return _cache.cached_json(cache_dir, "limit-protocol-sgd", key, compute)


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    rows: list[dict] = []
    panels: dict = {"limit": {}, "curve": {}, "finite": {}}
    bar = _common.progress_bar(len(p["configs"]) * (1 + len(p["reweights"])) + 3,
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
    w, w_star = ls.realise_weights(state, N, f["seed"])
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
    # (d)-(f) their protocol
    pp = p["protocol"]
    cfg0 = next(x for x in p["configs"] if x["K"] == pp["gf"]["K"] and x["M"] == pp["gf"]["M"]) \
        if any(x["K"] == pp["gf"]["K"] and x["M"] == pp["gf"]["M"] for x in p["configs"]) \
        else p["configs"][0]
    gf, dense = _protocol_gf(cache_dir, pp, _minimum(cache_dir, p, cfg0))
    sgd = _protocol_sgd(cache_dir, pp)
    panels["protocol"] = dict(gf=gf, dense=dense, dense_KM=[cfg0["K"], cfg0["M"]], sgd=sgd)
    items = [(f"L1 gradient flow, lambda={lam}", None, d) for lam, d in gf.items()]
    items.append((f"unregularised minimum K={cfg0['K']}, M={cfg0['M']}", None, dense))
    items += [(f"L1 SGD, lambda={pp['sgd']['l1']:g}", None if k == "limit" else int(k), d)
              for k, d in sgd.items()]
    for setting, N, d in items:
        for j, lab in enumerate(d["eps_labels"]):
            for q in _QS[1:]:
                rows.append(dict(panel="protocol", setting=setting, N=N if N else 0,
                                 eps_label=lab, eps=float(d["eps"][j]), quantity=q,
                                 value=float(d[q][j]), se=float(d[f"{q}_se"][j])))
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
                      "the trace is raw (sum of lambda). panel protocol: Zhang et al.'s protocol "
                      "(odeprune.landscape.protocol_limit): L1-trained networks, one-shot global "
                      "magnitude pruning with no refit; actual = smallest kept fraction with "
                      "eps_g <= eps_g* + eps; eps_label 'batch' = their eps, the sd of the "
                      "B-sample batch loss; predicted (exact spectrum), predicted_abs (|mu|), "
                      "predicted_theirs (|mu| + flat fraction), upper, trace; value = mean over "
                      "replicas (limit, N=0) or seeds (finite N), se its standard error.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p = data["params"]
    P = data["panels"]
    fig, grid = subplots(2, 3, figsize=(15, 8.8))
    axes = grid[0]
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
    _plot_protocol(grid[1], p, P["protocol"])
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)


def _plot_protocol(axes, p, P):
    pp = p["protocol"]
    g = pp["gf"]
    ax = axes[0]
    styles = {"actual": ("-", "s", "actual (one-shot, no refit)"),
              "predicted": ("--", "o", "formula, exact spectrum"),
              "predicted_abs": (":", "x", r"formula, $|\lambda|$"),
              "predicted_theirs": ("-.", "+", r"formula, $|\lambda|$ + flat fraction"),
              "upper": (":", "^", "their upper bound"), "trace": ("-.", "v", "trace bound")}
    for n, (lam, d) in enumerate(P["gf"].items()):
        col = f"C{n}"
        nfree = len(d["eps_labels"]) - 1
        for q, (ls_, mk, lab) in styles.items():
            ax.errorbar(d["eps"][:nfree], d[q][:nfree], yerr=d[f"{q}_se"][:nfree], fmt=ls_,
                        marker=mk, ms=4, color=col, label=f"L1 λ={lam}: {lab}")
        ax.errorbar([d["eps"][-1]], [d["actual"][-1]], yerr=[d["actual_se"][-1]], fmt="*",
                    ms=11, color=col, label=f"L1 λ={lam}: actual at their ε (batch sd)")
        ax.plot([d["eps"][-1]], [d["predicted_theirs"][-1]], "P", ms=9, color=col,
                label=f"L1 λ={lam}: their prediction at their ε")
    d = P["dense"]
    nfree = len(d["eps_labels"]) - 1
    ax.plot(d["eps"][:nfree], d["actual"][:nfree], "-s", color="0.5", ms=3,
            label="unregularised minimum: actual (no refit)")
    ax.plot(d["eps"][:nfree], d["predicted"][:nfree], "--o", color="0.5", ms=3,
            label="unregularised minimum: formula")
    ax.set(xscale="log", ylim=(0, 1.02), ylabel=r"kept fraction $\rho$",
           xlabel=r"tolerance $\varepsilon$")
    ax.set_title(f"(d) their protocol, limit: L1 gradient-flow minimum, M={g['M']}, K={g['K']}, "
                 f"v*={g['v_star']:g}", fontsize=9)
    ax.legend(fontsize=5, ncol=1)
    ax.grid(alpha=0.3, which="both")

    ax = axes[1]
    for n, (lam, d) in enumerate(P["gf"].items()):
        ax.errorbar(d["rho"], d["eg_pruned"], yerr=d["eg_pruned_se"], fmt="-", color=f"C{n}",
                    label=f"L1 λ={lam} (nonzero {d['nonzero']:.3f})")
        ax.axhline(d["eg_star"] + d["eps"][-1], color=f"C{n}", ls=":", lw=1,
                   label=r"$\epsilon_g^*$ + their ε" + f" (λ={lam})")
    d = P["dense"]
    ax.plot(d["rho"], d["eg_pruned"], "-", color="0.5", label="unregularised minimum")
    ax.set(yscale="log", xlabel=r"kept fraction $\rho$",
           ylabel=r"$\epsilon_g$ after global magnitude pruning (no refit)")
    ax.set_title("(e) one-shot pruning of the trained networks (limit)", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")

    ax = axes[2]
    sg = pp["sgd"]
    lim = P["sgd"]["limit"]
    x = np.arange(len(lim["eps_labels"]))
    for q, mk, col in (("actual", "s", "C0"), ("predicted", "o", "C1"),
                       ("predicted_theirs", "+", "C2")):
        ax.errorbar(x, lim[q], yerr=lim[f"{q}_se"], fmt="_", ms=18, color=col,
                    label=f"limit: {q.replace('_', ' ')}")
        for k, N in enumerate(sg["Ns"]):
            d = P["sgd"][str(N)]
            ax.errorbar(x + 0.12 * (k + 1), d[q], yerr=d[f"{q}_se"], fmt=mk, ms=4, color=col,
                        alpha=0.5 + 0.5 * k / max(1, len(sg["Ns"]) - 1),
                        label=f"N={N} ({sg['seeds']} seeds)" if q == "actual" else None)
    ax.set_xticks(x, [f"ε={lab}" if lab != "batch" else "their ε" for lab in lim["eps_labels"]],
                  fontsize=6, rotation=30)
    ax.set(ylim=(0, 1.02), ylabel=r"kept fraction $\rho$")
    ax.set_title(f"(f) L1 SGD (λ={sg['l1']:g}, η={sg['eta']:g}, α={sg['alpha_max']:g}), "
                 f"M={sg['M']}, K={sg['K']}: limit vs finite N", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
