"""--switching-cost (run, solve, serve) and --max-change (serve) reach the objective and
the policy, and bad values are refused naming the option."""

from __future__ import annotations

import pytest

from eqglb.builtin import builtin_scenario
from eqglb.cli.options import ObjectiveOptions, objective_parameters
from eqglb.defaults import build_objective


def test_switching_cost_option_builds_the_objective() -> None:
    sc = builtin_scenario(days=1)
    assert ObjectiveOptions().build(sc).switching_cost == 0.0
    obj = ObjectiveOptions(switching_cost=2e-6).build(sc)
    assert obj.switching_cost == 2e-6
    assert "2e-06 USD/request x movement" in obj.describe()
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="--switching-cost"):
            build_objective(sc, switching_cost=bad)
    names = {p.name for p in objective_parameters()}
    assert "switching_cost" in names
    # a sweep varies q and weights only: it does not get the option
    assert "switching_cost" not in {p.name for p in objective_parameters(multiple=True)}


def test_serve_check_takes_the_change_limit(tmp_path, capsys, monkeypatch) -> None:
    from eqglb.cli.serve import main

    monkeypatch.setenv("EQGLB_TOKEN", "t0ken")
    db = tmp_path / "s.db"
    args = ["--check", "--days", "1", "--db", str(db)]
    assert main([*args, "--max-change", "0.1", "--switching-cost", "1e-6"]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main([*args, "--max-change", "1.5"]) == 2
    assert "--max-change" in capsys.readouterr().err
    assert main([*args, "--max-change", "0.1", "--policy", "receding"]) == 2
    assert "--max-change" in capsys.readouterr().err


def test_solve_refuses_a_switching_cost_naming_the_reference(tmp_path) -> None:
    from typer.testing import CliRunner

    from eqglb.cli import app

    res = CliRunner().invoke(
        app, ["solve", "--days", "1", "--switching-cost", "1e-6", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code != 0
    assert "reference" in (res.output + str(res.exception))


def test_term_split_and_tables_carry_the_switching_cost() -> None:
    from rich.console import Console

    from eqglb.comparison import term_split
    from eqglb.policies import make_policy
    from eqglb.report import comparison_tables

    def render_table(t) -> str:
        con = Console(record=True, width=200)
        con.print(t)
        return con.export_text()

    from eqglb.simulate import evaluate

    sc = builtin_scenario(days=1)
    plain = build_objective(sc)
    priced = build_objective(sc, switching_cost=1e-5)
    d = make_policy("energy", plain).plan(sc)
    ev = evaluate(sc, d, priced)
    split = term_split(ev, priced)
    moved = ev.summary["movement"]["requests"]
    assert moved > 0
    assert split["switching"] == pytest.approx(1e-5 * moved, rel=1e-12)
    assert sum(split.values()) == pytest.approx(ev.objective, rel=1e-12)  # they sum to it
    assert "switching" not in term_split(evaluate(sc, d, plain), plain)
    shown = "".join(render_table(t) for t in comparison_tables({"energy": ev}, priced))
    assert "switching" in shown and "moved" in shown and f"{moved:,.0f}"[:5] in shown
    plain_text = "".join(
        render_table(t) for t in comparison_tables({"energy": evaluate(sc, d, plain)}, plain)
    )
    assert "switching" not in plain_text and "moved" not in plain_text and "Jain" in plain_text
