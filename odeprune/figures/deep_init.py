"""Pruning deep networks at initialisation (Hayou et al. 2021): SBP, the edge of chaos, SBP-SR.

Fully-connected tanh networks, sigma_b = 0.2, in three phases: ordered (sigma_w = 1.0), edge of
chaos (sigma_w = 1.30415, :func:`odeprune.deep.edge_of_chaos`) and chaotic (sigma_w = 2.0).
(a) percentage of weights kept per layer after SBP with one global threshold at s = 70 %
(depth 100, width 100), chaotic vs EOC: mean-field prediction (solid), the same with the
finite-width log-normal correction (dashed), real networks (markers, mean +- s.e. over seeds).
(b) critical sparsity s_cr (a layer fully pruned) vs depth for the three phases: prediction
lines (expected kept count of some layer = 1), measured markers. (c) 1 - c^l over depth on the
EOC for the dense network, the SBP-pruned one (s = 90 %) and the pruned + rescaled one
(SBP-SR, rho_l = (sum W^2 / sum (mask W)^2)^{1/2}): mean-field lines, real-network markers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from .. import deep
from .._stats import sem
from ..deep import finite as F
from ..plotting import subplots
from . import _cache, _common

NAME = "deep-init"
PHASES = {"ordered": 1.0, "eoc": None, "chaotic": 2.0}  # sigma_w (None: on the EOC)
COLORS = {"ordered": "C0", "eoc": "C2", "chaotic": "C3"}
FULL = dict(activation="tanh", sigma_b=0.2, width=100, depth=100, s_a=0.7, seeds=list(range(10)),
            depths_b=[5, 10, 20, 30, 50, 70, 100], seeds_b=list(range(10)), s_c=0.9,
            depth_c=100, width_c=200, c0=0.1, seeds_c=list(range(4)))
QUICK = dict(FULL, width=60, depth=30, seeds=[0, 1, 2], depths_b=[5, 10, 20], seeds_b=[0, 1, 2],
             depth_c=20, width_c=60, seeds_c=[0, 1])


def _sigma_w(p, ph):
    sw = PHASES[ph]
    return deep.edge_of_chaos(p["activation"], p["sigma_b"]) if sw is None else sw


def _panel_a(p, ph):
    sw = _sigma_w(p, ph)
    args = (p["activation"], sw, p["sigma_b"], p["depth"], p["width"], p["s_a"])
    mf = deep.sbp_prediction(*args)
    fw = deep.sbp_prediction(*args, finite_width=True)
    kept = [F.kept_fractions(F.global_masks(F.sbp_scores(
        F.sample_network(p["activation"], sw, p["sigma_b"], p["depth"], p["width"], seed)),
        p["s_a"])) for seed in p["seeds"]]
    return dict(sigma_w=sw, mf=mf.kept.tolist(), fw=fw.kept.tolist(),
                kept=np.array(kept).tolist())


def _panel_b(p, ph, L):
    sw = _sigma_w(p, ph)
    args = (p["activation"], sw, p["sigma_b"], L, p["width"])
    meas = [F.measured_critical_sparsity(F.sbp_scores(F.sample_network(*args, seed)))
            for seed in p["seeds_b"]]
    return dict(sigma_w=sw, mf=deep.critical_sparsity(*args),
                fw=deep.critical_sparsity(*args, finite_width=True), measured=meas)


def _panel_c(p):
    act, sb, L, N, s = p["activation"], p["sigma_b"], p["depth_c"], p["width_c"], p["s_c"]
    sw = deep.edge_of_chaos(act, sb)
    pred = deep.sbp_prediction(act, sw, sb, L, N, s)
    mf = {"dense": deep.correlation_profile(act, sw, sb, L, p["c0"]),
          "pruned": deep.correlation_profile(act, sw, sb, L, p["c0"],
                                             variance_factors=pred.kept_variance),
          "rescaled": deep.correlation_profile(act, sw, sb, L, p["c0"],
                                               variance_factors=np.ones(L))}
    meas = {k: [] for k in mf}
    for seed in p["seeds_c"]:
        net = F.sample_network(act, sw, sb, L, N, seed)
        masks = F.global_masks(F.sbp_scores(net), s)
        rho = F.rescale_factors(net, masks)
        for key, kw in (("dense", {}), ("pruned", dict(masks=masks)),
                        ("rescaled", dict(masks=masks, rho=rho))):
            meas[key].append(F.layer_statistics(net, p["c0"], **kw)[1].tolist())
    return dict(sigma_w=sw, mf={k: v.tolist() for k, v in mf.items()}, measured=meas,
                kept_variance=pred.kept_variance.tolist())


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    bar = _common.progress_bar(2 + 3 * len(p["depths_b"]) + 1, NAME, progress)
    a, b, rows = {}, {}, []
    for ph in ("chaotic", "eoc"):
        a[ph] = _cache.cached_json(cache_dir, f"{NAME}-a", dict(p, phase=ph),
                                   lambda ph=ph: _panel_a(p, ph))
        K = np.array(a[ph]["kept"])
        for l in range(p["depth"]):
            rows.append(dict(panel="a", phase=ph, x=l + 1, mean=float(K[:, l].mean()),
                             se=float(sem(K[:, l])), mf=a[ph]["mf"][l], mf_fw=a[ph]["fw"][l]))
        bar.update(1)
    for ph in PHASES:
        b[ph] = []
        for L in p["depths_b"]:
            item = _cache.cached_json(cache_dir, f"{NAME}-b", dict(p, phase=ph, L=L),
                                      lambda ph=ph, L=L: _panel_b(p, ph, L))
            b[ph].append(item)
            m = np.array(item["measured"])
            rows.append(dict(panel="b", phase=ph, x=L, mean=float(m.mean()), se=float(sem(m)),
                             mf=item["mf"], mf_fw=item["fw"]))
            bar.update(1)
    c = _cache.cached_json(cache_dir, f"{NAME}-c", p, lambda: _panel_c(p))
    for key in c["mf"]:
        C = np.array(c["measured"][key])
        for l in range(p["depth_c"]):
            rows.append(dict(panel="c", phase=f"eoc-{key}", x=l + 1, mean=float(C[:, l].mean()),
                             se=float(sem(C[:, l])), mf=c["mf"][key][l], mf_fw=None))
    bar.update(1)
    bar.close()
    return dict(figure=NAME, params=p, rows=rows, a=a, b=b, c=c,
                notes="a: kept fraction per layer after global SBP (x = layer); b: critical "
                      "sparsity (x = depth); c: correlation c^l of two inputs (x = layer). "
                      "mean/se: real networks over seeds; mf: mean-field prediction; mf_fw: "
                      "with the finite-width log-normal correction.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p = data["params"]
    fig, axes = subplots(1, 3, figsize=(14.5, 4.2))
    ax = axes[0]
    for ph, d in data["a"].items():
        K = 100 * np.array(d["kept"])
        l = np.arange(1, p["depth"] + 1)
        ax.plot(l, 100 * np.array(d["mf"]), "-", color=COLORS[ph], lw=1.4,
                label=f"{ph} (σ_w={d['sigma_w']:.4g})")
        ax.plot(l, 100 * np.array(d["fw"]), "--", color=COLORS[ph], lw=1.0)
        ax.errorbar(l, K.mean(0), yerr=sem(K), fmt="o", ms=2.5, color=COLORS[ph], lw=0.6,
                    capsize=1.5, alpha=0.8)
    ax.set(xlabel="layer l", ylabel="weights kept (%)", ylim=(-2, 102))
    ax.set_title(f"(a) global SBP, s = {100 * p['s_a']:g} %, L = {p['depth']}, N = {p['width']}",
                 fontsize=9)
    ax.legend(fontsize=7.5, loc="center right")
    ax = axes[1]
    for ph, items in data["b"].items():
        Ls = np.array(p["depths_b"])
        M = np.array([it["measured"] for it in items])
        ax.plot(Ls, [it["mf"] for it in items], "-", color=COLORS[ph], lw=1.4, label=ph)
        ax.plot(Ls, [it["fw"] for it in items], "--", color=COLORS[ph], lw=1.0)
        ax.errorbar(Ls, M.mean(1), yerr=sem(M.T), fmt="o", ms=3.5, color=COLORS[ph], capsize=2)
    ax.set(xlabel="depth L", ylabel=r"critical sparsity $s_{cr}$", ylim=(0, 1.02))
    ax.set_title(f"(b) s_cr vs depth, N = {p['width']}", fontsize=9)
    ax.legend(fontsize=7.5)
    ax = axes[2]
    c = data["c"]
    l = np.arange(1, p["depth_c"] + 1)
    styles = {"dense": ("k", "o"), "pruned": ("C3", "s"), "rescaled": ("C2", "^")}
    for key, (col, mk) in styles.items():
        C = 1.0 - np.array(c["measured"][key])
        ax.plot(l, 1.0 - np.array(c["mf"][key]), "-", color=col, lw=1.3, label=key)
        ax.errorbar(l, C.mean(0), yerr=sem(C), fmt=mk, ms=2.5, color=col, mfc="none", lw=0.6,
                    capsize=1.5)
    ax.set(xlabel="layer l", ylabel=r"$1 - c^l$", yscale="log", xscale="log")
    ax.set_title(f"(c) EOC, SBP s = {100 * p['s_c']:g} %, N = {p['width_c']}: "
                 "rescaling restores\nthe mean-field EOC, not real networks (empty rows)",
                 fontsize=9)
    handles = [Line2D([], [], color="0.3", label="mean field"),
               Line2D([], [], color="0.3", ls="--", label="+ finite-width correction"),
               Line2D([], [], color="0.3", ls="", marker="o", label="real networks (± s.e.)")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    ax.legend(fontsize=7.5)
    fig.suptitle(f"Pruning deep {p['activation']} networks at initialisation "
                 f"(σ_b = {p['sigma_b']:g})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _common.save(fig, out_dir, NAME)
