r"""The pruning methods of :func:`odeprune.prune` applied to real finite-N weights.

Given first layers ``w`` (K, N), ``w_star`` (M, N) and second layers ``v``, ``v_star`` this draws
``n_samples`` training inputs :math:`x \sim N(0, I_N)` and

- node methods: picks kept units (uniform subsets; the ``k`` largest :math:`|v_i|`; a k-DPP or
  its greedy MAP on the **empirical** kernel over the samples -- the pre-activation Gram
  matrix :math:`L_{ij} = h_i\cdot h_j / (N n)` with :math:`h_{i\mu} = w_i\cdot x^\mu` as the
  authors did (Acharyya et al. 2021, Appendix C), or the activation Gram matrix
  :math:`g(\lambda_i)\cdot g(\lambda_j)/n`);
- ``random_edge``: multiplies ``w`` by an i.i.d. Bernoulli(c) mask;
- reweights by least squares on the same samples: ``"preact"`` regresses
  :math:`\sum_{rem} v_{rem} \lambda_{rem}` on the kept :math:`\lambda_S`; ``"activation"``
  regresses the removed units' output :math:`\sum_{rem} v_{rem} g(\lambda_{rem})` on the kept
  :math:`g(\lambda_S)`; ``"refit"`` regresses the teacher's output on the kept :math:`g(\lambda_S)`;
  ``"rescale"`` fits one scalar ``A``;
- measures the pruned network's test error :math:`\frac12\langle(\phi - y)^2\rangle` on
  ``n_test`` fresh inputs per mask (noiseless teacher labels), and its exact
  :math:`\epsilon_g` from the pruned weights' order parameters (for Gaussian inputs the local
  fields are exactly Gaussian with that covariance, so the test error is an unbiased estimate of
  it).

With ``predict=True`` the result also holds :func:`odeprune.prune` applied to the order
parameters of the same unpruned weights: the thermodynamic-limit prediction to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._pool import stop_if_asked
from .._validate import check_activation
from ..activations import get_activation
from ..ode.progress import make_bar
from ..state import OrderParams
from . import node, registry
from ._api import PruneResult, check_method_args, node_outcomes, prune, prune_options
from .finite_edges import edge_mask, fresh_test_error, unpack_weights
from .reweight import reweight_edges_finite, reweight_node_finite

__all__ = ["FinitePruneResult", "prune_weights"]


@dataclass(frozen=True, eq=False)
class FinitePruneResult:
    r"""Pruning of real weights: test errors over masks, and the limit prediction.

    Attributes
    ----------
    test_errors : ndarray, shape (n_masks,)
        Test error of each pruned network on its own ``n_test`` fresh samples.
    test_errors_se : ndarray, shape (n_masks,)
        Their sampling standard errors (std of the per-sample loss / sqrt(n_test)).
    eg_values : ndarray, shape (n_masks,)
        :math:`\epsilon_g` from the order parameters of each pruned network's weights.
    subsets : ndarray of int, shape (n_masks, k)
        Kept units (all K units for edge pruning).
    v : ndarray, shape (n_masks, k)
        Second layer of each pruned network (after reweighting).
    kept_fraction : ndarray, shape (n_masks,)
        Fraction of first-layer weights kept (``k/K`` for node pruning).
    eg_limit : ndarray, shape (n_masks,)
        The thermodynamic-limit error of the same outcome, from the order parameters of the
        unpruned weights: for node methods the limit map of the same kept subset (with the
        limit reweighting), for edge pruning the Lemma-6 value. ``test_errors - eg_limit`` is
        the finite-size effect of this outcome plus test noise (a paired comparison).
    prediction : PruneResult or None
        :func:`odeprune.prune` on ``OrderParams.from_weights`` of the unpruned weights.
    metadata : dict
        method, k, c, reweight, kernel, activation, N, K, M, n_samples, n_masks, n_test, seed.
    """

    test_errors: np.ndarray
    test_errors_se: np.ndarray
    eg_values: np.ndarray
    subsets: np.ndarray
    v: np.ndarray
    kept_fraction: np.ndarray
    eg_limit: np.ndarray
    prediction: PruneResult | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def n_masks(self) -> int:
        return self.test_errors.shape[0]

    @property
    def test_error_mean(self) -> float:
        return float(np.mean(self.test_errors))

    @property
    def test_error_se(self) -> float:
        """Standard error of ``test_error_mean``: the spread over masks (each with fresh test
        samples, so it includes the test-sampling noise) over sqrt(n_masks); for one mask the
        test-sampling error alone."""
        if self.n_masks == 1:
            return float(self.test_errors_se[0])
        return float(np.std(self.test_errors, ddof=1) / np.sqrt(self.n_masks))

    @property
    def eg_mean(self) -> float:
        return float(np.mean(self.eg_values))

    @property
    def eg_se(self) -> float:
        """Standard error of ``eg_mean`` over masks (0 for one mask)."""
        if self.n_masks == 1:
            return 0.0
        return float(np.std(self.eg_values, ddof=1) / np.sqrt(self.n_masks))

    @property
    def limit_se(self) -> float:
        """Standard error of a mean over ``n_masks`` outcomes drawn from the limit distribution,
        ``prediction.eg_std / sqrt(n_masks)`` (plus the prediction's own Monte Carlo error):
        the right yardstick for ``test_error_mean - prediction.eg_mean`` when the distribution
        is heavy-tailed (rare bad subsets a few masks may all miss)."""
        if self.prediction is None:
            return float("nan")
        p = self.prediction
        return float(np.hypot(p.eg_std / np.sqrt(self.n_masks), p.eg_se))

    @property
    def paired_difference(self) -> tuple[float, float]:
        """Mean over masks of ``test_errors - eg_limit`` and its standard error."""
        d = self.test_errors - self.eg_limit
        if self.n_masks == 1:
            return float(d[0]), float(self.test_errors_se[0])
        return float(d.mean()), float(d.std(ddof=1) / np.sqrt(self.n_masks))

    def __repr__(self) -> str:
        m = self.metadata
        what = f"k={m.get('k')}" if m.get("c") is None else f"c={m.get('c'):g}"
        pred = "" if self.prediction is None else f", limit={self.prediction.eg_mean:.5g}"
        return (f"FinitePruneResult({m.get('method')}, {what}, reweight={m.get('reweight')!r}, "
                f"test={self.test_error_mean:.5g} +- {self.test_error_se:.2g}, "
                f"eg={self.eg_mean:.5g}{pred}, N={m.get('N')}, masks={self.n_masks})")


#: the fields of :class:`~odeprune.pruning._api.PruneOptions` that :func:`prune_weights` reads
PRUNE_WEIGHTS_USES = ("reweight", "kernel", "n_samples", "n_masks", "n_test", "predict",
                      "progress")


def prune_weights(w, v=None, w_star=None, v_star=None, method: str = "random_node",
                  k: int | None = None, c: float | None = None, *,
                  seed: int | np.random.Generator | None = None, activation: str | None = None,
                  **options) -> FinitePruneResult:
    r"""Prune finite-N weights and measure the pruned networks' test error.

    Parameters
    ----------
    w : array_like, shape (K, N), or a simulation result
        Student first layer; or an object with attributes ``w``, ``v`` (a (K,) array or a
        (n, K) trajectory, whose last row is used), ``w_star``, ``v_star`` (e.g. a
        :class:`~odeprune.sim.SimulationResult`), whose ``metadata["activation"]`` is
        used when ``activation`` is None.
    v : array_like, shape (K,)
    w_star : array_like, shape (M, N)
    v_star : array_like, shape (M,)
    method, k, c :
        As :func:`odeprune.prune`.
    seed : int or numpy.random.Generator
    activation : {"erf", "linear", "relu"}, optional
    **options
        The fields ``reweight`` (default ``"none"``), ``kernel`` (``"Q"``), ``n_samples``
        (10000), ``n_masks`` (100), ``n_test`` (10000), ``predict`` (``True``) and ``progress``
        (``None``) of :class:`~odeprune.pruning._api.PruneOptions` (checks there), as keywords or
        the record whole (``options=PruneOptions(...)``):

    reweight :
        As :func:`odeprune.prune`.
    kernel : {"Q", "activation"}
        DPP kernel: the empirical pre-activation Gram matrix :math:`h_i\cdot h_j/(Nn)` (whose
        limit is ``Q``, Lemma 1) or the empirical activation Gram matrix (limit ``I2``).
    n_samples : int
        Inputs for the empirical kernel and the least-squares reweighting.
    n_masks : int
        Random masks / subsets drawn (deterministic methods use one).
    n_test : int
        Fresh test inputs per mask; 0 skips the test error (NaN) and keeps only the exact
        :math:`\epsilon_g` of the pruned weights' order parameters.
    predict : bool
        Also compute the thermodynamic-limit prediction from the weights' order parameters.
    progress : bool or None
        Progress bar over the masks and their test errors (None: when stderr is a terminal).

    Returns
    -------
    FinitePruneResult
    """
    w, v, w_star, v_star, act_name = unpack_weights(w, v, w_star, v_star)
    act = get_activation(check_activation(activation, act_name, "the simulation"))
    state = OrderParams.from_weights(w, w_star, v, v_star, activation=act.name)  # validates
    K, N = w.shape
    how = prune_options("prune_weights", options, PRUNE_WEIGHTS_USES)
    reweight, kernel, n_samples, n_masks, n_test, predict, progress = (
        how.reweight, how.kernel, how.n_samples, how.n_masks, how.n_test, how.predict,
        how.progress)
    k, c = check_method_args(method, k, c, reweight, K)
    entry = registry.get(method)
    if not isinstance(kernel, str):
        raise ValueError(f"kernel={kernel!r} is unknown; allowed {node.KERNELS} (the "
                         "empirical kernels of the weights)")
    if entry.one_mask:
        n_masks = 1
    if isinstance(seed, np.random.Generator):
        ss = np.random.SeedSequence(seed.integers(2**63))
        seed_record: Any = "Generator"
    else:
        ss = np.random.SeedSequence(seed)
        seed_record = ss.entropy
    rng_train, rng_masks, rng_test, rng_pred = (np.random.default_rng(s) for s in ss.spawn(4))
    sqrtN = np.sqrt(N)

    X = rng_train.standard_normal((n_samples, N))
    H = X @ w.T / sqrtN                        # pre-activations lambda, (n, K)
    Gs = act.g(H)

    subsets_list, v_list, w_list = [], [], []
    bar = make_bar(progress, 2 * n_masks, f"prune_weights {method}", unit="mask")
    if entry.kind == "node":
        subsets = entry.finite(v, k, H=H, Gs=Gs, kernel=kernel, n_masks=n_masks, rng=rng_masks)
        Gt = act.g(X @ w_star.T / sqrtN)
        for S in subsets:
            stop_if_asked("prune_weights")
            subsets_list.append(S)
            v_list.append(reweight_node_finite(H, Gs, Gt, v, v_star, np.asarray(S)[None],
                                               reweight)[0])
            w_list.append(w[S])
            bar.update(1)
        kept = np.full(len(subsets_list), k / K)
    else:
        kept = np.empty(n_masks)
        for j in range(n_masks):
            stop_if_asked("prune_weights")
            mask = edge_mask(w, method, c, seed=rng_masks, v=v, w_star=w_star, v_star=v_star,
                             n_samples=n_samples, activation=act.name)[0]
            wp, vp = reweight_edges_finite(w, mask, v, w_star, v_star, reweight, X, act)
            kept[j] = mask.mean()
            subsets_list.append(np.arange(K))
            v_list.append(vp)
            w_list.append(wp)
            bar.update(1)

    n_out = len(w_list)
    test_err = np.full(n_out, np.nan)
    test_se = np.full(n_out, np.nan)
    eg_vals = np.empty(n_out)
    for j, (wp, vp) in enumerate(zip(w_list, v_list, strict=True)):
        stop_if_asked("prune_weights")
        if n_test:
            test_err[j], test_se[j] = fresh_test_error(wp, vp, w_star, v_star, act, n_test,
                                                       rng_test)
        eg_vals[j] = OrderParams.from_weights(wp, w_star, vp, v_star, activation=act.name).eg()
        bar.update(1)
    bar.close()

    prediction = None
    if predict or entry.kind == "edge":
        prediction = prune(state, method, k=k, c=c, reweight=reweight, kernel=kernel,
                           seed=rng_pred, progress=False)
    if entry.kind == "edge":
        eg_limit = np.full(n_out, prediction.eg_mean)
    else:
        eg_limit = node_outcomes(state, np.array(subsets_list), reweight)[1]
    if not predict:
        prediction = None
    meta = dict(method=method, k=k, c=c, reweight=reweight, kernel=kernel, activation=act.name,
                N=N, K=K, M=w_star.shape[0], n_samples=n_samples, n_masks=n_out, n_test=n_test,
                seed=seed_record, eg_unpruned=state.eg())
    return FinitePruneResult(test_errors=test_err, test_errors_se=test_se, eg_values=eg_vals,
                             subsets=np.array(subsets_list, dtype=np.int64),
                             v=np.array(v_list), kept_fraction=kept, eg_limit=eg_limit,
                             prediction=prediction,
                             metadata=meta)

