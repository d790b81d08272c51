"""The user's own account: setting up two-factor login (TOTP)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.services.errors import Conflict, InvalidInput
from ketaclinic.web.deps import ENROLMENT_PAGE, ServicesDep, ViewerDep, read_checked_form
from ketaclinic.web.render import redirect, render

router = APIRouter()


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


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
        svc.auth.totp_confirm(viewer.actor, form.get("code", ""))
    except InvalidInput as exc:
        return _page(request, svc, viewer, status=422, error=str(exc))
    except Conflict:
        pass
    return redirect(ENROLMENT_PAGE)
