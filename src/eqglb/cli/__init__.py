"""Command line interface: ``eqglb run``, ``eqglb sweep``, ... (typer + rich).

The CLI is thin: it parses options, builds a Scenario and an Objective, runs the library
and hands the results to :mod:`eqglb.report`. Every subcommand is one entry of
:data:`COMMANDS` (its module, its command function or typer app, one line of help),
imported only when it is used, so ``eqglb --help`` starts without numpy, pandas or cvxpy.
Nothing in the library imports this package.

Layout: :mod:`eqglb.cli.options` (the objective options generated from the burden
registry), :mod:`eqglb.cli.common` (option aliases and helpers the commands share), one
module per command (``run``, ``policies``, ``sweep``, ``solve``, ``scenario``,
``signals``, ``serve``; ``reproduce`` is :mod:`eqglb.reproduce`'s own app).

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
Write a typer command function (or a :class:`typer.Typer` for a group) in a module of
its own and add one :class:`Command` to :data:`COMMANDS` (a plugin may append to it
before calling :func:`main`). Give it the objective options with
:func:`eqglb.cli.options.objective_options`, reuse the aliases and helpers of
:mod:`eqglb.cli.common`, keep heavy imports (numpy, pandas, cvxpy) inside the function,
and raise :class:`eqglb.errors.CLIError` (or any :class:`eqglb.errors.InputError`) for
bad input: :func:`main` prints it as one line. A command with an ``out`` parameter has it
checked (:func:`eqglb.cli.common.check_out_dir`) before it runs.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from eqglb.defaults import (
    DEFAULT_BASELINE,
    DEFAULT_DAYS,
    DEFAULT_MODEL_RULE,
    DEFAULT_MU_CARBON,
    DEFAULT_MU_HEALTH,
    DEFAULT_MU_WATER,
    DEFAULT_POLICIES,
    DEFAULT_Q,
    DEFAULT_QUALITY_VALUE,
    DEFAULT_TOL,
    default_mu_social,
)
from eqglb.errors import CLIError

__all__ = [
    "COMMANDS",
    "DEFAULT_BASELINE",
    "DEFAULT_DAYS",
    "DEFAULT_MODEL_RULE",
    "DEFAULT_MU_CARBON",
    "DEFAULT_MU_HEALTH",
    "DEFAULT_MU_WATER",
    "DEFAULT_POLICIES",
    "DEFAULT_Q",
    "DEFAULT_QUALITY_VALUE",
    "DEFAULT_TOL",
    "EXIT_CODES",
    "LAZY_COMMANDS",
    "CLIError",
    "Command",
    "app",
    "default_mu_social",
    "main",
]


class Command(NamedTuple):
    """One subcommand: imported only when it is used (or its own ``--help`` is asked for)."""

    name: str
    #: module that holds it
    module: str
    #: a typer command function, or a :class:`typer.Typer` (a command group)
    attribute: str
    #: one line for ``eqglb --help`` (so listing the commands imports nothing)
    help: str


#: Every subcommand, in the order ``eqglb --help`` lists them: the one registration list.
COMMANDS: list[Command] = [
    Command(
        "run",
        "eqglb.cli.run",
        "run_command",
        "Run policies on a scenario and compare them (tables on stdout, files with --out).",
    ),
    Command(
        "policies",
        "eqglb.cli.policies",
        "policies_command",
        "List the registered policies with a description of each.",
    ),
    Command(
        "sweep",
        "eqglb.cli.sweep",
        "sweep_command",
        "Sweep q and weights; print the trade-off frontier; write results under --out.",
    ),
    Command(
        "solve",
        "eqglb.cli.solve",
        "solve_command",
        "Certified offline equitable optimum of a (large) scenario, streamed over time.",
    ),
    Command(
        "scenario",
        "eqglb.cli.scenario",
        "scenario_app",
        "Make scenario folders (generate: a seeded synthetic scenario of any size).",
    ),
    Command(
        "reproduce",
        "eqglb.reproduce",
        "reproduce_app",
        "Reproduce published studies on their public data.",
    ),
    Command(
        "serve",
        "eqglb.cli.serve",
        "serve_command",
        "Serve the online policy over HTTP (see docs/service.md).",
    ),
    Command(
        "signals",
        "eqglb.cli.signals",
        "signals_command",
        "Fetch one slot's carbon intensity (and, for eia, water factor) per data centre.",
    ),
]

#: What each exit code of :func:`main` means (also in ``eqglb --help``).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "partly failed (eqglb sweep: some points failed; run it again to retry them) or an "
    "internal error",
    2: "bad input (invalid option, scenario error, failed solve, unwritable --out)",
    130: "interrupted",
}


def _commands() -> dict[str, Command]:
    return {c.name: c for c in COMMANDS}


def __getattr__(name: str) -> Any:
    """Names of earlier releases, resolved on first use: ``LAZY_COMMANDS`` (the commands
    by name), the helpers of :mod:`eqglb.cli.common`, the option aliases
    (``QOpt``, ``MuCarbonOpt``, ``QWaterOpt``, ...: generated from the burden registry) and
    ``silence_highs_banner``."""
    if name == "LAZY_COMMANDS":
        return _commands()
    if name == "LazyCommand":
        return Command
    if name == "silence_highs_banner":
        from eqglb._workers import silence_highs_banner

        return silence_highs_banner
    if name.startswith("__"):
        raise AttributeError(name)
    common = importlib.import_module("eqglb.cli.common")
    options = importlib.import_module("eqglb.cli.options")
    if hasattr(common, name):
        return getattr(common, name)
    if name in ("QOpt", "CombinedEnvOpt", "TotalQualityOpt", "NormalizeOpt"):
        return {
            "QOpt": options.q_option(),
            "CombinedEnvOpt": options._COMBINED,
            "TotalQualityOpt": options._TOTAL,
            "NormalizeOpt": options._NORMALIZE,
        }[name]
    from eqglb.burdens import BURDENS

    for b in BURDENS:
        if name == f"Q{b.capitalize()}Opt":
            return options.q_option(b)
        if name == f"Mu{b.capitalize()}Opt":
            return options.mu_option(b)
    raise AttributeError(f"module 'eqglb.cli' has no attribute {name!r}")


def _stdout() -> Console:
    """Console on stdout (:func:`eqglb.cli.common.stdout`, without importing it)."""
    import os

    con = Console(highlight=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(highlight=False, width=150)
    return con


# --------------------------------------------------------------------------- the group
def _load(name: str) -> Any:
    """The click command of subcommand ``name`` (imports its module)."""
    spec = _commands()[name]
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
    """Make a command with an ``out`` parameter check it before it runs, so a bad
    ``--out`` is refused before any solve."""
    for sub in getattr(cmd, "commands", {}).values():
        _guard_out(sub)
    callback = getattr(cmd, "callback", None)
    if callback is None or not any(p.name == "out" for p in cmd.params):
        return

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        from eqglb.cli.common import check_out_dir

        check_out_dir(kwargs.get("out"))
        return callback(*args, **kwargs)

    cmd.callback = guarded


class _Group(TyperGroup):
    """The ``eqglb`` group: :data:`COMMANDS` are listed from their one-line help and
    imported only when resolved."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names + [c.name for c in COMMANDS if c.name not in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in _commands():
            cmd = self.commands[cmd_name] = _load(cmd_name)
        return cmd

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        known = _commands()
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            cmd = self.commands.get(name)
            if cmd is None:
                rows.append((name, known[name].help))
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
    cls=_Group,
    help="Equitable geographical load balancing (GLB) of AI inference: compare routing "
    "policies on energy cost [USD], regional carbon [kg CO2], water [L], public-health "
    "cost [USD] and quality loss [-].",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: units in [brackets] are not markup
)


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
    """Exceptions reported as bad input (exit code 2): every :class:`InputError` (bad
    scenario, option, configuration), a failed solve, a service that cannot run (its
    database), and the built-in errors of bad input (ValueError, OSError, ImportError)."""
    from eqglb.errors import InputError, ServiceError, SolveError

    return (InputError, SolveError, ServiceError, ValueError, OSError, ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0: success; 1: part of the command failed (``eqglb sweep``: some points failed) or an
    internal error; 2: bad input (invalid option, named in the message; scenario error;
    failed solve; unwritable output), reported as one red line on stderr; 130:
    interrupted. See :data:`EXIT_CODES`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    err = Console(stderr=True, highlight=False)
    exc_cls = _click_exceptions()
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
