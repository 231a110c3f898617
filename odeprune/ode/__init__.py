"""The order-parameter ODE engine (docs/theory.md §4, §8, §9).

One module per job, imported downward only:

- :mod:`~odeprune.ode.rhs`: the one right-hand side for dense and masked networks (arrays, a
  ``Params`` record and a ``Work`` record; compiled);
- :mod:`~odeprune.ode.jacobian`: its Jacobian for the implicit phase;
- :mod:`~odeprune.ode.explicit`: the explicit steppers (dopri5, RK4, Euler as Butcher tableaux
  run by one compiled Runge-Kutta loop) and their status codes;
- :mod:`~odeprune.ode.stiff`: the stiff path (``method="auto"``, BDF, Radau);
- :mod:`~odeprune.ode.divergence`: the message every driver gives when a run diverges;
- :mod:`~odeprune.ode.runcontrol`, :mod:`~odeprune.ode.progress`: chunks by time, checkpoints,
  Ctrl-C / SIGTERM, progress bars (shared by every driver, the SGD simulation included);
- :mod:`~odeprune.ode.dynamics`: :func:`integrate`, the public driver;
- :mod:`~odeprune.ode.batch`: :func:`integrate_batch`;
- :mod:`~odeprune.ode.jax_backend`: the same ODE with JAX and diffrax, its right-hand side in
  :mod:`~odeprune.ode.jax_rhs` (optional extra, imported only when ``backend="jax"`` is asked
  for).

This ``__init__`` imports nothing, so that ``import odeprune.ode.progress`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
