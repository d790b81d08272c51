"""Chairs and bookings: the calendar, booking with explained conflicts, reschedule, cancel, iCal."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical import scheduling as sched
from ketaclinic.clinical.ics import to_ics
from ketaclinic.clinical.rules import Finding, Level
from ketaclinic.schemas_chair import BookingChange, BookingCreate, ChairCreate, SessionCancel
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.common import (
    amend,
    changing_session,
    clinical,
    scheduling_rules,
    session_unit,
)
from ketaclinic.services.chair.inputs import ChairUpdate
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from ketaclinic.services.numbers import is_whole
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_treatment import Chair, TreatmentSession

DEMO_HOURS = "0-4 08:00-18:00; 5 09:00-13:00"
#: "0-4 08:00-18:00": digits 0-9 only ("٠-٤" is not "0-4")
_WINDOW = re.compile(r"\s*([0-9])(?:-([0-9]))?\s+([0-9]{2}:[0-9]{2})-([0-9]{2}:[0-9]{2})\s*")
NOT_OCCUPYING = ("planned", "cancelled", "missed")
PLANNED_AT = dt.time(8)  # an unbooked session's place on the calendar (clinic time)


class BookingRefused(ServiceError):
    """The booking does not fit; ``findings`` explain why. Nothing was saved."""

    status = 409

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass(frozen=True)
class ChairInfo:
    id: int
    name: str
    active: bool
    hours_text: str


@dataclass(frozen=True)
class CalendarEntry:
    session_id: int
    patient_id: int
    patient_name: str
    chair_id: int | None
    treatment: str
    status: str
    start: dt.datetime
    end: dt.datetime


def parse_opening_hours(text: str) -> dict[str, list[list[str]]]:
    """"0-4 08:00-18:00; 5 09:00-13:00" -> {"0": [["08:00", "18:00"]], ...} (0 = Monday)."""
    out: dict[str, list[list[str]]] = {}
    for part in (p for p in text.split(";") if p.strip()):
        m = _WINDOW.fullmatch(part)
        if not m:
            raise InvalidInput(f"opening hours: {part.strip()!r} is not like '0-4 08:00-18:00'")
        first, last, opens, closes = int(m[1]), int(m[2] or m[1]), m[3], m[4]
        try:
            if dt.time.fromisoformat(opens) >= dt.time.fromisoformat(closes):
                raise InvalidInput(f"opening hours: {opens} is not before {closes}")
        except ValueError as exc:
            raise InvalidInput(f"opening hours: bad time in {part.strip()!r}") from exc
        if not 0 <= first <= last <= 6:
            raise InvalidInput("opening hours: weekdays are 0 (Monday) to 6 (Sunday)")
        for day in range(first, last + 1):
            out.setdefault(str(day), []).append([opens, closes])
    return out


def hours_text(raw: str) -> str:
    """The compact form that :func:`parse_opening_hours` reads ("0-4 08:00-18:00; 5 …")."""
    data = json.loads(raw or "{}")
    runs: list[list] = []  # [first day, last day, windows]
    for day in sorted(int(d) for d in data):
        windows = data[str(day)]
        if runs and runs[-1][1] == day - 1 and runs[-1][2] == windows:
            runs[-1][1] = day
        else:
            runs.append([day, day, windows])
    return "; ".join(f"{a}{'' if a == b else f'-{b}'} {o}-{c}" for a, b, w in runs
                     for o, c in w)


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hours_label(compact: str) -> str:
    """Opening hours for people: "0-4 08:00-18:00; 5 09:00-13:00" → "Mon–Fri 08:00–18:00;
    Sat 09:00–13:00" (the compact form stays what the admin form reads and writes)."""
    parts = []
    for part in (p.strip() for p in (compact or "").split(";") if p.strip()):
        days, _, window = part.partition(" ")
        first, _, last = days.partition("-")
        if not (is_whole(first) and (not last or is_whole(last))):
            return compact  # not the compact form: show it as it is
        name = WEEKDAYS[int(first) % 7] + (f"–{WEEKDAYS[int(last) % 7]}" if last else "")
        parts.append(f"{name} {window.replace('-', '–')}")
    return "; ".join(parts)


def chair_domain(c: Chair) -> sched.Chair:
    data = json.loads(c.opening_hours_json or "{}")
    hours = tuple(sched.OpeningHours(int(d), dt.time.fromisoformat(o), dt.time.fromisoformat(cl))
                  for d, windows in data.items() for o, cl in windows)
    return sched.Chair(str(c.id), c.name, hours)


def session_minutes(treatment: str) -> int:
    return clinical(lambda: sched.session_length_for(treatment, scheduling_rules())).total_min


def booking_of(r: TreatmentSession) -> sched.Booking:
    """The stored booking as the core's value, with aware UTC instants."""
    start = r.scheduled_start
    assert start is not None
    minutes = r.scheduled_minutes or session_minutes(r.treatment)
    return sched.Booking(str(r.id), str(r.patient_id), str(r.chair_id), r.treatment,
                         _utc(start), _utc(start + dt.timedelta(minutes=minutes)),
                         sched.CANCELLED if r.status == "cancelled" else sched.BOOKED,
                         change_reason=r.cancel_reason)


def _utc(stored: dt.datetime) -> dt.datetime:
    return stored.replace(tzinfo=dt.UTC)


class ScheduleService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- chairs -----------------------------------------------------------------------
    def chairs(self, actor: Actor, *, include_inactive: bool = False) -> list[ChairInfo]:
        with self.ctx.unit_of_work(actor, "chair.list", perm=Perm.PATIENT_READ) as uow:
            stmt = select(Chair).order_by(Chair.name)
            if not include_inactive:
                stmt = stmt.where(Chair.active.is_(True))
            return [ChairInfo(c.id, c.name, c.active, hours_text(c.opening_hours_json))
                    for c in uow.session.execute(stmt).scalars()]

    def create_chair(self, actor: Actor, data: ChairCreate) -> ChairInfo:
        work = self.ctx.unit_of_work(actor, "chair.create", perm=Perm.RULES_MANAGE)
        hours = parse_opening_hours(data.opening_hours)
        with work:
            s = work.session
            if s.execute(select(Chair.id).where(Chair.name == data.name)).first():
                raise Conflict(f"a chair named {data.name!r} exists")
            chair = Chair(name=data.name, active=True, opening_hours_json=json.dumps(hours))
            s.add(chair)
            s.flush()
            work.audit(detail=f"chair {chair.id}")
            return ChairInfo(chair.id, chair.name, True, hours_text(chair.opening_hours_json))

    def update_chair(self, actor: Actor, chair_id: int, data: ChairUpdate) -> ChairInfo:
        work = self.ctx.unit_of_work(actor, "chair.update", perm=Perm.RULES_MANAGE)
        hours = parse_opening_hours(data.opening_hours)
        with work:
            chair = work.session.get(Chair, chair_id)
            if chair is None:
                raise NotFound("no such chair")
            chair.opening_hours_json, chair.active = json.dumps(hours), data.active
            work.audit(detail=f"chair {chair_id} active={data.active}")
            return ChairInfo(chair.id, chair.name, data.active,
                             hours_text(chair.opening_hours_json))

    def ensure_demo_chairs(self, s: Session) -> list[Chair]:
        existing = s.execute(select(Chair).order_by(Chair.id)).scalars().all()
        if existing:
            return list(existing)
        hours = json.dumps(parse_opening_hours(DEMO_HOURS))
        chairs = [Chair(name=f"Chair {n}", active=True, opening_hours_json=hours)
                  for n in range(1, 5)]
        s.add_all(chairs)
        s.flush()
        return chairs

    # --- calendar ---------------------------------------------------------------------
    def calendar(self, actor: Actor, first: dt.date, days: int) -> tuple[
            list[ChairInfo], list[CalendarEntry], list[CalendarEntry]]:
        """Booked sessions on ``days`` clinic days from ``first`` (local midnight to local
        midnight, so a day across a daylight-saving change has 23 or 25 hours) and planned
        sessions to book."""
        work = self.ctx.unit_of_work(actor, "schedule.view", perm=Perm.PATIENT_READ)
        days = max(1, min(days, 14))
        start, end = self.ctx.clinic_time.day_range(first, days)
        with work:
            s = work.session
            chairs = [ChairInfo(c.id, c.name, c.active, hours_text(c.opening_hours_json))
                      for c in s.execute(select(Chair).where(Chair.active.is_(True))
                                         .order_by(Chair.name)).scalars()]
            booked = s.execute(select(TreatmentSession, Patient).join(
                Patient, Patient.id == TreatmentSession.patient_id).where(
                TreatmentSession.scheduled_start >= start, TreatmentSession.scheduled_start < end,
                TreatmentSession.status != "cancelled").order_by(
                TreatmentSession.scheduled_start)).all()
            planned = s.execute(select(TreatmentSession, Patient).join(
                Patient, Patient.id == TreatmentSession.patient_id).where(
                TreatmentSession.status == "planned",
                TreatmentSession.planned_date >= first - dt.timedelta(days=7),
                TreatmentSession.planned_date < first + dt.timedelta(days=days + 7)).order_by(
                TreatmentSession.planned_date, TreatmentSession.id).limit(200)).all()
            work.audit_list([p.id for _r, p in [*booked, *planned]],
                            detail=f"{first.isoformat()} +{days} d")
            return chairs, [self._entry(r, p) for r, p in booked], [
                self._entry(r, p) for r, p in planned]

    def _entry(self, r: TreatmentSession, p: Patient) -> CalendarEntry:
        start = r.scheduled_start or self._planned_start(r.planned_date)
        minutes = r.scheduled_minutes or session_minutes(r.treatment)
        return CalendarEntry(r.id, p.id, f"{p.family_name}, {p.given_name}", r.chair_id,
                             r.treatment, r.status, start, start + dt.timedelta(minutes=minutes))

    def _when(self, start: dt.datetime | None) -> str:
        """A booking's start as amendments record it: clinic time with its zone."""
        return self.ctx.clinic_time.format(start, "%Y-%m-%d %H:%M", zone=True)

    def _planned_start(self, day: dt.date) -> dt.datetime:
        """Where an unbooked session sits on the calendar: 08:00 clinic time on its day."""
        return self.ctx.clinic_time.at(day, PLANNED_AT)

    # --- booking ----------------------------------------------------------------------
    def _check(self, s: Session, row: TreatmentSession, chair_id: int, start: dt.datetime,
               minutes: int) -> list[Finding]:
        chairs = [chair_domain(c) for c in s.execute(
            select(Chair).where(Chair.active.is_(True))).scalars()]
        near = s.execute(select(TreatmentSession).where(
            TreatmentSession.scheduled_start >= start - dt.timedelta(days=4),
            TreatmentSession.scheduled_start <= start + dt.timedelta(days=4),
            TreatmentSession.status.notin_(NOT_OCCUPYING),
            TreatmentSession.id != row.id)).scalars().all()
        new = sched.Booking(str(row.id), str(row.patient_id), str(chair_id), row.treatment,
                            _utc(start), _utc(start + dt.timedelta(minutes=minutes)))
        return clinical(lambda: sched.check_booking([booking_of(r) for r in near], new, chairs,
                                                    scheduling_rules(), self.ctx.clinic_time.zone))

    def _place(self, s: Session, row: TreatmentSession, chair_id: int,
               start: dt.datetime, minutes: int | None, override: str) -> list[Finding]:
        if start.second or start.microsecond:
            start = start.replace(second=0, microsecond=0)
        minutes = minutes or session_minutes(row.treatment)
        findings = self._check(s, row, chair_id, start, minutes)
        hard = [f for f in findings if f.level is Level.HARD]
        soft = [f for f in findings if f.level is Level.SOFT]
        if hard:
            raise BookingRefused("this booking does not fit: " + "; ".join(
                f.message for f in hard) + ". Nothing was saved.", findings)
        if soft and not override.strip():
            raise BookingRefused("this booking needs an override reason: " + "; ".join(
                f.message for f in soft) + ". Nothing was saved.", findings)
        row.chair_id, row.scheduled_start, row.scheduled_minutes = chair_id, start, minutes
        return findings

    def book(self, actor: Actor, session_id: int, data: BookingCreate) -> list[Finding]:
        """Book a planned session into a chair slot; conflicts raise BookingRefused."""
        work, patient_id = session_unit(self.ctx, actor, session_id, "session.book")
        now = work.now
        try:
            with changing_session(work, session_id, data.version) as row:
                s = work.session
                if row.status != "planned":
                    raise InvalidInput(f"only a planned session can be booked (this one is "
                                       f"{row.status}); reschedule it instead")
                findings = self._place(s, row, data.chair_id, data.start, data.minutes,
                                       data.override_reason)
                amend(s, actor, now, "session", row.id, patient_id, "booking", "",
                      f"chair {data.chair_id} {self._when(row.scheduled_start)}",
                      reason=data.override_reason)
                row.status, row.updated_at = "booked", now
                s.flush()
                work.audit(patient_id=patient_id,
                           detail=f"session {session_id}; {len(findings)} findings")
                return findings
        except BookingRefused as exc:
            work.record_failure("refused", patient_id=patient_id,
                                detail=f"session {session_id}: {len(exc.findings)} findings")
            raise

    def reschedule(self, actor: Actor, session_id: int, data: BookingChange) -> list[Finding]:
        work, patient_id = session_unit(self.ctx, actor, session_id, "session.reschedule")
        self._reason("reschedule", data.reason_code, data.reason)
        now = work.now
        with changing_session(work, session_id, data.version) as row:
            s = work.session
            if row.status not in ("planned", "booked"):
                raise InvalidInput(f"a {row.status} session cannot be rescheduled")
            old = (f"chair {row.chair_id} {self._when(row.scheduled_start)}"
                   if row.scheduled_start else f"planned {row.planned_date}")
            chair_id = data.chair_id or row.chair_id
            if chair_id is None:
                raise InvalidInput("choose a chair")
            findings = self._place(s, row, chair_id, data.start, row.scheduled_minutes,
                                   data.override_reason)
            amend(s, actor, now, "session", row.id, patient_id, "booking", old,
                  f"chair {chair_id} {self._when(row.scheduled_start)}", data.reason_code,
                  data.reason)
            row.status, row.updated_at = "booked", now
            row.planned_date = self.ctx.clinic_time.local_date(data.start)
            s.flush()
            work.audit(patient_id=patient_id, detail=f"session {session_id}: {data.reason_code}")
            return findings

    def cancel(self, actor: Actor, session_id: int, data: SessionCancel) -> None:
        work, patient_id = session_unit(self.ctx, actor, session_id, "session.cancel")
        self._reason("cancel", data.reason_code, data.reason)
        now = work.now
        with changing_session(work, session_id, data.version) as row:
            s = work.session
            if row.status not in ("planned", "booked", "checked-in"):
                raise InvalidInput(f"a {row.status} session cannot be cancelled")
            amend(s, actor, now, "session", row.id, patient_id, "status", row.status,
                  "cancelled", data.reason_code, data.reason)
            row.status, row.cancel_reason, row.updated_at = (
                "cancelled", f"{data.reason_code}: {data.reason}"[:300], now)
            s.flush()
            work.audit(patient_id=patient_id, detail=f"session {session_id}: {data.reason_code}")

    def _reason(self, action: str, code: str, text: str) -> None:
        problems = clinical(lambda: sched.validate_change_reason(action, code, text,
                                                                 scheduling_rules()))
        if problems:
            raise InvalidInput("; ".join(f.message for f in problems))

    # --- iCalendar --------------------------------------------------------------------
    def patient_ics(self, actor: Actor, patient_id: int) -> str:
        work = self.ctx.unit_of_work(actor, "schedule.ics", perm=Perm.PATIENT_READ,
                                     patient_id=patient_id)
        now = work.now
        with work:
            work.patients.get(patient_id)
            rows = work.session.execute(select(TreatmentSession).where(
                TreatmentSession.patient_id == patient_id,
                TreatmentSession.scheduled_start.is_not(None)).order_by(
                TreatmentSession.scheduled_start)).scalars().all()
            bookings = [replace(booking_of(r), change_reason="") for r in rows]
            work.audit(patient_id=patient_id, detail=f"{len(bookings)} events")
        return to_ics(bookings, _utc(now), uid_domain="ketaclinic.invalid",
                      location=self.ctx.settings.clinic_name)
