"""``odeprune prune`` (``odeprune/cli/_prune.py``)."""

import odeprune
from odeprune import OrderParams


def test_cli_prune_of_a_linear_curve_reports_the_linear_error(tmp_path, capsys):
    from odeprune.cli import main

    out = tmp_path / "lin.npz"
    assert main(["integrate", "-q", "--activation", "linear", "--alpha-max", "50", "-o",
                 str(out)]) == 0
    curve = odeprune.load(out)
    assert main(["prune", str(out), "--method", "importance_node", "--k", "6"]) == 0
    text = capsys.readouterr().out
    assert f"eg_unpruned={curve.eg[-1]:.6g}" in text and abs(curve.eg[-1]) < 1e-8
    assert main(["integrate", "--init", str(out), "--activation", "erf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "conflicts with the activation 'linear'" in err


def test_prune_all_names_skipped_methods(tmp_path, capsys):
    from odeprune.cli import main

    s = OrderParams.random(100, 6, 2, v_star=2.0, seed=0)
    p = s.save(tmp_path / "s.npz")
    assert main(["prune", str(p), "--method", "all", "--c", "0.3", "-o",
                 str(tmp_path / "all")]) == 0
    err = capsys.readouterr().err
    line = ("skipped random_node, importance_node, dpp_node, dpp_map_node: --c 0.3 gives "
            "k = cK = 1.8, not an integer in 1..K=6")
    assert line in err
    r = odeprune.load(tmp_path / "all.random_edge.none.c0.3.npz")
    assert any(line in x for x in r.metadata["skipped"])
    assert main(["prune", str(p), "--method", "all", "--k", "2", "--reweight", "rescale"]) == 0
    assert ("skipped random_node, importance_node, dpp_node, dpp_map_node: --reweight rescale "
            "does not apply to node methods") in capsys.readouterr().err

