"""The running app signs the audit chain's tips into the data dir once per period.

See services.audit_checkpoint: a checkpoint outside the database is what lets `ketaclinic
audit verify` detect a chain that was truncated and whose tip was rewound. The first request
after start writes one, then one every ``KETACLINIC_AUDIT_CHECKPOINT_MINUTES`` (per worker),
after the response has been sent; a failure is logged (type only) and never fails a request.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("ketaclinic.web")


class PeriodicAuditCheckpoint:
    def __init__(self, app: ASGIApp, services: Any, minutes: int) -> None:
        self.app = app
        self.services = services
        self.period = dt.timedelta(minutes=minutes)
        self.next_due: dt.datetime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] != "http" or not self.period:
            return
        now = self.services.ctx.clock()
        if self.next_due is not None and now < self.next_due:
            return
        self.next_due = now + self.period
        try:
            await run_in_threadpool(self.services.audit_log.checkpoint)
        except Exception as exc:  # noqa: BLE001 - a checkpoint must never fail a request
            log.warning("audit checkpoint not written: %s", type(exc).__name__)
