"""Predicted exposure: the one-dose SVG, the course SVG and the course page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from ketaclinic.http.deps import ServicesDep, ViewerDep
from ketaclinic.services.errors import InvalidInput
from ketaclinic.web.render import render

router = APIRouter()
SVG = "image/svg+xml"
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/patients/{patient_id}/pk.svg")
def pk_one_dose_svg(patient_id: int, svc: ServicesDep, viewer: ViewerDep, route: str = "iv",
                    dose_mg: str = "", minutes: str = "", model: str = "",
                    hours: str = "") -> Response:
    try:
        result = svc.pk.one_dose(viewer.actor, patient_id, route=route, dose_mg=dose_mg or None,
                                 minutes=minutes or None, model=model or None,
                                 hours=hours or None)
    except InvalidInput as exc:
        return PlainTextResponse(str(exc).splitlines()[0], status_code=422, headers=NO_STORE)
    return Response(result.svg(), media_type=SVG, headers=NO_STORE)


@router.get("/patients/{patient_id}/pk/course.svg")
def pk_course_svg(patient_id: int, svc: ServicesDep, viewer: ViewerDep,
                  model: str = "") -> Response:
    try:
        result = svc.pk.course(viewer.actor, patient_id, model=model or None)
    except InvalidInput as exc:
        return PlainTextResponse(str(exc).splitlines()[0], status_code=422, headers=NO_STORE)
    if result is None:
        return PlainTextResponse("no treatment sessions with a dose for this patient",
                                 status_code=404, headers=NO_STORE)
    return Response(result.svg("pk-course"), media_type=SVG, headers=NO_STORE)


@router.get("/patients/{patient_id}/pk")
def pk_course_page(request: Request, patient_id: int, svc: ServicesDep, viewer: ViewerDep,
                   model: str = "") -> Response:
    patient = svc.patients.get(viewer.actor, patient_id)
    error, result = None, None
    try:
        result = svc.pk.course(viewer.actor, patient_id, model=model or None)
    except InvalidInput as exc:
        error = str(exc)
    return render(request, "pk_course.html", status_code=422 if error else 200,
                  patient=patient, result=result, error=error, model=model)
