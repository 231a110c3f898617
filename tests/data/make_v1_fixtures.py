# Written with odeprune at commit 313d364 (format_version 1, before T/v_star were arrays and
# before OrderParams carried its activation); the files here prove old files still load.
# Printed: curve eg 0.361048074534414, linear curve eg 0.8571697329608706,
# sim eg 0.47477258417132784, prune eg_mean 0.501218264138477
import numpy as np, odeprune
from odeprune import OrderParams
s = OrderParams.random(40, 3, 2, v_star=[1.0, 2.0], seed=1)
d = "tests/data/"
s.save(d + "v1_orderparams.npz")
c = odeprune.integrate(s, eta=0.5, alpha_max=2.0, save_at=[1.0])
c.save(d + "v1_curve.npz")
cl = odeprune.integrate(s, eta=0.5, alpha_max=2.0, save_at=[1.0], activation="linear")
cl.save(d + "v1_curve_linear.npz")
sim = odeprune.simulate(20, 3, 2, eta=0.5, alpha_max=1.0, save_at=[0.5], v_star=[1.0, 2.0], seed=1, n_test=10)
sim.save(d + "v1_sim.npz")
ens = odeprune.simulate(20, 3, 2, eta=0.5, alpha_max=1.0, save_at=[0.5], v_star=[1.0, 2.0], seeds=[1, 2], n_test=10)
ens.save(d + "v1_ens.npz")
pr = odeprune.prune(c.final, "random_node", k=2)
pr.save(d + "v1_prune.npz")
print(c.eg[-1], cl.eg[-1], sim.eg[-1], pr.eg_mean)
