"""``eqglb run``: run policies on a scenario and compare them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from eqglb.burdens import BURDENS
from eqglb.cli import common
from eqglb.cli.common import (
    BaselineOpt,
    DaysOpt,
    ModelRule,
    ModelRuleOpt,
    OutOpt,
    PlotsOpt,
    PolicyOpt,
    ScenarioOpt,
    SeedOpt,
    SolverOpt,
)
from eqglb.cli.options import ObjectiveOptions, objective_options, shown_burdens
from eqglb.defaults import (
    DEFAULT_BASELINE,
    DEFAULT_DAYS,
    DEFAULT_MODEL_RULE,
    DEFAULT_POLICIES,
    DEFAULT_TOL,
)

if TYPE_CHECKING:
    from eqglb.costs import Objective

__all__ = ["run_command"]

_DEFAULT_RULE = ModelRule(DEFAULT_MODEL_RULE)
WideOpt = Annotated[
    bool, typer.Option("--wide", help="One wide table instead of two that fit 100 columns.")
]
SwitchesOpt = Annotated[
    bool,
    typer.Option(
        "--switches/--no-switches",
        help="Also solve the equitable optimum with equity on one term at a time (the others "
        "at q = 1) to show which regulariser moves which burden (on by default with "
        "--out).",
    ),
]
TolOpt = Annotated[
    float,
    typer.Option(
        "--tol",
        min=0.0,
        metavar="GAP",
        help="Relative certified gap [-] below which an exact result is called optimal.",
    ),
]

_RULE_TEXT = {
    "weighted": "every baseline adds the same quality value mu_s sum_j S_j (q = 1) to its "
    "own cost; the exact rows use the objective's own quality term",
    "best": "every policy first keeps each slot's best achievable total quality",
    "free": "baselines minimise their own cost only (models chosen by that cost)",
}


@objective_options
def run_command(
    scenario: ScenarioOpt = None,
    policy: PolicyOpt = None,
    objective: ObjectiveOptions = ObjectiveOptions(),  # noqa: B008 (the shared options)
    model_rule: ModelRuleOpt = _DEFAULT_RULE,
    solver: SolverOpt = None,
    baseline: BaselineOpt = DEFAULT_BASELINE,
    days: DaysOpt = DEFAULT_DAYS,
    seed: SeedOpt = 0,
    out: OutOpt = None,
    plots: PlotsOpt = True,
    wide: WideOpt = False,
    switches: SwitchesOpt = False,
    tol: TolOpt = DEFAULT_TOL,
) -> None:
    """Run policies on a scenario and compare them (tables on stdout, files with --out).

    Every policy is scored with the same objective: energy cost [USD] + mu_social
    ||S||_q + mu_carbon ||C||_q + mu_water ||W||_q (+ mu_health ||H||_q when priced), with
    S the quality loss per user region, C the carbon [kg CO2], W the water [L] and H the
    public-health cost [USD] per data centre. Every exact row is certified (status
    optimal = gap <= --tol by a valid bound). The headline compares the equitable optimum
    with the same objective at q = 1 ('weighted'), and the energy cost with the true
    cost-only optimum ('cost-only').
    """
    from eqglb import comparison, report

    names = list(policy) if policy else list(DEFAULT_POLICIES)
    if baseline and baseline not in names:
        names.insert(0, baseline)
    names = common.check_policies(names)
    common.check_out_dir(out)
    sc = common.load_scenario(scenario, days=days, seed=seed)
    obj = objective.build(sc)
    con = common.stdout()
    T, N, J, K = sc.shape
    con.print(
        f"[bold]{escape(sc.name)}[/]: {N} data centres, {J} regions, {K} models, "
        f"{T} slots of {sc.slot_hours:g} h from {sc.time[0]:%Y-%m-%d %H:%M} UTC"
    )
    con.print(f"objective [USD]: {escape(obj.describe())}")
    con.print(f"[dim]{escape(_unit_text(obj))}[/]")
    con.print(
        f"[dim]quality rule ({escape(model_rule.value)}): "
        + escape(_RULE_TEXT[model_rule.value])
        + "[/]"
    )
    dispatches, evals = common.solve_policies(
        sc, names, obj, model_rule=model_rule.value, solver=solver, tol=tol
    )
    for tab in report.comparison_tables(
        evals,
        obj,
        scenario=sc,
        dispatches=dispatches,
        reference="equitable" if "equitable" in evals else baseline,
        model_rule=model_rule.value,
        wide=wide,
    ):
        con.print(tab)
    effect = comparison.equity_effect(evals, obj)
    shares = comparison.term_shares(evals["equitable"], obj) if "equitable" in evals else None
    lines = report.headline_lines(effect, shares, q_label=_q_text(obj))
    for line in lines:
        con.print(escape(line))
    flagged = [n for n, ev in evals.items() if ev.flagged]
    if flagged:
        con.print(
            f"[red]flagged[/]: {', '.join(flagged)} (not certified optimal or "
            "constraints violated; see the status column)"
        )
    sw = None
    # the run's own equitable and q = 1 optima are reused (same solver) by the switches
    # and the frontier instead of being solved again
    cache = comparison.solve_cache(obj, evals) if solver is None else {}
    if switches or out is not None:
        sw = comparison.switches(sc, obj, model_rule=model_rule.value, tol=tol, cache=cache)
        con.print(report.switches_table(sw))
    if out is not None:
        prov = comparison.provenance(
            sc,
            obj,
            model_rule=model_rule.value,
            days=None if scenario else days,
            seed=None if scenario else seed,
            tol=tol,
        )
        frontier = comparison.frontier(sc, obj, model_rule=model_rule.value, tol=tol, cache=cache)
        paths = common.write_outputs(
            out,
            sc,
            dispatches,
            evals,
            baseline=baseline,
            objective=obj,
            plots=plots,
            provenance=prov,
            frontier=frontier,
            extra={"headline": effect, "term_shares": shares, "switches": sw},
            notes=lines,
        )
        con.print(
            f"wrote {len(paths)} files to {escape(str(out))}: " + ", ".join(p.name for p in paths)
        )


def _unit_text(obj: Objective) -> str:
    """``per-unit weights: mu_social 1 [USD per unit of S], ...`` (priced burdens, and
    every burden priced by default)."""
    unit = obj.unit_weights()
    parts = [
        f"mu_{name} {unit[f'mu_{name}']:.4g} [{BURDENS[name].weight_unit}]"
        for name in shown_burdens(obj)
    ]
    text = "per-unit weights: " + ", ".join(parts)
    return text + ("; normalised norms n^(1-1/q) ||v||_q" if obj.norm_sizes else "")


def _q_text(obj: Objective) -> str:
    """``q = 2``, or the q of each priced term when they differ."""
    shown = {name: obj.terms[name].q for name in shown_burdens(obj)}
    fmt = lambda v: "inf" if math.isinf(v) else f"{v:g}"  # noqa: E731
    if len(set(shown.values())) == 1:
        return f"q = {fmt(next(iter(shown.values())))}"
    labels = "/".join("quality" if n == "social" else BURDENS[n].label for n in shown)
    return f"q = {'/'.join(fmt(v) for v in shown.values())} ({labels})"
