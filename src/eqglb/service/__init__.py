"""Live dispatch service: the online policy behind an HTTP API (``eqglb serve``).

``create_app(scenario_or_config, db_path, token, ...)`` builds the FastAPI application;
the command line (``eqglb serve``) is :mod:`eqglb.cli.serve`. FastAPI and uvicorn are the
``service`` extra: they are imported only when an app is created or served.

Pieces: :mod:`.schemas` (request/response bodies), :mod:`.engine` (policy, checks,
accounting, weights; no HTTP), :mod:`.store` (SQLite WAL, group commit), :mod:`.proxy`
(NGINX, Envoy, HAProxy and Gateway API configuration; HAProxy runtime API),
:mod:`.metrics` (Prometheus metrics, JSON logs), :mod:`.app` (FastAPI), :mod:`.server`
(the app from command-line style options, uvicorn's protocol).
See docs/service.md.
"""

from __future__ import annotations

from typing import Any

from eqglb.service.engine import ServiceConfig, ServiceConfigError, largest_remainder
from eqglb.service.proxy import (
    push_haproxy_weights,
    render_envoy,
    render_gateway,
    render_haproxy,
    render_nginx,
)
from eqglb.service.store import Store, StoreError

__all__ = [
    "ServiceConfig",
    "ServiceConfigError",
    "Store",
    "StoreError",
    "create_app",
    "largest_remainder",
    "push_haproxy_weights",
    "render_envoy",
    "render_gateway",
    "render_haproxy",
    "render_nginx",
]


def _need_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"the eqglb service needs the 'service' extra ({exc.name} is "
            "missing): pip install 'eqglb[service]'"
        ) from exc


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The dispatch service as a FastAPI app; see :func:`eqglb.service.app.create_app`."""
    _need_extra()
    from eqglb.service.app import create_app as _create

    return _create(*args, **kwargs)
