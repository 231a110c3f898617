"""odeprune.deep: signal propagation at initialisation, the edge of chaos, SBP and SBP-SR.
Every formula against an independent computation (scipy.integrate.quad, Monte Carlo with its
standard error, real finite-width networks with their seed-to-seed error bars)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from odeprune import deep
from odeprune.deep import finite as F
from odeprune.deep import gauss as G
from odeprune.deep import pruning as P


def _quad(f):
    return integrate.quad(lambda z: f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                          -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)[0]


def _phi_np(act):
    return {"tanh": np.tanh, "erf": lambda x: math.erf(x / math.sqrt(2))}[act]


def _dphi_np(act):
    return {"tanh": lambda x: 1.0 / math.cosh(min(abs(x), 300.0)) ** 2,
            "erf": lambda x: math.sqrt(2 / math.pi) * math.exp(-x * x / 2)}[act]


def _quad_eoc(act, sb):
    """EOC and q* by nested brentq over scipy.integrate.quad (independent of the package)."""
    phi, dphi = _phi_np(act), _dphi_np(act)

    def qstar(sw):
        return optimize.brentq(lambda q: sw ** 2 * _quad(lambda z: phi(math.sqrt(q) * z) ** 2)
                               + sb ** 2 - q, 1e-12, sw ** 2 + sb ** 2 + 1, xtol=1e-15)

    def chi(sw):
        q = qstar(sw)
        return sw ** 2 * _quad(lambda z: dphi(math.sqrt(q) * z) ** 2)

    sw = optimize.brentq(lambda s: chi(s) - 1, 1.0, 3.0, xtol=1e-13)
    return sw, qstar(sw)


# ------------------------------------------------------------------------------ mean field
@pytest.mark.parametrize("act, sb", [("tanh", 0.2), ("erf", 0.5)])
def test_edge_of_chaos_and_fixed_point_against_quad(act, sb):
    sw_ref, q_ref = _quad_eoc(act, sb)
    sw = deep.edge_of_chaos(act, sb)
    assert abs(sw - sw_ref) < 1e-6
    assert abs(deep.variance_fixed_point(act, sw, sb) - q_ref) < 1e-6
    assert abs(deep.chi1(act, sw, sb) - 1.0) < 1e-9
    assert deep.phase(act, sw, sb) == "eoc"


def test_reference_values_tanh_and_relu():
    sw = deep.edge_of_chaos("tanh", 0.2)
    assert abs(sw - 1.304146) < 1e-6
    assert abs(deep.variance_fixed_point("tanh", sw, 0.2) - 0.512079) < 1e-6
    assert deep.edge_of_chaos("relu", 0.0) == pytest.approx(math.sqrt(2), abs=1e-15)
    assert deep.chi1("relu", math.sqrt(2), 0.0) == pytest.approx(1.0, abs=1e-15)
    # at sigma_b = 0 the tanh / erf edge is 1 / phi'(0)
    assert deep.edge_of_chaos("tanh", 0.0) == 1.0
    assert deep.edge_of_chaos("erf", 0.0) == pytest.approx(math.sqrt(math.pi / 2), abs=1e-12)


@pytest.mark.parametrize("q", [0.05, 0.7, 4.0, 15.0])
def test_closed_forms_and_quadrature_against_quad(q):
    # erf closed forms vs quad; tanh Gauss-Hermite vs quad
    assert abs(G.second_moment("erf", q) - _quad(lambda z: math.erf(math.sqrt(q / 2) * z) ** 2)) \
        < 1e-12
    assert abs(G.dphi_second_moment("erf", q)
               - _quad(lambda z: _dphi_np("erf")(math.sqrt(q) * z) ** 2)) < 1e-12
    assert abs(G.second_moment("tanh", q) - _quad(lambda z: math.tanh(math.sqrt(q) * z) ** 2)) \
        < 1e-10
    assert abs(G.dphi_second_moment("tanh", q)
               - _quad(lambda z: _dphi_np("tanh")(math.sqrt(q) * z) ** 2)) < 1e-10
    assert abs(G.second_moment("relu", q) - _quad(lambda z: max(math.sqrt(q) * z, 0) ** 2)) < 1e-9


@pytest.mark.parametrize("act", ["erf", "relu"])
@pytest.mark.parametrize("qa, qb, c", [(0.5, 0.5, 0.3), (2.0, 0.7, -0.6), (1.3, 1.3, 0.95)])
def test_kernels_closed_form_against_2d_quadrature(act, qa, qb, c):
    qab = c * math.sqrt(qa * qb)
    phi = lambda x: G.phi(act, x)  # noqa: E731
    num = G.gauss_2d(phi, phi, qa, qb, qab, n=200)
    assert abs(G.cross_moment(act, qa, qb, qab) - num) < (1e-10 if act == "erf" else 2e-4)
    if act == "erf":
        d = lambda x: G.dphi(act, x)  # noqa: E731
        assert abs(G.dphi_cross_moment(act, qa, qb, qab) - G.gauss_2d(d, d, qa, qb, qab)) < 1e-10
    else:  # the step's kernel: orthant probability
        assert abs(G.dphi_cross_moment(act, qa, qb, qab)
                   - (0.25 + math.asin(c) / (2 * math.pi))) < 1e-12


def test_phases_depth_scales_and_convergence_rates():
    assert deep.phase("tanh", 1.0, 0.2) == "ordered"
    assert deep.phase("tanh", 2.0, 0.2) == "chaotic"
    sw = deep.edge_of_chaos("tanh", 0.2)
    assert deep.depth_scales("tanh", sw, 0.2)[1] == math.inf
    # ordered: 1 - c^l shrinks by chi_1 per layer, xi_c = -1 / log chi_1
    c = deep.correlation_profile("tanh", 1.0, 0.2, 80, 0.2)
    chi = deep.chi1("tanh", 1.0, 0.2)
    assert abs((1 - c[61]) / (1 - c[60]) - chi) < 1e-4
    assert deep.depth_scales("tanh", 1.0, 0.2)[1] == pytest.approx(-1 / math.log(chi), rel=1e-12)
    # chaotic: c^l -> c* < 1 at the rate exp(-1 / xi_c)
    cs = deep.correlation_fixed_point("tanh", 2.0, 0.2)
    c = deep.correlation_profile("tanh", 2.0, 0.2, 250, 0.9)
    assert 0 < cs < 1 and abs(c[-1] - cs) < 1e-9
    rate = (c[41] - cs) / (c[40] - cs)
    assert abs(rate - math.exp(-1 / deep.depth_scales("tanh", 2.0, 0.2)[1])) < 1e-3
    # the variance map relaxes at exp(-1 / xi_q)
    q = deep.variance_profile("tanh", 2.0, 0.2, 30, q0=3.0)
    qs = deep.variance_fixed_point("tanh", 2.0, 0.2)
    xi_q = deep.depth_scales("tanh", 2.0, 0.2)[0]
    assert abs((q[11] - qs) / (q[10] - qs) - math.exp(-1 / xi_q)) < 1e-3


def test_forward_and_backward_profiles_against_real_networks():
    """q^l, c^l and the gradient variances qt^l of real tanh networks (N = 800, L = 8) within
    4 standard errors over seeds of the mean-field profiles."""
    L, N, sb = 8, 800, 0.2
    for sw in (deep.edge_of_chaos("tanh", sb), 2.0):
        stats = np.array([F.layer_statistics(F.sample_network("tanh", sw, sb, L, N, seed), 0.3)
                          for seed in range(6)])                      # (seeds, 3, L)
        mean, se = stats.mean(0), stats.std(0, ddof=1) / math.sqrt(6)
        ref = [deep.variance_profile("tanh", sw, sb, L), deep.correlation_profile("tanh", sw, sb,
                                                                                  L, 0.3),
               deep.backward_profile("tanh", sw, sb, L)]
        for k in range(3):
            assert np.all(np.abs(mean[k] - ref[k]) < 4 * se[k] + 3e-3 * np.abs(ref[k])), k


def test_chi1_of_randomly_pruned_network_against_monte_carlo():
    """Random pruning keeps p: chi_1 -> chi_1(sigma_w sqrt p). Real pruned tanh networks: the
    ratio of consecutive gradient variances in the deep layers, mean +- s.e. over layers and
    seeds."""
    sw, sb, p, L, N = 1.8, 0.2, 0.5, 30, 500
    pred = deep.chi1("tanh", P.pruned_sigma_w(sw, p), sb)
    ratios = []
    for seed in range(4):
        net = F.sample_network("tanh", sw, sb, L, N, seed)
        masks = F.random_masks(net, p, seed + 100)
        qt = F.layer_statistics(net, 0.5, masks=masks)[2]
        ratios += list(qt[9:-1] / qt[10:])
    r = np.array(ratios)
    se = r.std(ddof=1) / math.sqrt(r.size)
    assert abs(r.mean() - pred) < 4 * se
    assert abs(pred - deep.chi1("tanh", sw, sb)) > 10 * se  # pruning moved chi_1 measurably


# ---------------------------------------------------------------------- pruning maps, laws
def test_magnitude_kept_variance_formula_and_monte_carlo():
    from scipy.stats import norm

    for p in (0.05, 0.3, 0.7, 1.0):
        tau = norm.isf(p / 2)
        direct = 2 * integrate.quad(lambda z: z * z * norm.pdf(z), tau, np.inf,
                                    epsabs=1e-14)[0]
        assert abs(P.magnitude_kept_variance(p) - direct) < 1e-9
    rng = np.random.default_rng(0)
    w = rng.standard_normal(400_000)
    for p in (0.1, 0.5):
        keep = np.abs(w) > np.quantile(np.abs(w), 1 - p)
        x = w ** 2 * keep
        assert abs(x.mean() - P.magnitude_kept_variance(p)) < 4 * x.std() / math.sqrt(x.size)
    assert P.magnitude_kept_variance(0.3) > 0.3  # magnitude keeps more variance than random


def test_product_normal_tails_against_monte_carlo():
    rng = np.random.default_rng(1)
    z1, z2 = rng.standard_normal((2, 1_000_000))
    prod = np.abs(z1 * z2)
    for x in (0.05, 0.5, 2.0, 5.0):
        ind = prod > x
        assert abs(ind.mean() - P.score_tail(x)) < 4 * ind.std() / math.sqrt(ind.size)
        y = z1 ** 2 * ind
        assert abs(y.mean() - P.score_tail_variance(x)) < 4 * y.std() / math.sqrt(y.size)
    # the interpolation tables reproduce the closed forms
    x = np.exp(np.linspace(-12, 4, 777))
    lt, lt2 = P._tables()
    np.testing.assert_allclose(P._interp(np.log(x), lt), P.score_tail(x), rtol=2e-3)
    # the two branches of T meet at x = 1, and the far tail is positive and decreasing
    assert abs(P.score_tail(1.0 - 1e-12) - P.score_tail(1.0)) < 1e-10
    far = P.score_tail(np.linspace(20, 100, 50))
    assert np.all(far > 0) and np.all(np.diff(far) < 0)
    np.testing.assert_allclose(P._interp(np.log(x), lt2), P.score_tail_variance(x), rtol=2e-3)


def _measured_kept(sw, L, N, s, seeds):
    return np.array([F.kept_fractions(F.global_masks(F.sbp_scores(
        F.sample_network("tanh", sw, 0.2, L, N, seed)), s)) for seed in seeds])


def test_sbp_kept_fractions_against_real_networks_shrinking_with_width():
    """Per-layer kept fractions after global SBP at s = 0.7 on the EOC (L = 10): within 4 s.e.
    at N = 400, and the worst gap shrinks from N = 100 to N = 400."""
    sw, L, s = deep.edge_of_chaos("tanh", 0.2), 10, 0.7
    gaps = []
    for N in (100, 400):
        pred = deep.sbp_prediction("tanh", sw, 0.2, L, N, s)
        K = _measured_kept(sw, L, N, s, range(6))
        se = K.std(0, ddof=1) / math.sqrt(len(K))
        gaps.append(np.max(np.abs(K.mean(0) - pred.kept)))
        n = pred.widths[1:] * pred.widths[:-1]
        assert abs(np.average(pred.kept, weights=n) - (1 - s)) < 1e-9  # the global budget
    assert np.all(np.abs(K.mean(0) - pred.kept) < 4 * se + 2e-3)
    assert gaps[1] < gaps[0]


def test_sbp_chaotic_prunes_the_last_layers():
    """Chaotic phase: gradients grow towards the input, the last layers are pruned away; the
    prediction follows the real networks within 4 s.e. + 0.03 (N = 100, L = 30)."""
    L, N, s = 30, 100, 0.7
    pred = deep.sbp_prediction("tanh", 2.0, 0.2, L, N, s, finite_width=True)
    K = _measured_kept(2.0, L, N, s, range(5))
    se = K.std(0, ddof=1) / math.sqrt(len(K))
    assert np.all(np.abs(K.mean(0) - pred.kept) < 4 * se + 0.03)
    assert pred.kept[0] > 0.5 and pred.kept[-1] < 0.05


def test_critical_sparsity_ordered_vanishes_with_depth_eoc_does_not():
    N = 100
    ordered = [deep.critical_sparsity("tanh", 0.8, 0.2, L, N) for L in (10, 50, 200)]
    assert ordered[0] > ordered[1] > ordered[2] and ordered[2] < 0.2
    eoc = deep.edge_of_chaos("tanh", 0.2)
    assert deep.critical_sparsity("tanh", eoc, 0.2, 200, N) > 0.99
    # measured, L = 30: ordered near the prediction and far below the EOC's
    for sw in (0.8, eoc):
        pred = deep.critical_sparsity("tanh", sw, 0.2, 30, N, finite_width=True)
        m = np.array([F.measured_critical_sparsity(F.sbp_scores(
            F.sample_network("tanh", sw, 0.2, 30, N, seed))) for seed in range(5)])
        assert abs(m.mean() - pred) < 4 * m.std(ddof=1) / math.sqrt(5) + 0.02
    assert pred > 0.99


def test_rescaling_restores_the_edge_of_chaos():
    sw = deep.edge_of_chaos("tanh", 0.2)
    L, N, s = 20, 200, 0.9
    pred = deep.sbp_prediction("tanh", sw, 0.2, L, N, s)
    chi_pruned = deep.chi_profile("tanh", sw, 0.2, L, variance_factors=pred.kept_variance)
    chi_sr = deep.chi_profile("tanh", sw, 0.2, L, variance_factors=pred.kept_variance
                              * pred.rho ** 2)
    assert np.all(chi_pruned[5:] < 0.5) and np.allclose(chi_sr[-1], 1.0, atol=1e-6)
    net = F.sample_network("tanh", sw, 0.2, L, N, 0)
    masks = F.global_masks(F.sbp_scores(net), s)
    for per in ("layer", "row"):
        rho = F.rescale_factors(net, masks, per)
        for W, m, r in zip(net.W, masks, rho):
            axis = None if per == "layer" else 1
            alive = m.any(axis=axis)  # a row SBP emptied stays empty (rho = 0)
            np.testing.assert_allclose(((W * m * r) ** 2).sum(axis=axis)[alive],
                                       (W ** 2).sum(axis=axis)[alive], rtol=1e-10)
    # global SBP empties whole rows (the scores of a row share |delta_i|): per-row rescaling
    # cannot refill them (docs/deep.md section 4)
    empty = np.mean([~m.any(axis=1) for m in masks[1:-1]])
    assert 0.1 < empty < 0.6
    # the measured kept variance fractions follow the prediction
    kv = F.kept_variance_fractions(net, masks)
    assert np.max(np.abs(kv[1:-1] - pred.kept_variance[1:-1])) < 0.1


# ------------------------------------------------------------------------------ bad input
def test_bad_sigma_w():
    with pytest.raises(ValueError, match="sigma_w=0"):
        deep.chi1("tanh", 0.0, 0.2)
    with pytest.raises(ValueError, match="sigma_w=True must be a real number"):
        deep.chi1("tanh", True, 0.2)


def test_bad_sigma_b():
    with pytest.raises(ValueError, match=r"sigma_b=-0.1 is out of range"):
        deep.edge_of_chaos("tanh", -0.1)
    with pytest.raises(ValueError, match="relu has an edge of chaos only at sigma_b = 0"):
        deep.edge_of_chaos("relu", 0.1)


def test_bad_depth():
    with pytest.raises(ValueError, match="depth=0 is out of range"):
        deep.variance_profile("tanh", 1.0, 0.2, 0)
    with pytest.raises(ValueError, match="depth=True must be an integer"):
        deep.sbp_prediction("tanh", 1.0, 0.2, True, 10, 0.5)


def test_bad_sparsity():
    with pytest.raises(ValueError, match=r"s=1.0 is out of range; allowed \[0, 1\)"):
        deep.sbp_prediction("tanh", 1.0, 0.2, 5, 10, 1.0)
    with pytest.raises(ValueError, match=r"s=-0.1 is out of range"):
        F.global_masks([np.ones((2, 2))], -0.1)


def test_bad_activation():
    with pytest.raises(ValueError, match="activation='sigmoid' is not supported"):
        deep.variance_fixed_point("sigmoid", 1.0, 0.2)


def test_bad_widths():
    with pytest.raises(ValueError, match="width=10.5 must be an integer"):
        deep.critical_sparsity("tanh", 1.0, 0.2, 5, 10.5)
    with pytest.raises(ValueError, match="width=True must be an integer"):
        F.sample_network("tanh", 1.0, 0.2, 3, True, 0)
    with pytest.raises(ValueError, match="width has 2 entries"):
        deep.sbp_prediction("tanh", 1.0, 0.2, 3, [10, 10], 0.5)
