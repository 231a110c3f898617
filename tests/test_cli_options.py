"""Every option a command cannot honour in the given combination is refused before any work,
with one line on stderr and exit code 2 (issue 17, general rule)."""

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("opts")
    s = OrderParams.random(60, 4, 2, v_star=2.0, seed=0)
    s.save(d / "s.npz")
    s.replace(activation="linear").save(d / "lin.npz")
    odeprune.prune(s, "random_node", k=2).save(d / "pr.npz")
    np.savez(d / "junk.npz", a=np.ones(3))
    return d


CASES = [
    # integrate
    (["integrate", "--init", "{d}/s.npz", "--K", "3"], "--K applies to the random initial draw"),
    (["integrate", "--init", "{d}/s.npz", "--seed", "3"], "--seed applies to the random initial"),
    (["integrate", "--init", "{d}/s.npz", "--weights", "{d}/s.npz"], "not both"),
    (["integrate", "--pick", "0"], "--pick applies to a file given with --init"),
    (["integrate", "--init", "{d}/pr.npz"], "holds 6 outcomes of random_node; choose one with "
                                            "--pick"),
    (["integrate", "--init", "{d}/pr.npz", "--pick", "9"], "--pick=9 is out of range"),
    (["integrate", "--init", "{d}/s.npz", "--run", "0"], "--run=0 applies to a "
                                                         "SimulationEnsemble"),
    (["integrate", "--init", "{d}/lin.npz", "--activation", "erf"], "conflicts with the "
                                                                    "activation 'linear'"),
    (["integrate", "--dt", "0.1"], "--dt applies to the fixed-step methods"),
    (["integrate", "--method", "rk4", "--rtol", "1e-3"], "--rtol applies to --method dopri5"),
    (["integrate", "--gradient-flow", "--sigma", "0.5"], "--sigma has no effect with "
                                                         "--gradient-flow"),
    (["integrate", "--freeze-v", "--eta-v", "0.1"], "--eta-v has no effect with --freeze-v"),
    (["integrate", "--backend", "jax", "--checkpoint", "{d}/c.npz"], "not available with "
                                                                     "--backend jax"),
    (["integrate", "--backend", "jax", "--method", "rk4"], "not available with --backend jax"),
    (["integrate", "--output", "{d}/missing/x.npz"], "does not exist"),
    (["integrate", "--plot", "{d}/missing/x.png"], "does not exist"),
    (["integrate", "--init", "{d}/junk.npz"], "has no metadata entry"),
    # prune
    (["prune", "{d}/s.npz"], "give --k K"),
    (["prune", "--k", "2"], "give INPUT"),
    (["prune", "{d}/s.npz", "--weights", "{d}/s.npz", "--k", "2"], "exactly one"),
    (["prune", "{d}/s.npz", "--method", "importance_node", "--k", "2", "--seed", "1"],
     "--seed has no effect on importance_node"),
    (["prune", "{d}/s.npz", "--method", "random_edge", "--c", "0.5", "--n-samples", "10"],
     "--n-samples has no effect on random_edge"),
    (["prune", "{d}/s.npz", "--method", "snip_edge", "--c", "0.5", "--monte-carlo"],
     "--monte-carlo applies to random_node and dpp_node"),
    (["prune", "{d}/s.npz", "--method", "random_node", "--k", "2", "--kernel", "activation"],
     "--kernel applies to dpp_node and dpp_map_node"),
    (["prune", "{d}/s.npz", "--method", "dpp_node", "--c", "0.3"], "not an integer"),
    (["prune", "{d}/s.npz", "--method", "dpp_node", "--k", "2", "--reweight", "rescale"],
     "does not apply to dpp_node"),
    (["prune", "{d}/lin.npz", "--k", "2", "--activation", "erf"], "conflicts with the "
                                                                  "activation 'linear'"),
    (["prune", "{d}/s.npz", "--k", "9"], "out of range"),
    (["prune", "{d}/s.npz", "--method", "random_node", "--k", "2", "--seed", "3"],
     "--seed has no effect: random_node enumerates all C(4,2) = 6 subsets exactly"),
    (["prune", "{d}/s.npz", "--method", "dpp_node", "--k", "2", "--n-samples", "30"],
     "--n-samples has no effect: dpp_node enumerates"),
    (["integrate", "--resume"], "--resume needs the checkpoint"),
    # simulate
    (["simulate", "--runs", "2", "--seeds", "1,2"], "not both"),
    (["simulate", "--seeds", "1,2", "--seed", "3"], "--seed has no effect with --seeds"),
    (["simulate", "--workers", "2"], "--workers applies to several runs"),
    (["simulate", "--freeze-v", "--eta-v", "0.1"], "--eta-v has no effect with --freeze-v"),
    (["simulate", "--resume"], "--resume needs the checkpoint"),
    (["simulate", "--weights", "{d}/s.npz"], "holds a OrderParams, which has no weights"),
    (["simulate", "--run", "1"], "--run applies to a SimulationEnsemble file given with "
                                 "--weights"),
    # figure / reproduce
    (["figure", "fig4", "--cache", "{d}/c", "--no-cache"], "contradict"),
    (["reproduce", "--cache", "{d}/c", "--no-cache"], "contradict"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_refused_before_any_work(inputs, argv, message, capsys):
    before = sorted(p.name for p in inputs.iterdir())
    code = main([a.format(d=inputs) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert message in err, err
    assert sorted(p.name for p in inputs.iterdir()) == before  # nothing written
