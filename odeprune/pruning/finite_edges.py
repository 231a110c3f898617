r"""Edge-pruning rules on real finite-N weights, and iterative magnitude pruning with rewinding.

The finite-N counterparts of :mod:`odeprune.pruning.edge_rules`:

- ``magnitude_edge``: keep exactly the ``round(c N)`` largest ``|w_ij|`` of each row
  (``magnitude_edge_global``: the ``round(c K N)`` largest over the whole first layer);
- ``dpp_edge``: per unit, a k-DPP (``k = round(c N)``) over its incoming edges with the
  **empirical** kernel of the authors, :math:`L^{(i)}_{jj'} = w_{ij} w_{ij'} (X^T X / n)_{jj'}`
  over ``n`` input samples, sampled exactly (spectral sampler of :mod:`odeprune.pruning.dpp`).
  For ``N > dpp_exact_max_N`` the O(N^3) eigendecomposition per unit is replaced by its
  large-N limit (independent edges with probability :math:`\lambda_i w^2/(1+\lambda_i w^2)`,
  mean ``c``), recorded in the metadata;
- ``snip_edge``: scores :math:`|w_{ij} g_{ij}|` with the empirical gradient of the training loss
  over ``n`` samples, :math:`g_i = \frac1n\sum_\mu \Delta_\mu v_i g'(\lambda_{i\mu}) x_\mu/\sqrt N`,
  top ``round(c N)`` per row (``snip_edge_global``: over all rows);
- ``random_edge``: i.i.d. Bernoulli(c) masks.

:func:`prune_edges_weights` measures the pruned network's test error on fresh samples and compares
with the limit map :func:`~odeprune.pruning.edge_map.edge_prune_map` evaluated on the same
weights' order parameters. Iterative magnitude pruning with rewinding at
finite N is :func:`odeprune.workflows.schedules.imp_finite`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._stats import sem
from .._validate import check_activation
from ..activations import get_activation
from ..ode.progress import make_bar
from ..state import OrderParams
from ._api import prune_options
from .edge_map import edge_prune_map
from .edge_rules import check_c, rule_class

__all__ = ["edge_mask", "fresh_test_error", "unpack_weights", "prune_edges_weights",
           "EdgePruneWeightsResult"]

def unpack_weights(obj, v, w_star, v_star):
    """``(w, v, w_star, v_star, activation or None)`` from explicit arrays or a simulation result
    (duck-typed: attributes w, v, w_star, v_star; trajectories give their last entry)."""
    if hasattr(obj, "w") and hasattr(obj, "w_star"):
        w = np.asarray(obj.w, dtype=float)
        v = np.asarray(obj.v, dtype=float)
        if v.ndim == 2:  # a trajectory: the final second layer
            v = v[-1]
        w_star = np.asarray(obj.w_star, dtype=float)
        v_star = np.asarray(obj.v_star, dtype=float)
        if w.ndim == 3:
            w = w[-1]
        act = getattr(obj, "metadata", {}).get("activation") if hasattr(obj, "metadata") else None
        return w, v, w_star, v_star, act
    if v is None or w_star is None or v_star is None:
        raise ValueError("prune_weights needs w, v, w_star and v_star (or a simulation result "
                         "with those attributes)")
    return np.asarray(obj, dtype=float), np.asarray(v, dtype=float), \
        np.asarray(w_star, dtype=float), np.asarray(v_star, dtype=float), None


def fresh_test_error(w, v, w_star, v_star, act, n_test: int, rng: np.random.Generator
                     ) -> tuple[float, float]:
    r"""Test error :math:`\frac12\langle(\phi(x) - y)^2\rangle` of the network ``(w, v)`` on
    ``n_test`` fresh inputs :math:`x \sim N(0, I_N)` drawn from ``rng`` (noiseless teacher
    labels), and its sampling standard error (std of the per-sample loss / sqrt(n_test)).
    For Gaussian inputs it is an unbiased estimate of :math:`\epsilon_g` of the weights' order
    parameters."""
    sqrt_n = math.sqrt(w.shape[1])
    X = rng.standard_normal((n_test, w.shape[1]))
    loss = 0.5 * (act.g(X @ w.T / sqrt_n) @ v - act.g(X @ w_star.T / sqrt_n) @ v_star) ** 2
    return float(loss.mean()), float(loss.std(ddof=1) / math.sqrt(n_test))


def edge_mask(w, rule: str, c: float, seed=None, v=None, w_star=None, v_star=None,
              n_samples: int = 10_000, activation: str = "erf", dpp_exact_max_N: int = 2000
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """A (K, N) boolean mask of kept first-layer weights for ``rule`` keeping a fraction ``c``.

    Returns ``(mask, info)``; ``info`` records how the mask was made (e.g. the DPP mode).
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"w must have shape (K, N), got {w.shape}")
    c = check_c(c)
    cls = rule_class(rule)      # every edge rule has its finite-N mask (EdgeRule.mask)
    rng = np.random.default_rng(seed)
    mask, made = cls().mask(w, c, rng, v=v, w_star=w_star, v_star=v_star,
                                         n_samples=n_samples, activation=activation,
                                         dpp_exact_max_N=dpp_exact_max_N)
    return mask, {"rule": rule, **made}


@dataclass(frozen=True, eq=False)
class EdgePruneWeightsResult:
    """Edge pruning of real weights: test errors over masks and the limit prediction.

    Attributes
    ----------
    test_errors, test_errors_se : ndarray, shape (n_masks,)
        Test error of each pruned network on ``n_test`` fresh samples (noiseless labels).
    eg_values : ndarray, shape (n_masks,)
        :math:`\\epsilon_g` from the order parameters of each pruned network's weights.
    kept_fraction : ndarray, shape (n_masks,)
    eg_limit : float
        The limit map (:func:`~odeprune.pruning.edge_map.edge_prune_map`) on the order
        parameters of the unpruned weights.
    metadata : dict
    """

    test_errors: np.ndarray
    test_errors_se: np.ndarray
    eg_values: np.ndarray
    kept_fraction: np.ndarray
    eg_limit: float
    metadata: dict = field(default_factory=dict)

    @property
    def eg_mean(self) -> float:
        return float(np.mean(self.eg_values))

    @property
    def eg_se(self) -> float:
        return float(sem(self.eg_values))

    @property
    def test_error_mean(self) -> float:
        return float(np.mean(self.test_errors))

    @property
    def test_error_se(self) -> float:
        """Standard error of the mean test error: spread over masks and test sampling."""
        n = self.test_errors.size
        within = float(np.sqrt(np.mean(self.test_errors_se ** 2)) / math.sqrt(n))
        between = float(sem(self.test_errors))
        return max(within, between)


#: the fields of :class:`~odeprune.pruning._api.PruneOptions` that :func:`prune_edges_weights`
#: reads, and its own defaults of them (a few masks, a large test set)
PRUNE_EDGES_USES = ("n_samples", "n_masks", "n_test", "predict", "progress")
PRUNE_EDGES_DEFAULTS = {"n_masks": 5, "n_test": 20_000}


def prune_edges_weights(w, v=None, w_star=None, v_star=None, rule: str = "magnitude_edge",
                        c: float = 0.5, *, seed=0, activation: str | None = None, **options
                        ) -> EdgePruneWeightsResult:
    """Prune real weights with an edge rule; test error on fresh samples; limit prediction.

    ``w`` may be a simulation result (attributes ``w``, ``v`` (trajectory: last row),
    ``w_star``, ``v_star``). Deterministic rules (magnitude) use one mask. ``options``: the
    fields ``n_samples`` (10000), ``n_masks`` (here 5), ``n_test`` (here 20000), ``predict``
    (``True``: the limit map's error, else NaN) and ``progress`` (a bar over the masks; None:
    when stderr is a terminal) of :class:`~odeprune.pruning._api.PruneOptions`, as keywords or the
    record whole (``options=``).
    """
    w, v, w_star, v_star, act_name = unpack_weights(w, v, w_star, v_star)
    act = get_activation(check_activation(activation, act_name, "the simulation"))
    c = check_c(c)
    how = prune_options("prune_edges_weights", options, PRUNE_EDGES_USES, **PRUNE_EDGES_DEFAULTS)
    n_masks, n_test, n_samples, predict, progress = (how.n_masks, how.n_test, how.n_samples,
                                                     how.predict, how.progress)
    state = OrderParams.from_weights(w, w_star, v, v_star, activation=act.name)
    K, N = w.shape
    if rule_class(rule).deterministic:
        n_masks = 1
    ss = np.random.SeedSequence(seed)
    mask_seeds = ss.spawn(n_masks)
    rng_test = np.random.default_rng(ss.spawn(1)[0])
    errs, ses, egs, kept = [], [], [], []
    info: dict[str, Any] = {}
    bar = make_bar(progress, n_masks, f"prune_edges_weights {rule}", unit="mask")
    for j in range(n_masks):
        mask, info = edge_mask(w, rule, c, seed=mask_seeds[j], v=v, w_star=w_star, v_star=v_star,
                               n_samples=n_samples, activation=act.name)
        wp = w * mask
        err, se = fresh_test_error(wp, v, w_star, v_star, act, n_test, rng_test)
        errs.append(err)
        ses.append(se)
        egs.append(OrderParams.from_weights(wp, w_star, v, v_star, activation=act.name).eg())
        kept.append(mask.mean())
        bar.update(1)
    bar.close()
    eg_limit = (edge_prune_map(state, rule, c, progress=progress).state.eg()
                if predict else float("nan"))
    meta = dict(info)
    meta.update(rule=rule, c=c, N=N, K=K, M=w_star.shape[0], n_masks=n_masks, n_test=n_test,
                seed=seed, eg_unpruned=state.eg())
    return EdgePruneWeightsResult(np.array(errs), np.array(ses), np.array(egs), np.array(kept),
                                  float(eg_limit), meta)
