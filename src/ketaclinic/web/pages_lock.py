"""The lock screen: /unlock page and POST /api/session/unlock.

A locked session shows only the user's own name and a PIN/password field; the tablet page's
drafts stay in the browser (web/static/chair.js) and come back after unlocking.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, ValidationError

from ketaclinic.http.deps import CSRF_HEADER, SESSION_COOKIE, ServicesDep, client_address, read_form
from ketaclinic.schemas import _Strict
from ketaclinic.services.accounts.lock_screen import UnlockRefused
from ketaclinic.services.errors import InvalidInput, NotAuthenticated
from ketaclinic.web.pages_auth import _safe_next
from ketaclinic.web.render import redirect, render

router = APIRouter()
api_router = APIRouter(prefix="/api")


class UnlockBody(_Strict):
    secret: str = Field(min_length=1, max_length=256)


def _secret(body: dict[str, Any]) -> str:
    try:
        return UnlockBody.model_validate(body).secret
    except ValidationError as exc:
        raise InvalidInput("send {\"secret\": your PIN or password}") from exc


def _csrf_ok(expected: str, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(supplied or "", expected)


@router.get("/unlock")
def unlock_page(request: Request, svc: ServicesDep, next: str = "/patients") -> Response:
    info = svc.lock.locked_info(request.cookies.get(SESSION_COOKIE))
    if not info.locked:
        return redirect(_safe_next(next))
    return render(request, "unlock.html", info=info, next=_safe_next(next), viewer=None)


@router.post("/unlock")
async def unlock_submit(request: Request, svc: ServicesDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    info = svc.lock.locked_info(token)
    form = await read_form(request)
    target = _safe_next(form.get("next"))
    if not _csrf_ok(info.csrf_token, form.get("csrf_token")):
        return render(request, "unlock.html", status_code=403, info=info, next=target,
                      viewer=None, error="the form is missing its token; reload the page")
    try:
        svc.lock.unlock(token, form.get("secret", ""), client_address(request))
    except UnlockRefused as exc:
        if exc.left == 0:
            raise
        return render(request, "unlock.html", status_code=401, info=info, next=target,
                      viewer=None, error=str(exc))
    return redirect(target)


@api_router.post("/session/unlock", tags=["auth"])
def api_unlock(request: Request, body: Annotated[dict[str, Any], Body()],
               svc: ServicesDep) -> Response:
    """Unlock a locked session with the lock-screen PIN or the password (X-CSRF-Token of the
    session). Wrong answers count; after ``login_max_failures`` the session ends."""
    token = request.cookies.get(SESSION_COOKIE)
    try:
        info = svc.lock.locked_info(token)
        if not _csrf_ok(info.csrf_token, request.headers.get(CSRF_HEADER)):
            return JSONResponse({"detail": "missing or wrong X-CSRF-Token"}, status_code=403)
        svc.lock.unlock(token, _secret(body), client_address(request))
    except UnlockRefused as exc:
        return JSONResponse({"detail": str(exc), "tries_left": exc.left,
                             "logged_out": exc.left == 0}, status_code=401)
    except NotAuthenticated as exc:
        return JSONResponse({"detail": str(exc), "logged_out": True}, status_code=401)
    return JSONResponse({"unlocked": True})
