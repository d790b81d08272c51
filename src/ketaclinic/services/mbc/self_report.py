"""Between-visit self-report: one-time links that open a form without a login.

A link is a random token (only its SHA-256 is stored) that expires, works once, and is rate
limited per link (rejected submissions) and per client address (all requests in a window).
The form shows no patient identifier. Its form key is an HMAC of the token hash, so a form
cannot be posted without having opened the link (CSRF-safe without a session).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, ServiceError, Throttled
from ketaclinic.services.mbc.assessments import (
    PATIENT_LINK,
    AssessmentRecord,
    AssessmentService,
    check_course,
    record_of,
)
from ketaclinic.services.mbc.inputs import parse_days
from ketaclinic.services.mbc.instruments import InstrumentCatalogue
from ketaclinic.services.mbc.sms import e164
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables_mbc import (
    OutboxMessage,
    ReminderSchedule,
    SelfReportAttempt,
    SelfReportLink,
)
from ketaclinic.store.tables_treatment import Course

CHANNELS = ("shown", "console", "email", "sms")


class LinkUnavailable(ServiceError):
    """The link is unknown, used, expired or locked; the message says which, plainly."""

    status = 410


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


@dataclass(frozen=True)
class LinkInfo:
    id: int
    patient_id: int
    instrument_id: str
    delivery: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    assessment_id: int | None


@dataclass(frozen=True)
class FormItem:
    number: int
    text: str
    required: bool
    options: list[tuple[int, str]]


@dataclass(frozen=True)
class SelfReportForm:
    instrument: str
    title: str
    instructions: str
    recall_period: str
    form_key: str
    items: list[FormItem]
    expires_at: dt.datetime


def _info(link: SelfReportLink) -> LinkInfo:
    return LinkInfo(link.id, link.patient_id, link.instrument_id, link.delivery, link.created_at,
                    link.expires_at, link.used_at, link.assessment_id)


def _check_contact(field: str, channel: str, patient: Any) -> None:
    if channel == "email" and not patient.email:
        raise InvalidInput(f"{field}: the patient has no e-mail address on record")
    if channel == "sms" and e164(patient.phone) is None:
        raise InvalidInput(f"{field}: the patient has no mobile number in international form "
                           "(+ country code and number, e.g. +15550102030)")


class SelfReportService:
    def __init__(self, ctx: Context, catalogue: InstrumentCatalogue,
                 assessments: AssessmentService) -> None:
        self.ctx = ctx
        self.catalogue = catalogue
        self.assessments = assessments

    # --- clinician side ----------------------------------------------------------------------
    def create_link(self, actor: Actor, patient_id: int, instrument_id: str, *,
                    course_id: int | None = None, delivery: str = "shown",
                    ) -> tuple[LinkInfo, str | None]:
        """Create a link; returns (link, token) — the token only when it is to be shown now.

        With delivery "console" or "email" the link goes to the outbox; its token is minted
        when the message is sent (``ketaclinic outbox send``) and never shown to staff.
        """
        work = self.ctx.unit_of_work(actor, "self_report.link_create", perm=Perm.CLINICAL_WRITE,
                                     patient_id=patient_id)
        if delivery not in CHANNELS:
            raise InvalidInput(f"delivery: must be one of {', '.join(CHANNELS)}")
        self._check_channel("delivery", delivery)
        with work as uow:
            s, now = uow.session, uow.now
            patient = uow.patients.get(patient_id)
            _check_contact("delivery", delivery, patient)
            self._check_instrument(s, instrument_id)
            course_id = check_course(s, patient_id, course_id, None)
            token, digest = new_token()
            link = SelfReportLink(
                token_hash=digest, patient_id=patient_id, course_id=course_id,
                instrument_id=instrument_id, delivery=delivery, created_by=actor.user_id,
                created_at=now, expires_at=now + self._lifetime(), failed_attempts=0)
            s.add(link)
            s.flush()
            if delivery != "shown":
                s.add(OutboxMessage(
                    patient_id=patient_id, kind="self-report-link", channel=delivery,
                    link_id=link.id, dedupe_key=f"link-{link.id}", due_at=now,
                    status="pending", attempts=0, created_at=now))
            uow.audit(patient_id=patient_id,
                      detail=f"link {link.id} {instrument_id} via {delivery}")
            return _info(link), (token if delivery == "shown" else None)

    def _check_channel(self, field: str, channel: str) -> None:
        if channel == "email" and not self.ctx.settings.smtp_host:
            raise InvalidInput(f"{field}: e-mail is not configured (KETACLINIC_SMTP_HOST)")
        if channel == "sms" and not self.ctx.settings.sms_url:
            raise InvalidInput(f"{field}: SMS is not configured (KETACLINIC_SMS_URL)")

    def _lifetime(self) -> dt.timedelta:
        return dt.timedelta(hours=self.ctx.settings.self_report_link_hours)

    def _check_instrument(self, s: Session, instrument_id: str) -> None:
        allowed = self.catalogue.self_report_ids(s)
        if instrument_id not in allowed:
            raise InvalidInput(f"instrument: {instrument_id!r} cannot be self-reported here; "
                               f"choose one of {', '.join(allowed)}")

    def links_for_patient(self, s: Session, patient_id: int, limit: int = 10) -> list[LinkInfo]:
        rows = s.execute(select(SelfReportLink).where(SelfReportLink.patient_id == patient_id)
                         .order_by(SelfReportLink.id.desc()).limit(limit)).scalars()
        return [_info(r) for r in rows]

    def set_schedule(self, actor: Actor, patient_id: int, course_id: int, instrument_id: str,
                     days: str, channel: str = "console") -> int:
        """Reminders N days after each dose of a course; replaces the course's schedule."""
        work = self.ctx.unit_of_work(actor, "reminder.schedule", perm=Perm.CLINICAL_WRITE,
                                     patient_id=patient_id)
        offsets = parse_days(days)
        if channel not in CHANNELS or channel == "shown":
            raise InvalidInput("channel: must be console, email or sms")
        if channel == "sms":  # (a schedule by e-mail may be set before SMTP is)
            self._check_channel("channel", channel)
        with work as uow:
            s = uow.session
            patient = uow.patients.get(patient_id)
            _check_contact("channel", channel, patient)
            course = s.get(Course, course_id)
            if course is None or course.patient_id != patient_id:
                raise InvalidInput("course_id: no such course for this patient")
            self._check_instrument(s, instrument_id)
            for old in s.execute(select(ReminderSchedule).where(
                    ReminderSchedule.course_id == course_id,
                    ReminderSchedule.active.is_(True))).scalars():
                old.active = False
            row = ReminderSchedule(patient_id=patient_id, course_id=course_id,
                                   instrument_id=instrument_id,
                                   days_after_dose=",".join(map(str, offsets)), channel=channel,
                                   active=True, created_by=actor.user_id, created_at=uow.now)
            s.add(row)
            s.flush()
            uow.audit(patient_id=patient_id, detail=f"course {course_id} {instrument_id} days "
                                                    f"{row.days_after_dose} via {channel}")
            return row.id

    def schedules_for_patient(self, s: Session, patient_id: int) -> list[ReminderSchedule]:
        return list(s.execute(select(ReminderSchedule).where(
            ReminderSchedule.patient_id == patient_id, ReminderSchedule.active.is_(True))
            .order_by(ReminderSchedule.id)).scalars())

    # --- patient side (no login) -------------------------------------------------------------
    def open_form(self, token: str, client: str) -> SelfReportForm:
        """The form behind a link; refuses used, expired, locked or unknown links."""
        work = self.ctx.unit_of_work(PATIENT_LINK, "self_report.open")
        with work as uow:  # the attempt counts even when the link is refused
            self._throttle(uow, client)
        with work as uow:
            link = self._usable(uow, token)
            d = self.catalogue.for_display(uow.session, link.instrument_id)
            uow.audit(patient_id=link.patient_id, detail=f"link {link.id}")
            items = [FormItem(i.number, i.text or i.label, i.required and i.asked_if is None,
                              [(o.score, o.label or str(o.score)) for o in i.options]
                              or [(v, str(v)) for v in range(i.min_score, i.max_score + 1)])
                     for i in d.items]
            return SelfReportForm(d.id, d.name, d.instructions, d.recall_period,
                                  self.form_key(link.token_hash), items, link.expires_at)

    def submit(self, token: str, form_key: str, answers: Mapping[int, Any] | list[Any],
               client: str) -> AssessmentRecord:
        """Score and store a self-report (source "self-report", actor "patient-link")."""
        work = self.ctx.unit_of_work(PATIENT_LINK, "self_report.submit")
        with work as uow:  # the attempt counts even when the submission is refused
            self._throttle(uow, client)
        try:
            with work as uow:
                s = uow.session
                link = self._usable(uow, token, lock=True)
                if not hmac.compare_digest(form_key or "", self.form_key(link.token_hash)):
                    raise InvalidInput("the form is out of date; open the link again")
                scored = [i.number for i in
                          self.catalogue.for_scoring(s, link.instrument_id).items if i.scored]
                if not _any_answer(answers, scored):
                    raise EmptySubmission("Please answer the questions before sending: no "
                                          "answer was given, so nothing was sent.")
                row = self.assessments.store_scored(
                    s, PATIENT_LINK, link.patient_id, link.instrument_id, answers,
                    uow.now, course_id=link.course_id, session_id=None,
                    source="self-report")
                link.used_at = uow.now
                link.assessment_id = row.id
                return record_of(row)
        except EmptySubmission:
            raise  # a slip, not a guess at the link: the link stays usable and unlocked
        except InvalidInput:
            self._count_failure(work, token)
            raise

    def form_key(self, token_hash: str) -> str:
        key = self.ctx.settings.secret_key.get_secret_value().encode("utf-8")
        return hmac.new(key, b"self-report|" + token_hash.encode(), hashlib.sha256).hexdigest()

    def _usable(self, uow: UnitOfWork, token: str, lock: bool = False) -> SelfReportLink:
        if not token or len(token) > 100:
            raise LinkUnavailable("This link is not valid. Please ask the clinic for a new one.")
        stmt = select(SelfReportLink).where(SelfReportLink.token_hash == hash_token(token))
        link = uow.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
        now = uow.now
        if link is None:
            raise LinkUnavailable("This link is not valid. Please ask the clinic for a new one.")
        reason = None
        if link.used_at is not None:
            reason = "This questionnaire has already been sent. Thank you — nothing more to do."
        elif link.expires_at <= now:
            reason = "This link has expired. Please ask the clinic for a new one."
        elif link.failed_attempts >= self.ctx.settings.self_report_max_failures:
            reason = "This link is locked after too many attempts. Please call the clinic."
        if reason:
            raise LinkUnavailable(reason)
        return link

    @staticmethod
    def _count_failure(work: UnitOfWork, token: str) -> None:
        """A refused submission counts against its link (the submission's unit rolled back)."""
        with work as uow:
            link = uow.session.execute(select(SelfReportLink).where(
                SelfReportLink.token_hash == hash_token(token))).scalar_one_or_none()
            if link is not None:
                link.failed_attempts += 1
                uow.audit(outcome="refused", patient_id=link.patient_id,
                          detail=f"link {link.id}")

    def _throttle(self, uow: UnitOfWork, client: str) -> None:
        cfg, s, now = self.ctx.settings, uow.session, uow.now
        since = now - dt.timedelta(minutes=cfg.self_report_ip_window_minutes)
        client = (client or "unknown")[:64]
        count, oldest = s.execute(
            select(func.count(SelfReportAttempt.id), func.min(SelfReportAttempt.at)).where(
                SelfReportAttempt.client == client, SelfReportAttempt.at >= since)).one()
        if count >= cfg.self_report_ip_limit:
            wait = (oldest - since).total_seconds() if oldest else 60
            raise Throttled("Too many requests from this address; please wait a few minutes.",
                            retry_after_s=int(-(-wait // 1)))
        s.add(SelfReportAttempt(client=client, at=now, ok=True))
        s.execute(delete(SelfReportAttempt).where(
            SelfReportAttempt.at < now - dt.timedelta(days=1)))


class EmptySubmission(InvalidInput):
    """A self-report with no answer at all: refused (422), the link is not consumed."""


def _any_answer(answers: Mapping[int, Any] | list[Any] | Any, scored: list[int]) -> bool:
    """True when at least one scored item (``scored``: item numbers) has an answer (not None,
    not blank). An answer to an unscored item alone (PHQ-9 item 10) is still an empty form."""
    if isinstance(answers, Mapping):
        pairs = [(_as_int(k), v) for k, v in answers.items()]
    elif isinstance(answers, str | bytes) or not hasattr(answers, "__iter__"):
        return True  # malformed input: the scorer refuses it with its own message
    else:
        pairs = list(enumerate(answers, 1))
    return any(n in scored and v is not None and str(v).strip() != "" for n, v in pairs)


def _as_int(key: Any) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None
