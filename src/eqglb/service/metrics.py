"""Operability of the dispatch service: Prometheus metrics and structured logs.

:class:`ServiceMetrics` holds one app's metrics in its own
:class:`prometheus_client.CollectorRegistry` (never the process-wide default one), so
several apps in one process do not clash; ``GET /metrics`` serves them in the text
exposition format. Metrics:

* ``eqglb_decisions_total`` - slots decided and committed (replays not counted);
* ``eqglb_replayed_requests_total`` - retries answered with the stored response;
* ``eqglb_rejected_requests_total{status, reason}`` - refused submissions by HTTP status
  and error kind: the ``type`` of the first error of a 409/422/500 body (the engine's,
  e.g. ``out_of_order``, ``idempotency_conflict``, ``horizon_complete``, or pydantic's
  for a malformed body, e.g. ``missing``, ``float_parsing``), else ``unauthorized``
  (401), ``forbidden`` (403), ``too_large`` (413), ``not_started`` (503) or
  ``server_error``;
* ``eqglb_decision_latency_seconds`` - histogram of a decision's time in the service, from
  the request handler's start to the committed response [s];
* ``eqglb_commit_batch_size`` - histogram of slots per group commit (one SQLite
  transaction);
* gauges of the committed state, computed when scraped: ``eqglb_slots``,
  ``eqglb_cumulative_energy_cost_usd``, the worst location's cumulative carbon
  ``eqglb_worst_carbon_kg`` [kg CO2] and water ``eqglb_worst_water_liters`` [L] and public health ``eqglb_worst_health_usd`` [USD]
  (one pair per data-centre burden of :data:`eqglb.burdens.BURDENS`; burdens
  fall where the data centres are), the worst region's quality loss
  ``eqglb_worst_quality_loss`` (average per request with the average social rule,
  otherwise the total), and the same per data centre / region
  (``eqglb_cumulative_carbon_kg{datacenter}``, ``eqglb_cumulative_water_liters{datacenter}``, ``eqglb_cumulative_health_usd{datacenter}``,
  ``eqglb_quality_loss{region}``).

Structured logs: one record per decision, replay or rejection on the logger
``eqglb.service.requests`` (level INFO; rejections with status >= 500 at WARNING), with
the fields in the record's ``eqglb`` attribute; :class:`JsonFormatter` writes each record
as one JSON line, :func:`configure_logging` installs it (``eqglb serve --log-format``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from eqglb.burdens import BURDENS

__all__ = [
    "DECISION_LOG",
    "JsonFormatter",
    "ServiceMetrics",
    "configure_logging",
    "rejection_reason",
]

#: Logger of the per-request records.
DECISION_LOG = "eqglb.service.requests"

#: Buckets of the decision latency histogram [s].
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Buckets of the commit batch size histogram [slots].
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10_000)

#: Unit suffix of a data-centre burden's metric names (Prometheus base units).
_METRIC_UNIT = {"kg CO2": "kg", "L": "liters", "USD": "usd"}

_HTTP_REASONS = {401: "unauthorized", 403: "forbidden", 413: "too_large", 503: "not_started"}


def rejection_reason(status: int, body: bytes | None = None) -> str:
    """Error kind of a refused submission: the ``type`` of the first error in a
    ``{"detail": [...]}`` body, else a name for the status."""
    if body:
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            kind = detail[0].get("type")
            if isinstance(kind, str) and kind:
                return kind[:64]
    if status >= 500 and status != 503:
        return "server_error"
    return _HTTP_REASONS.get(status, f"http_{status}")


class _StateCollector:
    """Gauges of the engine's committed state, read when scraped (no cost per decision)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        eng = self.engine
        st = eng.committed_state  # a dict never mutated afterwards
        cum = st["cumulative"]
        vectors = eng.burden_vectors(st)
        yield GaugeMetricFamily(
            "eqglb_slots", "Slots accepted (committed) so far", value=float(st["slot"])
        )
        yield GaugeMetricFamily(
            "eqglb_cumulative_energy_cost_usd",
            "Energy cost of the slots so far [USD]",
            value=float(cum["energy_cost"]),
        )
        for name, b in BURDENS.items():
            if b.side != "datacenter":
                continue
            vec = vectors[name]
            unit = _METRIC_UNIT.get(b.unit, b.unit.lower().replace(" ", "_"))
            what = f"{b.label} [{b.unit}]"
            yield GaugeMetricFamily(
                f"eqglb_worst_{name}_{unit}",
                f"Largest cumulative {what} of a data centre's location so far",
                value=float(vec.max()) if vec.size else 0.0,
            )
            g = GaugeMetricFamily(
                f"eqglb_cumulative_{name}_{unit}",
                f"Cumulative {what} per data centre so far",
                labels=["datacenter"],
            )
            for dc, v in zip(eng.datacenters, vec.tolist(), strict=True):
                g.add_metric([dc], v)
            yield g
        qual = vectors["social"]
        what = (
            "average quality loss per request [-]"
            if eng.config.objective.social_average
            else "quality loss [requests]"
        )
        yield GaugeMetricFamily(
            "eqglb_worst_quality_loss",
            f"Largest {what} of a region so far",
            value=float(qual.max()) if qual.size else 0.0,
        )
        g = GaugeMetricFamily("eqglb_quality_loss", f"{what} per region so far", labels=["region"])
        for r, v in zip(eng.regions, qual.tolist(), strict=True):
            g.add_metric([r], v)
        yield g


class ServiceMetrics:
    """One app's Prometheus metrics (see the module docstring)."""

    def __init__(self, engine: Any) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                "the eqglb service needs prometheus-client (the 'service' "
                "extra): pip install 'eqglb[service]'"
            ) from exc
        reg = self.registry = CollectorRegistry(auto_describe=False)
        self.decisions = Counter(
            "eqglb_decisions", "Slots decided and committed (replays not counted)", registry=reg
        )
        self.replays = Counter(
            "eqglb_replayed_requests",
            "Retries answered with the stored response (Idempotency-Replayed: true)",
            registry=reg,
        )
        self.rejected = Counter(
            "eqglb_rejected_requests",
            "Refused slot submissions by HTTP status and error kind",
            ["status", "reason"],
            registry=reg,
        )
        self.latency = Histogram(
            "eqglb_decision_latency_seconds",
            "Time of a decision in the "
            "service, from the request handler's start to the committed "
            "response [s]",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch = Histogram(
            "eqglb_commit_batch_size",
            "Slots per group commit (one SQLite transaction)",
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        reg.register(_StateCollector(engine))  # type: ignore[arg-type]
        self.log = logging.getLogger(DECISION_LOG)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (version 0.0.4)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # ------------------------------------------------------------------ recording
    def decided(self, seconds: float, key: str, row: Any) -> None:
        self.decisions.inc()
        self.latency.observe(seconds)
        if self.log.isEnabledFor(logging.INFO):
            self.log.info(
                "decision slot=%s time=%s key=%s latency_ms=%.2f",
                row.slot,
                row.time,
                key,
                1e3 * seconds,
                extra={
                    "eqglb": {
                        "event": "decision",
                        "status": 200,
                        "slot": row.slot,
                        "time": row.time,
                        "key": key,
                        "latency_ms": round(1e3 * seconds, 3),
                    }
                },
            )

    def replayed(self, seconds: float, key: str) -> None:
        self.replays.inc()
        if self.log.isEnabledFor(logging.INFO):
            self.log.info(
                "replay key=%s latency_ms=%.2f",
                key,
                1e3 * seconds,
                extra={
                    "eqglb": {
                        "event": "replay",
                        "status": 200,
                        "key": key,
                        "latency_ms": round(1e3 * seconds, 3),
                    }
                },
            )

    def refused(self, status: int, reason: str, seconds: float, key: str | None) -> None:
        self.rejected.labels(str(status), reason).inc()
        level = logging.WARNING if status >= 500 else logging.INFO
        if self.log.isEnabledFor(level):
            self.log.log(
                level,
                "rejected status=%s reason=%s key=%s latency_ms=%.2f",
                status,
                reason,
                key,
                1e3 * seconds,
                extra={
                    "eqglb": {
                        "event": "rejected",
                        "status": status,
                        "reason": reason,
                        "key": key,
                        "latency_ms": round(1e3 * seconds, 3),
                    }
                },
            )


class JsonFormatter(logging.Formatter):
    """Each record as one JSON line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg``,
    the fields of the record's ``eqglb`` attribute, and ``exc`` for an exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "eqglb", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, allow_nan=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (never to a stream that
    was replaced and closed since)."""

    _eqglb = True

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(fmt: str = "text", level: str | int = "info") -> logging.Handler:
    """Send the ``eqglb.service`` loggers to stderr as JSON lines (``fmt="json"``) or text,
    at ``level``; returns the handler (replacing one installed before)."""
    fmt = str(fmt).lower()
    if fmt not in ("json", "text"):
        raise ValueError(f"--log-format {fmt!r}; use json or text")
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(lvl, int):
        lvl = logging.INFO
    logger = logging.getLogger("eqglb.service")
    for h in list(logger.handlers):
        if getattr(h, "_eqglb", False):
            logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(lvl)
    logger.propagate = False
    return handler
