"""Webhooks: signed notifications of urgent alerts and REMS deadlines, delivered by the outbox.

An administrator registers an endpoint (an https URL and the events it wants); its signing
secret is generated, shown once and stored encrypted (``secretbox``). Events become outbox rows
(channel ``webhook``), one per subscribed endpoint, each with the JSON body fixed when queued:

* ``alert.urgent``: queued in the transaction that writes the urgent alert (a write that is
  refused or rolled back queues nothing);
* ``rems.deadline``: an unsubmitted REMS form ``approaching`` its deadline or ``overdue``
  (``clinical.rems.deadline_state``), found by the scan each outbox run does; each state of
  each form is queued once per endpoint (the outbox's unique ``dedupe_key``);
* ``webhook.test``: a ping an administrator asks for.

The body carries the event type, ids, the time and a link path, never a name, MRN, birth date
or contact detail: the receiver fetches what it needs with its own API credentials. Each
request is signed Stripe-style: ``X-Ketaclinic-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under the endpoint's secret>``, with the event id in ``X-Ketaclinic-Event-Id``
(the receiver's idempotency key: retries resend the same id and body). Delivery goes through
``services/interop/outbound.py`` (address checks, timeouts); failures are retried with exponential
back-off up to ``MAX_ATTEMPTS``; a 4xx other than 408/429 fails at once. docs/integrations.md
shows how a receiver verifies a request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.rems import deadline_state
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import SYSTEM, Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.services.interop.outbound import (
    DeliveryError,
    PermanentFailure,
    UnsafeUrl,
    check_url,
    post_json,
)
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.secretbox import EncryptReport, SecretBox, SecretUnreadable
from ketaclinic.store.tables_chair import RemsFormRow
from ketaclinic.store.tables_mbc import ClinicalAlert, OutboxMessage, WebhookEndpoint

EVENTS = ("alert.urgent", "rems.deadline")
TEST_EVENT = "webhook.test"
SIGNATURE_HEADER = "X-Ketaclinic-Signature"
EVENT_ID_HEADER = "X-Ketaclinic-Event-Id"
EVENT_TYPE_HEADER = "X-Ketaclinic-Event"
MAX_ATTEMPTS = 8
FIRST_RETRY = dt.timedelta(minutes=2)  # then 4, 8, ... minutes
LONGEST_WAIT = dt.timedelta(hours=6)
TOLERANCE_SECONDS = 300  # what docs/integrations.md tells receivers to accept
MAX_ENDPOINTS = 20


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: 2, 4, 8, ... minutes, at most 6 h."""
    return min(FIRST_RETRY * (2 ** max(0, attempts - 1)), LONGEST_WAIT)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ketaclinic-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: int,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the header's time is recent and one v1 signature matches."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [v for k, v in fields if k.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    t = int(stamps[0])
    if abs(now - t) > tolerance:
        return False
    expected = signature(secret, t, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v.strip()) for k, v in fields if k.strip() == "v1")


def secret_context(endpoint_id: int) -> str:
    return f"webhook_endpoints.secret|{endpoint_id}"


def _iso(at: dt.datetime) -> str:
    return at.replace(microsecond=0).isoformat() + "Z"


def _body(event_id: str, kind: str, at: dt.datetime, data: dict[str, Any]) -> str:
    return json.dumps({"id": event_id, "type": kind, "created": _iso(at), "data": data},
                      sort_keys=True, separators=(",", ":"))


def queue_event(s: Session, kind: str, patient_id: int | None, data: dict[str, Any],
                key: str, now: dt.datetime) -> int:
    """Queue one delivery of event ``kind`` per active endpoint that subscribed to it, in the
    caller's transaction; ``key`` names the event (a repeat of a queued key is skipped)."""
    endpoints = [e for e in s.execute(select(WebhookEndpoint).where(
        WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id)).scalars()
        if kind in e.events.split(",")]
    if not endpoints:
        return 0
    keys = {e.id: f"wh-{e.id}-{key}"[:100] for e in endpoints}
    done = set(s.execute(select(OutboxMessage.dedupe_key).where(
        OutboxMessage.dedupe_key.in_(list(keys.values())))).scalars())
    body = _body(f"evt_{uuid.uuid4().hex}", kind, now, data)
    queued = 0
    for endpoint in endpoints:
        if keys[endpoint.id] in done:
            continue
        s.add(OutboxMessage(patient_id=patient_id, kind=kind, channel="webhook",
                            endpoint_id=endpoint.id, payload=body, dedupe_key=keys[endpoint.id],
                            due_at=now, status="pending", attempts=0, created_at=now))
        queued += 1
    return queued


def queue_urgent_alerts(s: Session, alerts: list[ClinicalAlert], now: dt.datetime) -> int:
    """``alert.urgent`` for each urgent alert just written (flushed, so it has an id)."""
    queued = 0
    for alert in alerts:
        if alert.priority == "urgent":
            queued += queue_event(s, "alert.urgent", alert.patient_id, {
                "alert_id": alert.id, "patient_id": alert.patient_id,
                "link": f"/patients/{alert.patient_id}"}, f"alert-{alert.id}", now)
    return queued


@dataclass(frozen=True)
class EndpointInfo:
    id: int
    url: str
    events: tuple[str, ...]
    description: str
    created_at: dt.datetime
    pending: int
    failed: int


class WebhookService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.box = SecretBox.for_secrets(ctx.settings.secret_key.get_secret_value())

    # --- the administrator ---------------------------------------------------------------------
    def add(self, actor: Actor, url: str, events: Sequence[str],
            description: str = "") -> tuple[EndpointInfo, str]:
        """Register an endpoint; returns it with its signing secret (shown this once)."""
        work = self.ctx.unit_of_work(actor, "webhook.add", perm=Perm.INTEGRATIONS_MANAGE)
        try:
            url = check_url(url, self.ctx.settings)
        except UnsafeUrl as exc:
            raise InvalidInput(f"url: {exc}") from None
        chosen = sorted({e.strip() for e in events if e.strip()})
        unknown = [e for e in chosen if e not in EVENTS]
        if not chosen or unknown:
            raise InvalidInput(f"events: choose one or more of {', '.join(EVENTS)}")
        description = " ".join((description or "").split())
        if len(description) > 200:
            raise InvalidInput("description: is longer than 200 characters")
        secret = "whsec_" + secrets.token_urlsafe(32)
        with work as uow:
            s = uow.session
            count = len(s.execute(select(WebhookEndpoint.id).where(
                WebhookEndpoint.active.is_(True))).all())
            if count >= MAX_ENDPOINTS:
                raise InvalidInput(f"at most {MAX_ENDPOINTS} webhook endpoints; remove one first")
            row = WebhookEndpoint(url=url, events=",".join(chosen), description=description,
                                  secret="", active=True, created_by=actor.user_id,
                                  created_at=uow.now)
            s.add(row)
            s.flush()
            row.secret = self.box.encrypt(secret, secret_context(row.id))
            uow.audit(detail=f"endpoint {row.id} for {row.events}")
            return self._info(s, row), secret

    def list(self, actor: Actor, limit: int | None = None,
             offset: int = 0) -> Paged[EndpointInfo]:
        with self.ctx.unit_of_work(actor, "webhook.list", perm=Perm.INTEGRATIONS_MANAGE) as uow:
            s = uow.session
            return page_rows(s, select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True))
                             .order_by(WebhookEndpoint.id), limit, offset).map(
                lambda row: self._info(s, row))

    def remove(self, actor: Actor, endpoint_id: int) -> int:
        """Deactivate an endpoint; its undelivered messages are cancelled (returns how many)."""
        with self.ctx.unit_of_work(actor, "webhook.remove",
                                   perm=Perm.INTEGRATIONS_MANAGE) as uow:
            s = uow.session
            row = self._active(s, endpoint_id)
            row.active, row.removed_at = False, uow.now
            cancelled = 0
            for msg in s.execute(select(OutboxMessage).where(
                    OutboxMessage.endpoint_id == row.id,
                    OutboxMessage.status == "pending")).scalars():
                msg.status, msg.last_error = "cancelled", "the endpoint was removed"
                cancelled += 1
            uow.audit(detail=f"endpoint {row.id}; {cancelled} pending cancelled")
            return cancelled

    def test(self, actor: Actor, endpoint_id: int) -> int:
        """Queue a ``webhook.test`` ping to one endpoint; returns the outbox message id."""
        with self.ctx.unit_of_work(actor, "webhook.test",
                                   perm=Perm.INTEGRATIONS_MANAGE) as uow:
            s, now = uow.session, uow.now
            row = self._active(s, endpoint_id)
            event_id = f"evt_{uuid.uuid4().hex}"
            msg = OutboxMessage(patient_id=None, kind=TEST_EVENT, channel="webhook",
                                endpoint_id=row.id, dedupe_key=f"wh-{row.id}-test-{event_id}",
                                payload=_body(event_id, TEST_EVENT, now, {"endpoint_id": row.id}),
                                due_at=now, status="pending", attempts=0, created_at=now)
            s.add(msg)
            s.flush()
            uow.audit(detail=f"endpoint {row.id} message {msg.id}")
            return msg.id

    # --- the operator --------------------------------------------------------------------------
    def encrypt_secrets(self, previous_secret: str | None = None) -> EncryptReport:
        """Seal the signing secrets of the active endpoints under the current instance secret:
        a plaintext one is encrypted, one sealed under ``previous_secret`` re-encrypted (after
        the instance secret changed). Command line only (``ketaclinic user encrypt-secrets``,
        the SYSTEM actor); an endpoint whose secret does not decrypt is listed, not changed."""
        current = self.ctx.settings.secret_key.get_secret_value()
        box = SecretBox.for_secrets(current, previous_secret) if previous_secret else self.box
        report = EncryptReport()
        with self.ctx.unit_of_work(SYSTEM, "webhook.secrets.encrypt") as uow:
            for row in uow.session.execute(select(WebhookEndpoint).where(
                    WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id)).scalars():
                row.secret = report.reseal(box, row.secret, secret_context(row.id), str(row.id))
            uow.audit(detail=report.describe())
        return report

    # --- the outbox ----------------------------------------------------------------------------
    def queue_rems_deadlines(self) -> int:
        """Queue ``rems.deadline`` for unsubmitted forms approaching or past their deadline."""
        queued = 0
        with self.ctx.unit_of_work(SYSTEM, "webhook.queue") as uow:
            s, now, today = uow.session, uow.now, uow.today
            wanted = any("rems.deadline" in e.split(",") for e in s.execute(
                select(WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))).scalars())
            if not wanted:
                return 0
            forms = s.execute(select(RemsFormRow).where(RemsFormRow.status == "due")
                              .order_by(RemsFormRow.due_on, RemsFormRow.id)).scalars().all()
            for form in forms:
                state = deadline_state(form.due_on, today)
                if state is None:
                    continue
                queued += queue_event(s, "rems.deadline", form.patient_id, {
                    "form_id": form.id, "session_id": form.session_id,
                    "patient_id": form.patient_id, "state": state, "link": "/rems"},
                    f"rems-{form.id}-{state}", now)
            if queued:
                uow.audit(detail=f"{queued} rems.deadline event(s) queued")
        return queued

    def deliver(self, message_id: int,
                post: Callable[..., object] = post_json) -> bool | None:
        """Post one due webhook message and record the outcome: True when delivered, False
        when the attempt failed, None when there was nothing to send (another run took it)."""
        error: Exception | None = None
        with self.ctx.unit_of_work(SYSTEM, "webhook.send") as uow:
            s = uow.session
            msg = s.get(OutboxMessage, message_id)
            if msg is None or msg.status != "pending" or msg.channel != "webhook":
                return None
            endpoint = s.get(WebhookEndpoint, msg.endpoint_id)
            body, kind = msg.payload.encode("utf-8"), msg.kind
            event_id = str(json.loads(msg.payload)["id"])
            url, secret = "", ""
            if endpoint is None or not endpoint.active:
                error = PermanentFailure("the endpoint was removed")
            else:
                url = endpoint.url
                try:
                    secret = self.box.decrypt(endpoint.secret, secret_context(endpoint.id))
                except SecretUnreadable as exc:
                    error = PermanentFailure(f"the signing secret is unreadable: {exc}")
        if error is None:  # signed as it is sent, not when the unit read the message
            stamp = int(self.ctx.clock().replace(tzinfo=dt.UTC).timestamp())
            try:
                post(url, body, {SIGNATURE_HEADER: signature(secret, stamp, body),
                                 EVENT_ID_HEADER: event_id, EVENT_TYPE_HEADER: kind},
                     self.ctx.settings)
            except DeliveryError as exc:
                error = exc
        self._record(message_id, error)
        return error is None

    def _record(self, message_id: int, error: Exception | None) -> None:
        with self.ctx.unit_of_work(SYSTEM, "webhook.send") as uow:
            s, now = uow.session, uow.now
            msg = s.get(OutboxMessage, message_id, with_for_update=True)
            if msg is None or msg.status != "pending":
                return
            msg.attempts += 1
            detail = f"message {msg.id} {msg.kind} to endpoint {msg.endpoint_id}"
            if error is None:
                msg.status, msg.sent_at, msg.last_error = "sent", now, ""
            else:
                # Our errors name a status or a failure kind, never a body or a patient.
                msg.last_error = f"{type(error).__name__}: {str(error)[:250]}"
                if isinstance(error, PermanentFailure) or msg.attempts >= MAX_ATTEMPTS:
                    msg.status = "failed"
                else:
                    msg.due_at = now + retry_delay(msg.attempts)
                detail += f" attempt {msg.attempts}: {msg.last_error}"
            uow.audit(outcome="ok" if error is None else "failed", patient_id=msg.patient_id,
                      detail=detail[:500])

    def message_state(self, message_id: int) -> tuple[str, str]:
        """(status, last error) of one outbox message (the operator's command line)."""
        with self.ctx.unit_of_work(SYSTEM, "webhook.message") as uow:
            msg = uow.session.get(OutboxMessage, message_id)
            if msg is None:
                raise NotFound("no such outbox message")
            return msg.status, msg.last_error

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _active(s: Session, endpoint_id: int) -> WebhookEndpoint:
        row = s.get(WebhookEndpoint, endpoint_id)
        if row is None or not row.active:
            raise NotFound("no such webhook endpoint")
        return row

    @staticmethod
    def _info(s: Session, row: WebhookEndpoint) -> EndpointInfo:
        statuses = list(s.execute(select(OutboxMessage.status).where(
            OutboxMessage.endpoint_id == row.id)).scalars())
        return EndpointInfo(row.id, row.url, tuple(row.events.split(",")), row.description,
                            row.created_at, statuses.count("pending"), statuses.count("failed"))
