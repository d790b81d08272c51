"""Administration pages: users and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.services.errors import Conflict, InvalidInput
from ketaclinic.web.deps import ServicesDep, ViewerDep, read_checked_form
from ketaclinic.web.render import redirect, render

router = APIRouter(prefix="/admin")


@router.get("/users")
def users_page(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    users = svc.auth.list_users(viewer.actor)
    return render(request, "admin_users.html", users=users, values={})


@router.post("/users")
async def users_create(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        svc.auth.create_user(viewer.actor, form.get("username", ""), form.get("full_name", ""),
                             form.get("role", ""), form.get("password", ""))
    except (InvalidInput, Conflict) as exc:
        users = svc.auth.list_users(viewer.actor)
        values = {k: v for k, v in form.items() if k != "password"}
        return render(request, "admin_users.html", status_code=exc.status, users=users,
                      values=values, error=str(exc))
    return redirect("/admin/users")


@router.post("/users/{user_id}/active")
async def users_set_active(request: Request, user_id: int, svc: ServicesDep,
                           viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    svc.auth.set_active(viewer.actor, user_id, form.get("active") == "1")
    return redirect("/admin/users")


@router.get("/audit")
def audit_page(request: Request, svc: ServicesDep, viewer: ViewerDep, page: int = 1,
               patient_id: str = "", action: str = "", verify: int = 0) -> Response:
    page = max(1, min(page, 100_000))
    if patient_id and not patient_id.isdigit():
        raise InvalidInput("patient id must be a number")
    rows, total = svc.audit_log.page(viewer.actor, limit=50, offset=(page - 1) * 50,
                                     patient_id=int(patient_id) if patient_id else None,
                                     action=action)
    check = svc.audit_log.verify(viewer.actor) if verify else None
    return render(request, "audit.html", rows=rows, total=total, page=page,
                  pages=max(1, -(-total // 50)), patient_id=patient_id, action=action,
                  check=check)
