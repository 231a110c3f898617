"""Pruning sweeps of Figure 2: per seed, train (simulation and ODE), then prune both ways.

For every seed the finite-N student is trained by ``simulate`` and its initial order parameters
are integrated by ``integrate`` with the same hyper-parameters. The thermodynamic-limit layer is
``prune(curve.final, ...)``; the finite-N layer is ``prune_weights`` on the trained weights, whose
``eg_values`` (the exact noiseless error of each pruned network's weights, of which a test error
would be an unbiased estimate) are kept for every mask. Each seed is one cache item, the seeds
run in parallel (:func:`odeprune._pool.map_parallel`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._pool import map_parallel, stop_if_asked
from ..pruning import prune, prune_weights
from ..pruning.edge_map import edge_prune_map
from . import _cache, _common


def entry_key(e: dict) -> str:
    return f"{e['method']}|{e['reweight']}|{e['k']}"


def sim_params(p: dict, sigma: float) -> dict:
    """The ``simulate`` keywords of a figure's parameters (shared by Fig. 2A and 2B so that
    their K=6 runs are the same cache items)."""
    return dict(N=p["N"], K=p["K"], M=p["M"], eta=p["eta"], alpha_max=p["alpha_max"],
                v_star=p["v_star"], sigma=sigma, n_test=0)


def ode_params(p: dict, sigma: float) -> dict:
    return dict(eta=p["eta"], alpha_max=p["alpha_max"], sigma=sigma)


def _seed_int(seed: int, i: int) -> int:
    return int(seed) * 100_000 + i


def _limit(state, e: dict, K: int, seed: int, cfg: dict) -> float:
    if e["method"] == "magnitude_edge":
        return float(edge_prune_map(state, "magnitude_edge", c=e["k"] / K).state.eg())
    if e["method"].endswith("_edge"):
        return prune(state, e["method"], c=e["k"] / K, reweight=e["reweight"]).eg_mean
    return prune(state, e["method"], k=e["k"], reweight=e["reweight"], seed=seed,
                 n_samples=cfg["limit_n_samples"]).eg_mean


def _finite(sim, e: dict, K: int, seed: int, cfg: dict) -> list[float]:
    kw = (dict(c=e["k"] / K) if e["method"].endswith("_edge") else dict(k=e["k"]))
    res = prune_weights(sim, method=e["method"], reweight=e["reweight"], n_masks=cfg["n_masks"],
                        n_samples=cfg["n_samples"], n_test=0, seed=seed, predict=False, **kw)
    return res.eg_values.tolist()


def seed_item(cache_dir: Path | None, p: dict, sigma: float, seed: int, entries: list[dict],
              sim=None) -> dict:
    """Limit and finite-N pruning errors of one seed (cached)."""
    key = dict(sim=sim_params(p, sigma), seed=seed, entries=entries,
               cfg={k: p[k] for k in ("n_masks", "n_samples", "limit_n_samples")})

    def compute():
        run = sim if sim is not None else _common.simulation(cache_dir, sim_params(p, sigma), seed)
        curve = _common.ode_curve(cache_dir, run.initial, ode_params(p, sigma),
                                  key=dict(N=p["N"], K=p["K"], M=p["M"], v_star=p["v_star"],
                                           seed=seed))
        limit, finite = {}, {}
        for i, e in enumerate(entries):
            stop_if_asked(f"seed {seed}")
            s = _seed_int(seed, i)
            if e.get("limit", True) and (e.get("seeds") is None or seed in e["seeds"]):
                limit[entry_key(e)] = _limit(curve.final, e, p["K"], s, p)
            if e.get("finite", True):
                finite[entry_key(e)] = _finite(run, e, p["K"], s, p)
        return dict(seed=seed, sigma=sigma, eg_ode=float(curve.eg[-1]), eg_sim=float(run.eg[-1]),
                    limit=limit, finite=finite)

    return _cache.cached_json(cache_dir, "prune-seed", key, compute)


def run(cache_dir: Path | None, p: dict, entries: list[dict], progress: bool,
        desc: str) -> dict[float, list[dict]]:
    """All seeds and noise levels: per noise level, the seeds (simulation, ODE and pruning of
    each seed in one item, :func:`seed_item`) in parallel on a thread pool (the compiled SGD and
    ODE loops release the GIL; :func:`odeprune._pool.map_parallel`), in the seeds' order."""
    seeds = [int(s) for s in p["seeds"]]
    out: dict[float, list[dict]] = {}
    for sigma in p["sigmas"]:
        bar = _common.progress_bar(len(seeds), f"{desc} sigma={sigma:g}", progress)
        try:
            out[sigma] = map_parallel(
                lambda seed, sigma=sigma: seed_item(cache_dir, p, sigma, seed, entries), seeds,
                on_done=bar.update, name="odeprune-fig")
        finally:
            bar.close()
    return out


def aggregate(items_by_sigma: dict[float, list[dict]], entries: list[dict], extra: dict
              ) -> list[dict]:
    """Long-format rows: layer ``ode`` (mean and std over seeds) and ``sim`` (over seeds and
    masks) per noise level and entry."""
    rows = []
    for sigma, items in items_by_sigma.items():
        for e in entries:
            key = entry_key(e)
            lim = [it["limit"][key] for it in items if key in it["limit"]]
            fin = [x for it in items for x in it["finite"].get(key, [])]
            for layer, vals, n_seeds in (("ode", lim, len(lim)),
                                         ("sim", fin, sum(key in it["finite"] for it in items))):
                if not vals:
                    continue
                mean, sd, se, n = _common.mean_std(vals)
                rows.append(dict(extra, sigma=float(sigma), layer=layer, method=e["method"],
                                 reweight=e["reweight"], k=e["k"], mean=mean, std=sd, sem=se,
                                 n_values=n, n_seeds=n_seeds))
        ode_unpruned = _common.mean_std(it["eg_ode"] for it in items)
        sim_unpruned = _common.mean_std(it["eg_sim"] for it in items)
        for layer, (mean, sd, se, n) in (("ode", ode_unpruned), ("sim", sim_unpruned)):
            rows.append(dict(extra, sigma=float(sigma), layer=layer, method="unpruned",
                             reweight="none", k=None, mean=mean, std=sd, sem=se, n_values=n,
                             n_seeds=n))
    return rows


def select(rows: list[dict], **match) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``k``, ``mean``, ``std`` of the rows matching ``match``, sorted by k."""
    sel = [r for r in rows if all(r.get(a) == b for a, b in match.items())]
    sel.sort(key=lambda r: r["k"])
    return (np.array([r["k"] for r in sel], dtype=float),
            np.array([r["mean"] for r in sel], dtype=float),
            np.array([r["std"] for r in sel], dtype=float))
