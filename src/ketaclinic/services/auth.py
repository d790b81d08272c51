"""Accounts, passwords (argon2id), login throttling and server-side sessions."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketaclinic.services.audit import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from ketaclinic.services.permissions import Perm, Role
from ketaclinic.store.tables import AuthSession, LoginAttempt, User

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    full_name: str
    role: str
    active: bool
    created_at: dt.datetime
    totp_enrolled: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.username, self.role)


@dataclass(frozen=True)
class LoginResult:
    token: str
    csrf_token: str
    user: UserInfo


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf_token: str
    created_at: dt.datetime
    must_enrol_totp: bool = False


class SecondFactorRequired(NotAuthenticated):
    """The password was right; an authenticator code is needed as well."""


TOTP_STEP_S = 30
_CODE_RE = re.compile(r"^[0-9]{6}$")


def match_totp_step(secret: str, code: str | None, now: dt.datetime,
                    last_step: int | None) -> int | None:
    """The time step a 6-digit code belongs to (now ±1 step), if newer than ``last_step``."""
    if not code or not _CODE_RE.match(code):
        return None
    aware = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now
    step = int(aware.timestamp()) // TOTP_STEP_S
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_S)
    for candidate in (step, step - 1, step + 1):
        if last_step is not None and candidate <= last_step:
            continue  # a code is accepted once: no replay, no older code after a newer one
        if hmac.compare_digest(totp.at(candidate * TOTP_STEP_S), code):
            return candidate
    return None


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.username, user.full_name, user.role, user.active, user.created_at,
                    bool(user.totp_secret))


def validate_new_user(username: str, full_name: str, role: str, password: str) -> None:
    if not USERNAME_RE.match(username or ""):
        raise InvalidInput(
            "username must be 2–63 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    if not (full_name or "").strip() or len(full_name) > 200:
        raise InvalidInput("full name is required (at most 200 characters)")
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of: {', '.join(r.value for r in Role)}")
    if len(password or "") < MIN_PASSWORD or len(password) > 256:
        raise InvalidInput(f"password must be {MIN_PASSWORD}–256 characters")


class AuthService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- users -------------------------------------------------------------------------
    def create_user(
        self, actor: Actor, username: str, full_name: str, role: str, password: str
    ) -> UserInfo:
        self.ctx.require(actor, Perm.USER_MANAGE, "user.create")
        username = (username or "").strip().lower()
        validate_new_user(username, full_name, role, password)
        with self.ctx.db.transaction() as s:
            if s.execute(select(User.id).where(User.username == username)).first():
                raise Conflict(f"a user named {username!r} already exists")
            user = User(
                username=username,
                full_name=full_name.strip(),
                role=role,
                password_hash=hash_password(password),
                active=True,
                created_at=self.ctx.clock(),
            )
            s.add(user)
            s.flush()
            self.ctx.audit.record(
                s, actor, "user.create", at=self.ctx.clock(), detail=f"user {username} ({role})"
            )
            return _info(user)

    def list_users(self, actor: Actor) -> list[UserInfo]:
        self.ctx.require(actor, Perm.USER_MANAGE, "user.list")
        with self.ctx.db.transaction() as s:
            users = s.execute(select(User).order_by(User.username)).scalars().all()
            return [_info(u) for u in users]

    def set_active(self, actor: Actor, user_id: int, active: bool) -> UserInfo:
        self.ctx.require(actor, Perm.USER_MANAGE, "user.update")
        with self.ctx.db.transaction() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound("no such user")
            if user.id == actor.user_id and not active:
                raise InvalidInput("you cannot deactivate your own account")
            user.active = active
            if not active:
                self._end_sessions(s, user.id, "deactivated")
            self.ctx.audit.record(
                s, actor, "user.update", at=self.ctx.clock(),
                detail=f"user {user.username} {'activated' if active else 'deactivated'}",
            )
            return _info(user)

    def count_users(self) -> int:
        with self.ctx.db.transaction() as s:
            return int(s.execute(select(func.count(User.id))).scalar_one())

    def reauthenticate(self, username: str, password: str) -> UserInfo:
        """Check a second person's credentials (witness) without creating a session."""
        with self.ctx.db.transaction() as s:
            user = s.execute(
                select(User).where(User.username == (username or "").strip().lower())
            ).scalar_one_or_none()
            info, stored = (_info(user), user.password_hash) if user else (None, _DUMMY_HASH)
        ok = _verify(stored, password or "")  # outside the transaction (see login)
        if not (info and ok and info.active):
            raise NotAuthenticated("witness credentials were not accepted")
        return info

    # --- login and sessions ------------------------------------------------------------
    def login(self, username: str, password: str, client: str = "unknown",
              totp_code: str | None = None) -> LoginResult:
        """Check the password and, for users enrolled in two-factor login, the TOTP code."""
        username = (username or "").strip().lower()[:64]
        now = self.ctx.clock()
        if self._throttled(username, client[:64], now):
            self.ctx.record_failure(
                Actor(None, username or "?", "anonymous"), "login", "throttled",
                detail="too many failed logins",
            )
            raise Throttled(
                f"too many failed logins; try again in {self.ctx.settings.login_window_minutes}"
                " minutes"
            )
        second = "none"
        # argon2id is deliberately slow: check the password outside any transaction, so no
        # database connection (and on SQLite no write lock) is held while it runs.
        with self.ctx.db.transaction() as s:
            stored = s.execute(select(User.id, User.password_hash).where(
                User.username == username)).first()
        ok = _verify(stored.password_hash if stored else _DUMMY_HASH, password or "")
        new_hash = (hash_password(password) if ok and stored
                    and _hasher.check_needs_rehash(stored.password_hash) else None)
        with self.ctx.db.transaction() as s:
            user = s.get(User, stored.id) if stored else None
            # The hash must still be the one checked (a password changed meanwhile: refused).
            password_ok = bool(ok and user and user.active
                               and user.password_hash == stored.password_hash)
            if password_ok and user.totp_secret:
                step = match_totp_step(user.totp_secret, totp_code, now, user.totp_last_step)
                if step is None:
                    second = "missing" if not totp_code else "wrong"
                else:
                    user.totp_last_step = step
            success = password_ok and second == "none"
            s.add(LoginAttempt(username=username, client=client[:64], at=now, success=success))
            if not success:
                actor = Actor(user.id if user else None, username or "?", "anonymous")
                detail = {"none": "", "missing": "authenticator code missing",
                          "wrong": "authenticator code wrong or already used"}[second]
                self.ctx.audit.record(s, actor, "login", at=now, outcome="failed", detail=detail)
            else:
                if new_hash is not None:
                    user.password_hash = new_hash
                token = secrets.token_urlsafe(32)
                csrf = secrets.token_urlsafe(32)
                s.add(AuthSession(id=_token_id(token), user_id=user.id, csrf_token=csrf,
                                  created_at=now, last_seen_at=now))
                self.ctx.audit.record(s, _info(user).actor, "login", at=now)
                result = LoginResult(token, csrf, _info(user))
        if second == "missing":
            raise SecondFactorRequired("enter the 6-digit code from your authenticator app")
        if second == "wrong":
            raise NotAuthenticated("the authenticator code was wrong or already used")
        if not success:
            raise NotAuthenticated("wrong username or password")
        return result

    # --- two-factor (TOTP) enrolment -----------------------------------------------------
    def totp_begin(self, actor: Actor) -> tuple[str, str]:
        """A secret to enrol (kept pending until a code confirms it) and its otpauth URI."""
        with self.ctx.db.transaction() as s:
            user = s.get(User, actor.user_id) if actor.user_id else None
            if user is None:
                raise NotFound("no such user")
            if user.totp_secret:
                raise Conflict("two-factor login is already set up for this account")
            if not user.totp_pending_secret:
                user.totp_pending_secret = pyotp.random_base32()
            secret = user.totp_pending_secret
            uri = pyotp.TOTP(secret, interval=TOTP_STEP_S).provisioning_uri(
                name=user.username, issuer_name=self.ctx.settings.clinic_name)
            return secret, uri

    def totp_confirm(self, actor: Actor, code: str) -> None:
        """Turn two-factor login on once a code from the new secret is entered."""
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            user = s.get(User, actor.user_id) if actor.user_id else None
            if user is None:
                raise NotFound("no such user")
            if user.totp_secret:
                raise Conflict("two-factor login is already set up for this account")
            if not user.totp_pending_secret:
                raise InvalidInput("open the two-factor set-up page first")
            step = match_totp_step(user.totp_pending_secret, (code or "").strip(), now, None)
            if step is None:
                raise InvalidInput("the code did not match; check that the device's clock is "
                                   "right and enter the current 6-digit code")
            user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
            user.totp_last_step = step
            self.ctx.audit.record(s, actor, "totp.enrol", at=now)

    def _throttled(self, username: str, client: str, now: dt.datetime) -> bool:
        window_start = now - dt.timedelta(minutes=self.ctx.settings.login_window_minutes)
        limit = self.ctx.settings.login_max_failures
        with self.ctx.db.transaction() as s:
            by_user = s.execute(
                select(func.count(LoginAttempt.id)).where(
                    LoginAttempt.username == username,
                    LoginAttempt.at >= window_start,
                    LoginAttempt.success.is_(False),
                )
            ).scalar_one()
            by_client = s.execute(
                select(func.count(LoginAttempt.id)).where(
                    LoginAttempt.client == client,
                    LoginAttempt.at >= window_start,
                    LoginAttempt.success.is_(False),
                )
            ).scalar_one()
        return by_user >= limit or by_client >= limit * 4

    def resolve(self, token: str | None) -> SessionInfo:
        """The session for a cookie token, enforcing idle and absolute timeouts."""
        if not token:
            raise NotAuthenticated("please log in")
        now = self.ctx.clock()
        settings = self.ctx.settings
        with self.ctx.db.transaction() as s:
            row = s.get(AuthSession, _token_id(token))
            if row is None or row.ended_at is not None or not row.user.active:
                raise NotAuthenticated("please log in")
            idle = now - row.last_seen_at > dt.timedelta(minutes=settings.idle_timeout_minutes)
            old = now - row.created_at > dt.timedelta(hours=settings.absolute_timeout_hours)
            if idle or old:
                row.ended_at, row.end_reason = now, "idle" if idle else "absolute"
                expired = True
            else:
                expired = False
                if now - row.last_seen_at > dt.timedelta(seconds=10):
                    row.last_seen_at = now
                must_enrol = (row.user.role in settings.totp_required_roles
                              and not row.user.totp_secret)
                info = SessionInfo(_info(row.user), row.csrf_token, row.created_at, must_enrol)
        if expired:
            raise NotAuthenticated("your session expired; please log in again")
        return info

    def logout(self, token: str | None) -> None:
        if not token:
            return
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            row = s.get(AuthSession, _token_id(token))
            if row is None or row.ended_at is not None:
                return
            row.ended_at, row.end_reason = now, "logout"
            self.ctx.audit.record(s, _info(row.user).actor, "logout", at=now)

    def _end_sessions(self, s: Session, user_id: int, reason: str) -> None:
        now = self.ctx.clock()
        for row in s.execute(
            select(AuthSession).where(AuthSession.user_id == user_id,
                                      AuthSession.ended_at.is_(None))
        ).scalars():
            row.ended_at, row.end_reason = now, reason
