"""The message outbox: self-report links and scheduled reminders, delivered by an adapter.

Messages wait in ``outbox_messages``. ``send_due`` mints each link's token at delivery time (so
no usable token sits in the database) and hands the message to the channel's adapter:

* ``console`` prints one line naming the message and link ids only (no patient data, no token);
* ``email`` sends through SMTP (``KETACLINIC_SMTP_*`` settings) to the patient's address;
* ``sms`` posts to the SMS gateway (``KETACLINIC_SMS_*``, ``services/mbc/sms.py``) for the patient's
  phone in international form;
* ``webhook`` rows are signed event notifications (``services/interop/webhooks.py``): each run also
  scans for REMS deadlines to notify, and a failed webhook waits longer before each retry.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ketaclinic.clinical.course_scores import NOT_DOSED
from ketaclinic.config import Settings
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.context import Context
from ketaclinic.services.interop.outbound import DeliveryError, PermanentFailure
from ketaclinic.services.interop.webhooks import WebhookService
from ketaclinic.services.mbc.inputs import parse_days
from ketaclinic.services.mbc.self_report import new_token
from ketaclinic.services.mbc.sms import SmsAdapter, e164, sms_text
from ketaclinic.store.tables_mbc import OutboxMessage, ReminderSchedule, SelfReportLink
from ketaclinic.store.tables_treatment import TreatmentSession

MAX_ATTEMPTS = 5
CATCH_UP = dt.timedelta(days=2)  # reminders more than 2 days overdue are not queued


@dataclass(frozen=True)
class Delivery:
    message_id: int
    link_id: int
    recipient: str
    subject: str
    body: str


class Adapter(Protocol):
    def deliver(self, message: Delivery) -> None: ...


class ConsoleAdapter:
    """Prints a line without patient data: only the message and link ids."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.echo = echo

    def deliver(self, message: Delivery) -> None:
        self.echo(f"outbox: message {message.message_id} for self-report link "
                  f"{message.link_id} (console adapter; not sent to anyone)")


class SmtpAdapter:
    def __init__(self, settings: Settings, smtp: Callable[..., smtplib.SMTP] = smtplib.SMTP):
        self.settings = settings
        self.smtp = smtp

    def deliver(self, message: Delivery) -> None:
        cfg = self.settings
        if not cfg.smtp_host or not cfg.smtp_from:
            raise RuntimeError("SMTP is not configured (KETACLINIC_SMTP_HOST and _FROM)")
        if not message.recipient:
            raise RuntimeError("the patient has no e-mail address")
        mail = EmailMessage()
        mail["From"] = cfg.smtp_from
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        with self.smtp(cfg.smtp_host, cfg.smtp_port, timeout=30) as conn:
            if cfg.smtp_starttls:
                conn.starttls()
            if cfg.smtp_username:
                password = cfg.smtp_password.get_secret_value() if cfg.smtp_password else ""
                conn.login(cfg.smtp_username, password)
            conn.send_message(mail)


def default_adapters(settings: Settings, echo: Callable[[str], None] = print
                     ) -> dict[str, Adapter]:
    return {"console": ConsoleAdapter(echo), "email": SmtpAdapter(settings),
            "sms": SmsAdapter(settings)}


@dataclass(frozen=True)
class SendReport:
    queued: int
    sent: int
    failed: int
    events: int = 0  # webhook events the run queued (REMS deadlines)


class OutboxService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def base_url(self) -> str:
        cfg = self.ctx.settings
        return (cfg.public_base_url or f"http://{cfg.host}:{cfg.port}").rstrip("/")

    def queue_reminders(self) -> int:
        """Queue reminders that fell due (dose day + offset) and are not yet in the outbox."""
        queued = 0
        with self.ctx.unit_of_work(SYSTEM, "outbox.queue") as uow:
            s, now = uow.session, uow.now
            schedules = list(s.execute(select(ReminderSchedule).where(
                ReminderSchedule.active.is_(True))).scalars())
            for sch in schedules:
                sessions = s.execute(select(TreatmentSession).where(
                    TreatmentSession.course_id == sch.course_id,
                    TreatmentSession.dose_started_at.is_not(None),
                    TreatmentSession.status.not_in(NOT_DOSED))).scalars()
                for ts in sessions:
                    started = ts.dose_started_at
                    if started is None:  # excluded by the query; the column is nullable
                        continue
                    for offset in parse_days(sch.days_after_dose):
                        due = started + dt.timedelta(days=offset)
                        if not (now - CATCH_UP <= due <= now):
                            continue
                        key = f"rem-{sch.id}-{ts.id}-{offset}"
                        if s.execute(select(OutboxMessage.id).where(
                                OutboxMessage.dedupe_key == key)).first():
                            continue
                        s.add(OutboxMessage(patient_id=sch.patient_id, kind="reminder",
                                            channel=sch.channel, schedule_id=sch.id,
                                            session_id=ts.id, day_offset=offset,
                                            dedupe_key=key, due_at=due, status="pending",
                                            attempts=0, created_at=now))
                        queued += 1
            if queued:
                uow.audit(detail=f"{queued} reminder(s) queued")
        return queued

    def send_due(self, adapters: dict[str, Adapter] | None = None) -> SendReport:
        """Queue due reminders, then deliver every pending message whose time has come."""
        adapters = adapters or default_adapters(self.ctx.settings)
        queued = self.queue_reminders()
        webhooks = WebhookService(self.ctx)
        events = webhooks.queue_rems_deadlines()
        with self.ctx.unit_of_work(SYSTEM, "outbox.send") as uow:
            due = list(uow.session.execute(select(OutboxMessage.id, OutboxMessage.channel).where(
                OutboxMessage.status == "pending", OutboxMessage.due_at <= uow.now)
                .order_by(OutboxMessage.due_at, OutboxMessage.id)).all())
        sent = failed = 0
        for message_id, channel in due:
            if channel == "webhook":
                delivered = webhooks.deliver(message_id)
                sent += delivered is True
                failed += delivered is False
                continue
            try:
                self._send_one(message_id, adapters)
                sent += 1
            except (OSError, RuntimeError, smtplib.SMTPException, IntegrityError) as exc:
                self._record_failure(message_id, exc)
                failed += 1
        return SendReport(queued, sent, failed, events)

    def _send_one(self, message_id: int, adapters: dict[str, Adapter]) -> None:
        with self.ctx.unit_of_work(SYSTEM, "outbox.send") as uow:
            s, now = uow.session, uow.now
            msg = s.get(OutboxMessage, message_id, with_for_update=True)
            if msg is None or msg.status != "pending":
                return
            if msg.patient_id is None:
                # Only webhook deliveries (sent elsewhere) may lack a patient: a failure of
                # this message, not of the whole run.
                raise RuntimeError(f"message {msg.id} on channel {msg.channel} has no patient")
            patient = uow.patients.get(msg.patient_id)
            link = self._link_for(s, msg, now)
            token, digest = new_token()
            link.token_hash = digest
            link.expires_at = now + dt.timedelta(hours=self.ctx.settings.self_report_link_hours)
            s.flush()
            adapter = adapters.get(msg.channel)
            if adapter is None:
                raise RuntimeError(f"no adapter for channel {msg.channel}")
            hours = self.ctx.settings.self_report_link_hours
            url = f"{self.base_url()}/r/{token}"
            recipient = {"email": patient.email, "sms": e164(patient.phone) or ""}
            body = sms_text(self.ctx.settings.clinic_name, url, hours) \
                if msg.channel == "sms" else (
                f"Please answer a short questionnaire for your care team:\n\n"
                f"{url}\n\nThe link works once and expires in "
                f"{hours} hours. If you are in crisis, call your local emergency number now.")
            adapter.deliver(Delivery(
                msg.id, link.id, recipient.get(msg.channel, ""),
                f"A short questionnaire from {self.ctx.settings.clinic_name}", body))
            msg.status, msg.sent_at, msg.link_id = "sent", now, link.id
            msg.attempts += 1
            uow.audit(patient_id=msg.patient_id,
                      detail=f"message {msg.id} link {link.id} via {msg.channel}")

    def _link_for(self, s, msg: OutboxMessage, now: dt.datetime) -> SelfReportLink:
        if msg.link_id is not None:
            link = s.get(SelfReportLink, msg.link_id)
            if link.used_at is not None:
                raise RuntimeError("the link was already used")
            return link
        sch = s.get(ReminderSchedule, msg.schedule_id)
        link = SelfReportLink(token_hash=new_token()[1], patient_id=msg.patient_id,
                              course_id=sch.course_id, instrument_id=sch.instrument_id,
                              delivery=msg.channel, created_by=sch.created_by,
                              created_at=now, expires_at=now, failed_attempts=0)
        s.add(link)
        s.flush()
        return link

    def _record_failure(self, message_id: int, exc: Exception) -> None:
        with self.ctx.unit_of_work(SYSTEM, "outbox.send") as uow:
            msg = uow.session.get(OutboxMessage, message_id)
            if msg is None:  # nothing left to mark
                return
            msg.attempts += 1
            # Our own RuntimeErrors (and the outbound ones: a status or a failure kind, never
            # a body) carry no patient data; others (SMTP) may name the address.
            ours = type(exc) is RuntimeError or isinstance(exc, DeliveryError)
            detail = f": {str(exc)[:200]}" if ours else ""
            msg.last_error = f"{type(exc).__name__}{detail}"
            if msg.attempts >= MAX_ATTEMPTS or isinstance(exc, PermanentFailure):
                msg.status = "failed"
            uow.audit(outcome="failed", patient_id=msg.patient_id, detail=f"message {msg.id}")
