"""Figure 3: the DPP kernel and the order parameters before and after node pruning.

M=2, K=6, N=500, v*=4, eta=0.5, sigma=0, seed 0, trained to alpha=1600 (the run of Fig. 2A).
(A) the DPP kernel: the empirical pre-activation Gram matrix L = H^T H / (N n) of the finite-N
student on n fresh inputs (what the authors used, Appendix C) and its difference to its limit Q
(Lemma 1); (B) Q and R of the trained student; (C) Q and R after DPP node pruning to k=2: the
*most likely* subset of the exact k-DPP with kernel Q; (D) after random node pruning to k=2: one
*seeded uniform draw*. Units are shown grouped by the teacher unit they specialise to
(argmax_n |R_in|), labelled with their original index. Diverging colour map centred on 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import CenteredNorm

from ..plotting import subplots
from ..pruning import prune
from ..state import OrderParams
from . import _common, _sweep

NAME = "fig3"
FULL = dict(N=500, K=6, M=2, eta=0.5, v_star=4.0, alpha_max=1600.0, sigma=0.0, seed=0, k=2,
            n_samples=10_000, draw_seed=1)
QUICK = dict(FULL, N=100, alpha_max=20.0, n_samples=1000)


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    sim = _common.simulations(cache_dir, _sweep.sim_params(dict(p), p["sigma"]), [p["seed"]],
                              progress, desc=f"{NAME} simulate")[0]
    w, w_star = np.array(sim.w), np.array(sim.w_star)
    state = OrderParams.from_weights(w, w_star, sim.v[-1], sim.v_star)
    rng = np.random.default_rng(np.random.SeedSequence([p["seed"], p["draw_seed"]]))
    X = rng.standard_normal((p["n_samples"], p["N"]))
    H = X @ w.T / np.sqrt(p["N"])
    L = H.T @ H / p["n_samples"]
    Q, R = np.array(state.Q), np.array(state.R)
    block = np.argmax(np.abs(R), axis=1)
    order = np.lexsort((np.arange(p["K"]), block))

    dpp = prune(state, "dpp_node", k=p["k"])
    j = int(np.argmax(dpp.probabilities))
    dpp_S = dpp.subsets[j].tolist()
    one_per_block = float(sum(pr for S, pr in zip(dpp.subsets, dpp.probabilities, strict=True)
                              if len(set(block[S])) == len(S)))
    rnd = prune(state, "random_node", k=p["k"])
    jr = int(rng.integers(rnd.n_outcomes))
    rnd_S = rnd.subsets[jr].tolist()
    rnd_one_per_block = float(np.mean([len(set(block[S])) == len(S) for S in rnd.subsets]))

    def sub(S):
        S = np.array(S)
        return Q[np.ix_(S, S)], R[S]

    mats = {
        "kernel_empirical": L, "kernel_minus_Q": L - Q, "Q": Q, "R": R,
        "Q_dpp": sub(dpp_S)[0], "R_dpp": sub(dpp_S)[1],
        "Q_random": sub(rnd_S)[0], "R_random": sub(rnd_S)[1],
    }
    rows = [dict(matrix=name, i=int(a), j=int(b), value=float(M[a, b]))
            for name, M in mats.items() for a in range(M.shape[0]) for b in range(M.shape[1])]
    return dict(
        figure=NAME, params=p, rows=rows, matrices={k: v.tolist() for k, v in mats.items()},
        block=block.tolist(), order=order.tolist(), v=np.array(state.v).tolist(),
        eg_trained=state.eg(), dpp_subset=dpp_S, dpp_subset_probability=float(dpp.probabilities[j]),
        dpp_probability_one_per_block=one_per_block, dpp_eg_mean=dpp.eg_mean,
        dpp_subset_eg=float(dpp.eg_values[j]), random_subset=rnd_S,
        random_probability_one_per_block=rnd_one_per_block, random_eg_mean=rnd.eg_mean,
        random_subset_eg=float(rnd.eg_values[jr]),
        kernel_max_abs_error=float(np.max(np.abs(L - Q))),
        notes="DPP panel: most likely subset of the exact k-DPP (kernel Q); random panel: one "
              "seeded uniform draw. Units grouped by argmax_n |R_in|.")


def _heat(ax, M, rows_lab, cols_lab, title):
    M = np.asarray(M, dtype=float)
    im = ax.imshow(M, cmap="RdBu_r", norm=CenteredNorm(0.0, max(np.max(np.abs(M)), 1e-12)))
    ax.set_xticks(range(M.shape[1]), cols_lab, fontsize=7)
    ax.set_yticks(range(M.shape[0]), rows_lab, fontsize=7)
    vmax = np.max(np.abs(M))
    for (a, b), x in np.ndenumerate(M):
        ax.text(b, a, f"{x:.2g}", ha="center", va="center", fontsize=6,
                color="w" if abs(x) > 0.6 * vmax else "k")
    ax.set_title(title, fontsize=8)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, m = data["params"], data["matrices"]
    order = data["order"]
    block = data["block"]
    teach = [f"t{n}" for n in range(p["M"])]

    def lab(units):
        return [f"{u}→t{block[u]}" for u in units]

    def reorder(name, units):
        A = np.asarray(m[name])
        return A[np.ix_(units, units)] if A.shape[0] == A.shape[1] and name.startswith(
            ("Q", "kernel")) else A[units]

    dpp_S = sorted(data["dpp_subset"], key=order.index)
    rnd_S = sorted(data["random_subset"], key=order.index)
    pos = {u: i for i, u in enumerate(data["dpp_subset"])}
    pos_r = {u: i for i, u in enumerate(data["random_subset"])}
    dpp_idx = [pos[u] for u in dpp_S]
    rnd_idx = [pos_r[u] for u in rnd_S]

    fig, axes = subplots(2, 4, figsize=(15, 6.8))
    _heat(axes[0, 0], reorder("kernel_empirical", order), lab(order), lab(order),
          f"(A) DPP kernel: empirical Gram L (n={p['n_samples']})")
    _heat(axes[1, 0], reorder("kernel_minus_Q", order), lab(order), lab(order),
          "(A) L − Q (limit kernel, Lemma 1)")
    _heat(axes[0, 1], reorder("Q", order), lab(order), lab(order),
          f"(B) Q of the trained student (ε_g={data['eg_trained']:.3g})")
    _heat(axes[1, 1], reorder("R", order), lab(order), teach, "(B) R")
    Qd = np.asarray(m["Q_dpp"])[np.ix_(dpp_idx, dpp_idx)]
    _heat(axes[0, 2], Qd, lab(dpp_S), lab(dpp_S),
          f"(C) Q after DPP, k={p['k']} (most likely, P={data['dpp_subset_probability']:.2f})")
    _heat(axes[1, 2], np.asarray(m["R_dpp"])[dpp_idx], lab(dpp_S), teach,
          f"(C) R after DPP; P(one per block)={data['dpp_probability_one_per_block']:.3f}")
    Qr = np.asarray(m["Q_random"])[np.ix_(rnd_idx, rnd_idx)]
    _heat(axes[0, 3], Qr, lab(rnd_S), lab(rnd_S),
          f"(D) Q after random node, k={p['k']} (one seeded draw)")
    _heat(axes[1, 3], np.asarray(m["R_random"])[rnd_idx], lab(rnd_S), teach,
          f"(D) R after random; P(one per block)={data['random_probability_one_per_block']:.3f}")
    fig.suptitle(f"Fig. 3: M={p['M']}, K={p['K']}, N={p['N']}, α={p['alpha_max']:g}, seed "
                 f"{p['seed']}; units labelled 'index→teacher unit'", fontsize=10)
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)
