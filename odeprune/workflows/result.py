r"""The result of every workflow: learning curves per arm and a tidy table (:class:`WorkflowResult`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _io

__all__ = ["WorkflowResult", "table_to_csv", "safe_label"]


def safe_label(label: str) -> str:
    """``label`` with every character other than letters, digits, ``_-.`` replaced by ``_`` (a
    file name)."""
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in label)


@dataclass(frozen=True, eq=False)
class WorkflowResult:
    r"""Learning curves of the arms of a prune-and-train protocol, and a tidy table.

    Attributes
    ----------
    workflow : str
        ``"retrain"``, ``"prune_at_init"``, ``"lottery_ticket"``, ``"imp"`` or ``"gradual"``.
    layer : str
        ``"limit"`` (order-parameter ODEs) or ``"finite"`` (SGD on real weights at finite N).
    alpha : dict of str to ndarray, shape (n,)
        Per arm, the saved times since (re)training started.
    eg : dict of str to ndarray
        Per arm, :math:`\epsilon_g` (noiseless labels): shape (n,) in the limit (for a random
        node method the mean over its outcomes, weighted by their probabilities), (n_seeds, n) at
        finite N (exact :math:`\epsilon_g` of the real weights' order parameters).
    eg_se : dict of str to ndarray, shape (n,)
        Limit: Monte Carlo standard error of ``eg`` (sampled node subsets; 0 when exact).
        Finite N: the standard error of the mean over seeds.
    eg_ode : dict of str to ndarray, shape (n_seeds, n), or empty
        Finite N only: the ODE integrated from the exact order parameters of each real pruned
        network (per-class for masked ones).
    table : list of dict
        One row per arm and reported time: ``workflow, layer, arm`` and the arm's parameters
        (``method, k, c, reweight, rescale``), ``alpha`` (time since (re)training), ``eg``,
        ``eg_se``, ``n`` (outcomes or seeds), and at finite N ``eg_ode`` and ``N``.
    metadata : dict
        Every parameter, the seeds, the package version.
    curves : dict
        Per arm the underlying results (LearningCurve / SparseLearningCurve, a list of them for a
        random node method, or the finite-N SimulationResult list). Not saved.
    """

    workflow: str
    layer: str
    alpha: dict
    eg: dict
    eg_se: dict
    table: list
    metadata: dict = field(default_factory=dict)
    eg_ode: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict, repr=False)

    KIND = "WorkflowResult"

    @property
    def arms(self) -> list[str]:
        """The arms, in the order they were run."""
        return list(self.alpha)

    def eg_mean(self, arm: str) -> np.ndarray:
        """Mean :math:`\\epsilon_g` of ``arm`` over seeds (finite N) or as stored (limit), (n,)."""
        e = np.asarray(self.eg[arm])
        return e.mean(0) if e.ndim == 2 else e

    def eg_at(self, arm: str, alpha: float) -> float:
        """Mean :math:`\\epsilon_g` of ``arm`` at a saved time (``ValueError`` when not saved)."""
        a = np.asarray(self.alpha[arm])
        idx = np.flatnonzero(np.isclose(a, alpha, rtol=1e-9, atol=1e-9))
        if idx.size == 0:
            raise ValueError(f"alpha={alpha!r} is not a saved time of arm {arm!r}")
        return float(self.eg_mean(arm)[idx[0]])

    def __repr__(self) -> str:
        return (f"WorkflowResult({self.workflow}, {self.layer}, arms={self.arms}, "
                f"rows={len(self.table)})")

    @classmethod
    def combine(cls, results: Sequence[WorkflowResult]) -> WorkflowResult:
        """One result with the arms and table rows of several results of the same workflow and
        layer (e.g. one :func:`~odeprune.workflows.retrain` per method); ``metadata["parts"]`` keeps each part's
        parameters."""
        results = list(results)
        if not results:
            raise ValueError("combine needs at least one WorkflowResult")
        first = results[0]
        if any((r.workflow, r.layer) != (first.workflow, first.layer) for r in results):
            raise ValueError("combine takes results of one workflow and one layer")
        alpha, eg, se, ode, curves, table = {}, {}, {}, {}, {}, []
        for r in results:
            clash = set(r.alpha) & set(alpha)
            if clash:
                raise ValueError(f"arms {sorted(clash)} appear in more than one result")
            alpha.update(r.alpha)
            eg.update(r.eg)
            se.update(r.eg_se)
            ode.update(r.eg_ode)
            curves.update(r.curves)
            table += r.table
        meta = dict(parts=[r.metadata for r in results],
                    odeprune_version=_io.package_version())
        return cls(first.workflow, first.layer, alpha, eg, se, table, meta, eg_ode=ode,
                   curves=curves)

    # ---------------------------------------------------------------- files
    def to_csv(self) -> str:
        """The table as CSV text (the union of the rows' columns, in first-seen order)."""
        return table_to_csv(self.table)

    def save(self, path: str | os.PathLike):
        """One ``.npz``: per arm ``alpha.<i>``, ``eg.<i>``, ``eg_se.<i>`` (and ``eg_ode.<i>``);
        the arms, the table and the parameters in the JSON metadata. Atomic."""
        arrays: dict[str, np.ndarray] = {}
        for i, arm in enumerate(self.arms):
            arrays[f"alpha.{i}"] = np.asarray(self.alpha[arm])
            arrays[f"eg.{i}"] = np.asarray(self.eg[arm])
            arrays[f"eg_se.{i}"] = np.asarray(self.eg_se[arm])
            if arm in self.eg_ode:
                arrays[f"eg_ode.{i}"] = np.asarray(self.eg_ode[arm])
        meta = dict(self.metadata, workflow=self.workflow, layer=self.layer, arms=self.arms,
                    table=self.table)
        return _io.write_npz(path, self.KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> WorkflowResult:
        """Read a file written by :meth:`save`."""
        return cls.from_npz(path, *_io.read_npz(path, cls.KIND))

    @classmethod
    def from_npz(cls, path, arrays: dict, meta: dict) -> WorkflowResult:
        """The result from a file's checked arrays and metadata (:func:`odeprune.load`)."""
        meta = {k: v for k, v in meta.items() if k not in ("kind", "format_version")}
        try:
            arms = list(meta.pop("arms"))
            table = list(meta.pop("table"))
            workflow, layer = meta.pop("workflow"), meta.pop("layer")
            alpha = {a: arrays[f"alpha.{i}"] for i, a in enumerate(arms)}
            eg = {a: arrays[f"eg.{i}"] for i, a in enumerate(arms)}
            eg_se = {a: arrays[f"eg_se.{i}"] for i, a in enumerate(arms)}
        except KeyError as exc:
            raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing {exc}"
                             ) from None
        eg_ode = {a: arrays[f"eg_ode.{i}"] for i, a in enumerate(arms) if f"eg_ode.{i}" in arrays}
        return cls(workflow=workflow, layer=layer, alpha=alpha, eg=eg, eg_se=eg_se, table=table,
                   metadata=meta, eg_ode=eg_ode)


#: rows (dicts) as CSV text (:func:`odeprune._io.rows_to_csv`)
table_to_csv = _io.rows_to_csv
