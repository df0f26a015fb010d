"""``eqglb serve`` and ``python -m eqglb.service``: the dispatch service's command line.

The service options (``--db``, ``--token``, ``--host``, ...) are declared here; the
objective options are the shared, registry-generated ones (:mod:`eqglb.cli.options`), so
``--mu-health``/``--q-health`` and any future burden reach the service unchanged. The
service itself (:func:`eqglb.service.server.build_app`, :func:`~eqglb.service.server.check_config`)
takes plain keywords and never imports the CLI.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from eqglb._workers import silence_highs_banner
from eqglb.cli.common import DaysOpt, SeedOpt
from eqglb.cli.options import ObjectiveOptions, objective_options
from eqglb.defaults import DEFAULT_DAYS
from eqglb.errors import CLIError
from eqglb.service.server import (
    HEADER_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
    MAX_HEADER_BYTES,
    TOKEN_ENV,
    addresses,
    bounded_h11_protocol,
    build_app,
    check_config,
)

__all__ = ["main", "serve_command"]


@objective_options
def serve_command(
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            "-s",
            metavar="DIR|builtin",
            help="Scenario folder giving the names, allowed routes, energy and capacity per "
            "request and quality loss (its first slot gives the initial PUE, EWIF and "
            "capacity); 'builtin' (default) for the built-in scenario.",
        ),
    ] = None,
    db: Annotated[
        Path,
        typer.Option(
            "--db", metavar="PATH", help="SQLite database of accepted slots; resumed if it exists."
        ),
    ] = Path("eqglb-service.db"),
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=TOKEN_ENV,
            show_envvar=True,
            help="Bearer token for writes (and reads with --read-token-required). Prefer the "
            f"{TOKEN_ENV} environment variable.",
        ),
    ] = None,
    read_token_required: Annotated[
        bool,
        typer.Option(
            "--read-token-required",
            help="Require the token for GET endpoints too (/healthz stays open).",
        ),
    ] = False,
    policy: Annotated[
        str,
        typer.Option(
            "--policy", "-p", metavar="NAME", help="Online policy: 'online' (dual mirror descent)."
        ),
    ] = "online",
    objective: ObjectiveOptions = ObjectiveOptions(),  # noqa: B008 (the shared options)
    days: DaysOpt = DEFAULT_DAYS,
    seed: SeedOpt = 0,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon",
            min=1,
            metavar="SLOTS",
            help="Slots the service decides (the policy's horizon); default the scenario's "
            "length. Later slots are refused: a new period needs a new --db.",
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            min=1,
            metavar="SLOTS",
            help="No horizon: account fairness over calendar windows of SLOTS slots "
            "(policy 'online'; e.g. 720 for 30 days of hours) and accept slots "
            "indefinitely (docs/horizon-free.md).",
        ),
    ] = None,
    max_change: Annotated[
        float | None,
        typer.Option(
            "--max-change",
            min=0.0,
            max=1.0,
            metavar="SHARE",
            help="Hard per-slot change limit (policy 'online'): at most this share of a "
            "region's requests may change data centre or model from one slot to the next "
            "(e.g. 0.1); where a capacity drop forces more, the least possible is moved "
            "(docs/switching.md). Default: no limit.",
        ),
    ] = None,
    signals: Annotated[
        str | None,
        typer.Option(
            "--signals",
            metavar="electricitymaps|watttime|eia",
            help="Fetch grid signals a slot omits from this provider for the slot's hour "
            "(carbon_intensity; eia also ewif): the slot then gives its time, demand, "
            "prices and WUE only (credentials from the environment; docs/signals.md).",
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            "--zone",
            metavar="DC=ZONE",
            help="With --signals: the provider's zone of a data centre (repeat for every "
            "data centre), e.g. --zone dc-austin=ERCO.",
        ),
    ] = None,
    signals_cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--signals-cache-dir",
            metavar="DIR",
            help="With --signals: on-disk cache of the provider's answers (kept across "
            "restarts, so a retried slot is filled alike).",
        ),
    ] = None,
    weight_total: Annotated[
        int,
        typer.Option(
            "--weight-total",
            min=1,
            max=1_000_000,
            metavar="N",
            help="Sum of each region's integer load-balancer weights.",
        ),
    ] = 100,
    address: Annotated[
        list[str] | None,
        typer.Option(
            "--address",
            metavar="DC=HOST:PORT",
            help="Upstream address of a data centre in the proxy configurations (repeat); "
            "default <dc>.internal:8000.",
        ),
    ] = None,
    synchronous: Annotated[
        str,
        typer.Option(
            "--synchronous",
            metavar="full|normal",
            help="SQLite durability: full (fsync each commit: survives power loss) or normal "
            "(survives process death).",
        ),
    ] = "full",
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch",
            min=1,
            max=10_000,
            help="Most slots committed in one transaction (group commit).",
        ),
    ] = 64,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            min=0.1,
            max=3600,
            metavar="SECONDS",
            help="Close a connection that sends no whole request head within this time of "
            "opening or of its last response [s].",
        ),
    ] = HEADER_TIMEOUT,
    timeout_keep_alive: Annotated[
        int,
        typer.Option(
            "--timeout-keep-alive",
            min=1,
            max=3600,
            metavar="SECONDS",
            help="Close an idle keep-alive connection after this time [s].",
        ),
    ] = KEEP_ALIVE_TIMEOUT,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help="Log level of uvicorn and of the service's records (one per "
            "decision or rejection at info).",
        ),
    ] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            metavar="json|text",
            help="The service's log records: json (one JSON object a line: ts, level, logger, "
            "msg, event, status, reason, slot, time, key, latency_ms) or text.",
        ),
    ] = "text",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Validate the configuration (scenario, objective, token, database "
            "writable and not locked) and exit 0, or 2 with the problem, without "
            "serving.",
        ),
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option("--access-log/--no-access-log", help="Log every request (costs throughput)."),
    ] = False,
) -> None:
    """Serve the online policy over HTTP: POST each slot's signals to /v1/slots, get the
    routing and integer load-balancer weights (OpenAPI at /openapi.json)."""
    if log_format.lower() not in ("json", "text"):
        raise typer.BadParameter(f"--log-format {log_format!r}; use json or text")
    options = dict(
        db=db,
        token=token,
        policy=policy,
        days=days,
        seed=seed,
        weight_total=weight_total,
        addresses=addresses(address),
        synchronous=synchronous,
        horizon=horizon,
        window=window,
        max_change=max_change,
        signals=_signal_source(signals, zone, signals_cache_dir),
        max_batch=max_batch,
        **objective.kwargs(),
    )
    if check:
        print("eqglb serve --check: " + check_config(scenario, **options), flush=True)
        return
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "eqglb serve needs the 'service' extra: pip install 'eqglb[service]'"
        ) from exc
    app = build_app(scenario, read_token_required=read_token_required, **options)
    from eqglb.service.metrics import configure_logging

    silence_highs_banner()
    configure_logging(log_format, log_level)  # only for a service that will run
    svc = app.state.service
    st = svc.engine.committed_state
    print(
        f"eqglb serve: {len(svc.engine.datacenters)} data centres, "
        f"{len(svc.engine.regions)} regions, {len(svc.engine.models)} models; database "
        f"{db} ({st['slot']} slots so far); http://{host}:{port}/docs",
        file=sys.stderr,
        flush=True,
    )
    # h11 (not httptools): its head-size limit, plus a deadline for each request head
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        http=bounded_h11_protocol(header_timeout),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=timeout_keep_alive,
    )


def _signal_source(provider: str | None, zone: list[str] | None, cache: Path | None) -> Any:
    """The :class:`eqglb.service.fill.SignalSource` of ``--signals``/``--zone``, or None."""
    if provider is None:
        if zone or cache:
            raise CLIError("--zone and --signals-cache-dir need --signals PROVIDER")
        return None
    from eqglb.service.fill import SignalSource, parse_zones

    return SignalSource(provider, parse_zones(zone or []), str(cache) if cache else None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eqglb.service``: :func:`serve_command` alone; exit code 2 on bad input."""
    from eqglb import cli

    cmd = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    cmd.command()(serve_command)
    args = list(sys.argv[1:] if argv is None else argv)
    errors = cli._click_exceptions()
    try:
        cmd(args=args, prog_name="python -m eqglb.service", standalone_mode=False)
    except errors["ClickException"] as exc:
        print(f"error: {cli._option_message(exc, args)}", file=sys.stderr)
        return 2
    except errors["Exit"] as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {cli._one_line(exc)}", file=sys.stderr)
        return 2
    return 0
