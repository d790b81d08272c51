"""Rendering helpers for the server-side pages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("viewer", getattr(request.state, "viewer", None))
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
