"""Administration page for machine access: service accounts and their API tokens.

A newly issued token's secret is in the answer to the POST only (shown once), never in a link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.http.inputs import model_from_form
from ketaclinic.services.accounts.api_tokens import SERVICE, IssuedToken
from ketaclinic.services.accounts.inputs import ServiceAccountCreate, TokenCreate
from ketaclinic.services.accounts.permissions import SCOPES
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.web.render import redirect, render

router = APIRouter(prefix="/admin")
PAGE = "/admin/tokens"


def _page(request: Request, svc: Any, viewer: Viewer, status_code: int = 200,
          issued: IssuedToken | None = None, error: str = "",
          values: dict[str, str] | None = None) -> Response:
    accounts = [u for u in svc.auth.list_users(viewer.actor) if u.kind == SERVICE]
    return render(request, "admin_tokens.html", status_code=status_code, accounts=accounts,
                  tokens=svc.tokens.list_tokens(viewer.actor), now=svc.ctx.clock(),
                  scopes=SCOPES, issued=issued, error=error, values=values or {},
                  max_days=svc.settings.api_token_max_days)


@router.get("/tokens")
def tokens_page(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return _page(request, svc, viewer)


@router.post("/service-accounts")
async def service_account_create(request: Request, svc: ServicesDep,
                                 viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(ServiceAccountCreate, form)
        svc.tokens.create_service_account(viewer.actor, data.username, data.full_name,
                                          data.role)
    except (InvalidInput, Conflict) as exc:
        return _page(request, svc, viewer, exc.status, error=str(exc), values=form)
    return redirect(PAGE)


@router.post("/service-accounts/{user_id}/tokens")
async def token_issue(request: Request, user_id: int, svc: ServicesDep,
                      viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)  # strict and CSRF-checked
    # The scope boxes repeat one name: the body read_checked_form already accepted, in full.
    scopes = [v for k, v in parse_qsl((await request.body()).decode("ascii"),
                                      max_num_fields=200) if k == "scope"]
    try:
        data = model_from_form(TokenCreate, form, extra={"scopes": scopes})
        issued = svc.tokens.issue(viewer.actor, user_id, data.label, data.scopes,
                                  data.expires_in_days)
    except (InvalidInput, Conflict, NotFound) as exc:
        return _page(request, svc, viewer, exc.status, error=str(exc))
    return _page(request, svc, viewer, 201, issued=issued)


@router.post("/tokens/{token_id}/revoke")
async def token_revoke(request: Request, token_id: int, svc: ServicesDep,
                       viewer: ViewerDep) -> Response:
    await read_checked_form(request, viewer)
    svc.tokens.revoke(viewer.actor, token_id)
    return redirect(PAGE)
