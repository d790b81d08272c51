"""The account lifecycle after creation: changing one's password, an administrator's password
and two-factor resets, recovery codes, and encrypting two-factor keys at rest.

Passwords never reach the audit trail or a log; every change is audited by its action name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ketaclinic.services.accounts import recovery_codes
from ketaclinic.services.accounts.auth import (
    AuthService,
    UserInfo,
    existing_user,
    hash_password,
    recovery_codes_left,
    replace_recovery_codes,
    user_info,
    validate_password,
    verify_password,
)
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import SYSTEM, Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from ketaclinic.services.secretbox import EncryptReport, SecretBox, totp_context
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import LoginAttempt, RecoveryCode, User


@dataclass(frozen=True)
class PasswordReset:
    user: UserInfo
    generated: str | None  # the temporary password when the server chose it (shown once)
    expires_at: dt.datetime
    sessions_ended: int


class AccountService:
    def __init__(self, ctx: Context, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    # --- lookups for the admin pages and the command line ---------------------------------
    def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        with self.ctx.unit_of_work(actor, "user.view", perm=Perm.USER_MANAGE) as uow:
            return user_info(existing_user(uow.session, user_id))

    def user_id_for(self, actor: Actor, username: str) -> int:
        with self.ctx.unit_of_work(actor, "user.view", perm=Perm.USER_MANAGE) as uow:
            found = uow.session.execute(select(User.id).where(
                User.username == (username or "").strip().lower())).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no user named {username!r}")
        return int(found)

    def recovery_codes_left(self, actor: Actor) -> int:
        with self.ctx.unit_of_work(actor, "totp.recovery_codes.left") as uow:  # one's own
            return recovery_codes_left(uow.session, self._own(uow.session, actor).id)

    # --- the user's own account -----------------------------------------------------------
    def change_password(self, actor: Actor, current: str, new: str, *,
                        keep_token: str | None = None, client: str = "unknown") -> UserInfo:
        """Replace the user's password after re-checking the current one.

        Every other session of the user ends (the one of ``keep_token`` stays). A wrong current
        password counts as a failed login (throttled like one) and changes nothing.
        """
        work = self.ctx.unit_of_work(actor, "user.password.change")
        self._check_password(work, current, client)
        with work as uow:
            s = uow.session
            user = self._own(s, actor)
            validate_password(new, user.username)
            if verify_password(user.password_hash, new):
                raise InvalidInput("the new password must differ from the current one")
            user.password_hash = hash_password(new)
            user.must_change_password, user.password_expires_at = False, None
            ended = self.auth._end_sessions(s, user.id, "password change", uow.now, keep_token)
            uow.audit(detail=f"{ended} other sessions ended")
            return user_info(user)

    def regenerate_recovery_codes(self, actor: Actor, password: str, *,
                                  client: str = "unknown") -> list[str]:
        """A new set of ten recovery codes (the old ones stop working); needs the password."""
        work = self.ctx.unit_of_work(actor, "totp.recovery_codes.regenerate")
        self._check_password(work, password, client)
        with work as uow:
            user = self._own(uow.session, actor)
            if not user.totp_secret:
                raise Conflict("two-factor login is not set up for this account")
            codes = replace_recovery_codes(uow.session, user.id, uow.now)
            uow.audit(detail=f"{len(codes)} recovery codes issued")
            return codes

    def _check_password(self, work: UnitOfWork, password: str, client: str) -> None:
        """Re-authentication, the unit's first transaction: throttled and recorded like a
        login attempt; a failure is audited as the unit's action (and committed)."""
        self.auth.refuse_if_throttled(work.actor.username, client, work.now, work.action)
        with work as uow:
            user = self._own(uow.session, work.actor)
            ok = verify_password(user.password_hash, password or "")
            if not ok:
                uow.session.add(LoginAttempt(username=user.username, client=client[:64],
                                             at=uow.now, success=False))
                uow.audit(outcome="failed", detail="current password wrong")
        if not ok:
            raise InvalidInput("the current password is not correct")

    # --- administrators --------------------------------------------------------------------
    def reset_password(self, actor: Actor, user_id: int,
                       temporary: str | None = None) -> PasswordReset:
        """Set a temporary password the user must replace at the next login; ends sessions.

        Without ``temporary`` the server generates one, returned once in ``generated``.
        """
        work = self.ctx.unit_of_work(actor, "user.password.reset", perm=Perm.USER_MANAGE)
        generated = None if temporary else recovery_codes.temporary_password()
        expires = work.now + dt.timedelta(hours=self.ctx.settings.temporary_password_hours)
        with work as uow:
            s = uow.session
            user = existing_user(s, user_id)
            self._not_self(actor, user, "password")
            if user.kind != "person":
                raise Conflict(f"{user.username} is a service account: it has no password "
                               "(issue or revoke its API tokens instead)")
            validate_password(temporary or generated or "", user.username)
            user.password_hash = hash_password(temporary or generated or "")
            user.must_change_password, user.password_expires_at = True, expires
            ended = self.auth._end_sessions(s, user.id, "password reset", uow.now)
            how = "generated" if generated else "chosen by the administrator"
            uow.audit(detail=f"user {user.username}; temporary password {how}; "
                             f"{ended} sessions ended")
            return PasswordReset(user_info(user), generated, expires, ended)

    def reset_two_factor(self, actor: Actor, user_id: int) -> UserInfo:
        """Turn two-factor login off for a user who lost the device; ends their sessions.

        The user enrols again at the next login (straight away where their role requires it).
        """
        with self.ctx.unit_of_work(actor, "user.totp.reset", perm=Perm.USER_MANAGE) as uow:
            s = uow.session
            user = existing_user(s, user_id)
            self._not_self(actor, user, "two-factor login")
            if not (user.totp_secret or user.totp_pending_secret):
                raise Conflict(f"two-factor login is not set up for {user.username}")
            user.totp_secret = user.totp_pending_secret = None
            user.totp_last_step = None
            s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
            ended = self.auth._end_sessions(s, user.id, "2fa reset", uow.now)
            uow.audit(detail=f"user {user.username}; {ended} sessions ended")
            return user_info(user)

    # --- the operator ------------------------------------------------------------------------
    def encrypt_secrets(self, previous_secret: str | None = None) -> EncryptReport:
        """Encrypt plaintext two-factor keys; re-encrypt those under a previous instance secret.

        Command line only (the SYSTEM actor). Keys that cannot be read are listed, not changed.
        """
        current = self.ctx.settings.secret_key.get_secret_value()
        box = SecretBox.for_secrets(current, previous_secret) if previous_secret else self.auth.box
        report = EncryptReport()
        with self.ctx.unit_of_work(SYSTEM, "user.secrets.encrypt") as uow:
            for user in uow.session.execute(select(User).order_by(User.id)).scalars():
                for column in ("totp_secret", "totp_pending_secret"):
                    stored = getattr(user, column)
                    if stored:
                        setattr(user, column, report.reseal(
                            box, stored, totp_context(user.id, column), user.username))
            uow.audit(detail=report.describe())
        return report

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _own(s: Session, actor: Actor) -> User:
        user = s.get(User, actor.user_id) if actor.user_id else None
        if user is None or not user.active:
            raise NotAuthenticated("please log in")
        return user

    @staticmethod
    def _not_self(actor: Actor, user: User, what: str) -> None:
        if actor.user_id is not None and user.id == actor.user_id:
            raise InvalidInput(f"you cannot reset your own {what} here; change it on your "
                               "account page (or ask another administrator)")
