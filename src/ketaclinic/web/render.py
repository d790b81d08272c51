"""Rendering helpers for the server-side pages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ketaclinic.services.errors import ServiceError

CLINICAL_ROLES = frozenset({"admin", "prescriber", "nurse"})


def urgent_alert_count(request: Request, viewer: Any) -> int:
    """Open urgent alerts for the navigation badge (clinical roles; 0 when not allowed)."""
    if viewer is None or viewer.role not in CLINICAL_ROLES or (
            viewer.session.must_change_password or viewer.session.must_enrol_totp):
        return 0
    try:
        return request.app.state.services.mbc.alerts.urgent_open_count(viewer.actor)
    except ServiceError:
        return 0


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; ``banner_for=patient_id`` puts the patient banner on top (an audited
    read, see ``PatientService.banner``)."""
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    banner_for = context.pop("banner_for", None)
    patient = context.get("patient")
    if banner_for is None and patient is not None and hasattr(patient, "mrn"):
        banner_for = patient.id  # a page about one patient
    if banner_for is not None and context["viewer"] is not None:
        context["banner"] = request.app.state.services.patients.banner(
            context["viewer"].actor, banner_for)
    context.setdefault("urgent_alerts", urgent_alert_count(request, context["viewer"]))
    context.setdefault("current_path", request.url.path)
    return request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


def redirect(url: str) -> RedirectResponse:
    """After a successful POST: 303 See Other, so a reload does not resubmit."""
    return RedirectResponse(url, status_code=303)


def attachment(content: bytes | str, media_type: str, filename: str) -> Response:
    """A file to download (iCalendar, PDF, export) under ``filename``."""
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})
