"""Command line interface: ``eqglb run``, ``eqglb policies`` (typer + rich).

The CLI is thin: it parses options, builds a Scenario and an Objective, runs policies
through :func:`eqglb.simulate.run_policy` and hands the Evaluations to
:mod:`eqglb.report`. Commands: ``run``, ``policies`` (this module); ``sweep``, ``solve``,
``reproduce``, ``serve``, ``signals`` and ``scenario`` (imported only when used, see
:data:`LAZY_COMMANDS`), so ``eqglb --help`` starts without numpy, pandas or cvxpy.

Exit codes (:func:`main`)
-------------------------
* 0: success (also ``--help`` and ``--version``);
* 1: the command ran but part of it failed (``eqglb sweep``: some points failed; run
  the same command again to retry them), or an unexpected internal error (traceback);
* 2: bad input: an invalid option (the message names it, e.g. ``--mu-carbon``), a
  scenario error, a failed solve, an unwritable ``--out``; one red line on stderr, no
  traceback;
* 130: interrupted (Ctrl-C).

Adding a subcommand
-------------------
Write a small function decorated with ``@app.command("name")``, either in this module or
in a module of its own (``from eqglb.cli import app``) whose name is added to
:data:`SUBCOMMAND_MODULES` (imported by :func:`main` before parsing), or add it to
:data:`LAZY_COMMANDS` (imported only when the command is used). Reuse the option
aliases below (``ScenarioOpt``, ``QOpt``, ...) and the helpers :func:`load_scenario`,
:func:`build_objective`, :func:`solve_policies` and :func:`write_outputs`; keep heavy
imports (numpy, pandas, cvxpy) inside the command function. Raise :class:`CLIError` (or
ScenarioError / ValueError) for bad input; :func:`main` prints it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

if TYPE_CHECKING:
    from eqglb.costs import Objective
    from eqglb.scenario import Dispatch, Scenario
    from eqglb.simulate import Evaluation

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_MODEL_RULE",
    "DEFAULT_MU_CARBON",
    "DEFAULT_MU_WATER",
    "DEFAULT_POLICIES",
    "DEFAULT_Q",
    "DEFAULT_QUALITY_VALUE",
    "EXIT_CODES",
    "LAZY_COMMANDS",
    "SUBCOMMAND_MODULES",
    "CLIError",
    "LazyCommand",
    "app",
    "build_objective",
    "default_mu_social",
    "load_scenario",
    "main",
    "silence_highs_banner",
    "solve_policies",
    "write_outputs",
]

# --------------------------------------------------------------------------- defaults
# One set of defaults for the library, run, sweep, solve and serve: eqglb.defaults.
from eqglb.defaults import (  # noqa: E402
    DEFAULT_BASELINE,
    DEFAULT_DAYS,
    DEFAULT_MODEL_RULE,
    DEFAULT_MU_CARBON,
    DEFAULT_MU_WATER,
    DEFAULT_POLICIES,
    DEFAULT_Q,
    DEFAULT_QUALITY_VALUE,
    DEFAULT_TOL,
    default_mu_social,
)

#: Modules that register more subcommands on :data:`app` when imported (see the module
#: docstring); imported by :func:`main` before parsing. The built-in ones are lazy
#: (:data:`LAZY_COMMANDS`), so this is empty by default.
SUBCOMMAND_MODULES: list[str] = []


class LazyCommand(NamedTuple):
    """A subcommand imported only when it is used (or its own ``--help`` is asked for)."""

    module: str
    #: a typer command function, or a :class:`typer.Typer` (a command group)
    attribute: str
    #: one line for ``eqglb --help`` (so listing the commands imports nothing)
    help: str


#: Subcommands loaded on first use, in the order ``eqglb --help`` lists them.
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "sweep": LazyCommand(
        "eqglb.sweep",
        "sweep_command",
        "Sweep q and weights; print the trade-off frontier; write results under --out.",
    ),
    "solve": LazyCommand(
        "eqglb.solve_command",
        "solve_command",
        "Certified offline equitable optimum of a (large) scenario, streamed over time.",
    ),
    "scenario": LazyCommand(
        "eqglb.scenario_command",
        "scenario_app",
        "Make scenario folders (generate: a seeded synthetic scenario of any size).",
    ),
    "reproduce": LazyCommand(
        "eqglb.reproduce", "reproduce_app", "Reproduce published studies on their public data."
    ),
    "serve": LazyCommand(
        "eqglb.service.server",
        "serve_command",
        "Serve the online policy over HTTP (see docs/service.md).",
    ),
    "signals": LazyCommand(
        "eqglb.signals.command",
        "signals_command",
        "Fetch one slot's carbon intensity (and, for eia, water factor) per data centre.",
    ),
}

#: What each exit code of :func:`main` means (also in ``eqglb --help``).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "partly failed (eqglb sweep: some points failed; run it again to retry them) or an "
    "internal error",
    2: "bad input (invalid option, scenario error, failed solve, unwritable --out)",
    130: "interrupted",
}

#: Files written by ``eqglb run --out DIR``.
OUT_FILES = ("metrics.json", "regions.csv", "dispatch.parquet", "report.md")


class CLIError(Exception):
    """Bad command-line input; printed by :func:`main` as one red line (exit code 2)."""


class ModelRule(StrEnum):
    """How baselines choose model sizes (see eqglb.policies.offline)."""

    best = "best"
    weighted = "weighted"
    free = "free"


def _load_lazy(name: str) -> Any:
    """The click command of the lazy subcommand ``name`` (imports its module)."""
    spec = LAZY_COMMANDS[name]
    obj = getattr(importlib.import_module(spec.module), spec.attribute)
    tmp = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    if isinstance(obj, typer.Typer):
        tmp.add_typer(obj, name=name)
    else:
        tmp.command(name)(obj)
    tmp.callback()(lambda: None)  # a callback makes get_command return a group
    cmd = typer.main.get_command(tmp).commands[name]  # type: ignore[attr-defined]
    _guard_out(cmd)
    return cmd


def _guard_out(cmd: Any) -> None:
    """Make a command with an ``out`` parameter check it (:func:`check_out_dir`) before it
    runs, so a bad ``--out`` is refused before any solve."""
    for sub in getattr(cmd, "commands", {}).values():
        _guard_out(sub)
    callback = getattr(cmd, "callback", None)
    if callback is None or not any(p.name == "out" for p in cmd.params):
        return

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_out_dir(kwargs.get("out"))
        return callback(*args, **kwargs)

    cmd.callback = guarded


class _LazyGroup(TyperGroup):
    """The ``eqglb`` group: :data:`LAZY_COMMANDS` are listed from their one-line help and
    imported only when resolved."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names + [n for n in LAZY_COMMANDS if n not in self.commands]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in LAZY_COMMANDS:
            cmd = self.commands[cmd_name] = _load_lazy(cmd_name)
        return cmd

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            cmd = self.commands.get(name)
            if cmd is None:
                rows.append((name, LAZY_COMMANDS[name].help))
            elif not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        super().format_epilog(ctx, formatter)
        with formatter.section("Exit codes"):
            formatter.write_dl([(str(k), v) for k, v in EXIT_CODES.items()])


app = typer.Typer(
    name="eqglb",
    cls=_LazyGroup,
    help="Equitable geographical load balancing (GLB) of AI inference: compare routing "
    "policies on energy cost [USD], regional carbon [kg CO2], water [L] and quality "
    "loss [-].",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: units in [brackets] are not markup
)

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
QOpt = Annotated[
    str | None,
    typer.Option(
        "--q",
        metavar="Q",
        help=f"Norm order q >= 1 of every equity term, or 'inf' for the worst region "
        f"(minimax, as eGLB). q = 1 is the equity-oblivious total. Default: {DEFAULT_Q}.",
    ),
]
QSocialOpt = Annotated[
    str | None,
    typer.Option(
        "--q-social", metavar="Q", help="Norm order of the quality-loss term (overrides --q)."
    ),
]
QCarbonOpt = Annotated[
    str | None,
    typer.Option(
        "--q-carbon",
        metavar="Q",
        help="Norm order of the carbon term, or of the combined environmental "
        "term with --combined-env (overrides --q).",
    ),
]
QWaterOpt = Annotated[
    str | None,
    typer.Option("--q-water", metavar="Q", help="Norm order of the water term (overrides --q)."),
]
MuSocialOpt = Annotated[
    float | None,
    typer.Option(
        "--mu-social",
        min=0.0,
        metavar="USD",
        help="Weight of the quality-loss norm [USD per unit of average quality loss per "
        "request] ([USD per request of loss] with --total-quality). Default: "
        f"{DEFAULT_QUALITY_VALUE:g} USD per request per unit of loss (about the price of a "
        "long answer from a frontier API model) times the mean requests per region over "
        "the horizon, so the trade-off does not depend on --days.",
    ),
]
MuCarbonOpt = Annotated[
    float,
    typer.Option(
        "--mu-carbon",
        min=0.0,
        metavar="USD/KG",
        help="Weight of the carbon norm [USD/kg CO2]. Default: the US EPA (2023) social cost "
        "of carbon, ~190 USD/t. (eGLB used 1.5 USD/kg.)",
    ),
]
MuWaterOpt = Annotated[
    float,
    typer.Option(
        "--mu-water",
        min=0.0,
        metavar="USD/L",
        help="Weight of the water norm [USD/L]. Default: 10 USD/m3, a scarcity-adjusted value "
        "of consumed fresh water. (eGLB used 0.06 USD/L.)",
    ),
]
CombinedEnvOpt = Annotated[
    bool,
    typer.Option(
        "--combined-env",
        help="Use one norm (order --q-carbon) of the combined regional cost "
        "mu_carbon C_i + mu_water W_i [USD] instead of two norms.",
    ),
]
TotalQualityOpt = Annotated[
    bool,
    typer.Option(
        "--total-quality",
        help="Quality cost of a region = total loss [requests] instead of "
        "the average loss per request [-].",
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


# --------------------------------------------------------------------------- helpers
def _stdout() -> Console:
    """Console on stdout; at least 150 columns wide when not a terminal (files, pipes)."""
    con = Console(highlight=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(highlight=False, width=150)
    return con


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def silence_highs_banner() -> None:
    """Construct one HiGHS instance with stdout redirected, so its banner is not printed.

    HiGHS prints a copyright banner to the C-level stdout the first time it is created in
    a process; later instances are silent. Does nothing if highspy is not installed or
    stdout has no file descriptor.
    """
    try:
        import highspy
    except ImportError:
        return
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
    except (AttributeError, OSError, ValueError):
        fd = 1
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
    try:
        saved = os.dup(fd)
    except OSError:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        del h
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None).fflush(None)  # flush C stdio before restoring the descriptor
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)


def _load_plugins() -> None:
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


def build_objective(
    sc: Scenario,
    *,
    q: str | None = None,
    q_social: str | None = None,
    q_carbon: str | None = None,
    q_water: str | None = None,
    mu_social: float | None = None,
    mu_carbon: float = DEFAULT_MU_CARBON,
    mu_water: float = DEFAULT_MU_WATER,
    combined_env: bool = False,
    total_quality: bool = False,
    normalize: bool = True,
) -> Objective:
    """:func:`eqglb.defaults.build_objective` with bad options as :class:`CLIError`."""
    from eqglb import defaults

    try:
        return defaults.build_objective(
            sc,
            q=q,
            q_social=q_social,
            q_carbon=q_carbon,
            q_water=q_water,
            mu_social=mu_social,
            mu_carbon=mu_carbon,
            mu_water=mu_water,
            combined_env=combined_env,
            total_quality=total_quality,
            normalize=normalize,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _policy_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` the registered factory of ``name`` accepts."""
    import inspect

    from eqglb.policies import REGISTRY

    params = inspect.signature(REGISTRY[name]).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(options)
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def _check_policies(names: Sequence[str]) -> list[str]:
    from eqglb.policies import REGISTRY

    _load_plugins()
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

    from eqglb.policies import SolveError, make_policy
    from eqglb.simulate import run_policy

    names = _check_policies(names)
    opts: dict[str, Any] = {"model_rule": model_rule}
    if solver:
        opts["solver"] = solver
    if tol is not None:
        opts["tol"] = tol
    console = console or _stderr()
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
            policy = make_policy(name, objective, **_policy_options(name, opts))
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


# --------------------------------------------------------------------------- commands
def _version(value: bool) -> None:
    if value:
        from eqglb import __version__

        _stdout().print(f"eqglb {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Equitable geographical load balancing (GLB) of AI inference."""


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
NormalizeOpt = Annotated[
    bool,
    typer.Option(
        "--normalize/--plain-norms",
        help="Apply the per-unit weights to normalised norms n^(1-1/q) ||v||_q (default: the "
        "same weights mean the same at every q) or to plain L_q norms (as docs/model.md).",
    ),
]


@app.command("run")
def run_command(
    scenario: ScenarioOpt = None,
    policy: PolicyOpt = None,
    q: QOpt = None,
    q_social: QSocialOpt = None,
    q_carbon: QCarbonOpt = None,
    q_water: QWaterOpt = None,
    mu_social: MuSocialOpt = None,
    mu_carbon: MuCarbonOpt = DEFAULT_MU_CARBON,
    mu_water: MuWaterOpt = DEFAULT_MU_WATER,
    combined_env: CombinedEnvOpt = False,
    total_quality: TotalQualityOpt = False,
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
    normalize: NormalizeOpt = True,
) -> None:
    """Run policies on a scenario and compare them (tables on stdout, files with --out).

    Every policy is scored with the same objective: energy cost [USD] + mu_social
    ||S||_q + mu_carbon ||C||_q + mu_water ||W||_q, with S the quality loss per user
    region, C the carbon [kg CO2] and W the water [L] per data centre. Every exact row is
    certified (status optimal = gap <= --tol by a valid bound). The headline compares the
    equitable optimum with the same objective at q = 1 ('weighted'), and the energy cost
    with the true cost-only optimum ('cost-only').
    """
    from eqglb import comparison, report

    names = list(policy) if policy else list(DEFAULT_POLICIES)
    if baseline and baseline not in names:
        names.insert(0, baseline)
    names = _check_policies(names)
    check_out_dir(out)
    sc = load_scenario(scenario, days=days, seed=seed)
    obj = build_objective(
        sc,
        q=q,
        q_social=q_social,
        q_carbon=q_carbon,
        q_water=q_water,
        mu_social=mu_social,
        mu_carbon=mu_carbon,
        mu_water=mu_water,
        combined_env=combined_env,
        total_quality=total_quality,
        normalize=normalize,
    )
    con = _stdout()
    T, N, J, K = sc.shape
    con.print(
        f"[bold]{escape(sc.name)}[/]: {N} data centres, {J} regions, {K} models, "
        f"{T} slots of {sc.slot_hours:g} h from {sc.time[0]:%Y-%m-%d %H:%M} UTC"
    )
    unit = obj.unit_weights()
    con.print(f"objective [USD]: {escape(obj.describe())}")
    con.print(
        f"[dim]per-unit weights: mu_social {unit['mu_social']:.4g} \\[USD per unit of "
        f"S], mu_carbon {unit['mu_carbon']:.4g} \\[USD/kg], mu_water "
        f"{unit['mu_water']:.4g} \\[USD/L]"
        + ("; normalised norms n^(1-1/q) ||v||_q" if obj.norm_sizes else "")
        + "[/]"
    )
    con.print(
        f"[dim]quality rule ({escape(model_rule.value)}): "
        + escape(_RULE_TEXT[model_rule.value])
        + "[/]"
    )
    dispatches, evals = solve_policies(
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
    qtext = _q_text(obj)
    lines = report.headline_lines(effect, shares, q_label=qtext)
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
        paths = write_outputs(
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


_RULE_TEXT = {
    "weighted": "every baseline adds the same quality value mu_s sum_j S_j (q = 1) to its "
    "own cost; the exact rows use the objective's own quality term",
    "best": "every policy first keeps each slot's best achievable total quality",
    "free": "baselines minimise their own cost only (models chosen by that cost)",
}


def _q_text(obj: Objective) -> str:
    qs = {obj.q_social, obj.q_carbon, obj.q_water}
    fmt = lambda v: "inf" if math.isinf(v) else f"{v:g}"  # noqa: E731
    if len(qs) == 1:
        return f"q = {fmt(qs.pop())}"
    return f"q = {fmt(obj.q_social)}/{fmt(obj.q_carbon)}/{fmt(obj.q_water)} (quality/carbon/water)"


@app.command("policies")
def policies_command() -> None:
    """List the registered policies with a description of each."""
    from rich.table import Table

    from eqglb.policies import DESCRIPTIONS, REGISTRY

    _load_plugins()
    tab = Table(title="eqglb policies", title_justify="left", header_style="bold")
    tab.add_column("name", style="bold", no_wrap=True)
    tab.add_column("description")
    tab.add_column("default", justify="center")
    for name in REGISTRY:
        tab.add_row(
            escape(name),
            escape(DESCRIPTIONS.get(name, "")),
            "yes" if name in DEFAULT_POLICIES else "",
        )
    _stdout().print(tab)


# --------------------------------------------------------------------------- entry point
def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _click_exceptions() -> dict[str, tuple[type[BaseException], ...]]:
    """Exception classes of click and of the copy of click that recent typer vendors."""
    mods: list[Any] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        with contextlib.suppress(ImportError):
            mods.append(importlib.import_module(name))
    out: dict[str, tuple[type[BaseException], ...]] = {}
    for cls in ("NoArgsIsHelpError", "ClickException", "Exit", "Abort"):
        found = {getattr(m, cls) for m in mods if hasattr(m, cls)}
        if cls == "Exit":
            found.add(typer.Exit)
        if cls == "Abort":
            found.add(typer.Abort)
        out[cls] = tuple(found)
    return out


def _option_message(exc: BaseException, args: Sequence[str]) -> str:
    """The message of a click error, naming the option (and the value given) for a bad
    option value: ``--mu-carbon -1: Input should be greater than or equal to 0``."""
    param = getattr(exc, "param", None)
    message = _one_line(exc)
    if param is None or type(exc).__name__ != "BadParameter":
        with contextlib.suppress(Exception):
            message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        return message
    opts = [o for o in (getattr(param, "opts", None) or []) if o.startswith("--")] or list(
        getattr(param, "opts", None) or []
    )
    name = opts[0] if opts else (getattr(param, "human_readable_name", None) or param.name)
    given = _given_value(args, list(getattr(param, "opts", None) or []))
    where = f"{name} {given}" if given is not None else str(name)
    return f"{where}: {message}"


def _given_value(args: Sequence[str], opts: Sequence[str]) -> str | None:
    """The last value given to one of ``opts`` in ``args`` (``--x V`` or ``--x=V``)."""
    found = None
    for i, a in enumerate(args):
        for o in opts:
            if a == o and i + 1 < len(args):
                found = args[i + 1]
            elif a.startswith(o + "=") and o.startswith("--"):
                found = a[len(o) + 1 :]
    return found


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions reported as bad input (exit code 2); the eqglb ones only if their module
    was imported (otherwise they cannot have been raised)."""
    out: list[type[BaseException]] = [CLIError, ValueError, OSError, ImportError]
    for module, name in (
        ("eqglb.scenario", "ScenarioError"),
        ("eqglb.policies", "SolveError"),
        ("eqglb.policies.base", "SolveError"),
    ):
        mod = sys.modules.get(module)
        if mod is not None and isinstance(getattr(mod, name, None), type):
            out.append(getattr(mod, name))
    return tuple(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0: success; 1: part of the command failed (``eqglb sweep``: some points failed) or an
    internal error; 2: bad input (invalid option, named in the message; scenario error;
    failed solve; unwritable output), reported as one red line on stderr; 130:
    interrupted. See :data:`EXIT_CODES`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    err = _stderr()
    exc_cls = _click_exceptions()
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module)
    interrupted: tuple[type[BaseException], ...] = (*exc_cls["Abort"], KeyboardInterrupt)
    try:
        rv = app(args=args, prog_name="eqglb", standalone_mode=False)
    except exc_cls["NoArgsIsHelpError"] as exc:
        _stdout().print(exc.format_message(), markup=False)  # type: ignore[attr-defined]
        return 0
    except exc_cls["ClickException"] as exc:
        err.print(f"[red]error:[/] {escape(_option_message(exc, args))}", soft_wrap=True)
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            err.print(f"try '{escape(ctx.command_path)} --help'")
        code = getattr(exc, "exit_code", 2)
        return code if code else 2
    except exc_cls["Exit"] as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except interrupted:
        err.print("[red]interrupted[/]")
        return 130
    except Exception as exc:
        if not isinstance(exc, _input_errors()):
            raise
        err.print(f"[red]error:[/] {escape(_one_line(exc))}", soft_wrap=True)
        return 2
    return int(rv) if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
