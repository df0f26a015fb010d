"""What the commands share: consoles, option aliases, scenario loading, running policies,
writing a run's files, the ``--out`` check.

Imported by the command modules when a command is loaded (not by ``eqglb --help``); heavy
imports (numpy, pandas, cvxpy) stay inside the functions.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from eqglb.defaults import DEFAULT_DAYS, DEFAULT_MODEL_RULE, DEFAULT_POLICIES
from eqglb.errors import CLIError

if TYPE_CHECKING:
    from eqglb.costs import Objective
    from eqglb.scenario import Dispatch, Scenario
    from eqglb.simulate import Evaluation

__all__ = [
    "OUT_FILES",
    "BackendOpt",
    "DaysOpt",
    "ModelRule",
    "ScenarioOpt",
    "SeedOpt",
    "check_out_dir",
    "load_plugins",
    "load_scenario",
    "solve_policies",
    "stderr",
    "stdout",
    "write_outputs",
]

#: Files written by ``eqglb run --out DIR``.
OUT_FILES = ("metrics.json", "regions.csv", "dispatch.parquet", "report.md")


class ModelRule(StrEnum):
    """How baselines choose model sizes (see eqglb.policies.offline)."""

    best = "best"
    weighted = "weighted"
    free = "free"


# --------------------------------------------------------------------------- option aliases
ScenarioOpt = Annotated[
    Path | None,
    typer.Option(
        "--scenario",
        "-s",
        metavar="DIR",
        help="Scenario folder (scenario.toml + tables, see docs/scenario-format.md). "
        "Default: the built-in scenario (10 eGLB sites, 4 Qwen3 models, hourly).",
    ),
]
DaysOpt = Annotated[
    int,
    typer.Option(
        "--days",
        min=1,
        metavar="N",
        help="Horizon of the built-in scenario [days] (ignored with --scenario).",
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        min=0,
        metavar="SEED",
        help="Seed of the built-in scenario's synthetic signals (ignored with --scenario).",
    ),
]
PolicyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--policy",
        "-p",
        metavar="NAME",
        help="Policy to run; repeat for several (see `eqglb policies`). Default: "
        + ", ".join(DEFAULT_POLICIES)
        + ".",
    ),
]
ModelRuleOpt = Annotated[
    ModelRule,
    typer.Option(
        "--model-rule",
        case_sensitive=False,
        help="How policies choose model sizes: weighted (default; baselines add mu_social x "
        "the total quality loss to their own cost, the equitable policy uses its quality "
        "term), best (each slot keeps its best achievable total quality, for every "
        "policy), free (baselines: own cost only).",
    ),
]
SolverOpt = Annotated[
    str | None,
    typer.Option(
        "--solver",
        metavar="NAME",
        help="cvxpy solver name (default: HIGHS for linear problems, CLARABEL otherwise).",
    ),
]
BaselineOpt = Annotated[
    str,
    typer.Option(
        "--baseline",
        metavar="POLICY",
        help="Policy the overheads [%] are measured against; run as well if not among --policy.",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Folder to write metrics.json, regions.csv, dispatch.parquet, report.md and PNG "
        "figures to (created if missing).",
    ),
]
PlotsOpt = Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG figures with --out.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        metavar="N",
        help="Worker processes (process), or CPUs of a local Ray instance (ray).",
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        metavar="serial|process|ray",
        help="Where the work runs: serial (this process), process (local worker "
        "processes) or ray (a local Ray instance started on demand, or the cluster at "
        "--address). 'local' is a deprecated name of process.",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        metavar="ADDR",
        help="Address of an existing Ray cluster, e.g. 'auto' or 'ray://host:10001' "
        "(with --backend ray).",
    ),
]


def backend_name(name: str) -> str:
    """The backend of ``--backend name``: ``local`` is taken as ``process`` with a warning
    on stderr; an unknown name is a :class:`CLIError`."""
    from eqglb._workers import BACKEND_ALIASES, BACKENDS

    if name in BACKEND_ALIASES:
        new = BACKEND_ALIASES[name]
        stderr().print(
            f"[yellow]warning:[/] --backend {escape(name)} is deprecated; use --backend "
            f"{new} (the same worker processes)"
        )
        return new
    if name not in BACKENDS:
        raise CLIError(f"--backend {name!r}; use " + ", ".join(repr(b) for b in BACKENDS))
    return name


# --------------------------------------------------------------------------- helpers
def stdout() -> Console:
    """Console on stdout; at least 150 columns wide when not a terminal (files, pipes)."""
    from eqglb.cli import _stdout

    return _stdout()


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def load_plugins() -> None:
    """Import modules that register more policies (online algorithms) if present."""
    try:
        import eqglb.online  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "eqglb.online":
            raise


def load_scenario(
    scenario: Path | None = None, days: int = DEFAULT_DAYS, seed: int = 0
) -> Scenario:
    """The scenario folder at ``scenario``, or the built-in scenario of ``days`` days."""
    if scenario is not None:
        from eqglb.io.scenario_format import read_scenario

        return read_scenario(scenario)
    from eqglb.builtin import builtin_scenario

    return builtin_scenario(days=days, seed=seed)


def build_objective(sc: Scenario, **options: Any) -> Objective:
    """:func:`eqglb.defaults.build_objective` with bad options as :class:`CLIError`."""
    from eqglb import defaults

    try:
        return defaults.build_objective(sc, **options)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def policy_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` the registered factory of ``name`` accepts."""
    import inspect

    from eqglb.policies import REGISTRY

    params = inspect.signature(REGISTRY[name]).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(options)
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def check_policies(names: Sequence[str]) -> list[str]:
    """``names`` without repeats; :class:`CLIError` for an unregistered one."""
    from eqglb.policies import REGISTRY

    load_plugins()
    out = list(dict.fromkeys(names))
    unknown = [n for n in out if n not in REGISTRY]
    if unknown:
        raise CLIError(
            f"unknown policy {unknown[0]!r}; choose from {list(REGISTRY)} (see `eqglb policies`)"
        )
    return out


@contextlib.contextmanager
def _quiet_solvers() -> Iterator[None]:
    """Hide solver chatter: the status is reported in the table's flag column instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Solution may be inaccurate", category=UserWarning
        )
        yield


def solve_policies(
    sc: Scenario,
    names: Sequence[str],
    objective: Objective,
    *,
    model_rule: str = DEFAULT_MODEL_RULE,
    solver: str | None = None,
    console: Console | None = None,
    progress: bool = True,
    tol: float | None = None,
) -> tuple[dict[str, Dispatch], dict[str, Evaluation]]:
    """Run every policy in ``names`` on ``sc``; all are evaluated with ``objective``.

    Shows a rich progress bar (spinner, policy being solved) on ``console`` (stderr by
    default). A failed solve raises :class:`CLIError` naming the policy.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from eqglb._workers import silence_highs_banner
    from eqglb.errors import SolveError
    from eqglb.policies import make_policy
    from eqglb.simulate import run_policy

    names = check_policies(names)
    opts: dict[str, Any] = {"model_rule": model_rule}
    if solver:
        opts["solver"] = solver
    if tol is not None:
        opts["tol"] = tol
    console = console or stderr()
    dispatches: dict[str, Dispatch] = {}
    evals: dict[str, Evaluation] = {}
    silence_highs_banner()
    with (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not (progress and console.is_terminal),
        ) as bar,
        _quiet_solvers(),
    ):
        task = bar.add_task("solving", total=len(names))
        for name in names:
            bar.update(task, description=f"solving [bold]{escape(name)}[/]")
            policy = make_policy(name, objective, **policy_options(name, opts))
            slots = None
            if not hasattr(policy, "plan"):  # online: a second bar over time slots
                slots = bar.add_task(f"  {escape(name)}: slots", total=sc.n_time)

            def on_slot(done: int, total: int, _task: Any = slots) -> None:
                bar.update(_task, completed=done, total=total)

            try:
                dispatch, ev = run_policy(
                    sc, policy, objective, progress=on_slot if slots is not None else None
                )
            except SolveError as exc:
                raise CLIError(f"policy {name!r}: {exc}") from exc
            if slots is not None:
                bar.remove_task(slots)
            dispatches[name], evals[name] = dispatch, ev
            status = ev.info.status if ev.info is not None else "done"
            style = "red" if ev.flagged else "green"
            if progress:
                bar.console.print(
                    f"  [{style}]{escape(name)}[/]: {escape(status)} in "
                    f"{ev.extra.get('wall_time_s', math.nan):.1f} s"
                )
            bar.advance(task)
    return dispatches, evals


def check_out_dir(out: Path | None) -> None:
    """Refuse ``--out`` before any solve when it is a file or cannot be created."""
    if out is None:
        return
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder; give a folder path")
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise CLIError(f"--out {out}: {parent} is not writable; give a folder you can write")


def write_outputs(
    out: Path,
    sc: Scenario,
    dispatches: dict[str, Dispatch],
    evals: dict[str, Evaluation],
    *,
    baseline: str | None,
    objective: Objective | None = None,
    plots: bool = True,
    provenance: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    frontier: list[dict[str, Any]] | None = None,
    notes: Sequence[str] = (),
) -> list[Path]:
    """Write metrics.json, regions.csv, dispatch.parquet, report.md, report.html and
    figures to ``out``."""
    from eqglb import report

    out = Path(out)
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    if frontier is not None:
        extra["frontier"] = frontier
    paths = [
        report.write_metrics_json(
            evals, out / "metrics.json", baseline, provenance=provenance, extra=extra
        ),
        out / "regions.csv",
        out / "dispatch.parquet",
    ]
    report.write_region_csv(evals, out / "regions.csv")
    report.write_dispatch_parquet(dispatches, sc, out / "dispatch.parquet")
    figures: list[Path] = []
    if plots:
        figures = report.plot_regional_bars(evals, out, provenance=provenance)
    paths.append(
        report.write_markdown_report(
            evals,
            out / "report.md",
            baseline=baseline,
            scenario=sc,
            objective=objective,
            title=f"eqglb run on {sc.name}",
            figures=figures,
            notes=notes,
            provenance=provenance,
            dispatches=dispatches,
        )
    )
    if plots:  # the HTML report's figures need matplotlib, as the PNGs do
        from eqglb.report_html import write_html_report

        paths.append(
            write_html_report(
                out / "report.html",
                evals,
                sc,
                objective=objective,
                frontier=frontier,
                provenance=provenance,
                baseline=baseline,
                dispatches=dispatches,
            )
        )
    return paths + figures
