"""Real deep networks at finite width (numpy): forward variances and correlations per layer,
SBP scores, global SBP masks, the critical sparsity, and the SBP-SR rescaling -- the finite-N
check of :mod:`odeprune.deep.meanfield` and :mod:`odeprune.deep.pruning`.

Conventions as in the mean field: ``h^1 = W^1 x + b^1``, ``h^l = W^l phi(h^{l-1}) + b^l``,
``W^l_ij ~ N(0, sigma_w^2 / N_{l-1})``, ``b^l_i ~ N(0, sigma_b^2)``; SBP scores
``|W^l_ij dL/dW^l_ij|`` for the squared error ``L = sum_a (f(x_a) - y*_a)^2 / 2`` of a fixed
linear readout ``f(x) = u . h^L(x) / sqrt(N_L)`` (``u_i ~ N(0, 1)``, not pruned) against random
targets ``y*_a ~ N(0, 1)``, on a batch of ``batch`` Gaussian inputs ``x_a ~ N(0, q0 I)`` (the
mean-field score law is for ``batch = 1``). The independent readout is what makes the
gradient-independence assumption of the mean field exact as ``N -> inf``: with the loss
``|h^L|^2 / 2`` the backward pass reuses ``W^L`` and the gradient variances below the top are
off by a factor of about 2 at every width. Biases are
not pruned. Every draw is seeded: the network from ``seed``, the SBP inputs and the probe inputs
from streams split off it with ``numpy.random.SeedSequence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import check_int, check_rng_seed
from . import _checks
from . import gauss as G

__all__ = ["Network", "sample_network", "forward", "backward", "readout", "residuals",
           "sbp_scores", "global_masks",
           "random_masks", "kept_fractions", "kept_variance_fractions", "rescale_factors",
           "measured_critical_sparsity", "probe_inputs", "layer_statistics"]


@dataclass(frozen=True)
class Network:
    """One draw of a deep network: ``W[l]`` of shape ``(N_{l+1}, N_l)`` and ``b[l]`` of shape
    ``(N_{l+1},)`` for ``l = 0..L-1`` (layer ``l + 1``)."""

    W: tuple
    b: tuple
    activation: str
    sigma_w: float
    sigma_b: float
    seed: int

    @property
    def depth(self) -> int:
        return len(self.W)

    @property
    def widths(self) -> np.ndarray:
        return np.array([self.W[0].shape[1]] + [w.shape[0] for w in self.W])


def _streams(seed, n: int):
    seed = check_rng_seed(seed)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def sample_network(activation: str, sigma_w: float, sigma_b: float, depth: int, width,
                   seed: int) -> Network:
    """Weights ``N(0, sigma_w^2 / N_{l-1})`` and biases ``N(0, sigma_b^2)`` of an ``L``-layer
    network of widths ``width`` (one integer, or ``(N_0, ..., N_L)``), seeded by ``seed``."""
    act = _checks.activation(activation)
    sw, sb = _checks.sigma_w(sigma_w), _checks.sigma_b(sigma_b)
    L = _checks.depth(depth)
    N = _checks.widths(width, L)
    rng = _streams(seed, 1)[0]
    W = tuple(rng.standard_normal((N[l + 1], N[l])) * (sw / math.sqrt(N[l])) for l in range(L))
    b = tuple(rng.standard_normal(N[l + 1]) * sb for l in range(L))
    return Network(W, b, act, sw, sb, int(seed))


def _weights(net: Network, masks=None, rho=None):
    out = []
    for l, W in enumerate(net.W):
        if masks is not None:
            W = W * masks[l]
        if rho is not None:
            W = W * rho[l]
        out.append(W)
    return out


def forward(net: Network, X: np.ndarray, masks=None, rho=None) -> list[np.ndarray]:
    """Pre-activations ``h^l`` (each ``(N_l, B)``) of the inputs ``X`` (``(N_0, B)``), with
    weights ``rho_l (mask_l * W^l)`` when ``masks`` / ``rho`` are given."""
    hs, y = [], X
    for l, W in enumerate(_weights(net, masks, rho)):
        h = W @ y + net.b[l][:, None]
        hs.append(h)
        y = G.phi(net.activation, h)
    return hs


def backward(net: Network, X: np.ndarray, hs, residual, masks=None, rho=None):
    """``(delta, grads)``: ``delta^l = dL/dh^l`` (``(N_l, B)``) and ``dL/dW^l`` for the loss
    ``L = sum_a r_a^2 / 2`` with the readout's residuals ``r = residual`` (``(B,)``), so that
    ``delta^L = u r^T / sqrt(N_L)`` (the readout ``u``: :func:`readout`)."""
    Ws = _weights(net, masks, rho)
    L = len(Ws)
    delta = [None] * L
    grads = [None] * L
    d = np.outer(readout(net), residual) / math.sqrt(net.widths[-1])
    for l in range(L - 1, -1, -1):
        delta[l] = d
        y = X if l == 0 else G.phi(net.activation, hs[l - 1])
        grads[l] = d @ y.T
        if l:
            d = G.dphi(net.activation, hs[l - 1]) * (Ws[l].T @ d)
    return delta, grads


def readout(net: Network) -> np.ndarray:
    """The fixed readout ``u ~ N(0, I_{N_L})`` of the loss (stream 0 of the seed)."""
    return _streams(net.seed, 4)[3].standard_normal(net.widths[-1])


def residuals(net: Network, hs, rng) -> np.ndarray:
    """``f(x_a) - y*_a`` with ``f = u . h^L / sqrt(N_L)`` and targets ``y* ~ N(0, 1)``."""
    f = readout(net) @ hs[-1] / math.sqrt(net.widths[-1])
    return f - rng.standard_normal(f.shape)


def probe_inputs(N0: int, B: int, q0: float, rng) -> np.ndarray:
    """``B`` Gaussian inputs ``N(0, q0 I_{N0})``, shape ``(N0, B)``."""
    return rng.standard_normal((N0, B)) * math.sqrt(q0)


def sbp_scores(net: Network, batch: int = 1, q0: float = 1.0) -> list[np.ndarray]:
    """SBP (SNIP) scores ``|W^l * dL/dW^l|`` per layer on ``batch`` Gaussian inputs drawn from
    the network's seed (stream 1)."""
    batch = check_int("batch", batch, 1)
    rng = _streams(net.seed, 3)[1]
    X = probe_inputs(net.widths[0], batch, q0, rng)
    hs = forward(net, X)
    _, grads = backward(net, X, hs, residuals(net, hs, rng))
    return [np.abs(W * g) for W, g in zip(net.W, grads)]


def global_masks(scores, s: float) -> list[np.ndarray]:
    """Keep the ``round((1 - s) P)`` largest scores over all layers (``P`` weights)."""
    s = _checks.sparsity(s)
    flat = np.concatenate([x.ravel() for x in scores])
    k = int(round((1.0 - s) * flat.size))
    if k == 0:
        return [np.zeros_like(x, dtype=bool) for x in scores]
    t = np.partition(flat, flat.size - k)[flat.size - k]
    return [x >= t for x in scores]


def random_masks(net: Network, p: float, seed) -> list[np.ndarray]:
    """Keep each weight independently with probability ``p``."""
    p = _checks.real("p", p, 0.0, 1.0)
    rng = _streams(seed, 1)[0]
    return [rng.random(W.shape) < p for W in net.W]


def kept_fractions(masks) -> np.ndarray:
    """Fraction of weights kept per layer, shape ``(L,)``."""
    return np.array([m.mean() for m in masks])


def kept_variance_fractions(net: Network, masks) -> np.ndarray:
    """``sum (mask W)^2 / sum W^2`` per layer, shape ``(L,)``."""
    return np.array([(W[m] ** 2).sum() / (W ** 2).sum() for W, m in zip(net.W, masks)])


def rescale_factors(net: Network, masks, per: str = "layer") -> list:
    """SBP-SR: ``rho_l = (sum W^2 / sum (mask W)^2)^{1/2}`` per layer (a scalar) or per row
    (``per="row"``, shape ``(N_l, 1)``); 0 where everything was pruned."""
    if per not in ("layer", "row"):
        raise ValueError(f"per={per!r} must be 'layer' or 'row'")
    out = []
    for W, m in zip(net.W, masks):
        axis = None if per == "layer" else 1
        kept = (np.where(m, W, 0.0) ** 2).sum(axis=axis, keepdims=per == "row")
        full = (W ** 2).sum(axis=axis, keepdims=per == "row")
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(kept > 0, np.sqrt(full / np.where(kept > 0, kept, 1.0)), 0.0))
    return out


def measured_critical_sparsity(scores) -> float:
    """The smallest sparsity at which global SBP prunes a whole layer: with ``m`` the smallest
    of the layers' largest scores, ``1 - #{scores > m} / P`` (exact; what bisection over ``s``
    converges to)."""
    m = min(float(x.max()) for x in scores)
    P = sum(x.size for x in scores)
    return 1.0 - sum(int((x > m).sum()) for x in scores) / P


def layer_statistics(net: Network, c0: float, q0: float = 1.0, masks=None, rho=None):
    """``(q, c, qt)`` per layer, each shape ``(L,)``, on two probe inputs (stream 2 of the seed)
    of mean square exactly ``q0`` and correlation exactly ``c0``: ``q^l`` the mean of
    ``h^l_i^2`` over units and both inputs, ``c^l`` their empirical correlation, ``qt^l`` the
    mean of ``delta^l_i^2`` divided by that of the top layer (first input, unit residual)."""
    c0 = _checks.real("c0", c0, -1.0, 1.0)
    rng = _streams(net.seed, 3)[2]
    N0 = net.widths[0]
    Z = rng.standard_normal((N0, 2))
    e1 = Z[:, 0] / np.linalg.norm(Z[:, 0])
    z2 = Z[:, 1] - (Z[:, 1] @ e1) * e1
    e2 = z2 / np.linalg.norm(z2)
    X = math.sqrt(q0 * N0) * np.stack([e1, c0 * e1 + math.sqrt(1 - c0 * c0) * e2], axis=1)
    hs = forward(net, X, masks, rho)
    delta, _ = backward(net, X[:, :1], [h[:, :1] for h in hs], np.ones(1), masks, rho)
    q = np.array([np.mean(h ** 2) for h in hs])
    c = np.array([(h[:, 0] @ h[:, 1]) / math.sqrt((h[:, 0] @ h[:, 0]) * (h[:, 1] @ h[:, 1]))
                  for h in hs])
    qt = np.array([np.mean(d ** 2) for d in delta])
    return q, c, qt / qt[-1]
