"""The dispatch service on uvicorn: the app from command-line style options.

:func:`build_app` and :func:`check_config` take the service options and the objective
keywords of :func:`eqglb.defaults.build_objective`; the command line (``eqglb serve``,
``python -m eqglb.service``) is :mod:`eqglb.cli.serve`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eqglb.defaults import DEFAULT_DAYS

__all__ = [
    "HEADER_TIMEOUT",
    "KEEP_ALIVE_TIMEOUT",
    "MAX_HEADER_BYTES",
    "TOKEN_ENV",
    "bounded_h11_protocol",
    "build_app",
    "addresses",
    "check_config",
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


def addresses(items: Sequence[str] | None) -> dict[str, str]:
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
    window: int | None = None,
    max_change: float | None = None,
    signals: Any = None,
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
        window=window,
        max_change=max_change,
        signals=signals,
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
    window: int | None = None,
    max_change: float | None = None,
    signals: Any = None,
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
        window,
        max_change,
        signals,
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
    window: int | None = None,
    max_change: float | None = None,
    signals: Any = None,
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
        window,
        max_change,
        signals,
    )
    path = Path(db)
    sc = cfg.scenario
    what = (
        f"scenario {scenario or 'builtin'} ({len(sc.datacenters)} data centres, "
        f"{len(sc.regions)} regions, {len(sc.models)} models), policy {cfg.policy}, "
        "token set"
    )
    if cfg.signals is not None:  # the client is built: a missing credential fails here
        from datetime import timedelta

        from eqglb.service.fill import SignalFiller

        SignalFiller(cfg.signals, timedelta(hours=sc.slot_hours))
        what += f", signals from {cfg.signals.provider} ({len(cfg.signals.zones)} zones)"
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
