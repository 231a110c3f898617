"""Optional integration backends.

``odeprune.backends.jax`` integrates the order-parameter ODEs with JAX and diffrax; it is imported
only when ``backend="jax"`` is asked for, so that ``import odeprune`` never imports JAX. Install
the optional extra with ``pip install -e ".[jax]"``.
"""

from __future__ import annotations

__all__: list[str] = []
