"""Measurement-based care pages: alerts worklist, patient-panel forms and the public self-report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import (
    ServicesDep,
    ViewerDep,
    client_address,
    read_checked_form,
    read_form,
)
from ketaclinic.http.inputs import LocalDay, model_from_form
from ketaclinic.services.errors import InvalidInput, ServiceError, Throttled
from ketaclinic.services.mbc.inputs import (
    AcknowledgeRequest,
    AssessmentCreate,
    EventCreate,
    LinkCreate,
    ReminderCreate,
    SelfReportSubmit,
)
from ketaclinic.services.mbc.instrument_forms import answers_from_form, answers_from_items
from ketaclinic.services.mbc.self_report import LinkUnavailable
from ketaclinic.services.numbers import optional_id
from ketaclinic.web.panels import load_panels
from ketaclinic.web.render import redirect, render

router = APIRouter()


def _patient_error(request: Request, svc, viewer, patient_id: int,
                   exc: ServiceError, form: dict[str, str]) -> Response:
    patient = svc.patients.get(viewer.actor, patient_id)
    return render(request, "patient_detail.html", status_code=exc.status, patient=patient,
                  today=svc.ctx.today(), error=str(exc), error_section="mbc",
                  values=form, panels=load_panels(svc, viewer, patient_id))


# --- clinic pages ---------------------------------------------------------------------------
@router.get("/alerts")
def alerts_page(request: Request, svc: ServicesDep, viewer: ViewerDep,
                show: str = "open") -> Response:
    alerts = svc.mbc.alerts.worklist(viewer.actor, include_acknowledged=(show == "all"))
    return render(request, "alerts.html", alerts=alerts, show=show)


@router.post("/alerts/{alert_id}/acknowledge")
async def alert_acknowledge(request: Request, alert_id: int, svc: ServicesDep,
                            viewer: ViewerDep) -> Response:
    """The worklist's (or the patient page's) acknowledgement: the JSON body's model."""
    form = await read_checked_form(request, viewer)
    # Where to go back to is read before anything changes: a bad one must not leave the
    # alert acknowledged behind an error page.
    back_to = optional_id(form.get("back"), "back")
    try:
        data = model_from_form(AcknowledgeRequest, form)
        svc.mbc.alerts.acknowledge(viewer.actor, alert_id, data.note)
    except InvalidInput as exc:
        alerts = svc.mbc.alerts.worklist(viewer.actor)
        return render(request, "alerts.html", status_code=422, alerts=alerts, show="open",
                      error=str(exc), error_alert=alert_id)
    if back_to is not None:
        return redirect(f"/patients/{back_to}#mbc")
    return redirect("/alerts")


@router.post("/patients/{patient_id}/assessments")
async def assessment_create(request: Request, patient_id: int, svc: ServicesDep,
                            viewer: ViewerDep) -> Response:
    """The page's entry form, built into the JSON body's model: the radio rows become
    ``answers``, the time typed on the clinic's clock the UTC ``administered_at``."""
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(AssessmentCreate, form, local=LocalDay(
            svc.ctx.today(), svc.ctx.clinic_time), times=("administered_at",),
            extra={"answers": answers_from_form(form)})
        svc.mbc.assessments.create(viewer.actor, patient_id, data,
                                   form.get("idempotency_key") or None)
    except (InvalidInput, ServiceError) as exc:
        if exc.status not in (404, 409, 422):
            raise
        return _patient_error(request, svc, viewer, patient_id, exc, form)
    return redirect(f"/patients/{patient_id}#mbc")


@router.post("/patients/{patient_id}/clinical-events")
async def clinical_event_create(request: Request, patient_id: int, svc: ServicesDep,
                                viewer: ViewerDep) -> Response:
    """The patient page's event form: the JSON body's model."""
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(EventCreate, form)
        svc.mbc.assessments.record_event(viewer.actor, patient_id, data.kind, data.occurred_on,
                                         data.note, data.course_id)
    except InvalidInput as exc:
        return _patient_error(request, svc, viewer, patient_id, exc, form)
    return redirect(f"/patients/{patient_id}#mbc")


@router.post("/patients/{patient_id}/self-report-links")
async def self_report_link_create(request: Request, patient_id: int, svc: ServicesDep,
                                  viewer: ViewerDep) -> Response:
    """The patient page's link form: the JSON body's model."""
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(LinkCreate, form)
        link, token = svc.mbc.self_report.create_link(
            viewer.actor, patient_id, data.instrument, course_id=data.course_id,
            delivery=data.delivery)
    except InvalidInput as exc:
        return _patient_error(request, svc, viewer, patient_id, exc, form)
    url = str(request.base_url).rstrip("/") + f"/r/{token}" if token else None
    return render(request, "mbc_link_created.html", link=link, url=url, patient_id=patient_id)


@router.post("/patients/{patient_id}/reminders")
async def reminder_schedule(request: Request, patient_id: int, svc: ServicesDep,
                            viewer: ViewerDep) -> Response:
    """The patient page's reminder form (no JSON twin): read as :class:`ReminderCreate`."""
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(ReminderCreate, form)
        svc.mbc.self_report.set_schedule(viewer.actor, patient_id, data.course_id,
                                         data.instrument, data.days, channel=data.channel)
    except InvalidInput as exc:
        return _patient_error(request, svc, viewer, patient_id, exc, form)
    return redirect(f"/patients/{patient_id}#mbc")


# --- the public self-report form (no login) ------------------------------------------------
def _link_message(request: Request, exc: ServiceError) -> Response:
    page = render(request, "selfreport_message.html", status_code=exc.status,
                  message=str(exc), viewer=None)
    if isinstance(exc, Throttled):
        page.headers["Retry-After"] = str(exc.retry_after_s)
    return page


@router.get("/r/{token}")
def self_report_form(request: Request, token: str, svc: ServicesDep) -> Response:
    try:
        form = svc.mbc.self_report.open_form(token, client_address(request))
    except (LinkUnavailable, Throttled) as exc:
        return _link_message(request, exc)
    return render(request, "selfreport_form.html", form=form, token=token, values={},
                  viewer=None)


@router.post("/r/{token}")
async def self_report_submit(request: Request, token: str, svc: ServicesDep) -> Response:
    """The patient's phone form, built into the JSON body's model: the radio rows become
    ``answers`` (an item left unanswered is missing); the service decides the rest."""
    client = client_address(request)
    raw: dict[str, str] = {}
    try:
        raw = await read_form(request)
        data = model_from_form(SelfReportSubmit, raw, extra={
            "answers": answers_from_items(raw, required=False)})
        svc.mbc.self_report.submit(token, data.form_key, data.answers, client)
    except (LinkUnavailable, Throttled) as exc:
        return _link_message(request, exc)
    except InvalidInput as exc:
        try:
            form = svc.mbc.self_report.open_form(token, client)
        except (LinkUnavailable, Throttled) as again:
            return _link_message(request, again)
        return render(request, "selfreport_form.html", status_code=422, form=form,
                      token=token, values=raw, error=str(exc), viewer=None)
    return render(request, "selfreport_message.html", status_code=200, done=True,
                  message="Thank you. Your answers have been sent to your care team.",
                  viewer=None)
