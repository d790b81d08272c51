"""Rating scales given to a patient: scored by the clinical core, stored, alerted, audited."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.instruments import ScoreResult, score_answers
from ketaclinic.clinical.outcomes import RELAPSE_EVENT_KINDS
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.services.idempotency import IdempotentRequest
from ketaclinic.services.interop.webhooks import queue_urgent_alerts
from ketaclinic.services.mbc.inputs import AssessmentCreate
from ketaclinic.services.mbc.instruments import InstrumentCatalogue
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables_mbc import ClinicalAlert
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, Course, TreatmentSession

T = TypeVar("T")

PATIENT_LINK = Actor(user_id=None, username="patient-link", role="patient-link")
EVENT_KINDS = RELAPSE_EVENT_KINDS
MAX_FUTURE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class AssessmentRecord:
    id: int
    patient_id: int
    course_id: int | None
    session_id: int | None
    instrument_id: str
    instrument_version: str
    administered_at: dt.datetime
    source: str
    total: Decimal | None
    severity: str
    complete: bool
    prorated: bool
    answers: list[Any]
    result: dict[str, Any]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.result.get("alerts", []))


def record_of(a: Assessment) -> AssessmentRecord:
    return AssessmentRecord(a.id, a.patient_id, a.course_id, a.session_id, a.instrument_id,
                            a.instrument_version, a.administered_at, a.source, a.total,
                            a.severity, a.complete, a.prorated, json.loads(a.answers_json),
                            json.loads(a.result_json))


def _plain_answers(answers: Sequence[Any] | Mapping[int, Any]) -> Sequence[Any] | Mapping:
    if isinstance(answers, (str, bytes)):
        raise InvalidInput("answers must be a list, one per item")
    if isinstance(answers, Mapping):
        return dict(answers)
    return list(answers)


def check_course(s: Session, patient_id: int, course_id: int | None,
                 session_id: int | None) -> int | None:
    """Course and session must belong to the patient; a session implies its course."""
    if session_id is not None:
        ts = s.get(TreatmentSession, session_id)
        if ts is None or ts.patient_id != patient_id:
            raise InvalidInput("session_id: no such session for this patient")
        if course_id is not None and ts.course_id not in (None, course_id):
            raise InvalidInput("session_id: the session belongs to another course")
        course_id = course_id or ts.course_id
    if course_id is not None:
        course = s.get(Course, course_id)
        if course is None or course.patient_id != patient_id:
            raise InvalidInput("course_id: no such course for this patient")
    return course_id


class AssessmentService:
    def __init__(self, ctx: Context, catalogue: InstrumentCatalogue) -> None:
        self.ctx = ctx
        self.catalogue = catalogue

    # --- write -----------------------------------------------------------------------------
    def create(self, actor: Actor, patient_id: int, data: AssessmentCreate,
               idempotency_key: str | None = None) -> tuple[AssessmentRecord, bool]:
        """Record the assessment a clinic entered (the JSON body or the page's form, one
        model): see :meth:`record`."""
        return self.record(actor, patient_id, data.instrument, data.answers,
                           administered_at=data.administered_at, course_id=data.course_id,
                           session_id=data.session_id, idempotency_key=idempotency_key)

    def record(
        self, actor: Actor, patient_id: int, instrument_id: str,
        answers: Sequence[Any] | Mapping[int, Any], *,
        administered_at: dt.datetime | None = None, course_id: int | None = None,
        session_id: int | None = None, idempotency_key: str | None = None,
    ) -> tuple[AssessmentRecord, bool]:
        """Score and store one form. Returns (assessment, created); the same user repeating
        a key with the same request gets the first assessment back."""
        work = self.ctx.unit_of_work(actor, "assessment.create", perm=Perm.CLINICAL_WRITE,
                                     patient_id=patient_id)
        req = IdempotentRequest.of(
            actor, "assessment.create", idempotency_key, patient_id, instrument_id,
            dict(answers) if isinstance(answers, Mapping) else list(answers),
            administered_at, course_id, session_id)
        now = work.now
        when = self._check_time(administered_at or now, now)

        def create(uow: UnitOfWork) -> tuple[AssessmentRecord, int]:
            s = uow.session
            uow.patients.get(patient_id)
            course = check_course(s, patient_id, course_id, session_id)
            row = self.store_scored(s, actor, patient_id, instrument_id, answers, when,
                                    course_id=course, session_id=session_id, source="clinic")
            return record_of(row), row.id

        def replay(uow: UnitOfWork, assessment_id: int) -> tuple[AssessmentRecord, int]:
            a = uow.session.get(Assessment, assessment_id)
            if a is None:
                raise NotFound("the assessment this request recorded no longer exists")
            return record_of(a), a.patient_id

        return work.idempotency.run(req, create=create, replay=replay,
                                    conflict="this assessment was recorded concurrently")

    def _check_time(self, when: dt.datetime, now: dt.datetime) -> dt.datetime:
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        if when > now + MAX_FUTURE:
            raise InvalidInput("administered_at: is in the future")
        if when.year < 1990:
            raise InvalidInput("administered_at: is before 1990")
        return when

    def store_scored(
        self, s: Session, actor: Actor, patient_id: int, instrument_id: str,
        answers: Sequence[Any] | Mapping[int, Any], when: dt.datetime, *,
        course_id: int | None, session_id: int | None, source: str,
    ) -> Assessment:
        """Score with the core, insert the assessment and its alerts, audit (caller's unit)."""
        definition = self.catalogue.for_scoring(s, instrument_id)
        result = self._score(definition, answers)
        now = self.ctx.clock()
        row = Assessment(
            patient_id=patient_id, course_id=course_id, session_id=session_id,
            instrument_id=definition.id, instrument_version=definition.version,
            administered_at=when, source=source,
            total=None if result.total is None else Decimal(result.total),
            severity=(result.severity or "")[:60], complete=result.complete,
            prorated=result.prorated, answers_json=json.dumps(_json_answers(answers)),
            result_json=json.dumps(result.as_dict(), ensure_ascii=False),
            entered_by=actor.user_id, created_at=now,
        )
        s.add(row)
        s.flush()
        raised = [ClinicalAlert(
            patient_id=patient_id, assessment_id=row.id, instrument_id=definition.id,
            rule=alert.rule[:80], priority=alert.priority, message=alert.message[:500],
            item=alert.item, value=alert.value, threshold=alert.threshold,
            source=alert.source[:500], raised_at=now) for alert in result.alerts]
        if raised:
            s.add_all(raised)
            s.flush()
            queue_urgent_alerts(s, raised, now)  # webhooks, in this transaction
        detail = f"{definition.rule_version} total {result.total}"
        if result.alerts:
            detail += f"; {len(result.alerts)} alert(s) raised"
        self.ctx.audit.record(s, actor, "assessment.create", at=now, patient_id=patient_id,
                              detail=detail)
        return row

    def _score(self, definition, answers) -> ScoreResult:
        try:
            return score_answers(definition, _plain_answers(answers))
        except ClinicalInputError as exc:
            raise InvalidInput(str(exc)) from exc

    def record_event(self, actor: Actor, patient_id: int, kind: str, occurred_on: dt.date,
                     note: str = "", course_id: int | None = None) -> int:
        """Record a hospitalisation or suicide-related event (relapse evidence)."""
        work = self.ctx.unit_of_work(actor, "clinical_event.create", perm=Perm.CLINICAL_WRITE,
                                     patient_id=patient_id)
        if kind not in EVENT_KINDS:
            raise InvalidInput(f"kind: must be one of {', '.join(EVENT_KINDS)}")
        now = work.now
        if occurred_on > work.today:
            raise InvalidInput("occurred_on: is in the future")
        if len(note) > 2000:
            raise InvalidInput("note: is longer than 2000 characters")
        with work as uow:
            s = uow.session
            uow.patients.get(patient_id)
            course_id = check_course(s, patient_id, course_id, None)
            row = ClinicalEvent(patient_id=patient_id, course_id=course_id, kind=kind,
                                occurred_on=occurred_on, note=note.strip(),
                                recorded_by=actor.user_id, recorded_at=now)
            s.add(row)
            s.flush()
            uow.audit(patient_id=patient_id, detail=kind)
            return row.id

    # --- read ------------------------------------------------------------------------------
    def list_for_patient(self, actor: Actor, patient_id: int,
                         instrument_id: str | None = None, limit: int | None = None,
                         offset: int = 0) -> Paged[AssessmentRecord]:
        with self.ctx.unit_of_work(actor, "assessment.list", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s = uow.session
            uow.patients.get(patient_id)
            stmt = select(Assessment).where(Assessment.patient_id == patient_id)
            if instrument_id:
                stmt = stmt.where(Assessment.instrument_id == instrument_id)
            out = page_rows(s, stmt.order_by(Assessment.administered_at, Assessment.id), limit,
                            offset).map(record_of)
            uow.audit(patient_id=patient_id)
            return out

    def get(self, actor: Actor, patient_id: int, assessment_id: int) -> AssessmentRecord:
        return self._view(actor, patient_id, assessment_id, lambda s, a: record_of(a))

    def _view(self, actor: Actor, patient_id: int, assessment_id: int,
              read: Callable[[Session, Assessment], T]) -> T:
        """One stored form of this patient, read with ``read`` in an audited unit."""
        with self.ctx.unit_of_work(actor, "assessment.view", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            a = uow.session.get(Assessment, assessment_id)
            if a is None or a.patient_id != patient_id:
                raise NotFound("no such assessment for this patient")
            uow.audit(patient_id=patient_id, detail=f"assessment {assessment_id}")
            return read(uow.session, a)

    def fhir(self, actor: Actor, patient_id: int, assessment_id: int) -> dict[str, Any]:
        """FHIR R4 QuestionnaireResponse + Observations (panel, items, total) of a stored
        complete PHQ-9 or GAD-7, from the export's one mapper (same ids as the export)."""
        from ketaclinic.renderers import fhir_map as fm

        table = Assessment.__table__
        instrument_id, row = self._view(actor, patient_id, assessment_id, lambda s, a: (
            a.instrument_id, s.execute(select(table).where(table.c.id == assessment_id)).one()))
        if instrument_id not in fm.QR_INSTRUMENTS:
            raise InvalidInput(f"FHIR mapping exists for {', '.join(fm.QR_INSTRUMENTS)} only")
        if row.total is None:
            raise InvalidInput("only a completed form maps to FHIR")
        resources = fm.assessment(row, fm.ref("Patient", f"p-{patient_id}"))
        if resources[0]["resourceType"] != "QuestionnaireResponse":
            raise InvalidInput("only a completed, not prorated form maps to FHIR")
        return {"questionnaire_response": resources[0], "observations": resources[1:]}

    def events_for_patient(self, s: Session, patient_id: int) -> list[ClinicalEvent]:
        return list(s.execute(select(ClinicalEvent).where(
            ClinicalEvent.patient_id == patient_id).order_by(ClinicalEvent.occurred_on)
        ).scalars())


def _json_answers(answers: Sequence[Any] | Mapping[int, Any]) -> Any:
    if isinstance(answers, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in answers.items()}
    return [None if v is None else str(v) for v in answers]
