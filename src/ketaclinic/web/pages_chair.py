"""Chair area pages: courses, the schedule of chairs, chair administration and iCalendar export.

The session tablet page and the ledger have their own modules; their routers are included here
so that ``web_routers()`` needs one line for the whole area.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.bootstrap import Services
from ketaclinic.http.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.http.inputs import TICKED, model_from_form
from ketaclinic.schemas_chair import ChairCreate, CourseCreate, CourseEnd, CourseNotes
from ketaclinic.services.chair.courses import template_choices
from ketaclinic.services.chair.inputs import ChairUpdate
from ketaclinic.services.errors import Conflict, InvalidInput, ServiceError
from ketaclinic.web import pages_ledger, pages_session
from ketaclinic.web.render import attachment, redirect, render

router = APIRouter()
router.include_router(pages_session.router)
router.include_router(pages_ledger.router)


# --- patient panel ------------------------------------------------------------------------
def load_panel(svc: Services, viewer: Viewer, patient_id: int) -> dict[str, Any] | None:
    """Courses and sessions on the patient page (clinical roles only)."""
    if viewer.role == "analyst":
        return None
    return {"courses": svc.chair.courses.for_patient(viewer.actor, patient_id),
            "sessions": svc.chair.views.patient_sessions(viewer.actor, patient_id),
            "templates": template_choices(), "can_prescribe": viewer.role == "prescriber"}


# --- courses ------------------------------------------------------------------------------
def weekday_boxes(form: dict[str, str]) -> dict[str, str]:
    """Weekday check boxes (``weekday_0`` = Monday … ``weekday_6``) as the "0,3" the course
    template reads; a form that still sends ``weekdays`` as text keeps it."""
    ticked = [str(i) for i in range(7) if form.get(f"weekday_{i}") in TICKED]
    if not ticked:
        return form
    return {**{k: v for k, v in form.items() if not k.startswith("weekday_")},
            "weekdays": ",".join(ticked)}


@router.post("/patients/{patient_id}/courses")
async def course_create(request: Request, patient_id: int, svc: ServicesDep,
                        viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    form = weekday_boxes(form)
    try:
        data = model_from_form(CourseCreate, form, checkboxes=("psychotherapy",
                                                               "concurrent_antidepressant"))
        course = svc.chair.courses.create(viewer.actor, patient_id, data)
    except InvalidInput as exc:
        return render(request, "error.html", status_code=exc.status, status=exc.status,
                      message=f"The course was not created: {exc}", refused_form=True)
    return redirect(f"/courses/{course.id}")


def _course_page(request: Request, svc: Services, viewer: Viewer, course_id: int,
                 status_code: int = 200, **extra: Any) -> Response:
    course, sessions, history = svc.chair.courses.get(viewer.actor, course_id)
    return render(request, "course.html", status_code=status_code, course=course,
                  sessions=sessions, history=history, banner_for=course.patient_id, **extra)


@router.get("/courses/{course_id}")
def course_view(request: Request, course_id: int, svc: ServicesDep,
                viewer: ViewerDep) -> Response:
    return _course_page(request, svc, viewer, course_id)


async def _course_change(request: Request, svc: Services, viewer: Viewer, course_id: int,
                         change: Callable[[dict[str, str]], object]) -> Response:
    """Apply one change to a course; a refusal shows the course page again with the reason."""
    form = await read_checked_form(request, viewer)
    try:
        change(form)
    except (InvalidInput, Conflict) as exc:
        return _course_page(request, svc, viewer, course_id, status_code=exc.status,
                            error=str(exc))
    return redirect(f"/courses/{course_id}")


@router.post("/courses/{course_id}/end")
async def course_end(request: Request, course_id: int, svc: ServicesDep,
                     viewer: ViewerDep) -> Response:
    return await _course_change(request, svc, viewer, course_id, lambda form: (
        svc.chair.courses.end(viewer.actor, course_id, model_from_form(CourseEnd, form))))


@router.post("/courses/{course_id}/notes")
async def course_notes(request: Request, course_id: int, svc: ServicesDep,
                       viewer: ViewerDep) -> Response:
    return await _course_change(request, svc, viewer, course_id, lambda form: (
        svc.chair.courses.amend_notes(viewer.actor, course_id, model_from_form(CourseNotes, form))))


# --- the nurse's start page -------------------------------------------------------------
@router.get("/today")
def today(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    """Today's chairs (tomorrow's once the clinic has closed): who is where, what is due."""
    return render(request, "today.html", board=svc.chair.board.board(viewer.actor),
                  now=svc.ctx.clock())


# --- schedule -----------------------------------------------------------------------------
def _day(text: str, today: dt.date) -> dt.date:
    if not text:
        return today
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput("day must be a date like 2026-11-02") from exc


@router.get("/schedule")
def schedule(request: Request, svc: ServicesDep, viewer: ViewerDep, day: str = "",
             view: str = "day") -> Response:
    clinic = svc.ctx.clinic_time
    first = _day(day[:10], svc.ctx.today())
    days = 7 if view == "week" else 1
    if days == 7:
        first = clinic.week_start(first)
    chairs, booked, planned = svc.chair.schedule.calendar(viewer.actor, first, days)
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    grid = {(d, c.id): [b for b in booked if clinic.local_date(b.start) == d
                        and b.chair_id == c.id] for d in dates for c in chairs}
    return render(request, "schedule.html", chairs=chairs, dates=dates, grid=grid,
                  planned=planned, view="week" if days == 7 else "day", first=first,
                  step=dt.timedelta(days=days))


@router.get("/patients/{patient_id}/calendar.ics")
def patient_calendar(patient_id: int, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return attachment(svc.chair.schedule.patient_ics(viewer.actor, patient_id),
                      "text/calendar; charset=utf-8", f"sessions-{patient_id}.ics")


# --- chairs (admin) -----------------------------------------------------------------------
@router.get("/admin/chairs")
def chairs_admin(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return render(request, "chairs_admin.html",
                  chairs=svc.chair.schedule.chairs(viewer.actor, include_inactive=True))


async def _chair_change(request: Request, svc: Services, viewer: Viewer,
                        change: Callable[[dict[str, str]], object],
                        refused: tuple[type[ServiceError], ...]) -> Response:
    """Apply one change to the chairs; a refusal shows the chairs page again with the reason."""
    form = await read_checked_form(request, viewer)
    try:
        change(form)
    except refused as exc:
        return render(request, "chairs_admin.html", status_code=exc.status, error=str(exc),
                      chairs=svc.chair.schedule.chairs(viewer.actor, include_inactive=True))
    return redirect("/admin/chairs")


@router.post("/admin/chairs")
async def chairs_create(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return await _chair_change(request, svc, viewer, lambda form: (
        svc.chair.schedule.create_chair(viewer.actor, model_from_form(ChairCreate, form))),
        (InvalidInput, Conflict))


@router.post("/admin/chairs/{chair_id}")
async def chairs_update(request: Request, chair_id: int, svc: ServicesDep,
                        viewer: ViewerDep) -> Response:
    return await _chair_change(request, svc, viewer, lambda form: (
        svc.chair.schedule.update_chair(viewer.actor, chair_id, model_from_form(
            ChairUpdate, form, checkboxes=("active",)))), (InvalidInput,))
