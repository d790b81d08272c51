"""The lock screen: an idle session is locked, not ended.

After ``idle_timeout_minutes`` without a request the server marks the session locked
(:meth:`AuthService.resolve` sets ``auth_sessions.locked_at``): every request then answers 401
(pages redirect to ``/unlock``) and shows no data until the same user re-authenticates with
their lock-screen PIN or their password. A wrong PIN or password counts against the session;
``login_max_failures`` of them end it (a full login is needed). The absolute timeout still ends
a locked session. The PIN (6–8 digits, not one repeated digit nor a run) is hashed like a
password and set by the user with their current password, on My account or through
``PUT /api/me/lock-pin`` (one input model, ``services/accounts/inputs.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ketaclinic.clinical.inputs import DIGITS_ONLY, has_foreign_digits
from ketaclinic.services.accounts.auth import _token_id, hash_password, user_info, verify_password
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotAuthenticated
from ketaclinic.store.tables import AuthSession, User

PIN_RE = re.compile(r"^[0-9]{6,8}$")  # the digits 0-9 only: "\d" takes "١٢٣٤٥٦" too
RUNS = "01234567890", "09876543210"


class UnlockRefused(NotAuthenticated):
    """Wrong PIN or password: the session stays locked (``left`` tries) or has ended."""

    login_message = "locked"

    def __init__(self, message: str, left: int) -> None:
        super().__init__(message)
        self.left = left


@dataclass(frozen=True)
class LockedInfo:
    """What the lock screen may show: the user's own name, never patient data."""

    full_name: str
    username: str
    csrf_token: str
    has_pin: bool
    locked: bool


def validate_pin(pin: str) -> None:
    if not PIN_RE.match(pin or ""):
        raise InvalidInput("the PIN must be 6 to 8 digits" + (
            f": {DIGITS_ONLY}" if has_foreign_digits(pin or "") else ""))
    if len(set(pin)) == 1 or any(pin in run for run in RUNS):
        raise InvalidInput("the PIN must not be one repeated digit or a run like 123456")


def _person(user: User | None) -> None:
    """Only a person has sessions to lock: a service account (API tokens) has no PIN."""
    if user is not None and user.kind != "person":
        raise Conflict(f"{user.username} is a service account: it never logs in, so it has no "
                       "lock screen and no PIN")


class LockScreenService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- the user's PIN -----------------------------------------------------------------
    def set_pin(self, actor: Actor, current_password: str, pin: str) -> None:
        """Set (or replace) the lock-screen PIN; the current password proves it is the user."""
        validate_pin(pin)
        work = self.ctx.unit_of_work(actor, "account.pin")  # the user's own account
        # argon2 is slow: the password is checked between the unit's transactions
        with work as uow:
            user = uow.session.get(User, actor.user_id) if actor.user_id else None
            _person(user)
            stored = user.password_hash if user else None
        if stored is None or not verify_password(stored, current_password or ""):
            work.record_failure("denied", detail="current password not accepted")
            raise InvalidInput("your current password was not accepted; the PIN was not set")
        if verify_password(stored, pin):
            raise InvalidInput("the PIN must not be your password")
        digest = hash_password(pin)
        with work as uow:
            user = uow.session.get(User, actor.user_id)
            assert user is not None
            user.pin_hash = digest
            uow.audit(detail="PIN set")

    def clear_pin(self, actor: Actor) -> None:
        with self.ctx.unit_of_work(actor, "account.pin") as uow:  # the user's own account
            user = uow.session.get(User, actor.user_id) if actor.user_id else None
            if user is None:
                raise NotAuthenticated("please log in")
            _person(user)
            user.pin_hash = None
            uow.audit(detail="PIN removed")

    def has_pin(self, actor: Actor) -> bool:
        with self.ctx.unit_of_work(actor, "account.pin") as uow:  # the user's own account
            user = uow.session.get(User, actor.user_id) if actor.user_id else None
            return bool(user and user.pin_hash)

    # --- locked sessions ----------------------------------------------------------------
    def _usable(self, row: AuthSession | None) -> bool:
        """Not ended, the user active, and within the absolute timeout (which ends it)."""
        if row is None or row.ended_at is not None or not row.user.active:
            return False
        now = self.ctx.clock()
        limit = dt.timedelta(hours=self.ctx.settings.absolute_timeout_hours)
        if now - row.created_at > limit:
            row.ended_at, row.end_reason = now, "absolute"
            return False
        return True

    def locked_info(self, token: str | None) -> LockedInfo:
        """The lock screen's facts for a cookie token; an ended session needs a full login."""
        with self.ctx.db.transaction() as s:
            row = s.get(AuthSession, _token_id(token)) if token else None
            usable = self._usable(row)
        if not usable or row is None:
            raise NotAuthenticated("please log in")
        with self.ctx.db.transaction() as s:
            row = s.get(AuthSession, _token_id(token or ""))
            assert row is not None
            return LockedInfo(row.user.full_name, row.user.username, row.csrf_token,
                              bool(row.user.pin_hash), row.locked_at is not None)

    def unlock(self, token: str | None, secret: str, client: str = "unknown") -> None:
        """Re-authenticate the session's own user with the PIN or the password."""
        with self.ctx.db.transaction() as s:
            row = s.get(AuthSession, _token_id(token)) if token else None
            usable = self._usable(row)
            if usable and row is not None:
                pin_hash, password_hash = row.user.pin_hash, row.user.password_hash
                actor = user_info(row.user).actor
        if not usable:
            raise NotAuthenticated("please log in")
        secret = secret or ""
        ok = (pin_hash is not None and PIN_RE.match(secret) is not None
              and verify_password(pin_hash, secret)) or verify_password(password_hash, secret)
        limit = self.ctx.settings.login_max_failures
        # The session's own user, now known, unlocks it or spends a try: a unit of theirs.
        with self.ctx.unit_of_work(actor, "session.unlock") as uow:
            row = uow.session.get(AuthSession, _token_id(token or ""))
            if row is None or row.ended_at is not None:
                raise NotAuthenticated("please log in")
            if ok:
                row.locked_at, row.unlock_failures, row.last_seen_at = None, 0, uow.now
                uow.audit()
                return
            row.unlock_failures = (row.unlock_failures or 0) + 1
            left = max(0, limit - row.unlock_failures)
            if left == 0:
                row.ended_at, row.end_reason = uow.now, "unlock-failed"
            uow.audit(outcome="failed", detail=f"client {client[:40]}; {left} tries left")
        if left == 0:
            raise UnlockRefused("too many wrong PINs or passwords: you are logged out; log in "
                                "again", 0)
        raise UnlockRefused(f"PIN or password not accepted ({left} tries left)", left)
