r"""Figure 4: DPP node minus random edge pruning on the specialised ansatz, over Z and c.

(A) :math:`\epsilon^{DPP\,Node}_{k} - \epsilon^{Rand\,Edge}_c` without reweighting (Lemma 2 Eq. 9
minus Lemma 4 Eq. 11; Theorem 2 claims >= 0); (B) with the best reweighting of each: Lemma 2
Eq. 10 minus the minimum over A of Theorem 3 Eq. 15 (Theorem 3 claims <= 0). Z = 4..30 (the theorems' range; Z = 2, 3
are added left of a dashed line, outside the hypothesis Z >= 4) and 0 <= c <= 1/Z, equal
parameter count k = cZM (Eq. 1).

k = cZM is an integer only for c = k/(ZM); as in ``odeprune.pruning.theory`` Lemma 2 is evaluated
at real k (Eq. 9 and 10 are linear in k). Both errors are proportional to M (v*)^2, so the sign
does not depend on M or v*; the grid is drawn for M = 1, v* = 1 and the y axis is u = cZ = k/M in
[0, 1] (u = 1 is c = 1/Z, i.e. k = M; the integer points of a given M are u = 1/M, 2/M, ..., 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import CenteredNorm

from ..plotting import subplots
from ..pruning import theory
from . import _common

NAME = "fig4"
FULL = dict(Z_min=2, Z_max=30, Z_claim=4, n_u=51, M=1, v_star=1.0, tol=1e-12)
QUICK = dict(FULL, n_u=11)


def grids(p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Z (nZ,), u = cZ (nu,), c (nZ, nu), difference A (nZ, nu), difference B (nZ, nu)."""
    Z = np.arange(p["Z_min"], p["Z_max"] + 1, dtype=float)
    u = np.linspace(0.0, 1.0, p["n_u"])
    c = u[None, :] / Z[:, None]
    A = theory.theorem2_difference(Z[:, None], c, M=p["M"], v_star=p["v_star"])
    B = theory.theorem3_difference(Z[:, None], c, M=p["M"], v_star=p["v_star"])
    return Z, u, c, np.asarray(A), np.asarray(B)


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    Z, u, c, A, B = grids(params)
    tol = params["tol"]
    fail_A = A < -tol
    fail_B = B > tol
    inside = (Z >= params["Z_claim"])[:, None] & np.ones_like(A, dtype=bool)
    rows = [dict(Z=int(Z[i]), u=float(u[j]), c=float(c[i, j]), diff_A=float(A[i, j]),
                 diff_B=float(B[i, j]), claim_A_holds=bool(not fail_A[i, j]),
                 claim_B_holds=bool(not fail_B[i, j]))
            for i in range(Z.size) for j in range(u.size)]
    return dict(figure=NAME, params=params, rows=rows, Z=Z.tolist(), u=u.tolist(),
                c=c.tolist(), A=A.tolist(), B=B.tolist(),
                summary=dict(A_min=float(A.min()), A_max=float(A.max()),
                             B_min=float(B.min()), B_max=float(B.max()),
                             A_fail_cells=int((fail_A & inside).sum()),
                             B_fail_cells=int((fail_B & inside).sum()),
                             cells=int(inside.sum()),
                             A_fail_cells_below_Z_claim=int((fail_A & ~inside).sum()),
                             B_fail_cells_below_Z_claim=int((fail_B & ~inside).sum()),
                             cells_below_Z_claim=int((~inside).sum()),
                             A_at_Z4_c_quarter=float(A[Z == 4][0, -1]) if 4 in Z else None),
                notes="k = cZM at real values (Lemma 2 linear in k); errors in units of "
                      "M v*^2 (M=1, v*=1); claims: A >= 0 (Theorem 2), B <= 0 (Theorem 3); a "
                      "cell fails when A < -tol or B > tol.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    Z, u = np.array(data["Z"]), np.array(data["u"])
    tol = data["params"]["tol"]
    fig, axes = subplots(1, 2, figsize=(11, 4.4))
    panels = (("A", np.array(data["A"]), "≥ 0", lambda x: x < -tol, "no reweighting"),
              ("B", np.array(data["B"]), "≤ 0", lambda x: x > tol,
               "best reweighting (preact node, min_A A·v edge)"))
    for ax, (name, D, claim, fails, what) in zip(axes, panels, strict=True):
        half = max(float(np.max(np.abs(D))), 1e-12)
        im = ax.pcolormesh(Z, u, D.T, cmap="RdBu_r", norm=CenteredNorm(0.0, half),
                           shading="nearest")
        ax.contour(Z, u, D.T, levels=[0.0], colors="k", linewidths=0.8)
        bad = fails(D)
        if bad.any():
            zz, uu = np.meshgrid(Z, u, indexing="ij")
            ax.plot(zz[bad], uu[bad], "x", color="k", ms=3, label="sign opposite to the claim")
            ax.legend(fontsize=7, loc="upper right")
        inside = Z >= data["params"]["Z_claim"]
        n_bad = int(bad[inside].sum())
        n_out = int(bad[~inside].sum())
        ax.axvline(data["params"]["Z_claim"] - 0.5, color="k", ls="--", lw=1)
        ax.set_title(f"({name}) ε(DPP node) − ε(random edge), {what}\n"
                     f"paper claims {claim} for Z ≥ {data['params']['Z_claim']}: fails in "
                     f"{n_bad}/{D[inside].size} cells (Z < {data['params']['Z_claim']}: "
                     f"{n_out}/{D[~inside].size})", fontsize=8.5)
        ax.set_xlabel("Z = K/M")
        ax.set_ylabel("u = cZ = k/M   (c = u/Z ≤ 1/Z)")
        fig.colorbar(im, ax=ax, label=r"difference / $(M v^{*2})$")
    fig.suptitle("Fig. 4 (closed forms on the ansatz): red = random edge better, "
                 "blue = DPP node better", fontsize=10)
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)
