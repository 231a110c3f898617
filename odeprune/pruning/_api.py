"""``prune`` and ``PruneResult``: the one entry point of the thermodynamic-limit pruning."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .. import _io
from .._validate import as_generator, check_int, readonly
from ..activations import get_activation
from ..ode.progress import want_progress
from ..sparse import MAX_EXACT_K, SparseLearningCurve, SparseOrderParams
from ..state import OrderParams
from . import node, registry
from . import reweight as _rw
from .edge_map import rescale_rows
from .edge_rules import check_c
from .registry import DETERMINISTIC, METHODS, REWEIGHTS
from .sparse_maps import SparseMapError, for_prune_result, sparse_args_for_prune

__all__ = ["METHODS", "REWEIGHTS", "DETERMINISTIC", "PruneResult", "PruneOptions", "prune",
           "prune_options", "load_masked"]

#: arrays of the masked network (``PruneResult.sparse_state``) in a PruneResult file, and of
#: its standard errors (``sparse_state_se``)
_MASKED = ("patterns", "f", "Q", "R", "T", "v", "v_star")
_MASKED_SE = ("f", "Q", "R", "T", "dense_Q", "dense_R", "eg_batches")


@dataclass(frozen=True, eq=False)
class PruneResult:
    r"""The distribution of the generalisation error over a pruning method's randomness.

    Attributes
    ----------
    subsets : ndarray of int, shape (n_outcomes, k)
        Kept student units per outcome (all ``K`` units, one outcome, for edge pruning).
    probabilities : ndarray, shape (n_outcomes,)
        Exact probabilities, or Monte Carlo frequencies when ``exact`` is False.
    eg_values : ndarray, shape (n_outcomes,)
        :math:`\epsilon_g` of each pruned network (noiseless labels).
    Q : ndarray, shape (n_outcomes, k, k)
    R : ndarray, shape (n_outcomes, k, M)
    v : ndarray, shape (n_outcomes, k)
        Pruned (and reweighted) order parameters per outcome.
    T : ndarray, shape (M, M)
    v_star : ndarray, shape (M,)
    metadata : dict
        ``method, k, c, reweight, kernel, activation, seed, n_draws, eg_unpruned, K, M``,
        ``A`` (the rescaling factor, for ``reweight="rescale"``), ``odeprune_version``.

    Notes
    -----
    ``eg_mean`` is :math:`\sum_S P(S)\,\epsilon_g(S)`; ``eg_std`` the spread
    :math:`\sqrt{\sum_S P(S)(\epsilon_g(S) - \bar\epsilon_g)^2}`; ``eg_se`` the Monte Carlo
    standard error of ``eg_mean`` (0 when exact).
    """

    subsets: np.ndarray
    probabilities: np.ndarray
    eg_values: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    T: np.ndarray
    v_star: np.ndarray
    metadata: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    KIND = "PruneResult"

    def __post_init__(self) -> None:
        object.__setattr__(self, "subsets", readonly(self.subsets, np.int64))
        for name in ("probabilities", "eg_values", "Q", "R", "v", "T", "v_star"):
            object.__setattr__(self, name, readonly(getattr(self, name)))
        n = self.subsets.shape[0]
        for name in ("probabilities", "eg_values", "Q", "R", "v"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, subsets has {n}")

    # ---------------------------------------------------------------- summary
    @property
    def method(self) -> str:
        return self.metadata["method"]

    @property
    def exact(self) -> bool:
        """True when the distribution is exact (enumeration or a deterministic method)."""
        return int(self.metadata.get("n_draws", 0)) == 0

    @property
    def n_outcomes(self) -> int:
        return self.subsets.shape[0]

    @property
    def eg_mean(self) -> float:
        return float(self.probabilities @ self.eg_values)

    @property
    def eg_std(self) -> float:
        d = self.eg_values - self.eg_mean
        return float(np.sqrt(max(0.0, self.probabilities @ (d * d))))

    @property
    def eg_se(self) -> float:
        """Monte Carlo standard error of ``eg_mean``: over sampled subsets (sample std with
        ddof=1 over sqrt(n)), or of the Gaussian-coordinate Monte Carlo of an edge map (the
        spread of the final error over its independent Monte Carlo batches, over sqrt(batches):
        every covariance between the pruned Q and R entries is included)."""
        if "eg_mc_se" in self.metadata:
            return float(self.metadata["eg_mc_se"])
        n = int(self.metadata.get("n_draws", 0))
        if n <= 1:
            return 0.0
        return self.eg_std * float(np.sqrt(n / (n - 1.0))) / float(np.sqrt(n))

    @property
    def activation(self) -> str:
        """The networks' activation (``metadata["activation"]``; erf when not recorded)."""
        return get_activation(self.metadata.get("activation") or "erf").name

    @property
    def states(self) -> tuple[OrderParams, ...]:
        """Pruned order parameters per outcome (validated ``OrderParams`` with the result's
        activation, built on access)."""
        if "states" not in self._cache:
            self._cache["states"] = tuple(
                OrderParams(Q=self.Q[j], R=self.R[j], T=self.T, v=self.v[j], v_star=self.v_star,
                            activation=self.activation)
                for j in range(self.n_outcomes))
        return self._cache["states"]

    @property
    def state(self) -> OrderParams:
        """The pruned state of a method with a single outcome (deterministic methods)."""
        if self.n_outcomes != 1:
            raise ValueError(f"{self.method} has {self.n_outcomes} outcomes; use .states")
        return self.states[0]

    @property
    def sparse_state(self):
        """Per-class state (:class:`~odeprune.SparseOrderParams`) of the masked network of an edge
        rule (``docs/theory.md`` §8; :func:`odeprune.pruning.sparse_maps.sparse_state`); its
        ``dense()`` is :attr:`state` within :attr:`sparse_state_se`. Computed on first access
        with prune's seed (an integer seed: the same coordinates as the edge map) and cached;
        ``ValueError`` for node methods. A result read from a file has it when the file holds it
        (written by :meth:`save` for an edge rule with ``K <= 12``)."""
        return self._sparse()[0]

    @property
    def sparse_state_se(self):
        """Standard errors of :attr:`sparse_state` (``SparseMapError``; ``float()`` is the
        error of ``eg``)."""
        return self._sparse()[1]

    @property
    def is_masked(self) -> bool:
        """True for an edge rule: the pruned network keeps a first-layer mask, and training it
        means training the masked network (:attr:`sparse_state`), not :attr:`state`."""
        return self.method in registry.methods(sparse=True)

    def _sparse(self):
        if "sparse" not in self._cache:
            if "loaded_from" in self._cache and self.is_masked:
                why = self.metadata.get("masked_state") or "written by an older odeprune"
                raise ValueError(
                    f"file {self._cache['loaded_from']!r} holds a {self.method} PruneResult "
                    f"without its masked network ({why}): its state is the summed network, and "
                    "training that would train the dense network, not the masked one; prune "
                    "again with this odeprune (K <= 12), or prune and retrain in one go with "
                    "'odeprune retrain' (Python: odeprune.pruning.sparse_state(state, rule, c))")
            self._cache["sparse"] = for_prune_result(self)
        return self._cache["sparse"]

    def with_metadata(self, **extra) -> PruneResult:
        """The same result with ``extra`` added to its metadata; what it computed on demand
        (``sparse_state``, and what it needs) is kept."""
        new = PruneResult(subsets=self.subsets, probabilities=self.probabilities,
                          eg_values=self.eg_values, Q=self.Q, R=self.R, v=self.v, T=self.T,
                          v_star=self.v_star, metadata={**self.metadata, **extra})
        new._cache.update({k: v for k, v in self._cache.items() if k != "states"})
        return new

    def __repr__(self) -> str:
        m = self.metadata
        what = f"k={m.get('k')}" if m.get("c") is None else f"c={m.get('c'):g}"
        se = "" if self.exact else f", se={self.eg_se:.2g}"
        return (f"PruneResult({self.method}, {what}, reweight={m.get('reweight')!r}, "
                f"eg={self.eg_mean:.6g} +- {self.eg_std:.3g}{se}, outcomes={self.n_outcomes})")

    # ---------------------------------------------------------------- files
    def save(self, path: str | os.PathLike):
        """Write one ``.npz`` (arrays above, JSON metadata with the summary numbers). An edge
        rule's file also holds its masked network (:attr:`sparse_state`, arrays ``masked_*``,
        and its standard errors ``masked_se_*``), so that the network read back trains as the
        masked network it is; when it cannot be computed (``K > 12``) ``metadata
        ["masked_state"]`` says why."""
        meta = dict(self.metadata)
        meta.update(eg_mean=self.eg_mean, eg_std=self.eg_std, eg_se=self.eg_se,
                    exact=self.exact)
        arrays = {n: getattr(self, n) for n in ("subsets", "probabilities", "eg_values", "Q", "R",
                                                "v", "T", "v_star")}
        if self.is_masked:
            if self.K_units > MAX_EXACT_K:
                meta["masked_state"] = (f"K={self.K_units} > {MAX_EXACT_K}: the 2^K mask classes "
                                        "of the exact limit do not fit")
            else:
                sp, se = self._sparse()
                arrays.update({f"masked_{n}": getattr(sp, n) for n in _MASKED})
                arrays.update({f"masked_se_{n}": getattr(se, n) for n in _MASKED_SE})
                meta.update(masked_se_eg=float(se.eg), masked_se_method=se.method)
        return _io.write_npz(path, self.KIND, arrays, meta)

    @property
    def K_units(self) -> int:
        """K of the unpruned network."""
        return int(self.metadata.get("K") or self.subsets.shape[1])

    @classmethod
    def load(cls, path: str | os.PathLike) -> PruneResult:
        arrays, meta = _io.read_npz(path, cls.KIND)
        need = {"subsets", "probabilities", "eg_values", "Q", "R", "v", "T", "v_star"}
        missing = need - set(arrays)
        if missing:
            raise ValueError(f"file {str(path)!r} is a truncated PruneResult: missing "
                             f"{sorted(missing)}")
        for key in ("eg_mean", "eg_std", "eg_se", "exact", "kind", "format_version"):
            meta.pop(key, None)
        se_eg, se_method = meta.pop("masked_se_eg", None), meta.pop("masked_se_method", None)
        result = cls(**{n: arrays[n] for n in need}, metadata=meta)
        result._cache["loaded_from"] = str(path)
        if all(f"masked_{n}" in arrays for n in _MASKED):
            sp = SparseOrderParams(activation=result.activation,
                                   **{n: arrays[f"masked_{n}"] for n in _MASKED})
            se = SparseMapError(eg=float(se_eg if se_eg is not None else np.nan),
                                method=str(se_method or "?"),
                                **{n: arrays.get(f"masked_se_{n}", np.zeros(0))
                                   for n in _MASKED_SE})
            result._cache["sparse"] = (sp, se)
        return result


def load_masked(path: str | os.PathLike) -> SparseOrderParams | None:
    """The masked network a file holds, to be trained as such, or None for a dense network.

    A ``SparseOrderParams``, the final state of a ``SparseLearningCurve``, or the masked network
    of an edge rule's ``PruneResult``. ``ValueError`` (one line, naming what to run instead)
    for a masked network whose mask classes the file does not record: an edge rule's result
    written by an older odeprune or with ``K > 12`` (whose summed state would train as a
    dense network).
    """
    _, meta = _io.read_npz(path, allow_plain=True)
    kind = meta["kind"]
    if kind == "SparseOrderParams":
        return SparseOrderParams.load(path)
    if kind == SparseLearningCurve.KIND:
        return SparseLearningCurve.load(path).final
    if kind == PruneResult.KIND:
        if meta.get("method") in registry.methods(sparse=True):
            return PruneResult.load(path).sparse_state
    return None


def _resolve_seed(seed) -> tuple[np.random.Generator, Any]:
    """The generator of ``seed`` and what the metadata records of it (its entropy, or
    "Generator" for a caller's generator)."""
    rng = as_generator(seed)
    if isinstance(seed, np.random.Generator):
        return rng, "Generator"
    return rng, rng.bit_generator.seed_seq.entropy


def check_method_args(method, k, c, reweight, K):
    kind = registry.get(method).kind
    allowed = registry.reweights_for(kind)
    if kind == "node":
        if c is not None:
            raise ValueError(f"c={c!r} applies to edge pruning only; {method} takes k (1..K={K})")
        if k is None:
            raise ValueError(f"{method} needs k, the number of kept units (1..K={K})")
        k = check_int("k", k, 1, K)
        if reweight not in allowed:
            raise ValueError(f"reweight={reweight!r} does not apply to {method}; allowed "
                             f"{allowed}")
        return k, None
    if k is not None:
        raise ValueError(f"k={k!r} applies to node pruning only; {method} takes c in [0, 1]")
    if c is None:
        raise ValueError(f"{method} needs c, the kept fraction of first-layer weights, in [0, 1]")
    c = check_c(c)
    if reweight not in allowed:
        raise ValueError(f"reweight={reweight!r} does not apply to {method}; allowed {allowed}")
    return None, c


@dataclass(frozen=True)
class PruneOptions:
    """How a pruning method decides, samples and is measured: every such option of
    :func:`prune`, :func:`~odeprune.pruning.prune_weights` and
    :func:`~odeprune.pruning.finite_edges.prune_edges_weights` defined once (default and check);
    each function reads the fields it names (:func:`prune_options`).

    reweight : str
        How the kept units' second layer is refitted (``"none"``; node methods: ``"preact"``,
        ``"activation"``, ``"refit"``; edge: ``"rescale"``, ``"refit"``, ``"rescale_rows"``;
        :mod:`odeprune.pruning.reweight`), checked against the method where it is used.
    kernel : {"Q", "activation"} or array_like, shape (K, K)
        DPP kernel: ``Q`` (limit of the pre-activation Gram matrix, Lemma 1), the activation
        Gram matrix :math:`I_2`, or (:func:`prune` only) an explicit PSD matrix.
    exact : bool
        Enumerate all ``C(K, k)`` subsets when at most ``node.MAX_ENUMERATE``; ``False``: draw
        ``n_samples`` subsets instead.
    n_samples : int
        Monte Carlo draws (:func:`prune`); input samples of the empirical kernel, the
        least-squares reweighting and the gradient (finite-N weights).
    n_masks : int
        Masks / subsets drawn on finite-N weights (deterministic methods use one).
    n_test : int
        Fresh test inputs per mask on finite-N weights (0: no test error; 1 is refused: no
        standard error).
    predict : bool
        Also compute the thermodynamic-limit prediction from the weights' order parameters.
    progress : bool or None
        Progress bar on stderr; ``None``: when stderr is a terminal.
    """

    reweight: str = "none"
    kernel: Any = "Q"
    exact: bool = True
    n_samples: int = 10_000
    n_masks: int = 100
    n_test: int = 10_000
    predict: bool = True
    progress: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reweight, str):
            raise ValueError(f"reweight={self.reweight!r} must be a name, e.g. 'none'")
        if isinstance(self.kernel, str) and self.kernel not in node.KERNELS:
            raise ValueError(f"kernel={self.kernel!r} is unknown; allowed {node.KERNELS} or a "
                             "(K, K) PSD array")
        for name in ("exact", "predict"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")
        object.__setattr__(self, "n_samples", check_int("n_samples", self.n_samples, 1))
        object.__setattr__(self, "n_masks", check_int("n_masks", self.n_masks, 1))
        object.__setattr__(self, "n_test", check_int("n_test", self.n_test, 0))
        if self.n_test == 1:
            raise ValueError("n_test=1 cannot give a standard error; use 0 (no test error) or "
                             ">= 2")
        want_progress(self.progress)


_PRUNE_FIELDS = tuple(f.name for f in fields(PruneOptions))


def prune_options(where: str, keywords: dict, uses: tuple = _PRUNE_FIELDS,
                  **defaults) -> PruneOptions:
    """The :class:`PruneOptions` of the function ``where`` from its keywords: it reads the
    fields ``uses`` (a keyword outside them is a ``TypeError``, as Python's own) with its own
    ``defaults`` where they differ from the record's; ``options=PruneOptions(...)`` passes the
    record whole."""
    keywords = dict(keywords)
    whole = keywords.pop("options", None)
    unknown = sorted(set(keywords) - set(uses))
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {unknown}; its options "
                        f"are {sorted(uses)}")
    if whole is not None:
        if not isinstance(whole, PruneOptions):
            raise ValueError(f"options={whole!r} must be a PruneOptions (odeprune.pruning._api)")
        if keywords:
            raise ValueError(f"{sorted(keywords)} given beside options=: set them in the "
                             "record (dataclasses.replace(options, ...))")
        return whole
    return PruneOptions(**{**defaults, **keywords})


def _is_int_seed(seed) -> bool:
    return seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool))


def node_outcomes(state: OrderParams, subsets: np.ndarray, reweight: str,
                  G: np.ndarray | None = None, activation: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Reweighted second layers (n, k) and errors (n,) of a batch of kept subsets (n, k).

    ``G`` is :math:`I_2` over all fields of ``state`` (computed with the state's activation
    when not given; ``activation``, when given, must be the state's).
    """
    activation = state.check_activation(activation)
    if G is None:
        G = node.activation_gram_all(state, activation)
    K = state.K
    v_star = np.array(state.v_star)
    subsets = np.asarray(subsets, dtype=np.int64)
    v_new = _rw.reweight_node(np.array(state.Q), G, np.array(state.v), v_star, subsets, reweight)
    G_SS = G[subsets[:, :, None], subsets[:, None, :]]
    eg_values = _rw.eg_quadratic(G_SS, G[subsets, K:], G[K:, K:], v_new, v_star)
    return v_new, eg_values


def _edge_reweight(state: OrderParams, pruned: OrderParams, reweight: str):
    """``(pruned state after the reweighting, its second layer v, its error, A or None)`` of an
    edge-pruned state (``v`` is still the unpruned one in ``pruned``)."""
    if reweight == "rescale_rows":
        pruned = rescale_rows(pruned, state)
    K = state.K
    v_star = np.array(state.v_star)
    Gp = node.activation_gram_all(pruned, pruned.activation)
    G_SS, G_ST = Gp[:K, :K], Gp[:K, K:]
    v_new = np.array(state.v)
    A = None
    if reweight == "rescale":
        A = _rw.rescale_factor(G_SS, G_ST, v_new, v_star)
        v_new = A * v_new
    elif reweight == "refit":
        v_new = _rw.refit_weights(G_SS, G_ST, v_star)
    eg = float(_rw.eg_quadratic(G_SS, G_ST, Gp[K:, K:], v_new, v_star))
    return pruned, v_new, eg, A


#: the fields of :class:`PruneOptions` that :func:`prune` reads
PRUNE_USES = ("reweight", "kernel", "exact", "n_samples", "progress")


def prune(state: OrderParams, method: str, k: int | None = None, c: float | None = None, *,
          seed: int | np.random.Generator | None = None, activation: str | None = None,
          **options) -> PruneResult:
    r"""Prune a network given by its order parameters: the distribution of :math:`\epsilon_g`.

    Parameters
    ----------
    state : OrderParams
        The unpruned student (K units) and teacher (M units), with its activation.
    method : {"random_node", "importance_node", "dpp_node", "dpp_map_node", "random_edge", ...}
        Node methods keep ``k`` units: uniformly at random; the ``k`` largest :math:`|v_i|` (ties
        to the lower index); a k-DPP with kernel ``kernel`` (Acharyya et al. 2021, Appendix A and
        Lemma 1); its greedy MAP subset. ``random_edge`` keeps each first-layer weight with
        probability ``c`` and maps the state by Lemma 6 (the expected network, as the paper); the
        other edge rules are Gaussian-coordinate maps (:mod:`odeprune.pruning.edge_rules`).
    k : int, optional
        Kept units, ``1 <= k <= K`` (node methods; for ``dpp_node`` also ``k <= rank(L)``).
    c : float, optional
        Kept fraction of edges, ``0 <= c <= 1`` (edge methods). Equal parameter count with
        node pruning means ``c = k / K`` (Eq. 1).
    seed : int or numpy.random.Generator, optional
        For Monte Carlo sampling (recorded in the metadata).
    activation : str, optional
        The activation is the state's (``state.activation``); an explicit different one is
        refused (reinterpret with ``state.replace(activation=...)``).
    **options
        The fields ``reweight`` (default ``"none"``), ``kernel`` (``"Q"``), ``exact``
        (``True``), ``n_samples`` (10000) and ``progress`` (``None``) of
        :class:`PruneOptions` (their meaning and checks are there), as keywords or the record
        whole (``options=PruneOptions(...)``):

    reweight : str
        Node methods: ``"none"``, ``"preact"``, ``"activation"``, ``"refit"``; edge:
        ``"none"``, ``"rescale"``, ``"refit"``, ``"rescale_rows"`` (see
        :mod:`odeprune.pruning.reweight`).
    kernel : {"Q", "activation"} or array_like, shape (K, K)
        DPP kernel: ``Q`` (limit of the pre-activation Gram matrix, Lemma 1), the activation Gram
        matrix :math:`I_2`, or an explicit PSD matrix.
    exact : bool
        Enumerate all ``C(K, k)`` subsets when at most ``node.MAX_ENUMERATE`` (default); with
        ``False`` (or more subsets) draw ``n_samples`` subsets instead.
    n_samples : int
        Monte Carlo draws.
    progress : bool or None
        Progress bar for long Monte Carlo work (k-DPP sampling, coordinate Monte Carlo edge
        maps); ``None`` (default): when stderr is a terminal.

    Returns
    -------
    PruneResult

    Raises
    ------
    ValueError
        Unknown method/reweight/kernel, ``k`` outside 1..K, ``c`` outside [0, 1], a kernel that
        is not PSD, ``k > rank(L)`` for the DPP, an activation other than the state's; the
        message names the parameter and what is allowed.
    """
    if not isinstance(state, OrderParams):
        raise ValueError(f"state must be an OrderParams, got {type(state).__name__}")
    K = state.K
    how = prune_options("prune", options, PRUNE_USES)
    reweight, kernel, exact, n_samples, progress = (how.reweight, how.kernel, how.exact,
                                                    how.n_samples, how.progress)
    k, c = check_method_args(method, k, c, reweight, K)
    act = get_activation(state.check_activation(activation))
    rng, seed_record = _resolve_seed(seed)
    kernel_name = kernel if isinstance(kernel, str) else "custom"
    meta: dict[str, Any] = dict(method=method, k=k, c=c, reweight=reweight,
                                kernel=kernel_name, activation=act.name, seed=seed_record,
                                K=K, M=state.M, eg_unpruned=state.eg(),
                                odeprune_version=_io.package_version())
    M = state.M
    v_star = np.array(state.v_star)

    entry = registry.get(method)
    if entry.kind == "node":
        G = node.activation_gram_all(state, act.name)
        subsets, probs, n_draws = entry.limit(state, k, kernel=kernel, activation=act.name,
                                              exact=exact, n_samples=n_samples, rng=rng,
                                              progress=progress)
        v_new, eg_values = node_outcomes(state, subsets, reweight, G)
        Qn = np.array(state.Q)[subsets[:, :, None], subsets[:, None, :]]
        Rn = np.array(state.R)[subsets]
    else:
        pruned, mapped = entry.limit(state, c, seed=seed if _is_int_seed(seed) else rng,
                                     n_samples=max(n_samples, 200_000), progress=progress)
        pruned, v_new, eg, A = _edge_reweight(state, pruned, reweight)
        if A is not None:
            meta["A"] = A
        if mapped is not None and mapped.Q_batches is not None:
            # the error of the final (reweighted) network in every independent Monte Carlo
            # batch: its spread is the standard error with the joint covariance of Q' and R'
            eg_b = np.array([_edge_reweight(state, b, reweight)[2]
                             for b in mapped.batch_states()])
            meta["eg_mc_se"] = float(eg_b.std(ddof=1) / np.sqrt(eg_b.size))
            meta["mc_batches"] = int(eg_b.size)
        eg_values = np.array([eg])
        subsets = np.arange(K, dtype=np.int64)[None, :]
        probs, n_draws = np.ones(1), 0
        Qn, Rn, v_new = np.array(pruned.Q)[None], np.array(pruned.R)[None], v_new[None]
    meta["n_draws"] = int(n_draws)
    meta["n_samples"] = n_samples if n_draws else None
    result = PruneResult(subsets=subsets, probabilities=probs, eg_values=eg_values, Q=Qn, R=Rn,
                         v=v_new, T=np.array(state.T), v_star=v_star.reshape(M), metadata=meta)
    if entry.sparse:  # for result.sparse_state, computed on first access
        result._cache["sparse_args"] = sparse_args_for_prune(state, seed, rng, seed_record,
                                                             n_samples)
    return result
