"""The nurse's start page: today's chairs, who sits where, how far each session is and what is
due now. One audited read of the day (a handful of queries, none per session)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from ketaclinic.clinical.monitoring import Due, assessments_due, is_respiratory, vitals_due
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.common import session_rules
from ketaclinic.services.chair.session import RATING_LABEL, start_of
from ketaclinic.services.context import Context
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_chair import SessionAlert, VitalSignRow
from ketaclinic.store.tables_treatment import Assessment, Chair, TreatmentSession

#: where a session is in the day, in the words the chair uses
STAGE = {"booked": "booked, not arrived", "checked-in": "checked in, before the dose",
         "monitoring": "dosed, in monitoring", "discharged": "discharged",
         "missed": "did not attend", "planned": "not booked"}


@dataclass(frozen=True)
class BoardAlert:
    message: str
    red: bool


@dataclass
class BoardSession:
    session_id: int
    patient_id: int
    patient_name: str
    mrn: str
    treatment: str
    number: int
    status: str
    stage: str
    start: dt.datetime | None
    dose_start: dt.datetime | None
    minutes_since_dose: int | None
    discharged_at: dt.datetime | None
    due: list[Due] = field(default_factory=list)
    alerts: list[BoardAlert] = field(default_factory=list)


@dataclass
class BoardChair:
    id: int
    name: str
    open_today: bool
    sessions: list[BoardSession] = field(default_factory=list)


@dataclass(frozen=True)
class Board:
    day: dt.date
    is_today: bool
    today_closed: bool
    chairs: list[BoardChair]

    @property
    def session_count(self) -> int:
        return sum(len(c.sessions) for c in self.chairs)


def _windows(hours_json: str, day: dt.date) -> list[tuple[dt.time, dt.time]]:
    raw = json.loads(hours_json or "{}").get(str(day.weekday()), [])
    return [(dt.time.fromisoformat(a), dt.time.fromisoformat(b)) for a, b in raw]


class ChairBoardService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def board(self, actor: Actor) -> Board:
        """Today's chairs; tomorrow's when every chair is closed for the rest of today."""
        work = self.ctx.unit_of_work(actor, "chair.board", perm=Perm.PATIENT_READ)
        now, today = work.now, work.today
        local_now = self.ctx.clinic_time.to_local(now).time()
        with work:
            s = work.session
            chairs = list(s.execute(select(Chair).where(Chair.active.is_(True))
                                    .order_by(Chair.name)).scalars())
            open_today = any(local_now < end for c in chairs
                             for _, end in _windows(c.opening_hours_json, today))
            day = today if open_today else today + dt.timedelta(days=1)
            board = self._day(s, chairs, day, now)
            work.audit_list([x.patient_id for c in board.chairs for x in c.sessions],
                            detail=f"{day.isoformat()}: {board.session_count} sessions")
            return Board(day, day == today, not open_today, board.chairs)

    def _day(self, s, chairs: list[Chair], day: dt.date, now: dt.datetime) -> Board:
        start, end = self.ctx.clinic_time.day_range(day, 1)
        rows = s.execute(select(TreatmentSession, Patient).join(
            Patient, Patient.id == TreatmentSession.patient_id).where(
            TreatmentSession.scheduled_start >= start, TreatmentSession.scheduled_start < end,
            TreatmentSession.status != "cancelled").order_by(
            TreatmentSession.scheduled_start, TreatmentSession.id)).all()
        ids = [r.id for r, _ in rows]
        vitals: dict[int, list[dt.datetime]] = defaultdict(list)
        rated: dict[int, list[tuple[str, dt.datetime]]] = defaultdict(list)
        alerts: dict[int, list[BoardAlert]] = defaultdict(list)
        if ids:
            for sid, at in s.execute(select(VitalSignRow.session_id, VitalSignRow.taken_at)
                                     .where(VitalSignRow.session_id.in_(ids))):
                vitals[sid].append(at)
            for sid, inst, at in s.execute(select(
                    Assessment.session_id, Assessment.instrument_id, Assessment.administered_at)
                    .where(Assessment.session_id.in_(ids))):
                rated[sid].append((RATING_LABEL.get(inst, inst), at))
            for a in s.execute(select(SessionAlert).where(
                    SessionAlert.session_id.in_(ids), SessionAlert.action_taken == "")
                    .order_by(SessionAlert.id)).scalars():
                alerts[a.session_id].append(BoardAlert(a.message.split(":")[0],
                                                       is_respiratory(a.rule)))
        by_chair = {c.id: BoardChair(c.id, c.name, bool(_windows(c.opening_hours_json, day)))
                    for c in chairs}
        rules = session_rules()
        for r, p in rows:
            dose_start = start_of(r)
            item = BoardSession(
                r.id, p.id, f"{p.family_name}, {p.given_name}", p.mrn, r.treatment, r.number,
                r.status, STAGE.get(r.status, r.status), r.scheduled_start, dose_start,
                int((now - dose_start).total_seconds() // 60)
                if dose_start and r.status == "monitoring" else None,
                r.discharged_at, alerts=alerts.get(r.id, []))
            if dose_start is not None and r.status == "monitoring":
                due = (vitals_due(dose_start, vitals[r.id], now, r.treatment, rules)
                       + assessments_due(dose_start, rated[r.id], now, r.treatment, rules))
                item.due = sorted((d for d in due if d.status != "missed"),
                                  key=lambda d: (d.due_at, d.label))
            if r.chair_id in by_chair:
                by_chair[r.chair_id].sessions.append(item)
        return Board(day, True, False, list(by_chair.values()))
