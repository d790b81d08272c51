"""JSON API of the chair area: courses, sessions (vitals with Idempotency-Key), REMS, ledger.

Times are UTC instants in ISO 8601: responses carry the offset ("2026-11-02T14:00:00Z"),
requests may give any offset ("2026-11-02T09:00:00-05:00"); a request time without one is UTC.
The clinic's time zone (KETACLINIC_CLINIC_TIMEZONE) changes only the pages, PDFs and iCalendar.
Dates (``planned_date``, ``due_on``) are the clinic's calendar days.

The ledger is append-only: entries can be read and appended (POST) but there is no PUT, PATCH
or DELETE route; a correction is POSTed as a new entry that refers to the old one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.encoders import jsonable_encoder as _encode
from fastapi.responses import JSONResponse

from ketaclinic.api.paging import Page, PageDep
from ketaclinic.clinical.rules import Finding
from ketaclinic.http.deps import ApiViewerDep, ServicesDep
from ketaclinic.schemas_chair import (
    AdverseEventCreate,
    AlertAction,
    BookingChange,
    BookingCreate,
    CorrectionCreate,
    CountCreate,
    CourseCreate,
    CourseEnd,
    DischargeCreate,
    DoseCreate,
    LeftAgainstAdviceCreate,
    LossCreate,
    PrecheckCreate,
    PredoseVitals,
    RatingCreate,
    ReceiptCreate,
    RemsSubmit,
    SessionCancel,
    TransferCreate,
    VitalsCreate,
    WasteCreate,
)
from ketaclinic.services.chair_session import DischargeRefused

router = APIRouter(prefix="/api")
Key = Annotated[str | None, Header(max_length=100)]
Rows = Page[dict[str, Any]]


def _f(findings: list[Finding] | Finding) -> list[dict[str, Any]]:
    items = [findings] if isinstance(findings, Finding) else findings
    return jsonable_encoder([f.as_dict() for f in items])


def _utc_text(value: dt.datetime) -> str:
    aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return aware.isoformat().replace("+00:00", "Z")


def jsonable_encoder(obj: Any) -> Any:
    """FastAPI's encoder, with stored (naive UTC) times sent as UTC with their offset."""
    return _encode(obj, custom_encoder={dt.datetime: _utc_text})


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


# --- courses ------------------------------------------------------------------------------
@router.get("/patients/{patient_id}/courses", tags=["courses"], response_model=Rows)
def api_courses(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                window: PageDep) -> dict:
    page = svc.chair.courses.for_patient(viewer.actor, patient_id, window.limit, window.offset)
    return window.page(page, jsonable_encoder([dataclasses.asdict(c) for c in page]))


@router.post("/patients/{patient_id}/courses", status_code=201, tags=["courses"])
def api_create_course(patient_id: int, body: CourseCreate, svc: ServicesDep,
                      viewer: ApiViewerDep) -> dict:
    return jsonable_encoder(dataclasses.asdict(svc.chair.courses.create(viewer.actor, patient_id,
                                                                        body)))


@router.get("/courses/{course_id}", tags=["courses"])
def api_course(course_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> dict:
    course, sessions, history = svc.chair.courses.get(viewer.actor, course_id)
    return jsonable_encoder({**dataclasses.asdict(course),
                             "sessions": [dataclasses.asdict(s) for s in sessions],
                             "history": history})


@router.post("/courses/{course_id}/end", tags=["courses"],
             responses={409: {"description": "The course changed since the given version"}})
def api_end_course(course_id: int, body: CourseEnd, svc: ServicesDep,
                   viewer: ApiViewerDep) -> dict:
    return jsonable_encoder(dataclasses.asdict(svc.chair.courses.end(viewer.actor, course_id,
                                                                     body)))


# --- sessions -----------------------------------------------------------------------------
@router.get("/sessions/{session_id}", tags=["sessions"])
def api_session(session_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> dict:
    v = svc.chair.views.view(viewer.actor, session_id)
    vitals = [{k: getattr(r, k) for k in ("id", "kind", "taken_at", "sbp_mmhg", "dbp_mmhg",
                                          "hr_bpm", "spo2_pct", "rr_per_min", "gate")}
              for r in v["vitals"]]
    alerts = [{k: getattr(a, k) for k in ("id", "rule", "message", "suggested_action",
                                          "action_taken", "created_at")} for a in v["alerts"]]
    return jsonable_encoder({"session": v["session"], "patient_id": v["patient"]["id"],
                             "vitals": vitals, "alerts": alerts,
                             "due": [_plain(d) for d in v["due"]],
                             "precheck": v["precheck"]})


@router.post("/sessions/{session_id}/book", tags=["sessions"])
def api_book(session_id: int, body: BookingCreate, svc: ServicesDep,
             viewer: ApiViewerDep) -> dict:
    return {"findings": _f(svc.chair.schedule.book(viewer.actor, session_id, body))}


@router.post("/sessions/{session_id}/reschedule", tags=["sessions"])
def api_reschedule(session_id: int, body: BookingChange, svc: ServicesDep,
                   viewer: ApiViewerDep) -> dict:
    return {"findings": _f(svc.chair.schedule.reschedule(viewer.actor, session_id, body))}


@router.post("/sessions/{session_id}/cancel", tags=["sessions"])
def api_cancel(session_id: int, body: SessionCancel, svc: ServicesDep,
               viewer: ApiViewerDep) -> dict:
    svc.chair.schedule.cancel(viewer.actor, session_id, body)
    return {"status": "cancelled"}


@router.post("/sessions/{session_id}/checkin", tags=["sessions"])
def api_checkin(session_id: int, body: PrecheckCreate, svc: ServicesDep,
                viewer: ApiViewerDep) -> dict:
    return {"findings": _f(svc.chair.sessions.check_in(viewer.actor, session_id, body))}


@router.post("/sessions/{session_id}/predose", tags=["sessions"])
def api_predose(session_id: int, body: PredoseVitals, svc: ServicesDep,
                viewer: ApiViewerDep) -> dict:
    return {"findings": _f(svc.chair.sessions.predose(viewer.actor, session_id, body))}


@router.post("/sessions/{session_id}/dose", tags=["sessions"])
def api_dose(session_id: int, body: DoseCreate, svc: ServicesDep,
             viewer: ApiViewerDep) -> dict:
    return {"findings": _f(svc.chair.sessions.record_dose(viewer.actor, session_id, body))}


@router.post("/sessions/{session_id}/vitals", status_code=201, tags=["sessions"])
def api_vitals(session_id: int, body: VitalsCreate, response: Response, svc: ServicesDep,
               viewer: ApiViewerDep, idempotency_key: Key = None) -> dict:
    vitals_id, alerts, created = svc.chair.sessions.record_vitals(
        viewer.actor, session_id, body, idempotency_key)
    if not created:
        response.status_code = 200
    return {"id": vitals_id, "alerts": _f(alerts), "created": created}


@router.post("/sessions/{session_id}/alerts/{alert_id}", tags=["sessions"])
def api_alert_action(session_id: int, alert_id: int, body: AlertAction, svc: ServicesDep,
                     viewer: ApiViewerDep) -> dict:
    svc.chair.sessions.record_alert_action(viewer.actor, session_id, alert_id, body)
    return {"status": "recorded"}


@router.post("/sessions/{session_id}/ratings", status_code=201, tags=["sessions"])
def api_rating(session_id: int, body: RatingCreate, svc: ServicesDep, viewer: ApiViewerDep,
               idempotency_key: Key = None) -> dict:
    return svc.chair.sessions.record_rating(viewer.actor, session_id, body, idempotency_key)


@router.post("/sessions/{session_id}/adverse-events", status_code=201, tags=["sessions"])
def api_adverse_event(session_id: int, body: AdverseEventCreate, svc: ServicesDep,
                      viewer: ApiViewerDep, idempotency_key: Key = None) -> dict:
    return {"findings": _f(svc.chair.sessions.record_adverse_event(
        viewer.actor, session_id, body, idempotency_key))}


@router.post("/sessions/{session_id}/discharge", tags=["sessions"])
def api_discharge(session_id: int, body: DischargeCreate, svc: ServicesDep,
                  viewer: ApiViewerDep) -> Any:
    """Discharge when the clinical core's checklist passes; a refusal is a 422 with the
    ``findings`` that say what is missing (nothing saved). There is no override."""
    try:
        return {"findings": _f(svc.chair.sessions.discharge(viewer.actor, session_id, body))}
    except DischargeRefused as exc:
        return JSONResponse({"detail": str(exc), "findings": _f(exc.findings)},
                            status_code=422)


@router.post("/sessions/{session_id}/left-against-advice", tags=["sessions"])
def api_left_against_advice(session_id: int, body: LeftAgainstAdviceCreate,
                            svc: ServicesDep, viewer: ApiViewerDep) -> dict:
    """The patient leaves before the checklist passes: recorded as left against advice (who,
    when, ``statement``: what they were told and said), never as discharged."""
    return {"status": "left-against-advice", "findings": _f(
        svc.chair.sessions.leave_against_advice(viewer.actor, session_id, body))}


@router.get("/patients/{patient_id}/sessions", tags=["sessions"], response_model=Rows)
def api_patient_sessions(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                         window: PageDep) -> dict:
    page = svc.chair.views.patient_sessions(viewer.actor, patient_id, window.limit,
                                            window.offset)
    return window.page(page, jsonable_encoder(page.items))


# --- REMS ---------------------------------------------------------------------------------
@router.get("/rems/due", tags=["rems"], response_model=Rows)
def api_rems_due(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep,
                 within_days: Annotated[int, Query(ge=0, le=60)] = 7) -> dict:
    page = svc.chair.rems.due(viewer.actor, within_days, window.limit, window.offset)
    return window.page(page, jsonable_encoder(page.items))


@router.post("/rems/{form_id}/submitted", tags=["rems"])
def api_rems_submitted(form_id: int, body: RemsSubmit, svc: ServicesDep,
                       viewer: ApiViewerDep) -> dict:
    svc.chair.rems.mark_submitted(viewer.actor, form_id, body)
    return {"status": "submitted"}


# --- ledger (append-only) -----------------------------------------------------------------
@router.get("/ledger/lots", tags=["ledger"], response_model=Rows)
def api_lots(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep) -> dict:
    page = svc.chair.ledger.lots(viewer.actor, limit=window.limit, offset=window.offset)
    return window.page(page, jsonable_encoder([dataclasses.asdict(x) for x in page]))


@router.get("/ledger/entries", tags=["ledger"], response_model=Rows)
def api_entries(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep) -> dict:
    page = svc.chair.ledger.entries(viewer.actor, window.limit, window.offset)
    return window.page(page, jsonable_encoder(page.items))


@router.get("/ledger/entries/{entry_id}", tags=["ledger"])
def api_entry(entry_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> dict:
    return jsonable_encoder(svc.chair.ledger.entry(viewer.actor, entry_id))


def _created(entry_id: int, response: Response) -> dict:
    response.headers["Location"] = f"/api/ledger/entries/{entry_id}"
    return {"id": entry_id}


@router.post("/ledger/receipts", status_code=201, tags=["ledger"])
def api_receipt(body: ReceiptCreate, response: Response, svc: ServicesDep,
                viewer: ApiViewerDep) -> dict:
    return _created(svc.chair.ledger.record_receipt(viewer.actor, body), response)


@router.post("/ledger/wastes", status_code=201, tags=["ledger"])
def api_waste(body: WasteCreate, response: Response, svc: ServicesDep,
              viewer: ApiViewerDep) -> dict:
    return _created(svc.chair.ledger.record_waste(viewer.actor, body), response)


@router.post("/ledger/transfers", status_code=201, tags=["ledger"])
def api_transfer(body: TransferCreate, response: Response, svc: ServicesDep,
                 viewer: ApiViewerDep) -> dict:
    return _created(svc.chair.ledger.record_transfer(viewer.actor, body), response)


@router.post("/ledger/losses", status_code=201, tags=["ledger"])
def api_loss(body: LossCreate, response: Response, svc: ServicesDep,
             viewer: ApiViewerDep) -> dict:
    return _created(svc.chair.ledger.record_loss(viewer.actor, body), response)


@router.post("/ledger/counts", status_code=201, tags=["ledger"])
def api_count(body: CountCreate, response: Response, svc: ServicesDep,
              viewer: ApiViewerDep) -> dict:
    return _created(svc.chair.ledger.record_count(viewer.actor, body), response)


@router.post("/ledger/corrections", status_code=201, tags=["ledger"])
def api_correction(body: CorrectionCreate, response: Response, svc: ServicesDep,
                   viewer: ApiViewerDep) -> dict:
    return _created(svc.chair.ledger.record_correction(viewer.actor, body), response)
