"""FastAPI application of the dispatch service (``create_app``).

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

* ``POST /v1/slots`` - submit the current slot's signals, get the routing and integer
  load-balancer weights (write: needs ``Authorization: Bearer <token>``);
* ``GET /v1/state`` - duals, cumulative regional costs and fairness metrics so far;
* ``GET /v1/weights`` - the latest integer weights (JSON);
* ``GET /v1/weights/nginx`` - NGINX upstream blocks; ``GET /v1/weights/envoy`` - Envoy
  weighted clusters (JSON or YAML); ``GET /v1/weights/haproxy`` - HAProxy backends;
  ``GET /v1/weights/gateway`` - Gateway API HTTPRoutes (JSON List or YAML);
* ``GET /v1/slots`` and ``GET /v1/slots/{slot}`` - accepted slots as stored;
* ``GET /healthz`` - liveness and whether slots can be written (always open; 503
  while starting or after a failed write);
* ``GET /metrics`` - Prometheus metrics, text exposition format (decisions, latency,
  rejections by reason, commit batch sizes, fairness so far; see :mod:`.metrics`).

Reads are open unless ``read_token_required``.

Concurrency: submissions go through one queue to one sequencer thread that owns the
engine (the policy): slots are decided strictly one after another, in arrival order. The
thread takes every submission waiting in the queue, decides them in order and hands their
rows to a committer thread that writes them in one SQLite transaction (group commit);
while that commit runs, the next batch is decided. Each request is answered only after
its slot's transaction has committed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from eqglb.scenario import Scenario
from eqglb.service.engine import Engine, Outcome, ServiceConfig, _dumps, load_config_scenario
from eqglb.service.metrics import ServiceMetrics, rejection_reason
from eqglb.service.proxy import (
    REGION_HEADER,
    render_envoy,
    render_gateway,
    render_haproxy,
    render_nginx,
)
from eqglb.service.schemas import ErrorOut, HealthOut, SlotIn, SlotOut
from eqglb.service.store import Store, StoreCorruptError

__all__ = ["create_app"]

log = logging.getLogger("eqglb.service")

_KEY_HEADER = "idempotency-key"
#: Content type of /metrics: the Prometheus text format every scraper reads.
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Largest request body accepted [bytes] (a slot of 1000 regions x 1000 data centres is
#: well under 1 MiB).
MAX_BODY = 4 * 1024 * 1024

# module level: FastAPI resolves the (string) annotations of endpoints in this namespace
Level = Annotated[
    str,
    Query(
        pattern="^(datacenter|model)$",
        description="Upstream per data centre, or per (data centre, model)",
    ),
]


def _errors_out(
    exc: ValidationError | RequestValidationError, prefix: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Pydantic errors as ``{loc, msg, type}`` (the offending input is not echoed: it may
    be NaN, which JSON cannot carry)."""
    out = []
    for e in exc.errors():
        loc = [*prefix, *[p for p in e.get("loc", ())]]
        out.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


class _ServiceApp(FastAPI):
    """The service's FastAPI app, with ``POST /v1/slots`` sent straight to its endpoint.

    Every submission is a decision, and the generic per-request stack (the error,
    telemetry, body-limit, exception and exit-stack middleware, the router, the
    dependency solver) does nothing for this endpoint but cost time: it takes a bare
    :class:`Request` and returns a ready :class:`Response`. So the endpoint is called
    with a Request and its Response is sent as the stack would send it; an HTTPException
    goes to the app's handler for it; any other exception is answered with the plain
    500 of Starlette's ServerErrorMiddleware (when no response has started) and
    re-raised, as that middleware does. The full stack is used whenever it could do
    more: debug mode, a root path, user middleware, a handler for 500 or Exception, an
    app-wide body limit, or native OpenTelemetry enabled.
    """

    _slots_endpoint: Callable[[Request], Awaitable[Response]] | None = None

    def _direct(self, scope: Scope) -> bool:
        telemetry = getattr(self, "_native_telemetry", None)
        return not (
            self.debug
            or self.root_path
            or scope.get("root_path")
            or self.user_middleware
            or 500 in self.exception_handlers
            or Exception in self.exception_handlers
            or getattr(self, "max_body_size", None) is not None
            or (telemetry is not None and telemetry.enabled())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._slots_endpoint
        if (
            endpoint is not None
            and scope["type"] == "http"
            and scope["path"] == "/v1/slots"
            and scope["method"] == "POST"
            and self._direct(scope)
        ):
            await self._call_direct(endpoint, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _call_direct(
        self,
        endpoint: Callable[[Request], Awaitable[Response]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        from starlette._utils import is_async_callable
        from starlette.concurrency import run_in_threadpool

        scope["app"] = self
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        request = Request(scope, receive, sender)
        try:
            try:
                response: Response | None = await endpoint(request)
            except StarletteHTTPException as exc:
                handler: Any = None
                for cls in type(exc).__mro__:  # as Starlette's ExceptionMiddleware looks up
                    if cls in self.exception_handlers:
                        handler = self.exception_handlers[cls]
                        break
                if handler is None:
                    raise
                if is_async_callable(handler):
                    response = await handler(request, exc)
                else:
                    response = await run_in_threadpool(handler, request, exc)
            if response is not None:
                await response(scope, receive, sender)
        except Exception:
            if not started:
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, send
                )
            raise


class _Batch:
    """Submissions decided together and committed in one transaction."""

    __slots__ = ("commit", "items", "keys", "outcomes", "state")

    def __init__(
        self,
        items: list[Any],
        outcomes: list[Outcome],
        state: dict[str, Any],
        commit: concurrent.futures.Future[None] | None,
    ) -> None:
        self.items, self.outcomes, self.state, self.commit = items, outcomes, state, commit
        self.keys = [o.row.idempotency_key for o in outcomes if o.row is not None]


class _Sequencer(threading.Thread):
    """The one thread that decides slots (see the module docstring).

    Pipelined group commit: while the rows of batch n are being committed (an fsync in
    the committer thread, GIL released), batch n+1 is decided on top of them; batch n's
    requests are answered once its commit is done, before anything of batch n+1. If a
    commit fails, the engine returns to the last durable state and batches n and n+1 are
    re-decided and committed one request at a time: a request whose row cannot be stored
    gets 503 (retry with the same key) and the others are answered as if alone.
    """

    def __init__(
        self, engine: Engine, store: Store, max_batch: int, metrics: ServiceMetrics | None = None
    ) -> None:
        super().__init__(name="eqglb-sequencer", daemon=True)
        self.engine, self.store, self.max_batch = engine, store, max_batch
        self.metrics = metrics
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.committer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="eqglb-commit")
        self.batches = 0

    def submit(
        self, req: SlotIn, key: str, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Outcome]
    ) -> None:
        self.q.put((req, key, loop, fut))

    def stop(self) -> None:
        self.q.put(None)
        self.join(timeout=30)
        self.committer.shutdown(wait=True)

    def run(self) -> None:
        inflight: _Batch | None = None
        while True:
            if inflight is None:
                item = self.q.get()
            else:
                try:
                    item = self.q.get_nowait()
                except queue.Empty:  # nothing new: answer the batch in flight
                    if not self._finish(inflight):
                        self._redo(inflight)
                    inflight = None
                    continue
            if item is None:
                break
            items = [item]
            stop = False
            while len(items) < self.max_batch:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
            batch, inflight = self._decide(items, inflight)
            if inflight is not None:
                ok = self._finish(inflight)
                if not ok:  # batch was decided on top of a failed commit
                    self._redo(inflight, batch)
                    inflight = None
                    if stop:
                        break
                    continue
                inflight = None
            if batch.commit is None:  # nothing to write (rejections, replays)
                self._answer(batch.items, batch.outcomes)
            else:
                inflight = batch
            if stop:
                break
        if inflight is not None and not self._finish(inflight):
            self._redo(inflight)

    def _apply(self, req: SlotIn, key: str) -> Outcome:
        try:
            return self.engine.apply(req, key)
        except Exception as exc:  # a policy failure on a feasible slot: server error
            log.exception("slot rejected by a server error")
            return Outcome(500, _dumps({"detail": f"server error: {exc}"}).encode())

    def _decide(
        self, items: list[Any], inflight: _Batch | None = None
    ) -> tuple[_Batch, _Batch | None]:
        """Decide ``items`` (on top of the batch in flight, if any) and submit their
        commit. The batch in flight is answered as soon as its commit has succeeded, even
        in the middle of this batch (its clients can send their next slots meanwhile);
        returned is the new batch and the one still in flight (None once answered; a
        failed commit is left to the caller, which re-decides both batches)."""
        outcomes = []
        for req, key, _, _ in items:
            outcomes.append(self._apply(req, key))
            if inflight is not None:
                assert inflight.commit is not None
                if inflight.commit.done() and inflight.commit.exception() is None:
                    self._finish(inflight)  # durable: answer it now
                    inflight = None
        rows = [o.row for o in outcomes if o.row is not None]
        commit = self.committer.submit(self.store.commit, rows) if rows else None
        self.batches += 1
        if rows and self.metrics is not None:
            self.metrics.batch.observe(len(rows))
        return _Batch(items, outcomes, self.engine.current_state, commit), inflight

    def _finish(self, batch: _Batch) -> bool:
        """Wait for a batch's commit and answer its requests; False (nothing answered) if
        the commit failed."""
        assert batch.commit is not None
        try:
            batch.commit.result()
        except Exception:
            log.exception(
                "group commit failed; its slots are decided and committed again one by one"
            )
            return False
        self.engine.committed(batch.state, batch.keys)
        self._answer(batch.items, batch.outcomes)
        return True

    def _redo(self, *batches: _Batch) -> None:
        """After a failed group commit: back to the last durable state, then each request
        of the batches again on its own, committed alone, so that one request whose row
        cannot be stored fails only itself (503), never the others of its batch."""
        for b in batches:  # a later batch's commit refuses the gap
            if b.commit is not None:
                with contextlib.suppress(Exception):
                    b.commit.result()
        self.engine.rollback()
        for b in batches:
            for item in b.items:
                out = self._apply(item[0], item[1])
                row = out.row
                if row is not None:
                    try:
                        self.store.commit([row])
                    except Exception:
                        log.exception("slot %s could not be stored", row.slot)
                        self.engine.rollback()
                        out = _RETRY
                    else:
                        if self.metrics is not None:
                            self.metrics.batch.observe(1)
                        self.engine.committed(self.engine.current_state, [row.idempotency_key])
                self._answer([item], [out])

    @staticmethod
    def _answer(items: list[Any], outcomes: list[Outcome]) -> None:
        for (_, _, loop, fut), out in zip(items, outcomes, strict=True):
            with contextlib.suppress(RuntimeError):  # loop closed: client gone
                loop.call_soon_threadsafe(_resolve, fut, out)


_RETRY = Outcome(
    503,
    _dumps(
        {"detail": "the slot could not be stored; retry with the same Idempotency-Key"}
    ).encode(),
)


def _resolve(fut: asyncio.Future[Outcome], out: Outcome) -> None:
    if not fut.done():
        fut.set_result(out)


class Service:
    """Everything one app holds: config, store, engine, sequencer, tokens."""

    def __init__(
        self,
        config: ServiceConfig,
        db_path: str | Path,
        token: str,
        read_token_required: bool,
        policy: Any,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError(
                "a bearer token is required for writes: pass token= (or --token / EQGLB_TOKEN)"
            )
        self.config = config
        self.token = token.encode()
        self.read_token_required = bool(read_token_required)
        self.filler: Any = None  # before the store: nothing to close if it fails
        if config.signals is not None:  # built now: a missing credential fails at start
            from datetime import timedelta

            from eqglb.service.fill import SignalFiller

            self.filler = SignalFiller(config.signals, timedelta(hours=config.scenario.slot_hours))
        self.store = Store(db_path, synchronous=config.synchronous)
        try:
            self.engine = Engine(config, self.store, policy)
        except BaseException:
            self.store.close()
            raise
        self.metrics = ServiceMetrics(self.engine)
        self.sequencer: _Sequencer | None = None

    def start(self) -> None:
        if self.sequencer is None:
            self.sequencer = _Sequencer(
                self.engine, self.store, int(self.config.max_batch), self.metrics
            )
            self.sequencer.start()

    def close(self) -> None:
        if self.sequencer is not None:
            self.sequencer.stop()
            self.sequencer = None
        self.store.close()

    # ------------------------------------------------------------------ auth
    def check(self, request: Request, write: bool) -> None:
        if not write and not self.read_token_required:
            return
        auth = request.headers.get("authorization")
        if not auth:
            raise HTTPException(
                401,
                "missing Authorization header; send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() != "bearer" or not cred.strip():
            raise HTTPException(
                401,
                "Authorization must be 'Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(cred.strip().encode(), self.token):
            raise HTTPException(403, "the bearer token is not valid for this service")


def _as_config(source: Any, **kw: Any) -> ServiceConfig:
    if isinstance(source, ServiceConfig):
        if kw:
            raise TypeError(f"options {sorted(kw)} are given by the ServiceConfig already")
        return source
    sc = source if isinstance(source, Scenario) else load_config_scenario(source)
    return ServiceConfig.from_scenario(sc, **kw)


def create_app(
    scenario_or_config: Any,
    db_path: str | Path,
    token: str,
    read_token_required: bool = False,
    policy: Any = None,
    **config: Any,
) -> FastAPI:
    """The dispatch service as a FastAPI application.

    Parameters
    ----------
    scenario_or_config : ServiceConfig, Scenario, path of a scenario folder or "builtin"
        What to serve; a Scenario or path is wrapped in
        :meth:`ServiceConfig.from_scenario` with ``config`` (``q``, ``mu_carbon``,
        ``weight_total``, ``addresses``, ``synchronous``, ...).
    db_path : str or Path
        SQLite database; created if missing, resumed from its last slot otherwise.
    token : str
        Bearer token that writes (and reads, with ``read_token_required``) must carry.
    read_token_required : bool
        Protect the GET endpoints (``/healthz`` stays open).
    policy : str, object or callable, optional
        Online policy: a name (default ``"online"``), an object with ``decide``,
        ``state`` and ``load_state``, or a factory ``f(objective)``.

    Returns
    -------
    FastAPI
        Serve it with uvicorn (one process: the policy's state lives in it). The
        decision thread starts with the app (lifespan) and stops with it.

    Raises
    ------
    ScenarioError
        Bad scenario or options; ``StoreError`` when the database is in use or was written
        with other settings.
    """
    cfg = _as_config(scenario_or_config, **config)
    svc = Service(cfg, db_path, token, read_token_required, policy)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            svc.close()

    from eqglb import __version__

    app = _ServiceApp(
        title="eqglb dispatch service",
        version=__version__,
        description="Equitable geographical load balancing of AI inference, live: submit "
        "each slot's signals, get the routing and load-balancer weights.",
        lifespan=lifespan,
    )
    app.state.service = svc

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _errors_out(exc)}, status_code=422)

    slot_schema = SlotIn.model_json_schema(ref_template="#/components/schemas/{model}")
    errors = {
        401: {"model": ErrorOut, "description": "missing or malformed bearer token"},
        403: {"model": ErrorOut, "description": "wrong token"},
        409: {
            "model": ErrorOut,
            "description": "slot time out of order or duplicate; "
            "idempotency key reused for another body; "
            "horizon complete",
        },
        413: {"model": ErrorOut, "description": "request body too large"},
        422: {"model": ErrorOut, "description": "invalid field (named in loc)"},
        500: {
            "model": ErrorOut,
            "description": "the policy failed, or the stored response to replay is damaged",
        },
        503: {
            "model": ErrorOut,
            "description": "the slot could not be stored; retry with the same Idempotency-Key",
        },
    }

    @app.post(
        "/v1/slots",
        response_model=SlotOut,
        responses=errors,  # type: ignore[arg-type]
        summary="Submit a slot's signals; get its routing and weights",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": slot_schema}},
            },
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": "Key of this submission, unique to the slot; "
                    "a retry sends the same key. (The "
                    "deprecated body field idempotency_key is "
                    "still accepted in its place.)",
                }
            ],
        },
    )
    async def post_slot(request: Request) -> Response:
        """Decide one slot. The response is sent after the slot is committed; a retry with
        the same idempotency key returns the stored response (header
        ``Idempotency-Replayed: true``), never a second decision."""
        t0 = time.perf_counter()
        m = svc.metrics
        try:
            resp, key, out = await _post_slot(request)
        except HTTPException as exc:
            m.refused(
                exc.status_code,
                rejection_reason(exc.status_code),
                time.perf_counter() - t0,
                request.headers.get(_KEY_HEADER),
            )
            raise
        dt = time.perf_counter() - t0
        if out is not None and out.status == 200:
            if out.row is not None:
                m.decided(dt, str(key), out.row)
            else:
                m.replayed(dt, str(key))
        else:
            m.refused(
                resp.status_code, rejection_reason(resp.status_code, bytes(resp.body)), dt, key
            )
        return resp

    async def _fill(raw: bytes, key: str | None) -> bytes | JSONResponse:
        """``raw`` with the provider's signals filled (eqglb.service.fill), or the refusal:
        422 without the slot's time, 503 when the provider fails (nothing applied)."""
        from eqglb.signals import SignalError

        assert svc.filler is not None
        try:
            return await asyncio.to_thread(svc.filler.fill, raw)
        except SignalError as exc:
            detail = {"loc": ["body"], "msg": str(exc), "type": "signal_provider"}
            return JSONResponse({"detail": [detail]}, status_code=503)
        except ValueError as exc:
            detail = {"loc": ["body", "time"], "msg": str(exc), "type": "missing"}
            return JSONResponse({"detail": [detail]}, status_code=422)

    def too_big() -> JSONResponse:
        return JSONResponse(
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": f"request body larger than {MAX_BODY} bytes",
                        "type": "too_large",
                    }
                ]
            },
            status_code=413,
        )

    async def _post_slot(request: Request) -> tuple[Response, str | None, Outcome | None]:
        svc.check(request, write=True)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return too_big(), request.headers.get(_KEY_HEADER), None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return too_big(), request.headers.get(_KEY_HEADER), None
            chunks.append(chunk)
        raw = b"".join(chunks)
        if svc.filler is not None:  # grid signals the slot omits, from the provider
            refused = await _fill(raw, request.headers.get(_KEY_HEADER))
            if isinstance(refused, JSONResponse):
                return refused, request.headers.get(_KEY_HEADER), None
            raw = refused
        try:
            req = SlotIn.model_validate_json(raw)
        except ValidationError as exc:
            bad = JSONResponse({"detail": _errors_out(exc, ("body",))}, status_code=422)
            return bad, request.headers.get(_KEY_HEADER), None
        hkey = request.headers.get(_KEY_HEADER)
        key = req.idempotency_key
        problems = []
        if hkey is not None and not 1 <= len(hkey) <= 200:
            problems.append(
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "Idempotency-Key must have 1 to 200 characters",
                    "type": "string_length",
                }
            )
        elif hkey is not None and key is not None and hkey != key:
            problems.append(
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "Idempotency-Key header and body field idempotency_key "
                    "differ; give one, or the same in both",
                    "type": "idempotency_key_mismatch",
                }
            )
        elif hkey is None and key is None:
            problems.append(
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "an idempotency key is required: send an Idempotency-Key "
                    "header (or body field idempotency_key) unique to this "
                    "slot, and the same key when retrying",
                    "type": "missing",
                }
            )
        if problems:
            return JSONResponse({"detail": problems}, status_code=422), hkey or key, None
        seq = svc.sequencer
        if seq is None:
            raise HTTPException(
                503,
                "the service is not started (run it under uvicorn, or use "
                "TestClient as a context manager)",
            )
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Outcome] = loop.create_future()
        the_key = str(hkey if hkey is not None else key)
        seq.submit(req, the_key, loop, fut)
        out = await fut
        return (
            Response(
                out.body, status_code=out.status, media_type="application/json", headers=out.headers
            ),
            the_key,
            out,
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {_METRICS_TYPE: {"schema": {"type": "string"}}}},
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
        },
    )
    def get_metrics(request: Request) -> Response:
        svc.check(request, write=False)
        return Response(svc.metrics.render(), media_type=_METRICS_TYPE)

    @app.get(
        "/healthz",
        summary="Liveness, and whether slots can be written",
        response_model=HealthOut,
        responses={
            503: {"model": HealthOut, "description": "not started, or the last write failed"}
        },
    )
    def healthz() -> JSONResponse:
        st = svc.engine.committed_state
        alive = svc.sequencer is not None and svc.sequencer.is_alive()
        writable = alive and svc.store.writable
        status = "ok" if writable else ("degraded" if alive else "starting")
        body: dict[str, Any] = {"status": status, "slots": st["slot"], "writable": writable}
        if svc.store.write_error is not None:
            body["write_error"] = svc.store.write_error
        return JSONResponse(body, status_code=200 if writable else 503)

    @app.get(
        "/v1/state",
        summary="Duals, cumulative regional costs, fairness so far",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def get_state(request: Request) -> dict[str, Any]:
        svc.check(request, write=False)
        return svc.engine.summary(svc.engine.committed_state)

    @app.get(
        "/v1/weights",
        summary="Latest integer weights per region",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def get_weights(request: Request, level: Level = "datacenter") -> dict[str, Any]:
        svc.check(request, write=False)
        st = svc.engine.committed_state
        return {
            "total": cfg.weight_total,
            "from": st.get("weights_slot"),
            "level": level,
            "regions": svc.engine.weights_table(st, level),
        }

    @app.get(
        "/v1/weights/nginx",
        response_class=PlainTextResponse,
        summary="NGINX upstream blocks (http context) with the latest weights",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def get_nginx(
        request: Request,
        level: Level = "datacenter",
        include_map: Annotated[bool, Query(alias="map")] = True,
        header: Annotated[str, Query(pattern="^[A-Za-z0-9-]{1,64}$")] = REGION_HEADER,
    ) -> PlainTextResponse:
        svc.check(request, write=False)
        st = svc.engine.committed_state
        src = st.get("weights_slot")
        note = (
            f"weights of slot {src['slot']} ({src['time']}), out of {cfg.weight_total}"
            if src
            else "no slot decided yet: uniform weights over allowed routes"
        )
        text = render_nginx(
            svc.engine.weights_table(st, level),
            header=header,
            include_map=include_map,
            comment=note,
        )
        return PlainTextResponse(text)

    @app.get(
        "/v1/weights/envoy",
        summary="Envoy v3 weighted-clusters route configuration",
        responses={
            200: {
                "description": "Envoy route configuration (format=json or yaml)",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/yaml": {"schema": {"type": "object"}},
                },
            },
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
        },
    )
    def get_envoy(
        request: Request,
        level: Level = "datacenter",
        fmt: Annotated[str, Query(alias="format", pattern="^(json|yaml)$")] = "json",
        bootstrap: bool = False,
        header: Annotated[str, Query(pattern="^[A-Za-z0-9-]{1,64}$")] = REGION_HEADER,
    ) -> Response:
        svc.check(request, write=False)
        st = svc.engine.committed_state
        doc = render_envoy(svc.engine.weights_table(st, level), header=header, bootstrap=bootstrap)
        if fmt == "yaml":
            try:
                import yaml
            except ImportError:  # JSON is valid YAML (1.2): serve it as such
                return Response(json.dumps(doc, indent=1), media_type="application/yaml")
            return Response(yaml.safe_dump(doc, sort_keys=False), media_type="application/yaml")
        return Response(json.dumps(doc, indent=1), media_type="application/json")

    def weights_note(st: dict[str, Any]) -> str:
        src = st.get("weights_slot")
        return (
            f"weights of slot {src['slot']} ({src['time']}), out of {cfg.weight_total}"
            if src
            else "no slot decided yet: uniform weights over allowed routes"
        )

    @app.get(
        "/v1/weights/haproxy",
        response_class=PlainTextResponse,
        summary="HAProxy frontend and weighted backends with the latest weights",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def get_haproxy(
        request: Request,
        level: Level = "datacenter",
        complete: bool = True,
        bind: Annotated[str, Query(pattern=r"^[A-Za-z0-9.:\[\]*]{1,64}$")] = "127.0.0.1:8080",
        stats_socket: Annotated[
            str | None, Query(alias="socket", pattern=r"^/[A-Za-z0-9_./-]{1,200}$")
        ] = None,
        header: Annotated[str, Query(pattern="^[A-Za-z0-9-]{1,64}$")] = REGION_HEADER,
    ) -> PlainTextResponse:
        svc.check(request, write=False)
        st = svc.engine.committed_state
        return PlainTextResponse(
            render_haproxy(
                svc.engine.weights_table(st, level),
                header=header,
                complete=complete,
                bind=bind,
                stats_socket=stats_socket,
                comment=weights_note(st),
            )
        )

    @app.get(
        "/v1/weights/gateway",
        summary="Kubernetes Gateway API HTTPRoutes (weighted)",
        responses={
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            409: {"model": ErrorOut, "description": "a region cannot be an HTTPRoute rule"},
        },
    )
    def get_gateway(
        request: Request,
        level: Level = "datacenter",
        fmt: Annotated[str, Query(alias="format", pattern="^(json|yaml)$")] = "json",
        name: Annotated[str, Query(pattern="^[a-z]([-a-z0-9]{0,51}[a-z0-9])?$")] = "eqglb",
        namespace: Annotated[str | None, Query(pattern="^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")] = None,
        gateway: Annotated[str, Query(pattern="^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")] = "eqglb",
        header: Annotated[str, Query(pattern="^[A-Za-z0-9-]{1,64}$")] = REGION_HEADER,
    ) -> Response:
        svc.check(request, write=False)
        st = svc.engine.committed_state
        try:
            routes = render_gateway(
                svc.engine.weights_table(st, level),
                header=header,
                name=name,
                namespace=namespace,
                gateway=gateway,
                comment=weights_note(st),
            )
        except ValueError as e:  # e.g. more than 16 upstreams in a region (schema limit)
            raise HTTPException(409, str(e)) from None
        doc = {"apiVersion": "v1", "kind": "List", "items": routes}
        if fmt == "yaml":
            try:
                import yaml
            except ImportError:  # JSON is valid YAML (1.2): serve the List as such
                return Response(json.dumps(doc, indent=1), media_type="application/yaml")
            return Response(
                yaml.safe_dump_all(routes, sort_keys=False), media_type="application/yaml"
            )
        return Response(json.dumps(doc, indent=1), media_type="application/json")

    @app.get(
        "/v1/slots",
        summary="Accepted slots (index, time, idempotency key)",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def list_slots(
        request: Request,
        after: Annotated[int, Query(ge=-1, le=2**62)] = -1,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[dict[str, Any]]:
        svc.check(request, write=False)
        return svc.store.list_slots(after, limit)

    @app.get(
        "/v1/slots/{slot}",
        summary="One accepted slot: stored request and response",
        responses={
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            404: {"model": ErrorOut},
            500: {"model": ErrorOut, "description": "the stored row is damaged"},
        },
    )
    def get_slot(
        request: Request, slot: Annotated[int, PathParam(ge=0, le=2**62)]
    ) -> dict[str, Any]:
        svc.check(request, write=False)
        try:
            row = svc.store.read_slot(slot)
        except StoreCorruptError as exc:  # never serve a damaged row
            raise HTTPException(500, str(exc)) from None
        if row is None:
            raise HTTPException(
                404, f"no accepted slot {slot} (slots so far: {svc.engine.committed_state['slot']})"
            )
        return row

    app._slots_endpoint = post_slot
    _document(app, svc.read_token_required)
    return app


def _allowed_methods(app: FastAPI, scope: Any) -> set[str]:
    """Methods of the routes whose path matches ``scope`` (empty: no such path)."""
    from starlette.routing import Match

    out: set[str] = set()
    for route in app.router.routes:
        methods = getattr(route, "methods", None)
        if not methods or getattr(route, "name", "") == "_options":
            continue
        match, _ = route.matches({**scope, "method": next(iter(methods))})
        if match == Match.FULL:
            out |= set(methods)
    return out


def _document(app: FastAPI, read_token_required: bool) -> None:
    """OPTIONS on every path, a true Allow header on 405, and an OpenAPI schema that says
    so, with the bearer security scheme (patched into FastAPI's schema, built lazily:
    routes added later are included)."""
    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.options("/{rest:path}", include_in_schema=False, name="_options")
    async def _options(request: Request, rest: str) -> Response:
        allowed = _allowed_methods(app, request.scope)
        if not allowed:
            raise HTTPException(404, f"no such path {request.url.path!r}")
        return Response(
            status_code=204, headers={"Allow": ", ".join(sorted(allowed | {"OPTIONS"}))}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allowed = _allowed_methods(app, request.scope) | {"OPTIONS"}
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
        return await http_exception_handler(request, exc)

    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "The service's token (--token / EQGLB_TOKEN): needed for POST, "
                "and for GET with --read-token-required (/healthz stays open).",
            }
        }
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                if method == "post" or (read_token_required and path != "/healthz"):
                    op["security"] = [{"bearerAuth": []}]
                else:
                    op["security"] = []
                # an operation with ?format=...yaml... answers YAML too: say so
                if any(
                    p.get("name") == "format" and "yaml" in json.dumps(p.get("schema"))
                    for p in op.get("parameters", [])
                ):
                    ok = op.get("responses", {}).get("200", {})
                    ok.setdefault("content", {}).setdefault("application/yaml", {"schema": {}})
            ops["options"] = {
                "summary": "Methods allowed on this path",
                "operationId": "options_"
                + "".join(c if c.isalnum() else "_" for c in path).strip("_"),
                "security": [],
                "responses": {
                    "204": {
                        "description": "No content; the Allow header lists the methods",
                        "headers": {"Allow": {"schema": {"type": "string"}, "required": True}},
                    }
                },
            }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
