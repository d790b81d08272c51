"""The session on the tablet (/sessions/{id}), its REMS form PDF and the REMS tracker (/rems)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.bootstrap import Services
from ketaclinic.schemas_chair import (
    AdverseEventCreate,
    AlertAction,
    BookingChange,
    BookingCreate,
    DischargeCreate,
    DoseCreate,
    PrecheckCreate,
    PredoseVitals,
    RatingCreate,
    RemsDetails,
    RemsSubmit,
    SessionCancel,
    VitalsCreate,
    WasteCreate,
)
from ketaclinic.services.errors import Conflict, InvalidInput, ServiceError
from ketaclinic.web.chair_forms import answers, parse, time_on
from ketaclinic.web.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.web.render import redirect, render

router = APIRouter()
PRIVATE = ("csrf_token", "witness_password", "idempotency_key")
Action = Callable[[Services, Viewer, dict[str, str], dt.date], object]


def session_page(request: Request, svc: Services, viewer: Viewer, session_id: int,
                 status_code: int = 200, **extra: Any) -> Response:
    view = svc.chair.views.view(viewer.actor, session_id)
    now = svc.ctx.clock()
    values = extra.pop("values", {}) or {}
    return render(request, "session.html", status_code=status_code, v=view, now=now,
                  chairs=svc.chair.schedule.chairs(viewer.actor), values=values,
                  vitals_key=values.get("idempotency_key") or secrets.token_urlsafe(16),
                  **extra)


async def _act(request: Request, svc: Services, viewer: Viewer, session_id: int,
               section: str, action: Action) -> Response:
    form = await read_checked_form(request, viewer)
    day = svc.ctx.clock().date()
    try:
        action(svc, viewer, form, day)
    except Conflict as exc:
        mine = {k: v for k, v in form.items() if k not in PRIVATE}
        return render(request, "session_conflict.html", status_code=409, error=str(exc),
                      session_id=session_id, mine=mine)
    except ServiceError as exc:
        if exc.status >= 500 or exc.status in (401, 403, 404):
            raise
        return session_page(request, svc, viewer, session_id, status_code=exc.status,
                            error=str(exc), error_section=section, values=form,
                            findings=getattr(exc, "findings", None))
    return redirect(f"/sessions/{session_id}#{section}")


@router.get("/sessions/{session_id}")
def session_view(request: Request, session_id: int, svc: ServicesDep,
                 viewer: ViewerDep) -> Response:
    return session_page(request, svc, viewer, session_id)


def _version(form: dict[str, str]) -> dict[str, Any]:
    return {"version": form.get("version", "")}


@router.post("/sessions/{session_id}/book")
async def session_book(request: Request, session_id: int, svc: ServicesDep,
                       viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        start = _start(form)
        data = parse(BookingCreate, form, extra={"start": start})
        return svc.chair.schedule.book(viewer.actor, session_id, data)
    return await _act(request, svc, viewer, session_id, "booking", act)


def _start(form: dict[str, str]) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(form.get("date", ""))
    except ValueError as exc:
        raise InvalidInput("date: enter a date like 2026-11-02") from exc
    return time_on(day, form.get("time", ""), "time")


@router.post("/sessions/{session_id}/reschedule")
async def session_reschedule(request: Request, session_id: int, svc: ServicesDep,
                             viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(BookingChange, form, extra={"start": _start(form)})
        return svc.chair.schedule.reschedule(viewer.actor, session_id, data)
    return await _act(request, svc, viewer, session_id, "booking", act)


@router.post("/sessions/{session_id}/cancel")
async def session_cancel(request: Request, session_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        return svc.chair.schedule.cancel(viewer.actor, session_id, parse(SessionCancel, form))
    return await _act(request, svc, viewer, session_id, "booking", act)


@router.post("/sessions/{session_id}/checkin")
async def session_checkin(request: Request, session_id: int, svc: ServicesDep,
                          viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(PrecheckCreate, form, day=day, times=(
            "last_food_at", "last_liquid_at", "nasal_steroid_or_decongestant_at"),
            checkboxes=("consent_on_file", "rems_enrolled", "screening_valid",
                        "uses_nasal_steroid_or_decongestant", "ride_home_arranged",
                        "pregnancy_test_relevant"))
        return svc.chair.sessions.check_in(viewer.actor, session_id, data)
    return await _act(request, svc, viewer, session_id, "checkin", act)


@router.post("/sessions/{session_id}/predose")
async def session_predose(request: Request, session_id: int, svc: ServicesDep,
                          viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(PredoseVitals, form, day=day, times=("taken_at",))
        return svc.chair.sessions.predose(viewer.actor, session_id, data)
    return await _act(request, svc, viewer, session_id, "predose", act)


@router.post("/sessions/{session_id}/dose")
async def session_dose(request: Request, session_id: int, svc: ServicesDep,
                       viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        devices = [time_on(day, form[k], k) for k in ("device_1", "device_2", "device_3")
                   if form.get(k, "").strip()]
        extra: dict[str, Any] = {"device_times": devices}
        if devices and not form.get("started_at"):
            extra["started_at"] = min(devices)
        data = parse(DoseCreate, form, day=day, times=("started_at", "ended_at"), extra=extra)
        return svc.chair.sessions.record_dose(viewer.actor, session_id, data)
    return await _act(request, svc, viewer, session_id, "dose", act)


@router.post("/sessions/{session_id}/infusion-end")
async def session_infusion_end(request: Request, session_id: int, svc: ServicesDep,
                               viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        try:
            version = int(form.get("version", ""))
        except ValueError as exc:
            raise InvalidInput("version: missing") from exc
        ended = time_on(day, form.get("ended_at", ""), "ended_at")
        return svc.chair.sessions.end_infusion(viewer.actor, session_id, version, ended)
    return await _act(request, svc, viewer, session_id, "dose", act)


@router.post("/sessions/{session_id}/vitals")
async def session_vitals(request: Request, session_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(VitalsCreate, form, day=day, times=("taken_at",))
        return svc.chair.sessions.record_vitals(viewer.actor, session_id, data,
                                                form.get("idempotency_key") or None)
    return await _act(request, svc, viewer, session_id, "vitals", act)


@router.post("/sessions/{session_id}/alerts/{alert_id}")
async def session_alert_action(request: Request, session_id: int, alert_id: int,
                               svc: ServicesDep, viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        return svc.chair.sessions.record_alert_action(viewer.actor, session_id, alert_id,
                                                      parse(AlertAction, form))
    return await _act(request, svc, viewer, session_id, "alerts", act)


@router.post("/sessions/{session_id}/ratings")
async def session_rating(request: Request, session_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(RatingCreate, form, day=day, times=("administered_at",),
                     extra={"answers": answers(form.get("answers", ""))})
        return svc.chair.sessions.record_rating(viewer.actor, session_id, data,
                                                form.get("idempotency_key") or None)
    return await _act(request, svc, viewer, session_id, "ratings", act)


@router.post("/sessions/{session_id}/adverse-events")
async def session_adverse_event(request: Request, session_id: int, svc: ServicesDep,
                                viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(AdverseEventCreate, form, day=day, times=("onset_at",))
        return svc.chair.sessions.record_adverse_event(viewer.actor, session_id, data,
                                                       form.get("idempotency_key") or None)
    return await _act(request, svc, viewer, session_id, "ae", act)


@router.post("/sessions/{session_id}/discharge")
async def session_discharge(request: Request, session_id: int, svc: ServicesDep,
                            viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        data = parse(DischargeCreate, form, day=day, times=("ready_at",), checkboxes=(
            "dissociation_resolved", "respiratory_depression_resolved",
            "responsible_adult_present"))
        return svc.chair.sessions.discharge(viewer.actor, session_id, data)
    return await _act(request, svc, viewer, session_id, "discharge", act)


@router.post("/sessions/{session_id}/waste")
async def session_waste(request: Request, session_id: int, svc: ServicesDep,
                        viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        view = svc.chair.views.view(viewer.actor, session_id)
        data = parse(WasteCreate, form, extra={"session_id": session_id})
        return svc.chair.ledger.record_waste(viewer.actor, data,
                                             patient_id=view["patient"]["id"])
    return await _act(request, svc, viewer, session_id, "waste", act)


@router.post("/sessions/{session_id}/rems-details")
async def session_rems_details(request: Request, session_id: int, svc: ServicesDep,
                               viewer: ViewerDep) -> Response:
    def act(svc: Services, viewer: Viewer, form: dict[str, str], day: dt.date) -> object:
        return svc.chair.rems.update_details(viewer.actor, session_id, parse(RemsDetails, form))
    return await _act(request, svc, viewer, session_id, "rems", act)


@router.get("/sessions/{session_id}/rems.pdf")
def session_rems_pdf(session_id: int, svc: ServicesDep, viewer: ViewerDep) -> Response:
    pdf = svc.chair.rems.pdf(viewer.actor, session_id)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="rems-session-{session_id}.pdf"'})


@router.get("/rems")
def rems_tracker(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return render(request, "rems_tracker.html", forms=svc.chair.rems.due(viewer.actor),
                  today=svc.ctx.clock().date())


@router.post("/rems/{form_id}/submitted")
async def rems_submitted(request: Request, form_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        svc.chair.rems.mark_submitted(viewer.actor, form_id, parse(RemsSubmit, form))
    except (InvalidInput, Conflict) as exc:
        return render(request, "rems_tracker.html", status_code=exc.status, error=str(exc),
                      forms=svc.chair.rems.due(viewer.actor), today=svc.ctx.clock().date())
    return redirect("/rems")
