"""Two phase diagrams through ``odeprune.sweep``: learning, then pruning, of M=2 teachers.

1. Final eps_g and the length of the plateau over (eta, K): ODE curves from random initial
   weights (N=500, v*=4, seed 0) up to alpha=1000. Points that diverge are recorded as failures
   (NaN, with the message in ``ds.error``) without stopping the sweep.
2. eps_g after pruning a trained K=6 student to a kept fraction c of its first-layer parameters
   (node methods keep k = cK units), by method, mean over four seeds.

Run ``python examples/phase_diagram.py [OUT_DIR]`` (default ``figures/``); add ``--cache DIR``
to keep every point, so a second run (or an interrupted one) is instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from odeprune.sweeps import sweep  # noqa: E402


def plateau_length(alpha: np.ndarray, eg: np.ndarray, flat: float = 0.2) -> float:
    """Length in alpha of the longest plateau of eg(alpha) that the curve escapes (NaN if none).

    For alpha >= 1, a plateau is a run of saved times where |d log eg / d log alpha| < ``flat``;
    it is escaped when eg later falls below half its median on the run, and its length runs
    from its first time to that escape. A curve that ends stuck high has no escaped plateau.
    """
    if not np.all(np.isfinite(eg)):
        return np.nan
    m = alpha >= 1.0
    a, e = alpha[m], eg[m]
    is_flat = np.abs(np.gradient(np.log(e), np.log(a))) < flat
    best, i = np.nan, 0
    while i < a.size:
        if not is_flat[i]:
            i += 1
            continue
        j = i
        while j + 1 < a.size and is_flat[j + 1]:
            j += 1
        below = np.flatnonzero(e[j + 1:] < np.median(e[i:j + 1]) / 2)
        if below.size and not a[j + 1 + below[0]] - a[i] <= best:
            best = float(a[j + 1 + below[0]] - a[i])
        i = j + 1
    return best


def learning_phase(cache) -> xr.Dataset:
    ds = sweep("integrate",
               {"eta": [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 4.0], "K": [2, 3, 4, 5, 6, 8]},
               fixed={"M": 2, "N": 500, "v_star": 4.0, "seed": 0, "alpha_max": 1000.0},
               cache=cache, desc="(eta, K)")
    ds["eg_final"] = ds.eg.isel(alpha=-1)
    ds["plateau"] = xr.apply_ufunc(plateau_length, ds.alpha, ds.eg,
                                   input_core_dims=[["alpha"], ["alpha"]], vectorize=True)
    return ds


def pruning_phase(cache) -> xr.Dataset:
    methods = ["random_node", "importance_node", "dpp_node", "random_edge", "magnitude_edge"]
    return sweep("prune",
                 {"seed": [0, 1, 2, 3], "method": methods, "c": [k / 6 for k in range(1, 7)]},
                 fixed={"K": 6, "M": 2, "N": 500, "v_star": 4.0, "eta": 0.5,
                        "alpha_max": 1000.0},
                 cache=cache, desc="(method, c)")


def heatmap(ax, da: xr.DataArray, title: str, log: bool = True):
    from matplotlib.colors import LogNorm

    vals = np.asarray(da.transpose("K", "eta").values, dtype=float)
    finite = vals[np.isfinite(vals) & (vals > 0)]
    norm = LogNorm(finite.min(), finite.max()) if log and finite.size else None
    mesh = ax.pcolormesh(np.ma.masked_invalid(vals), norm=norm, cmap="viridis")
    ax.set_facecolor("0.85")  # failed or plateau-free points are grey
    plt.colorbar(mesh, ax=ax)
    ax.set_xticks(np.arange(da.sizes["eta"]) + 0.5, [f"{v:g}" for v in da.eta.values],
                  fontsize=7)
    ax.set_yticks(np.arange(da.sizes["K"]) + 0.5, [str(v) for v in da.K.values], fontsize=7)
    ax.set(xlabel=r"$\eta$", ylabel="K", title=title)
    ax.title.set_fontsize(9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("figures"))
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    ds = learning_phase(args.cache)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    heatmap(axes[0], ds.eg_final, r"final $\epsilon_g$ ($\alpha$=1000), M=2")
    heatmap(axes[1], ds.plateau, r"plateau length in $\alpha$ (grey: not escaped)")
    fig.tight_layout()
    fig.savefig(args.out / "sweep_phase.png", dpi=100)
    plt.close(fig)
    print(f"(eta, K): {int(ds.attrs['n_failed'])} of {ds.attrs['n_points']} points failed")

    pr = pruning_phase(args.cache)
    mean = pr.eg_mean.mean("seed")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for m in pr.method.values:
        ax.plot(pr.c.values, mean.sel({"method": m}).values, "o-", ms=3, label=str(m))
    ax.axhline(float(pr.eg_unpruned.mean()), color="0.5", lw=0.8, label="unpruned")
    ax.set(yscale="log", xlabel="kept fraction c (node methods: k = cK)",
           ylabel=r"$\epsilon_g$ after pruning")
    ax.set_title(r"K=6, M=2 trained to $\alpha$=1000, mean of 4 seeds", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(args.out / "sweep_prune.png", dpi=100)
    plt.close(fig)
    print(f"wrote {args.out / 'sweep_phase.png'} and {args.out / 'sweep_prune.png'}")


if __name__ == "__main__":
    main()
