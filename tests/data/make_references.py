"""Writes the tight references the tests compare against (instead of recomputing them on every
run). Run from the repository root:

    python tests/data/make_references.py

and commit the files it writes. tests/test_references.py checks that the committed files match
a cheap recomputation (a shorter tight run, and a default-tolerance run), so a stale or wrong
file fails there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/conftest.py: the paper's state

#: the saved times of the paper-state reference: those of the stiff-driver tests
#: (geomspace(1, 1e4, 30) and 10, 100, 500)
PAPER_SAVE_AT = np.unique(np.concatenate([np.geomspace(1, 1e4, 30), [10.0, 100.0, 500.0]]))
PAPER_TOLERANCES = dict(rtol=1e-11, atol=1e-13)


def paper_reference():
    """The paper's network (conftest.PAPER) integrated to alpha=1e4 at rtol 1e-11, atol 1e-13
    (explicit dopri5)."""
    from conftest import PAPER, PAPER_ETA

    import odeprune

    state = odeprune.OrderParams.random(**PAPER)
    return odeprune.integrate(state, PAPER_ETA, 1e4, save_at=PAPER_SAVE_AT, **PAPER_TOLERANCES)


def main() -> None:
    t0 = time.process_time()
    curve = paper_reference()
    path = curve.save(HERE / "paper_reference.npz")
    print(f"{path}: eg(1e4) = {float(curve.eg[-1])!r}, nfev {curve.metadata.get('nfev')}, "
          f"{time.process_time() - t0:.1f} s CPU")


if __name__ == "__main__":
    main()
