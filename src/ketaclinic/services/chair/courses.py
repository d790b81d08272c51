"""Treatment courses: made from a cited template, with dated planned sessions; amended only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.courses import list_course_templates, load_course_template, plan_course
from ketaclinic.schemas_chair import CourseCreate, CourseEnd, CourseNotes
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.common import (
    amend,
    check_version,
    clinical,
    course_unit,
    load_course,
    stale_as_conflict,
)
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.store.tables_chair import ChairAmendment
from ketaclinic.store.tables_treatment import Course, TreatmentSession

OPEN_SESSION = ("planned", "booked")


@dataclass(frozen=True)
class CourseSummary:
    id: int
    patient_id: int
    template_id: str
    template_name: str
    treatment: str
    status: str
    start_date: dt.date
    end_date: dt.date | None
    stop_reason: str
    notes: str
    version: int
    sessions_total: int
    sessions_done: int


@dataclass(frozen=True)
class SessionLine:
    id: int
    number: int
    phase: str
    planned_date: dt.date
    status: str
    scheduled_start: dt.datetime | None
    chair_id: int | None
    dose_mg: object


def template_choices() -> list[tuple[str, str, str]]:
    """(id, name, treatment) of each bundled course template."""
    out = []
    for template_id in list_course_templates():
        t = load_course_template(template_id)
        out.append((t.id, t.name, t.treatment))
    return out


def _weekdays(text: str) -> tuple[int, ...] | None:
    if not text.strip():
        return None
    try:
        return tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError as exc:
        raise InvalidInput("weekdays: comma-separated numbers, 0 = Monday … 6 = Sunday") from exc


def _template_name(template_id: str) -> str:
    try:
        return load_course_template(template_id).name
    except Exception:  # noqa: BLE001 - a template removed since: show its id
        return template_id


class CourseService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, actor: Actor, patient_id: int, data: CourseCreate) -> CourseSummary:
        """Create a course from a template (prescribers) and plan its sessions."""
        work = self.ctx.unit_of_work(actor, "course.create", perm=Perm.PRESCRIBE,
                                     patient_id=patient_id)
        template = clinical(lambda: load_course_template(data.template_id))
        plan = clinical(lambda: plan_course(template, data.start_date, _weekdays(data.weekdays)))
        now = work.now
        with work:
            s = work.session
            work.patients.get(patient_id)
            course = Course(patient_id=patient_id, template_id=template.id,
                            treatment=template.treatment, status="active",
                            start_date=data.start_date, ruleset_ref=template.version,
                            psychotherapy=data.psychotherapy,
                            concurrent_antidepressant=data.concurrent_antidepressant,
                            notes=data.notes, created_by=actor.user_id, created_at=now,
                            updated_at=now)
            s.add(course)
            s.flush()
            s.add_all([TreatmentSession(
                patient_id=patient_id, course_id=course.id, number=p.number, phase=p.phase,
                treatment=template.treatment, status="planned", planned_date=p.on,
                created_by=actor.user_id, created_at=now, updated_at=now) for p in plan])
            work.audit(patient_id=patient_id,
                       detail=f"course {course.id} {template.id}, {len(plan)} sessions")
            return self._summary(s, course)

    def get(self, actor: Actor, course_id: int) -> tuple[CourseSummary, list[SessionLine],
                                                         list[dict]]:
        """The course, its sessions and its amendment history (audited view)."""
        work, patient_id = course_unit(self.ctx, actor, course_id, "course.view",
                                       Perm.PATIENT_READ)
        with work:
            s = work.session
            course = load_course(s, course_id)
            lines = [SessionLine(r.id, r.number, r.phase, r.planned_date, r.status,
                                 r.scheduled_start, r.chair_id, r.dose_mg)
                     for r in s.execute(select(TreatmentSession).where(
                         TreatmentSession.course_id == course_id).order_by(
                         TreatmentSession.number, TreatmentSession.id)).scalars()]
            history = [{"field": a.field, "old_value": a.old_value, "new_value": a.new_value,
                        "reason": a.reason, "changed_at": a.changed_at}
                       for a in s.execute(select(ChairAmendment).where(
                           ChairAmendment.entity == "course",
                           ChairAmendment.entity_id == course_id).order_by(
                           ChairAmendment.id)).scalars()]
            work.audit(patient_id=patient_id, detail=f"course {course_id}")
            return self._summary(s, course), lines, history

    def for_patient(self, actor: Actor, patient_id: int, limit: int | None = None,
                    offset: int = 0) -> Paged[CourseSummary]:
        with self.ctx.unit_of_work(actor, "course.list", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s = uow.session
            page = page_rows(s, select(Course).where(Course.patient_id == patient_id).order_by(
                Course.start_date.desc(), Course.id.desc()), limit, offset)
            uow.audit(patient_id=patient_id, detail=f"{page.total} courses")
            return page.map(lambda c: self._summary(s, c))

    def end(self, actor: Actor, course_id: int, data: CourseEnd) -> CourseSummary:
        """Stop or complete a course with a reason; its open sessions are cancelled."""
        work, patient_id = course_unit(self.ctx, actor, course_id, f"course.{data.status}",
                                       Perm.PRESCRIBE)
        now = work.now
        with stale_as_conflict(), work:
            s = work.session
            course = load_course(s, course_id)
            check_version("course", course, data.version)
            if course.status in ("stopped", "completed"):
                raise InvalidInput(f"this course is already {course.status}")
            amend(s, actor, now, "course", course.id, patient_id, "status", course.status,
                  data.status, reason=data.reason)
            course.status, course.stop_reason = data.status, data.reason
            course.end_date, course.updated_at = self.ctx.clinic_time.local_date(now), now
            open_rows = s.execute(select(TreatmentSession).where(
                TreatmentSession.course_id == course_id,
                TreatmentSession.status.in_(OPEN_SESSION))).scalars().all()
            for row in open_rows:
                amend(s, actor, now, "session", row.id, patient_id, "status", row.status,
                      "cancelled", "clinical_hold", f"course {data.status}: {data.reason}")
                row.status, row.cancel_reason, row.updated_at = (
                    "cancelled", f"course {data.status}: {data.reason}"[:300], now)
            s.flush()
            work.audit(patient_id=patient_id,
                       detail=f"course {course_id}; {len(open_rows)} sessions cancelled")
            return self._summary(s, course)

    def amend_notes(self, actor: Actor, course_id: int, data: CourseNotes) -> CourseSummary:
        work, patient_id = course_unit(self.ctx, actor, course_id, "course.amend", Perm.PRESCRIBE)
        now = work.now
        with stale_as_conflict(), work:
            s = work.session
            course = load_course(s, course_id)
            check_version("course", course, data.version)
            amend(s, actor, now, "course", course.id, patient_id, "notes", course.notes,
                  data.notes, reason=data.reason)
            course.notes, course.updated_at = data.notes, now
            s.flush()
            work.audit(patient_id=patient_id, detail=f"course {course_id} notes")
            return self._summary(s, course)

    def _summary(self, s: Session, c: Course) -> CourseSummary:
        statuses = list(s.execute(select(TreatmentSession.status).where(
            TreatmentSession.course_id == c.id)).scalars())
        return CourseSummary(c.id, c.patient_id, c.template_id, _template_name(c.template_id),
                             c.treatment, c.status, c.start_date, c.end_date, c.stop_reason,
                             c.notes, c.version, len(statuses),
                             sum(1 for st in statuses
                                 if st in ("discharged", "left-against-advice")))
