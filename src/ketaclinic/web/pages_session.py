"""The session on the tablet (/sessions/{id}), its REMS form PDF and the REMS tracker (/rems)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ketaclinic.bootstrap import Services
from ketaclinic.http.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.http.inputs import LocalDay, model_from_form
from ketaclinic.schemas_chair import (
    AdverseEventCreate,
    AlertAction,
    BookingChange,
    BookingCreate,
    DischargeCreate,
    DoseCreate,
    LeftAgainstAdviceCreate,
    PrecheckCreate,
    PredoseVitals,
    RatingCreate,
    RemsDetails,
    RemsSubmit,
    SessionCancel,
    VitalsCreate,
    WasteCreate,
)
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.facade import ChairServices
from ketaclinic.services.chair.inputs import InfusionEnd
from ketaclinic.services.errors import Conflict, InvalidInput, ServiceError
from ketaclinic.services.mbc.instrument_forms import answers_from_form, bundled_entry_form
from ketaclinic.web.render import attachment, redirect, render

router = APIRouter()
RATING_SCALES = ("moaas", "rass", "cadss6", "cadss")
PRIVATE = ("csrf_token", "witness_password", "idempotency_key")
Run = Callable[[Services, Actor, int, dict[str, str], LocalDay], object]


@dataclass(frozen=True)
class Step:
    """One form on the tablet page: the section it answers to and what posting it does."""

    section: str
    run: Run


def form_step(section: str, model: type[BaseModel],
              call: Callable[[ChairServices], Callable[..., object]], *,
              times: tuple[str, ...] = (), checkboxes: tuple[str, ...] = (),
              extra: Callable[[dict[str, str], LocalDay], dict[str, Any]] | None = None,
              keyed: bool = False) -> Step:
    """A step that validates the form as ``model`` (``times`` typed on the clinic's clock) and
    hands it to one chair service call, ``call(svc.chair)(actor, session_id, data[, key])``
    (``keyed``: the form's idempotency key goes along)."""
    def run(svc: Services, actor: Actor, session_id: int, form: dict[str, str],
            local: LocalDay) -> object:
        more = extra(form, local) if extra else None
        data = model_from_form(model, form, local=local, times=times, checkboxes=checkboxes,
                               extra=more)
        key = (form.get("idempotency_key") or None,) if keyed else ()
        return call(svc.chair)(actor, session_id, data, *key)
    return Step(section, run)


def session_page(request: Request, svc: Services, viewer: Viewer, session_id: int,
                 status_code: int = 200, **extra: Any) -> Response:
    view = svc.chair.views.view(viewer.actor, session_id)
    now = svc.ctx.clock()
    values = extra.pop("values", {}) or {}
    return render(request, "session.html", status_code=status_code, v=view, now=now,
                  chairs=svc.chair.schedule.chairs(viewer.actor), values=values,
                  vitals_key=values.get("idempotency_key") or secrets.token_urlsafe(16),
                  banner_for=view["patient"]["id"],
                  rating_forms=[bundled_entry_form(i) for i in RATING_SCALES],
                  idle_minutes=svc.settings.idle_timeout_minutes, **extra)


async def _act(request: Request, svc: Services, viewer: Viewer, session_id: int,
               step: Step) -> Response:
    form = await read_checked_form(request, viewer)
    local = LocalDay(svc.ctx.today(), svc.ctx.clinic_time)
    try:
        step.run(svc, viewer.actor, session_id, form, local)
    except Conflict as exc:
        mine = {k: v for k, v in form.items() if k not in PRIVATE}
        return render(request, "session_conflict.html", status_code=409, error=str(exc),
                      session_id=session_id, mine=mine)
    except ServiceError as exc:
        if exc.status >= 500 or exc.status in (401, 403, 404):
            raise
        return session_page(request, svc, viewer, session_id, status_code=exc.status,
                            error=str(exc), error_section=step.section, values=form,
                            findings=getattr(exc, "findings", None))
    return redirect(f"/sessions/{session_id}#{step.section}")


@router.get("/sessions/{session_id}")
def session_view(request: Request, session_id: int, svc: ServicesDep,
                 viewer: ViewerDep) -> Response:
    return session_page(request, svc, viewer, session_id)


# --- the forms of the tablet page ---------------------------------------------------------
def _start(form: dict[str, str], local: LocalDay) -> dict[str, Any]:
    return {"start": local.date_and_time(form)}


def _devices(form: dict[str, str], local: LocalDay) -> dict[str, Any]:
    devices = [local.time(form[k], k) for k in ("device_1", "device_2", "device_3")
               if form.get(k, "").strip()]
    extra: dict[str, Any] = {"device_times": devices}
    if devices and not form.get("started_at"):
        extra["started_at"] = min(devices)
    return extra


def _waste(svc: Services, actor: Actor, session_id: int, form: dict[str, str],
           local: LocalDay) -> object:
    view = svc.chair.views.view(actor, session_id)
    data = model_from_form(WasteCreate, form, extra={"session_id": session_id})
    return svc.chair.ledger.record_waste(actor, data, patient_id=view["patient"]["id"])


#: POST /sessions/{session_id}/{name} for each step; every one answers with the page again
STEPS: dict[str, Step] = {
    "book": form_step("booking", BookingCreate, lambda c: c.schedule.book, extra=_start),
    "reschedule": form_step("booking", BookingChange, lambda c: c.schedule.reschedule,
                            extra=_start),
    "cancel": form_step("booking", SessionCancel, lambda c: c.schedule.cancel),
    "checkin": form_step("checkin", PrecheckCreate, lambda c: c.sessions.check_in, times=(
        "last_food_at", "last_liquid_at", "nasal_steroid_or_decongestant_at"), checkboxes=(
        "consent_on_file", "rems_enrolled",
        "uses_nasal_steroid_or_decongestant", "ride_home_arranged", "pregnancy_test_relevant")),
    "predose": form_step("predose", PredoseVitals, lambda c: c.sessions.predose,
                         times=("taken_at",)),
    "dose": form_step("dose", DoseCreate, lambda c: c.sessions.record_dose,
                      times=("started_at", "ended_at"), extra=_devices,
                      checkboxes=("order_confirmed",)),
    "infusion-end": form_step("dose", InfusionEnd, lambda c: c.sessions.end_infusion,
                              times=("ended_at",)),
    "vitals": form_step("vitals", VitalsCreate, lambda c: c.sessions.record_vitals,
                        times=("taken_at",), keyed=True),
    "ratings": form_step("ratings", RatingCreate, lambda c: c.sessions.record_rating,
                         times=("administered_at",), keyed=True,
                         extra=lambda form, _: {"answers": answers_from_form(form)}),
    "adverse-events": form_step("ae", AdverseEventCreate,
                                lambda c: c.sessions.record_adverse_event, times=("onset_at",),
                                keyed=True),
    "discharge": form_step("discharge", DischargeCreate, lambda c: c.sessions.discharge,
                           times=("ready_at",), checkboxes=(
                               "dissociation_resolved", "respiratory_depression_resolved",
                               "responsible_adult_present")),
    "left-against-advice": form_step("discharge", LeftAgainstAdviceCreate,
                                     lambda c: c.sessions.leave_against_advice, checkboxes=(
                                         "dissociation_resolved",
                                         "respiratory_depression_resolved",
                                         "responsible_adult_present")),
    "waste": Step("waste", _waste),
    "rems-details": form_step("rems", RemsDetails, lambda c: c.rems.update_details),
}


def _post_step(name: str, step: Step) -> None:
    async def endpoint(request: Request, session_id: int, svc: ServicesDep,
                       viewer: ViewerDep) -> Response:
        return await _act(request, svc, viewer, session_id, step)

    endpoint.__name__ = "session_" + name.replace("-", "_")
    router.add_api_route(f"/sessions/{{session_id}}/{name}", endpoint, methods=["POST"])


for _name, _step in STEPS.items():
    _post_step(_name, _step)


@router.post("/sessions/{session_id}/alerts/{alert_id}")
async def session_alert_action(request: Request, session_id: int, alert_id: int,
                               svc: ServicesDep, viewer: ViewerDep) -> Response:
    def run(svc: Services, actor: Actor, session_id: int, form: dict[str, str],
            local: LocalDay) -> None:
        svc.chair.sessions.record_alert_action(actor, session_id, alert_id,
                                               model_from_form(AlertAction, form))
    return await _act(request, svc, viewer, session_id, Step("alerts", run))


@router.get("/sessions/{session_id}/rems.pdf")
def session_rems_pdf(session_id: int, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return attachment(svc.chair.rems.pdf(viewer.actor, session_id), "application/pdf",
                      f"rems-session-{session_id}.pdf")


@router.get("/rems")
def rems_tracker(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return render(request, "rems_tracker.html", forms=svc.chair.rems.due(viewer.actor),
                  today=svc.ctx.today())


@router.post("/rems/{form_id}/submitted")
async def rems_submitted(request: Request, form_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        svc.chair.rems.mark_submitted(viewer.actor, form_id,
                                      model_from_form(RemsSubmit, form))
    except (InvalidInput, Conflict) as exc:
        return render(request, "rems_tracker.html", status_code=exc.status, error=str(exc),
                      forms=svc.chair.rems.due(viewer.actor), today=svc.ctx.today())
    return redirect("/rems")
