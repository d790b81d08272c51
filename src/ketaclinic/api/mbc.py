"""JSON API for measurement-based care: assessments, alerts, self-report links, outcomes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from ketaclinic.api.paging import Page, PageDep
from ketaclinic.http.deps import ApiViewerDep, ServicesDep, client_address
from ketaclinic.schemas import UtcTimestamp
from ketaclinic.services.mbc.assessments import AssessmentRecord
from ketaclinic.services.mbc.inputs import (
    AcknowledgeRequest,
    AssessmentCreate,
    EventCreate,
    LinkCreate,
    SelfReportSubmit,
)

router = APIRouter(prefix="/api", tags=["measurement-based care"])


class AssessmentPublic(BaseModel):
    id: int
    patient_id: int
    course_id: int | None
    session_id: int | None
    instrument_id: str
    instrument_version: str
    administered_at: UtcTimestamp
    source: str
    total: float | None
    severity: str
    complete: bool
    prorated: bool
    answers: Any
    alerts: list[dict[str, Any]]


class AlertPublic(BaseModel):
    id: int
    patient_id: int
    assessment_id: int
    instrument_id: str
    rule: str
    priority: str
    message: str
    item: int | None
    value: int | None
    raised_at: UtcTimestamp
    acknowledged_at: UtcTimestamp | None
    acknowledged_by: str
    ack_note: str


class LinkPublic(BaseModel):
    id: int
    instrument_id: str
    delivery: str
    expires_at: UtcTimestamp
    url: str | None = Field(None, description="Shown once, only for delivery 'shown'")


def _public(r: AssessmentRecord) -> AssessmentPublic:
    return AssessmentPublic(
        id=r.id, patient_id=r.patient_id, course_id=r.course_id, session_id=r.session_id,
        instrument_id=r.instrument_id, instrument_version=r.instrument_version,
        administered_at=r.administered_at, source=r.source,
        total=None if r.total is None else float(r.total), severity=r.severity,
        complete=r.complete, prorated=r.prorated, answers=r.answers, alerts=r.alerts)


@router.post("/patients/{patient_id}/assessments", response_model=AssessmentPublic,
             status_code=201)
def api_create_assessment(
    patient_id: int, body: AssessmentCreate, response: Response, svc: ServicesDep,
    viewer: ApiViewerDep, idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> AssessmentPublic:
    record, created = svc.mbc.assessments.create(viewer.actor, patient_id, body,
                                                 idempotency_key)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/patients/{patient_id}/assessments/{record.id}"
    return _public(record)


@router.get("/patients/{patient_id}/assessments", response_model=Page[AssessmentPublic])
def api_list_assessments(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                         window: PageDep, instrument: str | None = None) -> dict:
    page = svc.mbc.assessments.list_for_patient(viewer.actor, patient_id,
                                                instrument_id=instrument, limit=window.limit,
                                                offset=window.offset)
    return window.page(page, [_public(r) for r in page])


@router.get("/patients/{patient_id}/assessments/{assessment_id}",
            response_model=AssessmentPublic)
def api_get_assessment(patient_id: int, assessment_id: int, svc: ServicesDep,
                       viewer: ApiViewerDep) -> AssessmentPublic:
    return _public(svc.mbc.assessments.get(viewer.actor, patient_id, assessment_id))


@router.get("/patients/{patient_id}/assessments/{assessment_id}/fhir")
def api_assessment_fhir(patient_id: int, assessment_id: int, svc: ServicesDep,
                        viewer: ApiViewerDep) -> dict[str, Any]:
    """FHIR R4 QuestionnaireResponse + Observations (PHQ-9 and GAD-7, complete forms)."""
    return svc.mbc.assessments.fhir(viewer.actor, patient_id, assessment_id)


@router.get("/patients/{patient_id}/outcomes", response_model=Page[dict[str, Any]])
def api_outcomes(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                 window: PageDep) -> dict:
    return window.page(svc.mbc.outcomes(viewer.actor, patient_id, window.limit, window.offset))


@router.post("/patients/{patient_id}/clinical-events", status_code=201)
def api_create_event(patient_id: int, body: EventCreate, svc: ServicesDep,
                     viewer: ApiViewerDep) -> dict[str, int]:
    event_id = svc.mbc.assessments.record_event(viewer.actor, patient_id, body.kind,
                                                body.occurred_on, body.note, body.course_id)
    return {"id": event_id}


@router.get("/alerts", response_model=Page[AlertPublic])
def api_alerts(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep,
               include_acknowledged: bool = False) -> dict:
    page = svc.mbc.alerts.worklist(viewer.actor, include_acknowledged=include_acknowledged,
                                   limit=window.limit, offset=window.offset)
    return window.page(page, [AlertPublic.model_validate(a, from_attributes=True)
                              for a in page])


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
def api_acknowledge(alert_id: int, body: AcknowledgeRequest, svc: ServicesDep,
                    viewer: ApiViewerDep) -> AlertPublic:
    return AlertPublic.model_validate(
        svc.mbc.alerts.acknowledge(viewer.actor, alert_id, body.note), from_attributes=True)


@router.post("/patients/{patient_id}/self-report-links", response_model=LinkPublic,
             status_code=201)
def api_create_link(patient_id: int, body: LinkCreate, request: Request, svc: ServicesDep,
                    viewer: ApiViewerDep) -> LinkPublic:
    link, token = svc.mbc.self_report.create_link(
        viewer.actor, patient_id, body.instrument, course_id=body.course_id,
        delivery=body.delivery)
    url = f"{str(request.base_url).rstrip('/')}/r/{token}" if token else None
    return LinkPublic(id=link.id, instrument_id=link.instrument_id, delivery=link.delivery,
                      expires_at=link.expires_at, url=url)


@router.get("/self-report/{token}", tags=["self-report (public)"],
            responses={410: {"description": "The link is unknown, expired, used or locked"}})
def api_self_report_form(token: str, request: Request, svc: ServicesDep) -> dict[str, Any]:
    """The questionnaire behind a link (no login); carries the form_key to submit with."""
    form = svc.mbc.self_report.open_form(token, client_address(request))
    return {"instrument": form.instrument, "title": form.title,
            "instructions": form.instructions, "form_key": form.form_key,
            "expires_at": form.expires_at.isoformat(),
            "items": [{"number": i.number, "text": i.text, "required": i.required,
                       "options": [{"score": s, "label": label} for s, label in i.options]}
                      for i in form.items]}


@router.post("/self-report/{token}", status_code=201, tags=["self-report (public)"],
             responses={410: {"description": "The link is unknown, expired, used or locked"}})
def api_self_report_submit(token: str, body: SelfReportSubmit, request: Request,
                           svc: ServicesDep) -> dict[str, Any]:
    """Submit a self-report (no login; the link is the credential and works once)."""
    svc.mbc.self_report.submit(token, body.form_key, body.answers, client_address(request))
    return {"status": "received"}
