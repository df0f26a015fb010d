"""``eqglb serve``: the dispatch service on uvicorn (command-line entry).

:func:`serve_command` is a typer command function; the CLI registers it as ``eqglb
serve`` (``app.command("serve")(serve_command)``). ``python -m eqglb.service`` runs it
on its own (:func:`main`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from eqglb.cli import (
    DEFAULT_DAYS,
    DEFAULT_MU_CARBON,
    DEFAULT_MU_WATER,
    CombinedEnvOpt,
    DaysOpt,
    MuCarbonOpt,
    MuSocialOpt,
    MuWaterOpt,
    QCarbonOpt,
    QOpt,
    QSocialOpt,
    QWaterOpt,
    SeedOpt,
    TotalQualityOpt,
)

__all__ = [
    "HEADER_TIMEOUT",
    "KEEP_ALIVE_TIMEOUT",
    "MAX_HEADER_BYTES",
    "TOKEN_ENV",
    "bounded_h11_protocol",
    "build_app",
    "check_config",
    "main",
    "serve_command",
]

#: Environment variable holding the bearer token (preferred to --token: a command line is
#: visible to every user of the machine).
TOKEN_ENV = "EQGLB_TOKEN"
#: Largest request line plus headers accepted [bytes]; a larger head gets 400 and the
#: connection is closed.
MAX_HEADER_BYTES = 64 * 1024
#: Default time a connection may stay open without sending a whole request head: a new
#: idle connection or a slow sender is closed after it [s].
HEADER_TIMEOUT = 10.0
#: Default time an idle keep-alive connection stays open after a response [s].
KEEP_ALIVE_TIMEOUT = 5


def bounded_h11_protocol(header_timeout: float = HEADER_TIMEOUT) -> type:
    """uvicorn's h11 protocol with a deadline for each request head [s].

    uvicorn closes an idle keep-alive connection only after a response, and its
    httptools parser has no limit on the size of headers; this protocol (h11, whose
    buffer limit is ``h11_max_incomplete_event_size``) also closes a connection that has
    not sent a whole request head within ``header_timeout`` of opening or of the last
    response (an idle client, or headers trickled in byte by byte).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # a whole request head came
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return BoundedH11Protocol


def _addresses(items: Sequence[str] | None) -> dict[str, str]:
    from eqglb.service.engine import ServiceConfigError

    out: dict[str, str] = {}
    for item in items or []:
        dc, sep, addr = item.partition("=")
        if not sep or not dc or not addr:
            raise ServiceConfigError(
                f"--address {item!r}; give DATACENTER=HOST:PORT, e.g. Texas=10.0.0.5:8000"
            )
        out[dc] = addr
    return out


def _config(
    scenario: str | Path | None,
    token: str | None,
    policy: str,
    days: int,
    seed: int,
    weight_total: int,
    addresses: dict[str, str] | None,
    synchronous: str,
    max_batch: int,
    horizon: int | None,
    objective: dict[str, object],
) -> tuple[Any, str]:
    """The ServiceConfig and token of the command-line options (scenario, objective and
    token checked)."""
    from eqglb.service.engine import ServiceConfig, load_config_scenario

    src = "builtin" if scenario is None or str(scenario) == "builtin" else Path(scenario)
    sc = load_config_scenario(src, days=days, seed=seed)
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    if not token or not token.strip():
        raise ValueError(f"a bearer token is required for writes: set {TOKEN_ENV} or pass --token")
    cfg = ServiceConfig.from_scenario(
        sc,
        policy=policy,
        weight_total=weight_total,
        addresses=addresses or {},
        synchronous=synchronous,
        max_batch=max_batch,
        horizon=horizon,
        **objective,  # type: ignore[arg-type]
    )
    return cfg, token


def build_app(
    scenario: str | Path | None = None,
    *,
    db: str | Path = "eqglb-service.db",
    token: str | None = None,
    read_token_required: bool = False,
    policy: str = "online",
    days: int = DEFAULT_DAYS,
    seed: int = 0,
    weight_total: int = 100,
    addresses: dict[str, str] | None = None,
    synchronous: str = "full",
    max_batch: int = 64,
    horizon: int | None = None,
    **objective: object,
):
    """The FastAPI app for the command-line options (see :func:`serve_command`)."""
    from eqglb.service import create_app

    cfg, token = _config(
        scenario,
        token,
        policy,
        days,
        seed,
        weight_total,
        addresses,
        synchronous,
        max_batch,
        horizon,
        objective,
    )
    return create_app(cfg, db, token, read_token_required=read_token_required)


def check_config(
    scenario: str | Path | None = None,
    *,
    db: str | Path = "eqglb-service.db",
    token: str | None = None,
    policy: str = "online",
    days: int = DEFAULT_DAYS,
    seed: int = 0,
    weight_total: int = 100,
    addresses: dict[str, str] | None = None,
    synchronous: str = "full",
    max_batch: int = 64,
    horizon: int | None = None,
    **objective: object,
) -> str:
    """``eqglb serve --check``: validate the options without serving; one line saying what
    was checked.

    Checks the scenario and objective (as the server builds them), that a token is set,
    and the database: an existing one is opened as the server would (not locked by a
    running service, readable, undamaged, written with these settings, writable: a probe
    write), then closed; a missing one is not created: its folder must be writable (a
    temporary file is created there and removed).

    Raises
    ------
    ValueError, OSError
        The first problem found (``ScenarioError``/``StoreError`` are ValueErrors).
    """
    import tempfile

    from eqglb.service.app import Service
    from eqglb.service.store import StoreError

    cfg, token = _config(
        scenario,
        token,
        policy,
        days,
        seed,
        weight_total,
        addresses,
        synchronous,
        max_batch,
        horizon,
        objective,
    )
    path = Path(db)
    sc = cfg.scenario
    what = (
        f"scenario {scenario or 'builtin'} ({len(sc.datacenters)} data centres, "
        f"{len(sc.regions)} regions, {len(sc.models)} models), policy {cfg.policy}, "
        "token set"
    )
    if path.exists():
        svc = Service(cfg, path, token, False, None)
        slots = svc.engine.committed_state["slot"]
        svc.close()
        return f"ok: {what}; database {path} ({slots} slots, writable, not locked)"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise StoreError(f"--db {path}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".eqglb-check-"):
            pass
    except OSError as exc:
        raise StoreError(
            f"--db {path}: the folder {folder} is not writable "
            f"({exc.strerror or exc}); give another --db"
        ) from None
    return f"ok: {what}; database {path} (new: will be created, folder writable)"


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
    q: QOpt = None,
    q_social: QSocialOpt = None,
    q_carbon: QCarbonOpt = None,
    q_water: QWaterOpt = None,
    mu_social: MuSocialOpt = None,
    mu_carbon: MuCarbonOpt = DEFAULT_MU_CARBON,
    mu_water: MuWaterOpt = DEFAULT_MU_WATER,
    combined_env: CombinedEnvOpt = False,
    total_quality: TotalQualityOpt = False,
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
    if check:
        print(
            "eqglb serve --check: "
            + check_config(
                scenario,
                db=db,
                token=token,
                policy=policy,
                days=days,
                seed=seed,
                weight_total=weight_total,
                addresses=_addresses(address),
                synchronous=synchronous,
                horizon=horizon,
                max_batch=max_batch,
                q=q,
                q_social=q_social,
                q_carbon=q_carbon,
                q_water=q_water,
                mu_social=mu_social,
                mu_carbon=mu_carbon,
                mu_water=mu_water,
                combined_env=combined_env,
                total_quality=total_quality,
            ),
            flush=True,
        )
        return
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "eqglb serve needs the 'service' extra: pip install 'eqglb[service]'"
        ) from exc
    app = build_app(
        scenario,
        db=db,
        token=token,
        read_token_required=read_token_required,
        policy=policy,
        days=days,
        seed=seed,
        weight_total=weight_total,
        addresses=_addresses(address),
        synchronous=synchronous,
        horizon=horizon,
        max_batch=max_batch,
        q=q,
        q_social=q_social,
        q_carbon=q_carbon,
        q_water=q_water,
        mu_social=mu_social,
        mu_carbon=mu_carbon,
        mu_water=mu_water,
        combined_env=combined_env,
        total_quality=total_quality,
    )
    from eqglb.cli import silence_highs_banner
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
        print(f"error: {cli._one_line(exc)}", file=sys.stderr)
        return 2
    except errors["Exit"] as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {cli._one_line(exc)}", file=sys.stderr)
        return 2
    return 0
