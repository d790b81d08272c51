"""The account lifecycle in the JSON API: own password, recovery codes and lock-screen PIN,
admin resets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from ketaclinic.api.routes import UserPublic, _user
from ketaclinic.http.deps import (
    CHANGE_PASSWORD_API,
    SESSION_COOKIE,
    ApiViewerDep,
    ServicesDep,
    client_address,
)
from ketaclinic.schemas import PasswordChange, PasswordResetCreate, Reauthentication, UtcTimestamp
from ketaclinic.services.accounts.inputs import LockPinSet

router = APIRouter(prefix="/api")


class RecoveryCodesPublic(BaseModel):
    codes: list[str]


class PasswordResetPublic(BaseModel):
    user: UserPublic
    temporary_password: str | None  # only when the server generated it; shown once
    expires_at: UtcTimestamp
    sessions_ended: int


@router.post(CHANGE_PASSWORD_API.removeprefix("/api"), response_model=UserPublic,
             tags=["account"], responses={422: {"description": "The current password is not "
                                                "correct, or the new one is refused"}})
def api_change_password(body: PasswordChange, request: Request, svc: ServicesDep,
                        viewer: ApiViewerDep) -> UserPublic:
    """Change your own password; your other sessions end (this one stays)."""
    return _user(svc.accounts.change_password(
        viewer.actor, body.current_password, body.new_password,
        keep_token=request.cookies.get(SESSION_COOKIE), client=client_address(request)))


@router.post("/me/recovery-codes", response_model=RecoveryCodesPublic, status_code=201,
             tags=["account"])
def api_recovery_codes(body: Reauthentication, request: Request, svc: ServicesDep,
                       viewer: ApiViewerDep) -> RecoveryCodesPublic:
    """Ten new one-time recovery codes (earlier ones stop working); needs your password."""
    return RecoveryCodesPublic(codes=svc.accounts.regenerate_recovery_codes(
        viewer.actor, body.password, client=client_address(request)))


class LockPinPublic(BaseModel):
    has_pin: bool = Field(description="Whether you have a lock-screen PIN (never the PIN)")


LOCK_PIN = "/me/lock-pin"


@router.get(LOCK_PIN, response_model=LockPinPublic, tags=["account"])
def api_lock_pin(svc: ServicesDep, viewer: ApiViewerDep) -> LockPinPublic:
    """Whether you have a lock-screen PIN: after the idle timeout a locked session is unlocked
    with it (or the password), ``POST /api/session/unlock``."""
    return LockPinPublic(has_pin=svc.lock.has_pin(viewer.actor))


@router.put(LOCK_PIN, response_model=LockPinPublic, tags=["account"], responses={
    409: {"description": "A service account has no lock screen"},
    422: {"description": "The current password is not correct, or the PIN is refused (6 to 8 "
          "digits, not one repeated digit nor a run like 123456, not your password)"}})
def api_set_lock_pin(body: LockPinSet, svc: ServicesDep,
                     viewer: ApiViewerDep) -> LockPinPublic:
    """Set or replace your lock-screen PIN, as on *My account*: your current password confirms
    it is you (a wrong one is audited); the PIN is stored hashed like a password."""
    svc.lock.set_pin(viewer.actor, body.password, body.pin)
    return LockPinPublic(has_pin=True)


@router.delete(LOCK_PIN, response_model=LockPinPublic, tags=["account"], responses={
    409: {"description": "A service account has no lock screen"}})
def api_remove_lock_pin(svc: ServicesDep, viewer: ApiViewerDep) -> LockPinPublic:
    """Remove your lock-screen PIN: a locked session then unlocks with the password only."""
    svc.lock.clear_pin(viewer.actor)
    return LockPinPublic(has_pin=False)


@router.post("/users/{user_id}/reset-password", response_model=PasswordResetPublic,
             tags=["admin"])
def api_reset_password(user_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                       body: Annotated[PasswordResetCreate | None, Body()] = None,
                       ) -> PasswordResetPublic:
    """Set a temporary password the user must replace at the next login; ends their sessions.

    Without a body (or without ``temporary_password``) the server generates one, returned here
    once.
    """
    chosen = body.temporary_password if body else None
    reset = svc.accounts.reset_password(viewer.actor, user_id, chosen)
    return PasswordResetPublic(user=_user(reset.user), temporary_password=reset.generated,
                               expires_at=reset.expires_at, sessions_ended=reset.sessions_ended)


@router.post("/users/{user_id}/reset-two-factor", response_model=UserPublic, tags=["admin"])
def api_reset_two_factor(user_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> UserPublic:
    """Turn two-factor login off for a user who lost the device; ends their sessions."""
    return _user(svc.accounts.reset_two_factor(viewer.actor, user_id))
