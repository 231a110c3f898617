r"""Prune, then train: retraining, pruning at initialisation, lottery tickets, iterative and
gradual magnitude pruning -- each in the thermodynamic limit (order parameters,
``docs/theory.md`` §4, §6, §8, §9, §11) and at finite N (real weights, real masks, online SGD).

One module per protocol:

- :mod:`~odeprune.workflows.retrain` -- :func:`retrain` / :func:`retrain_finite`: prune a trained
  student (every node method, with or without reweighting; every edge rule) and train the pruned
  network again for ``Δα``;
- :mod:`~odeprune.workflows.init` -- :func:`prune_at_init` / :func:`prune_at_init_finite`: prune
  the random initial network (random, magnitude, SNIP; optionally with the row rescale of Hayou
  et al. 2021) and train the sparse network from ``alpha = 0`` beside the dense one;
- :mod:`~odeprune.workflows.tickets` -- :func:`lottery_ticket` / :func:`lottery_ticket_finite`:
  train, take the magnitude mask, rewind, retrain, beside the controls;
- :mod:`~odeprune.workflows.schedules` -- :func:`iterative_magnitude_pruning`,
  :func:`gradual_magnitude_pruning` and their ``_finite`` forms (repeated decisions on the
  coordinate law, §11), with the engines :func:`~odeprune.workflows.schedules.imp_limit` etc.

What they share (checks, saved times, the learning rule, the Monte-Carlo error of a start, the
finite-N arm runner and its seeds) is in :mod:`odeprune.workflows._common`; the result type in
:mod:`~odeprune.workflows.result`.

Every function returns a :class:`WorkflowResult`: the learning curves of each *arm* (one pruned
network or protocol) on the time since (re)training started, and a tidy :attr:`~WorkflowResult.
table` (one row per arm and reported time; :meth:`~WorkflowResult.to_csv`). The finite-N
functions take trained simulations (``odeprune.simulate``) or seeds, run the same protocol on the
real weights, and also integrate the ODE from the exact order parameters of every real pruned
network (``eg_ode``): the gap between the two is the finite-N effect alone.

Options: each workflow takes its positional essentials and its own keywords; the options it
shares with the rest of the package go through ``**options`` into the records of
:mod:`odeprune.options` (``Dynamics``: ``eta, eta_v, sigma, ...``; ``Output``: ``save_at``;
``Control``: ``progress``; at finite N ``Network``: ``v_star`` and ``Ensemble``: ``seeds``) and
:class:`Table` (``report``, ``ode``), as flat keywords or records passed whole. The defaults that
differ from the option table are declared once, in :data:`WORKFLOW_DEFAULTS`: ``eta = 0.5``,
``seeds = 0..7``.
"""

from . import schedules
from ._common import MC_REPLICAS, RETRAIN_SEED_OFFSET, WORKFLOW_DEFAULTS, Table, time_grid
from .init import INIT_RULES, prune_at_init, prune_at_init_finite
from .result import WorkflowResult, safe_label, table_to_csv
from .retrain import retrain, retrain_finite
from .schedules import (
                        gradual_magnitude_pruning,
                        gradual_magnitude_pruning_finite,
                        iterative_magnitude_pruning,
                        iterative_magnitude_pruning_finite,
)
from .tickets import ALL_TICKET_ARMS, TICKET_ARMS, lottery_ticket, lottery_ticket_finite

__all__ = ["WorkflowResult", "retrain", "retrain_finite", "prune_at_init",
           "prune_at_init_finite", "lottery_ticket", "lottery_ticket_finite",
           "iterative_magnitude_pruning", "iterative_magnitude_pruning_finite",
           "gradual_magnitude_pruning", "gradual_magnitude_pruning_finite", "table_to_csv",
           "time_grid", "safe_label", "schedules", "RETRAIN_SEED_OFFSET", "INIT_RULES",
           "TICKET_ARMS", "ALL_TICKET_ARMS", "MC_REPLICAS", "WORKFLOW_DEFAULTS", "Table"]
