"""Operations view of the running app: Prometheus metrics at /metrics and JSON access logs.

Neither ever carries patient data. Requests are labelled by their *route template*
(``/api/patients/{patient_id}``), never by the raw path, so no id, name or MRN reaches a
metric or a log line; query strings, bodies and headers are never read.

/metrics answers only a client that sends ``Authorization: Bearer <KETACLINIC_METRICS_TOKEN>``
when that setting is set, and only loopback clients (the real client, after the trusted proxy
rule) when it is empty. With several workers, ``ketaclinic serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder so the counters of every worker add up.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sys
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("ketaclinic.access")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
UNMATCHED = "(unmatched)"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

REQUESTS = Counter("ketaclinic_http_requests", "HTTP requests answered, by route template",
                   ["method", "route", "status"])
LATENCY = Histogram("ketaclinic_http_request_duration_seconds",
                    "Time to answer a request, by route template", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def route_template(scope: Scope) -> str:
    """The route's path template (``/patients/{patient_id}``); a mount's prefix for static
    files; ``(unmatched)`` for a path no route took (its raw text may be anything)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED


class Observe:
    """Counts, times and (when on) logs every HTTP request, one JSON line each; sets the
    request id (a well-formed incoming ``X-Request-ID`` is kept, else a new one) on the
    response."""

    def __init__(self, app: ASGIApp, access_log_on: bool) -> None:
        self.app = app
        self.access_log_on = access_log_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status["code"], time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        method, route = scope.get("method", "?"), route_template(scope)
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(seconds)
        if self.access_log_on:
            access_log.info(json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "method": method, "route": route, "status": status,
                "duration_ms": round(seconds * 1000, 1), "request_id": request_id}))


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


class _AccessLogHandler(logging.StreamHandler):
    """The handler install_access_log_handler adds (so it adds one only)."""


def install_access_log_handler() -> None:
    """One JSON line per request on stderr (uvicorn's own access log is off: it prints raw
    paths and query strings)."""
    if any(isinstance(h, _AccessLogHandler) for h in access_log.handlers):
        return
    handler = _AccessLogHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)


class StateCollector(Collector):
    """Read at scrape time: this worker's database pool, and the outbox's pending messages
    (a count only)."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def collect(self):
        pool = self.services.db.engine.pool
        for name, doc, attr in (("checked_out", "Connections in use", "checkedout"),
                                ("size", "Configured pool size", "size")):
            value = getattr(pool, attr, None)
            if callable(value):
                g = GaugeMetricFamily(f"ketaclinic_db_pool_{name}", f"{doc} (this worker)")
                g.add_metric([], float(value()))
                yield g
        g = GaugeMetricFamily("ketaclinic_outbox_pending", "Outbox messages not yet sent")
        g.add_metric([], float(self._outbox_pending()))
        yield g

    def _outbox_pending(self) -> int:
        from ketaclinic.store.tables_mbc import OutboxMessage

        with self.services.db.transaction() as s:
            return int(s.execute(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status == "pending")).scalar_one())


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format; see the module docstring for who may read it."""
    if not _may_scrape(request):
        return PlainTextResponse("metrics are available to loopback clients or with the "
                                 "metrics token (KETACLINIC_METRICS_TOKEN)\n", status_code=403)
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StateCollector(request.app.state.services))
    body += generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _may_scrape(request: Request) -> bool:
    token = request.app.state.services.settings.metrics_token
    if token is not None and token.get_secret_value():
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        return hmac.compare_digest(given.encode(), expected.encode())
    return request.client is not None and request.client.host in LOOPBACK
