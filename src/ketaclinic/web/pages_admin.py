"""Administration pages: users and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import ServicesDep, ViewerDep, read_checked_form
from ketaclinic.http.inputs import model_from_form
from ketaclinic.schemas import PasswordResetCreate, UserCreate
from ketaclinic.services.accounts.inputs import MedicalDirectorFlag, UserActive
from ketaclinic.services.errors import Conflict, InvalidInput
from ketaclinic.services.numbers import optional_id
from ketaclinic.web.messages import ADMIN_USERS_PAGE, page_message, with_message
from ketaclinic.web.render import redirect, render

router = APIRouter(prefix="/admin")


@router.get("/users")
def users_page(request: Request, svc: ServicesDep, viewer: ViewerDep, msg: str = "",
               user: int | None = None) -> Response:
    users = svc.auth.list_users(viewer.actor)
    # ``user`` is an id: the name in the message comes from the database, never from the link.
    named = {u.id: u.username for u in users}
    values = {"username": named[user]} if user in named else {}
    return render(request, "admin_users.html", users=users, values={},
                  message=page_message(ADMIN_USERS_PAGE, msg, **values))


@router.post("/users")
async def users_create(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(UserCreate, form)
        svc.auth.create_user(viewer.actor, data.username, data.full_name, data.role,
                             data.password)
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
    svc.auth.set_active(viewer.actor, user_id, model_from_form(UserActive, form).active)
    return redirect("/admin/users")


@router.post("/users/{user_id}/medical-director")
async def users_set_medical_director(request: Request, user_id: int, svc: ServicesDep,
                                     viewer: ViewerDep) -> Response:
    """Set or clear the flag that lets a user co-sign loosening a hard limit."""
    form = await read_checked_form(request, viewer)
    svc.auth.set_medical_director(viewer.actor, user_id,
                                  model_from_form(MedicalDirectorFlag, form).flag)
    return redirect("/admin/users")


# --- resets: a confirmation page (GET), then the change (POST, CSRF-checked) ----------------
_RESETS = {"reset-password": "password", "reset-two-factor": "two-factor"}


@router.get("/users/{user_id}/reset-password")
@router.get("/users/{user_id}/reset-two-factor")
def users_reset_confirm(request: Request, user_id: int, svc: ServicesDep,
                        viewer: ViewerDep) -> Response:
    kind = _RESETS[request.url.path.rsplit("/", 1)[1]]
    user = svc.accounts.get_user(viewer.actor, user_id)
    return render(request, "admin_user_reset.html", user=user, kind=kind,
                  hours=svc.settings.temporary_password_hours)


@router.post("/users/{user_id}/reset-password")
async def users_reset_password(request: Request, user_id: int, svc: ServicesDep,
                               viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        chosen = model_from_form(PasswordResetCreate, form).temporary_password
        reset = svc.accounts.reset_password(viewer.actor, user_id, chosen)
    except InvalidInput as exc:
        user = svc.accounts.get_user(viewer.actor, user_id)
        return render(request, "admin_user_reset.html", status_code=422, user=user,
                      kind="password", hours=svc.settings.temporary_password_hours,
                      error=str(exc))
    # The generated password is shown in this answer only (no-store), never stored in clear.
    return render(request, "admin_user_reset.html", user=reset.user, kind="password",
                  done=reset, hours=svc.settings.temporary_password_hours)


@router.post("/users/{user_id}/reset-two-factor")
async def users_reset_two_factor(request: Request, user_id: int, svc: ServicesDep,
                                 viewer: ViewerDep) -> Response:
    await read_checked_form(request, viewer)
    try:
        user = svc.accounts.reset_two_factor(viewer.actor, user_id)
    except (InvalidInput, Conflict) as exc:
        user = svc.accounts.get_user(viewer.actor, user_id)
        return render(request, "admin_user_reset.html", status_code=exc.status, user=user,
                      kind="two-factor", error=str(exc))
    return redirect(with_message(ADMIN_USERS_PAGE, "two-factor-reset", user=user.id))


@router.get("/audit")
def audit_page(request: Request, svc: ServicesDep, viewer: ViewerDep, page: int = 1,
               patient_id: str = "", action: str = "", verify: int = 0) -> Response:
    page = max(1, min(page, 100_000))
    wanted = optional_id(patient_id, "patient id")
    rows, total = svc.audit_log.page(viewer.actor, limit=50, offset=(page - 1) * 50,
                                     patient_id=wanted, action=action)
    check = svc.audit_log.verify(viewer.actor) if verify else None
    names = svc.audit_log.patient_names(viewer.actor, {r.patient_id for r in rows})
    return render(request, "audit.html", rows=rows, total=total, page=page,
                  pages=max(1, -(-total // 50)), patient_id=patient_id, action=action,
                  check=check, names=names,
                  banner_for=wanted if wanted in names else None)
