"""The coordinate law's limits against real networks at several N (the numbers of the closing
notes and of docs/workflows.md): per setting, the limit (from each seed's own initial order
parameters, Monte-Carlo error over replicas) against finite N (same seeds), the mean gap
finite - limit with its standard error over seeds, and its rms over seeds, for N = 500, 2000
(and 8000 with ``--big``).

Settings: IMP (K=4 row, rewind 0; K=6 global, rewind to alpha_r = 1), gradual pruning (cubic to
0.36), L1 (lambda = 0.01, 0.05; eps_g and the fraction of |w| below 0.01, 0.05, 0.2), weight
decay (gamma = 0.3).

Run: ``python benchmarks/validate_coords.py [--big] [--seeds 8] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import odeprune
from odeprune import schedules
from odeprune.coords import CoordinateLaw, integrate_law

THRESH = (0.01, 0.05, 0.2)


def _gap(fin, lim):
    d = np.asarray(fin) - np.asarray(lim)
    n = d.shape[0]
    return d.mean(0), d.std(0, ddof=1) / np.sqrt(n), np.sqrt(np.mean(d ** 2, 0))


def imp(N, seeds, K, scope, rewind_to):
    L, F = [], []
    for s in seeds:
        st = odeprune.OrderParams.random(N=N, K=K, M=2, v_star=2.0, seed=s)
        kw = dict(rounds=4, prune_fraction=0.3, alpha_per_round=30.0, scope=scope,
                  rewind_to=rewind_to)
        L.append(schedules.imp_limit(st, S=10_000, replicas=4, seed=s, **kw)["eg"][:, -1])
        F.append(schedules.imp_finite(N, K, 2, v_star=2.0, seed=s, **kw)["eg"])
    return np.array(L), np.array(F)


def gradual(N, seeds):
    sch = schedules.zhu_gupta_schedule(0.36, 5.0, 30.0, 5)
    L, F = [], []
    for s in seeds:
        st = odeprune.OrderParams.random(N=N, K=4, M=2, v_star=2.0, seed=s)
        L.append([schedules.gradual_limit(st, sch, 50.0, S=10_000, replicas=4,
                                          seed=s)["eg_final"]])
        F.append([schedules.gradual_finite(N, 4, 2, sch, 50.0, v_star=2.0,
                                           seed=s)["eg_final"]])
    return np.array(L), np.array(F)


def regularised(N, seeds, l1=0.0, wd=0.0):
    L, F = [], []
    for s in seeds:
        w, ws, v, vs = odeprune.OrderParams.draw_weights(N, 4, 2, v_star=2.0, seed=s)
        st = odeprune.OrderParams.from_weights(w, ws, v, vs)
        law = CoordinateLaw.from_state(st, S=10_000, replicas=4, seed=s)
        cv = integrate_law(law, 0.5, 30.0, save_at=[30.0], l1=l1, weight_decay=wd, dt=0.05,
                           seed=s)
        sim = odeprune.simulate(N, 4, 2, 0.5, 30.0, v_star=2.0, seed=s, l1=l1,
                                weight_decay=wd, save_at=[30.0], n_test=0, progress=False)
        L.append([cv.eg[-1], *cv.final.fraction_below(THRESH)])
        F.append([sim.eg[-1], *[(np.abs(sim.w) < t).mean() for t in THRESH]])
    return np.array(L), np.array(F)


SETTINGS = {
    "IMP K=4 row rewind 0 (eps_g per round 0..4)": lambda N, s: imp(N, s, 4, "row", 0.0),
    "IMP K=6 global rewind 1 (eps_g per round 0..4)": lambda N, s: imp(N, s, 6, "global", 1.0),
    "gradual K=4 cubic to 0.36 (final eps_g)": gradual,
    "L1 0.01 K=4 (eps_g, |w|<0.01, <0.05, <0.2)": lambda N, s: regularised(N, s, l1=0.01),
    "L1 0.05 K=4 (eps_g, |w|<0.01, <0.05, <0.2)": lambda N, s: regularised(N, s, l1=0.05),
    "weight decay 0.3 K=4 (eps_g, ...)": lambda N, s: regularised(N, s, wd=0.3),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also N = 8000")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", default=None, help="substring of the settings to run")
    ap.add_argument("--Ns", default=None, help="comma-separated N (overrides --big)")
    a = ap.parse_args()
    Ns = [500, 2000] + ([8000] if a.big else [])
    if a.Ns:
        Ns = [int(x) for x in a.Ns.split(",")]
    seeds = list(range(a.seeds))
    out = {}
    for name, fn in SETTINGS.items():
        if a.only and a.only not in name:
            continue
        print(name)
        for N in Ns:
            t = time.time()
            L, F = fn(N, seeds)
            m, se, rms = _gap(F, L)
            out[f"{name} N={N}"] = dict(limit=L.mean(0).tolist(), finite=F.mean(0).tolist(),
                                        gap=m.tolist(), gap_se=se.tolist(), rms=rms.tolist())
            fmt = lambda x: " ".join(f"{v:9.5f}" for v in np.atleast_1d(x))  # noqa: E731
            print(f"  N={N:5d} limit  {fmt(L.mean(0))}")
            print(f"          finite {fmt(F.mean(0))}")
            print(f"          gap    {fmt(m)}  (se {fmt(se)})  rms {fmt(rms)}  "
                  f"[{time.time() - t:.0f} s]")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
