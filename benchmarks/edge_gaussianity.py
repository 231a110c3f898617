"""Is the residual between finite-N magnitude pruning and its Gaussian-coordinate limit a
finite-N effect or non-Gaussianity of the trained weights' coordinates? (issue 7)

For trained students at several N (M=2, K=6, eta=0.5, v*=4, alpha=150) this prints, for
magnitude edge pruning keeping c of each row:

- ``real``: eg of the really pruned weights (exact top-|w| per row);
- ``gauss``: eg after pruning a Gaussian surrogate with the same N and the same empirical
  covariance of the coordinates (z_j ~ N(0, C_emp)): mean over 16 draws and ``sd``, the spread
  of a single draw -- the finite-N fluctuation a Gaussian network of this N shows;
- ``z``: (real - limit) / sd: |z| of order 1 means the real network's deviation is the finite-N
  fluctuation of Gaussian coordinates; a |z| growing with N would mean non-Gaussianity;
- ``limit``: the Gaussian-coordinate map on the student's order parameters;
- the excess kurtosis of each student row's coordinates (0 for Gaussian coordinates).

Run: python benchmarks/edge_gaussianity.py [--quick]
"""

import argparse
import time

import numpy as np

import odeprune
from odeprune import OrderParams
from odeprune.pruning.edge_map import edge_prune_map
from odeprune.pruning.finite_edges import edge_mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--Ns", default="500,2000,8000")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--alpha", type=float, default=150.0)
    ap.add_argument("--rule", default="magnitude_edge",
                    help="magnitude_edge (default), magnitude_edge_global, snip_edge, ...")
    ap.add_argument("--draws", type=int, default=16, help="Gaussian surrogate draws")
    args = ap.parse_args()
    Ns = [500, 1000] if args.quick else [int(n) for n in args.Ns.split(",")]
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    alpha = 30.0 if args.quick else args.alpha
    cs = (0.1, 0.3, 0.5)
    rule = args.rule
    print(f"M=2 K=6 eta=0.5 v*=4 alpha={alpha}; {rule}")
    print(f"{'N':>6} {'seed':>4} {'c':>4} {'real':>8} {'gauss':>8} {'sd':>7} {'limit':>8} "
          f"{'(real-limit)/limit':>19} {'(gauss-limit)/limit':>20} {'z':>6} {'kurtosis':>9}")
    for N in Ns:
        for seed in seeds:
            t0 = time.perf_counter()
            sim = odeprune.simulate(N=N, K=6, M=2, eta=0.5, alpha_max=alpha, save_at=[alpha],
                                    v_star=4.0, seed=seed, n_test=0)
            w, w_star, v, v_star = sim.w, sim.w_star, sim.v[-1], sim.v_star
            state = OrderParams.from_weights(w, w_star, v, v_star)
            z = np.vstack([w, w_star])
            C = z @ z.T / N
            lam, U = np.linalg.eigh(C)
            A = U * np.sqrt(np.clip(lam, 0, None))
            kurt = np.mean(((w / np.sqrt(np.mean(w**2, axis=1, keepdims=True))) ** 4), axis=1) - 3
            rng = np.random.default_rng(seed)
            for c in cs:
                mask, _ = edge_mask(w, rule, c, seed=seed, v=v, w_star=w_star, v_star=v_star)
                real = OrderParams.from_weights(w * mask, w_star, v, v_star).eg()
                gs = []
                for _ in range(args.draws):
                    zg = A @ rng.standard_normal((A.shape[1], N))
                    wg, wsg = zg[:6], zg[6:]
                    mg, _ = edge_mask(wg, rule, c, seed=seed, v=v, w_star=wsg, v_star=v_star)
                    gs.append(OrderParams.from_weights(wg * mg, wsg, v, v_star).eg())
                gauss = float(np.mean(gs))
                sd = float(np.std(gs, ddof=1))
                limit = edge_prune_map(state, rule, c).state.eg()
                print(f"{N:6d} {seed:4d} {c:4.1f} {real:8.4f} {gauss:8.4f} {sd:7.4f} "
                      f"{limit:8.4f} {(real - limit) / limit:19.4f} "
                      f"{(gauss - limit) / limit:20.4f} {(real - limit) / sd:6.2f} "
                      f"{np.mean(kurt):9.4f}")
            print(f"# N={N} seed={seed}: {time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
