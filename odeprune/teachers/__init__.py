r"""Sparse teachers: the lottery-ticket papers in their own setting.

Zhang et al. (NeurIPS 2021, "Why lottery ticket wins?"; ICLR 2023) take a **sparse** ground
truth: teacher unit ``n`` has non-zero first-layer weights only on its support ``Omega_n``
(``r = c_t N`` coordinates, the per-unit density ``c_t``), and the winning ticket is a student mask
that contains the support. In the order-parameter picture a sparse teacher needs nothing new
(``docs/theory.md`` §8): split the input coordinates by (student mask pattern, teacher support
pattern); a class off the support of teacher ``n`` has ``T^s_nn = 0``, and the masked-network ODE
moves the classes as for any teacher. This module builds those states, in the limit and from real
weights, the **oracle ticket** (student mask = teacher support), and answers the papers'
questions (``docs/sparse_teacher.md``):

- how fast does a ticket converge (α to reach ε_g ≤ θ) -- :func:`convergence_limit`,
  :func:`convergence_finite`, :func:`time_to_reach`;
- does magnitude pruning of the trained dense student find the support --
  :func:`support_recovery_limit` (exact closed form), :func:`support_recovery_finite`;
- is a unit's good coordinate at initialisation still good after training (rank correlation of
  ``|w|`` at 0 and at α_T) -- :func:`rank_correlation_limit` (joint-law particles, §9/§11),
  :func:`rank_correlation_finite`.

**Exact identity** (``docs/sparse_teacher.md``, tested): if every student unit is masked with the
same set of density ``c`` and that set is the support of every teacher unit, the masked curve at
α equals the dense curve of the same order parameters at ``α / c`` with ``η`` and ``η_v``
multiplied by ``c`` (:func:`dense_equivalent`).

Conventions: teacher coordinates i.i.d. N(0, 1) on the support (``normalise=True``: N(0, 1/c_t),
so that ``T_nn = 1``), student coordinates and ``v`` i.i.d. N(0, 1) as in
:meth:`~odeprune.OrderParams.draw_weights` (same ``w, w*, v`` for the same seed; the support is
drawn after them from the same stream). Finite N: every teacher unit has exactly
``r = max(1, round(c_t N))`` non-zero weights at uniformly random positions (independently per
unit, or one set for all units with ``shared_support=True``).

The package's modules, one job each: :mod:`~odeprune.teachers.support` (the teacher's support,
real weights, student masks, exact per-class states of real weights),
:mod:`~odeprune.teachers.states` (the limit's per-class states), :mod:`~odeprune.teachers.recovery`
(first-crossing times, support recovery and rank correlation, exact and on weights),
:mod:`~odeprune.teachers.experiments` (the papers' experiments: convergence of tickets, support
recovery over training). Every public name is importable from ``odeprune.teachers``.
"""

from __future__ import annotations

from . import experiments, recovery, states, support
from .experiments import *  # noqa: F403  (each module's __all__)
from .recovery import *  # noqa: F403
from .states import *  # noqa: F403
from .support import *  # noqa: F403

__all__ = [*support.__all__, *states.__all__, *recovery.__all__, *experiments.__all__]
