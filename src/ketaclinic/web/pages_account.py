"""The user's own account: password, two-factor login (TOTP) and its recovery codes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import (
    CHANGE_PASSWORD_PAGE,
    ENROLMENT_PAGE,
    SESSION_COOKIE,
    ServicesDep,
    ViewerDep,
    client_address,
    read_checked_form,
)
from ketaclinic.http.inputs import model_from_form
from ketaclinic.services.accounts.inputs import LockPinSet
from ketaclinic.services.errors import Conflict, InvalidInput
from ketaclinic.web.messages import ACCOUNT_PAGE, page_message, with_message
from ketaclinic.web.render import redirect, render

router = APIRouter()


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


@router.get(ACCOUNT_PAGE)
def account_page(request: Request, svc: ServicesDep, viewer: ViewerDep, msg: str = "") -> Response:
    return _account(request, svc, viewer, msg=msg)


def _account(request: Request, svc: ServicesDep, viewer: ViewerDep, msg: str = "",
             status: int = 200, error: str = "", error_section: str = "") -> Response:
    user = viewer.session.user
    left = svc.accounts.recovery_codes_left(viewer.actor) if user.totp_enrolled else 0
    return render(request, "account.html", status_code=status, user=user, codes_left=left,
                  message=page_message(ACCOUNT_PAGE, msg, left=left), error=error,
                  error_section=error_section,
                  has_pin=svc.lock.has_pin(viewer.actor),
                  idle_minutes=svc.settings.idle_timeout_minutes)


@router.post("/account/pin")
async def account_set_pin(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    """Set the lock-screen PIN: the current password confirms it is the user."""
    form = await read_checked_form(request, viewer)
    try:
        body = model_from_form(LockPinSet, form)  # the body PUT /api/me/lock-pin takes
        svc.lock.set_pin(viewer.actor, body.password, body.pin)
    except InvalidInput as exc:
        return _account(request, svc, viewer, status=422, error=str(exc), error_section="pin")
    return redirect(with_message(ACCOUNT_PAGE, "pin-set", "pin"))


@router.post("/account/pin/remove")
async def account_remove_pin(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    await read_checked_form(request, viewer)
    svc.lock.clear_pin(viewer.actor)
    return redirect(with_message(ACCOUNT_PAGE, "pin-removed", "pin"))


# --- password -------------------------------------------------------------------------------
@router.get(CHANGE_PASSWORD_PAGE)
def password_page(request: Request, viewer: ViewerDep) -> Response:
    return render(request, "account_password.html",
                  forced=viewer.session.must_change_password)


@router.post(CHANGE_PASSWORD_PAGE)
async def password_change(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    forced = viewer.session.must_change_password
    if form.get("new_password", "") != form.get("confirm_password", ""):
        return render(request, "account_password.html", status_code=422, forced=forced,
                      error="the two new passwords are not the same")
    try:
        svc.accounts.change_password(viewer.actor, form.get("current_password", ""),
                                     form.get("new_password", ""),
                                     keep_token=request.cookies.get(SESSION_COOKIE),
                                     client=client_address(request))
    except InvalidInput as exc:
        return render(request, "account_password.html", status_code=422, forced=forced,
                      error=str(exc))
    if forced:
        return redirect("/")
    return redirect(with_message(ACCOUNT_PAGE, "password-changed"))


# --- recovery codes -------------------------------------------------------------------------
@router.post(f"{ACCOUNT_PAGE}/recovery-codes")
async def recovery_codes_new(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        codes = svc.accounts.regenerate_recovery_codes(
            viewer.actor, form.get("password", ""), client=client_address(request))
    except (InvalidInput, Conflict) as exc:
        return _account(request, svc, viewer, status=exc.status, error=str(exc))
    return render(request, "recovery_codes.html", codes=codes, fresh_enrolment=False)


# --- two-factor enrolment -------------------------------------------------------------------
def _page(request: Request, svc: ServicesDep, viewer: ViewerDep, status: int = 200,
          error: str = "") -> Response:
    if viewer.session.user.totp_enrolled:
        return render(request, "totp_enrol.html", status_code=status, enrolled=True)
    try:
        secret, uri = svc.auth.totp_begin(viewer.actor)
    except Conflict:
        return render(request, "totp_enrol.html", status_code=status, enrolled=True)
    return render(request, "totp_enrol.html", status_code=status, enrolled=False,
                  secret=_grouped(secret), uri=uri, error=error,
                  required=viewer.session.must_enrol_totp)


@router.get(ENROLMENT_PAGE)
def totp_page(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return _page(request, svc, viewer)


@router.post(ENROLMENT_PAGE)
async def totp_confirm(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        codes = svc.auth.totp_confirm(viewer.actor, form.get("code", ""))
    except InvalidInput as exc:
        return _page(request, svc, viewer, status=422, error=str(exc))
    except Conflict:
        return redirect(ENROLMENT_PAGE)
    # Shown once, in this answer only (never cached: every page is Cache-Control: no-store).
    return render(request, "recovery_codes.html", codes=codes, fresh_enrolment=True)
