"""How the format-1 fixtures here were written: by odeprune at commit 313d364 (format_version 1,
before T/v_star of curves became arrays and before OrderParams carried its activation). They
prove that old files still load (tests/test_chaining.py::test_format1_files_still_load).
Running this with a newer odeprune writes newer files: keep the committed ones.

Printed then: curve eg 0.361048074534414, linear curve eg 0.8571697329608706,
sim eg 0.47477258417132784, prune eg_mean 0.501218264138477.
"""

import odeprune
from odeprune import OrderParams


def main(d: str = "tests/data/") -> None:
    s = OrderParams.random(40, 3, 2, v_star=[1.0, 2.0], seed=1)
    s.save(d + "v1_orderparams.npz")
    c = odeprune.integrate(s, eta=0.5, alpha_max=2.0, save_at=[1.0])
    c.save(d + "v1_curve.npz")
    cl = odeprune.integrate(s, eta=0.5, alpha_max=2.0, save_at=[1.0], activation="linear")
    cl.save(d + "v1_curve_linear.npz")
    sim = odeprune.simulate(20, 3, 2, eta=0.5, alpha_max=1.0, save_at=[0.5], v_star=[1.0, 2.0],
                            seed=1, n_test=10)
    sim.save(d + "v1_sim.npz")
    ens = odeprune.simulate(20, 3, 2, eta=0.5, alpha_max=1.0, save_at=[0.5],
                            v_star=[1.0, 2.0], seeds=[1, 2], n_test=10)
    ens.save(d + "v1_ens.npz")
    pr = odeprune.prune(c.final, "random_node", k=2)
    pr.save(d + "v1_prune.npz")
    print(c.eg[-1], cl.eg[-1], sim.eg[-1], pr.eg_mean)


if __name__ == "__main__":
    main()
