"""Login and logout pages."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import (
    CHANGE_PASSWORD_PAGE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    ServicesDep,
    client_address,
    current_viewer,
    read_checked_form,
    read_form,
    set_session_cookie,
)
from ketaclinic.services.accounts.auth import LoginResult, SessionLocked
from ketaclinic.services.errors import NotAuthenticated, Throttled
from ketaclinic.web.messages import ACCOUNT_PAGE, LOGIN_PAGE, page_message, with_message
from ketaclinic.web.render import redirect, render

router = APIRouter()


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _landing(result: LoginResult, target: str | None) -> str:
    """Where a successful login goes: a forced password change first, then the next page."""
    if result.user.must_change_password:
        return CHANGE_PASSWORD_PAGE
    if result.recovery_codes_left is not None:  # the account page says how many are left
        return with_message(ACCOUNT_PAGE, "recovery-code-used", "recovery-codes")
    return _safe_next(target)


@router.get("/login")
def login_page(request: Request, next: str = "", msg: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", next=_safe_next(next),
                      message=page_message(LOGIN_PAGE, msg),  # a code (web/messages.py)
                      prelogin=token, viewer=None)
    response.set_cookie(PRELOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.url.scheme == "https")
    return response


@router.post("/login")
async def login_submit(request: Request, svc: ServicesDep) -> Response:
    form = await read_form(request)
    expected = request.cookies.get(PRELOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form.get("prelogin", "")):
        return render(request, "login.html", status_code=403, viewer=None, next="/patients",
                      prelogin=expected or secrets.token_urlsafe(24),
                      error="The login form expired; please try again.")
    try:
        result = svc.auth.login(form.get("username", ""), form.get("password", ""),
                                client_address(request),
                                totp_code=(form.get("totp_code") or "").strip() or None,
                                recovery_code=(form.get("recovery_code") or "").strip() or None)
    except (NotAuthenticated, Throttled) as exc:
        status = 429 if isinstance(exc, Throttled) else 401
        page = render(request, "login.html", status_code=status, viewer=None,
                      next=_safe_next(form.get("next")), prelogin=expected, error=str(exc),
                      username=form.get("username", "")[:64])
        if isinstance(exc, Throttled):
            page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    response = redirect(_landing(result, form.get("next")))
    set_session_cookie(response, request, result.token, svc.settings.secure_cookies)
    response.delete_cookie(PRELOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, svc: ServicesDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    try:
        viewer = current_viewer(request, svc)
        await read_checked_form(request, viewer)
    except SessionLocked:  # logging out from the lock screen ends the locked session
        form = await read_form(request)
        if form.get("csrf_token") != svc.lock.locked_info(token).csrf_token:
            return redirect("/login")
    except NotAuthenticated:
        return redirect("/login")
    svc.auth.logout(token)
    response = redirect(with_message(LOGIN_PAGE, "logged-out"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
