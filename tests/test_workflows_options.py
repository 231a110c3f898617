"""The workflows' options (issue 22): a few positional arguments and their own keywords, every
shared option through ``**options`` into the records of :mod:`odeprune.options` (flat or whole),
the defaults that differ from the table declared once (``WORKFLOW_DEFAULTS``)."""

import inspect

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams, workflows
from odeprune.options import OPTIONS, Control, Data, Dynamics, Ensemble, Network, Output, Solver
from odeprune.workflows import schedules
from odeprune.workflows._common import (
    FINITE,
    LIMIT,
    WORKFLOW_DEFAULTS,
    Table,
    changed,
    gather_options,
    seeds_of,
)

WORKFLOWS = [workflows.retrain, workflows.retrain_finite, workflows.prune_at_init,
             workflows.prune_at_init_finite, workflows.lottery_ticket,
             workflows.lottery_ticket_finite, workflows.iterative_magnitude_pruning,
             workflows.iterative_magnitude_pruning_finite, workflows.gradual_magnitude_pruning,
             workflows.gradual_magnitude_pruning_finite, schedules.imp_limit,
             schedules.imp_finite, schedules.gradual_limit, schedules.gradual_finite]


@pytest.mark.parametrize("fn", WORKFLOWS, ids=lambda f: f.__name__)
def test_at_most_ten_parameters_and_the_options_in_records(fn):
    params = inspect.signature(fn).parameters.values()
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert len(named) <= 10, [p.name for p in named]
    assert any(p.kind == p.VAR_KEYWORD for p in params)
    # no option of the learning rule is a keyword of its own any more
    assert not {"eta", "eta_v", "sigma", "progress", "save_at"} & {p.name for p in named}


def test_the_workflow_defaults_are_options_of_the_table_and_differ_from_it():
    """Each default declared in WORKFLOW_DEFAULTS names an option of the table and is not the
    table's own default (else it would be written twice); eta, which the library leaves
    required, is the command line's default too (one value for both)."""
    for name, default in WORKFLOW_DEFAULTS.items():
        opt = OPTIONS[name]
        assert opt.check(default) is not None
        assert default != opt.default, name
    assert WORKFLOW_DEFAULTS["eta"] == OPTIONS["eta"].cli_default


def test_gather_applies_the_workflow_defaults_where_the_option_is_used():
    dyn, out, ctl, tab, net, ens = gather_options("w", {}, FINITE, ("eta", "seeds"))
    assert dyn == Dynamics(eta=0.5) and seeds_of(ens) == list(range(8))
    assert (out, ctl, tab, net) == (Output(), Control(), Table(), Network())
    # a record passed whole is taken as it is (no default mixed into it)
    dyn, *_, ens = gather_options("w", dict(dynamics=Dynamics(eta=0.3), ensemble=Ensemble()),
                                  FINITE, ("eta", "seeds"))
    assert dyn.eta == 0.3 and ens.seeds is None and seeds_of(ens) == list(range(8))
    # the engines of IMP / gradual pruning: a token test set
    assert schedules._sim_options("imp_finite", {})[3] == {"n_test": 2}
    assert schedules._sim_options("imp_finite", dict(data=Data()))[3] == {}


def test_an_option_a_workflow_has_no_use_for_is_refused_before_any_work():
    s = OrderParams.random(40, 2, 1, v_star=1.0, seed=0)
    with pytest.raises(TypeError, match=r"lottery_ticket\(\).*\['train_second_layer'\]"):
        workflows.lottery_ticket(s, 0.5, train_second_layer=False)
    with pytest.raises(TypeError, match="checkpoint"):
        workflows.retrain(s, "random_node", k=1, control=Control(checkpoint="x.npz"))
    with pytest.raises(TypeError, match="unexpected keyword"):
        workflows.prune_at_init(s, "random_edge", 0.5, nope=1)
    with pytest.raises(TypeError, match=r"\['ode'\]"):
        workflows.prune_at_init(s, "random_edge", 0.5, ode=False)  # limit: no finite-N runs
    with pytest.raises(ValueError, match="beside dynamics"):
        workflows.retrain(s, "random_node", k=1, dynamics=Dynamics(eta=0.3), sigma=0.1)
    with pytest.raises(ValueError, match="report="):
        workflows.lottery_ticket(s, 0.5, report=[0.0])
    with pytest.raises(ValueError, match="ode="):
        workflows.prune_at_init_finite(40, 2, 1, "random_edge", 0.5, ode=1)
    with pytest.raises(TypeError, match="gradient_flow"):
        schedules.imp_finite(40, 2, 1, gradient_flow=True)  # SGD has no gradient-flow rule


def test_changed_reports_the_fields_that_differ_from_their_defaults():
    assert changed(Network(activation="erf")) == {}  # None means erf: no change
    assert changed(Network(v_star=[1.0, 2.0], seed=3)) == {"v_star": [1.0, 2.0], "seed": 3}
    assert changed(Dynamics(eta=0.3, sigma=0.1)) == {"sigma": 0.1}
    assert changed(Output(save_at=np.array([1.0, 2.0]))).keys() == {"save_at"}
    assert changed(Solver(rtol=1e-9)) == {"rtol": 1e-9}


def test_records_whole_and_flat_keywords_give_the_same_numbers():
    s = OrderParams.random(100, 3, 2, v_star=2.0, seed=1)
    trained = odeprune.integrate(s, eta=0.5, alpha_max=10.0, progress=False).final
    flat = workflows.retrain(trained, "importance_node", k=2, delta_alphas=[5], eta=0.4,
                             sigma=0.1, save_at=[0.0, 1.0, 5.0], progress=False)
    whole = workflows.retrain(trained, "importance_node", k=2, delta_alphas=[5],
                              dynamics=Dynamics(eta=0.4, sigma=0.1),
                              output=Output(save_at=[0.0, 1.0, 5.0]),
                              control=Control(progress=False))
    arm = flat.arms[0]
    np.testing.assert_array_equal(flat.alpha[arm], [0.0, 1.0, 5.0])
    np.testing.assert_array_equal(whole.eg[arm], flat.eg[arm])
    assert whole.table == flat.table
    ref = odeprune.integrate(odeprune.prune(trained, "importance_node", k=2).state, eta=0.4,
                             sigma=0.1, alpha_max=5.0, save_at=[0.0, 1.0, 5.0],
                             progress=False)
    np.testing.assert_allclose(flat.eg[arm], ref.eg, rtol=1e-12)
    lim = schedules.imp_limit(s, rounds=1, alpha_per_round=1.0, S=200, replicas=2, eta=0.4,
                              rtol=1e-9)
    rec = schedules.imp_limit(s, rounds=1, alpha_per_round=1.0, S=200, replicas=2,
                              dynamics=Dynamics(eta=0.4), solver=Solver(rtol=1e-9))
    np.testing.assert_array_equal(lim["eg"], rec["eg"])
    assert lim["meta"]["rtol"] == 1e-9 and lim["meta"]["eta"] == 0.4


def test_table_checks_its_fields():
    assert Table(report=[100, 10, 10]).report == (10.0, 100.0)
    for bad in (dict(report=[]), dict(report=[-1.0]), dict(ode="yes")):
        with pytest.raises(ValueError):
            Table(**bad)
    assert LIMIT == FINITE[:4]
