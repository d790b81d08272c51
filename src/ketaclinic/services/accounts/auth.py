"""Accounts, passwords (argon2id), login throttling and server-side sessions."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from ketaclinic.services.accounts import recovery_codes
from ketaclinic.services.accounts.password_policy import password_problem
from ketaclinic.services.accounts.permissions import Perm, Role
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.secretbox import SecretBox, SecretUnreadable, totp_context
from ketaclinic.store.tables import AuthSession, LoginAttempt, RecoveryCode, User

log = logging.getLogger("ketaclinic.auth")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_dummy: tuple[PasswordHasher, str] | None = None


def _dummy_hash() -> str:
    """A hash of no one's password, made by the hasher in use: checking a login for a user who
    does not exist costs what checking a real one does, so timing tells no one which names
    exist. Made once per hasher (AuthService makes it when the services are built, not at the
    first unknown name), not at import: a command that checks no password does not pay for it.
    """
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash("not-a-real-password-used-for-timing"))
    return _dummy[1]
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Constant-time check of a password against an argon2 hash (False for a bad hash)."""
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
    must_change_password: bool = False
    medical_director: bool = False
    kind: str = "person"  # "service": a machine account that acts only with API tokens

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.username, self.role)


@dataclass(frozen=True)
class LoginResult:
    token: str
    csrf_token: str
    user: UserInfo
    recovery_codes_left: int | None = None  # set when a recovery code stood in for the TOTP


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf_token: str
    created_at: dt.datetime
    must_enrol_totp: bool = False

    @property
    def must_change_password(self) -> bool:
        return self.user.must_change_password


class SecondFactorRequired(NotAuthenticated):
    """The password was right; an authenticator code is needed as well."""


class TwoFactorUnavailable(NotAuthenticated):
    """The password was right but the stored two-factor key cannot be decrypted: refused."""


class SessionExpired(NotAuthenticated):
    login_message = "expired"


class SessionLocked(NotAuthenticated):
    """Idle past the timeout: the session is locked until the user unlocks it with their PIN or
    password (services/accounts/lock_screen.py); nothing is shown meanwhile."""

    login_message = "locked"


class TemporaryPasswordExpired(NotAuthenticated):
    login_message = "temporary-expired"


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


def existing_user(s: Session, user_id: int | None) -> User:
    """The user with ``user_id``, or NotFound (the one lookup every account service uses)."""
    user = s.get(User, user_id) if user_id else None
    if user is None:
        raise NotFound("no such user")
    return user


def user_info(user: User) -> UserInfo:
    """The public view of a user row (no password hash, no two-factor key)."""
    return UserInfo(user.id, user.username, user.full_name, user.role, user.active, user.created_at,
                    bool(user.totp_secret), bool(user.must_change_password),
                    bool(user.medical_director), user.kind or "person")


def validate_password(password: str, username: str = "") -> None:
    problem = password_problem(password, username)
    if problem:
        raise InvalidInput(problem)


def validate_new_user(username: str, full_name: str, role: str, password: str) -> None:
    validate_account(username, full_name, role)
    validate_password(password, username)


def validate_account(username: str, full_name: str, role: str) -> None:
    """The name, full name and role of a new account (a person's or a service account's)."""
    if not USERNAME_RE.match(username or ""):
        raise InvalidInput(
            "username must be 2–63 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    if not (full_name or "").strip() or len(full_name) > 200:
        raise InvalidInput("full name is required (at most 200 characters)")
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of: {', '.join(r.value for r in Role)}")


_FAILURE_DETAIL = {"none": "", "missing": "authenticator code missing",
                   "wrong": "authenticator code wrong or already used",
                   "recovery": "recovery code wrong or already used",
                   "unreadable": "two-factor key could not be decrypted",
                   "expired": "temporary password expired"}


class AuthService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # Two-factor keys at rest: AES-256-GCM under a key derived from the instance secret.
        self.box = SecretBox.for_secrets(ctx.settings.secret_key.get_secret_value())
        _dummy_hash()  # ready before the first login names an unknown user

    # --- users -------------------------------------------------------------------------
    def create_user(
        self, actor: Actor, username: str, full_name: str, role: str, password: str,
        medical_director: bool = False,
    ) -> UserInfo:
        work = self.ctx.unit_of_work(actor, "user.create", perm=Perm.USER_MANAGE)
        username = (username or "").strip().lower()
        validate_new_user(username, full_name, role, password)
        if medical_director and role != "prescriber":
            raise InvalidInput("only a prescriber can have the medical-director flag")
        with work as uow:
            s = uow.session
            if s.execute(select(User.id).where(User.username == username)).first():
                raise Conflict(f"a user named {username!r} already exists")
            user = User(
                username=username,
                full_name=full_name.strip(),
                role=role,
                password_hash=hash_password(password),
                active=True,
                created_at=uow.now,
                medical_director=medical_director,
            )
            s.add(user)
            s.flush()
            uow.audit(detail=f"user {username} ({role})"
                      + (", medical director" if medical_director else ""))
            return user_info(user)

    def list_users(self, actor: Actor, limit: int | None = None,
                   offset: int = 0) -> Paged[UserInfo]:
        with self.ctx.unit_of_work(actor, "user.list", perm=Perm.USER_MANAGE) as uow:
            return page_rows(uow.session, select(User).order_by(User.username, User.id), limit,
                             offset).map(user_info)

    def set_active(self, actor: Actor, user_id: int, active: bool) -> UserInfo:
        with self.ctx.unit_of_work(actor, "user.update", perm=Perm.USER_MANAGE) as uow:
            user = existing_user(uow.session, user_id)
            if user.id == actor.user_id and not active:
                raise InvalidInput("you cannot deactivate your own account")
            user.active = active
            if not active:
                self._end_sessions(uow.session, user.id, "deactivated", uow.now)
            uow.audit(detail=f"user {user.username} {'activated' if active else 'deactivated'}")
            return user_info(user)

    def set_medical_director(self, actor: Actor, user_id: int, flag: bool) -> UserInfo:
        """An administrator sets or clears the medical-director flag (audited)."""
        with self.ctx.unit_of_work(actor, "user.update", perm=Perm.USER_MANAGE) as uow:
            user = existing_user(uow.session, user_id)
            if flag and user.role != "prescriber":
                raise InvalidInput("only a prescriber can have the medical-director flag")
            user.medical_director = flag
            uow.audit(detail=f"user {user.username} medical director "
                             f"{'set' if flag else 'cleared'}")
            return user_info(user)

    def count_users(self) -> int:
        with self.ctx.db.transaction() as s:
            return int(s.execute(select(func.count(User.id))).scalar_one())

    def reauthenticate(self, username: str, password: str) -> UserInfo:
        """Check a second person's credentials (witness) without creating a session.

        A temporary password set by an administrator does not count: that person must choose
        their own password first.
        """
        with self.ctx.db.transaction() as s:
            user = s.execute(
                select(User).where(User.username == (username or "").strip().lower())
            ).scalar_one_or_none()
            usable = bool(user and user.active and not user.must_change_password
                          and user.kind == "person")
            info, stored = (user_info(user), user.password_hash) if user else (None, _dummy_hash())
        ok = verify_password(stored, password or "")  # outside the transaction (see login)
        if not (info and ok and usable):
            raise NotAuthenticated("witness credentials were not accepted")
        return info

    # --- login and sessions ------------------------------------------------------------
    def login(self, username: str, password: str, client: str = "unknown",
              totp_code: str | None = None, recovery_code: str | None = None) -> LoginResult:
        """Check the password and, for users enrolled in two-factor login, the TOTP code (or
        one unused recovery code in its place)."""
        username = (username or "").strip().lower()[:64]
        now = self.ctx.clock()
        self.refuse_if_throttled(username, client, now, "login")
        # argon2id is deliberately slow: check the password outside any transaction, so no
        # database connection (and on SQLite no write lock) is held while it runs.
        with self.ctx.db.transaction() as s:
            stored = s.execute(select(User.id, User.password_hash).where(
                User.username == username)).first()
        ok = verify_password(stored.password_hash if stored else _dummy_hash(), password or "")
        new_hash = (hash_password(password) if ok and stored
                    and _hasher.check_needs_rehash(stored.password_hash) else None)
        with self.ctx.db.transaction() as s:
            user = s.get(User, stored.id) if stored else None
            # The hash must still be the one checked (a password changed meanwhile: refused).
            # A service account has no password (it uses API tokens): never a session.
            checked = (user if ok and stored and user and user.active and user.kind == "person"
                       and user.password_hash == stored.password_hash else None)
            second, left = "none", None
            if checked is not None and _temporary_expired(checked, now):
                second = "expired"
            elif checked is not None and checked.totp_secret:
                second, left = self._second_factor(s, checked, totp_code, recovery_code, now)
            success = checked is not None and second == "none"
            s.add(LoginAttempt(username=username, client=client[:64], at=now, success=success))
            if checked is None or second != "none":
                actor = Actor(user.id if user else None, username or "?", "anonymous")
                self.ctx.audit.record(s, actor, "login", at=now, outcome="failed",
                                      detail=_FAILURE_DETAIL[second])
            else:
                if new_hash is not None:
                    checked.password_hash = new_hash
                token = secrets.token_urlsafe(32)
                csrf = secrets.token_urlsafe(32)
                s.add(AuthSession(id=_token_id(token), user_id=checked.id, csrf_token=csrf,
                                  created_at=now, last_seen_at=now))
                self.ctx.audit.record(s, user_info(checked).actor, "login", at=now)
                result = LoginResult(token, csrf, user_info(checked), left)
        if not success:
            raise _login_error(second)
        return result

    def _second_factor(self, s: Session, user: User, totp_code: str | None,
                       recovery_code: str | None, now: dt.datetime) -> tuple[str, int | None]:
        """("none" when passed, else why not; recovery codes left when one was used)."""
        try:
            secret = self.box.decrypt(user.totp_secret or "", totp_context(user.id))
        except SecretUnreadable as exc:
            # Fail closed. The message names the key id, never the secret.
            log.error("two-factor key of user id %s is unreadable: %s", user.id, exc)
            return "unreadable", None
        if not totp_code and recovery_code:
            left = use_recovery_code(s, user.id, recovery_code, now)
            if left is None:
                return "recovery", None
            self.ctx.audit.record(s, user_info(user).actor, "totp.recovery_code.used", at=now,
                                  detail=f"{left} unused recovery codes left")
            return "none", left
        step = match_totp_step(secret, totp_code, now, user.totp_last_step)
        if step is None:
            return ("missing" if not totp_code else "wrong"), None
        user.totp_last_step = step
        return "none", None

    # --- two-factor (TOTP) enrolment -----------------------------------------------------
    def totp_begin(self, actor: Actor) -> tuple[str, str]:
        """A secret to enrol (kept pending until a code confirms it) and its otpauth URI."""
        with self.ctx.unit_of_work(actor, "totp.begin") as uow:  # the user's own account
            user = existing_user(uow.session, actor.user_id)
            if user.totp_secret:
                raise Conflict("two-factor login is already set up for this account")
            secret = self._pending_secret(user)
            uri = pyotp.TOTP(secret, interval=TOTP_STEP_S).provisioning_uri(
                name=user.username, issuer_name=self.ctx.settings.clinic_name)
            return secret, uri

    def _pending_secret(self, user: User) -> str:
        """The enrolment secret shown to the user, stored encrypted until it is confirmed."""
        context = totp_context(user.id, "totp_pending_secret")
        if user.totp_pending_secret:
            try:
                return self.box.decrypt(user.totp_pending_secret, context)
            except SecretUnreadable:
                pass  # not confirmed yet, so nothing is lost by starting again
        secret = pyotp.random_base32()
        user.totp_pending_secret = self.box.encrypt(secret, context)
        return secret

    def totp_confirm(self, actor: Actor, code: str) -> list[str]:
        """Turn two-factor login on once a code from the new secret is entered.

        Returns ten one-time recovery codes, to be shown once (only their hashes are kept).
        """
        with self.ctx.unit_of_work(actor, "totp.enrol") as uow:  # the user's own account
            s, now = uow.session, uow.now
            user = existing_user(s, actor.user_id)
            if user.totp_secret:
                raise Conflict("two-factor login is already set up for this account")
            if not user.totp_pending_secret:
                raise InvalidInput("open the two-factor set-up page first")
            try:
                secret = self.box.decrypt(user.totp_pending_secret,
                                          totp_context(user.id, "totp_pending_secret"))
            except SecretUnreadable as exc:
                user.totp_pending_secret = None
                raise InvalidInput("the set-up key expired; open the two-factor set-up page "
                                   "again") from exc
            step = match_totp_step(secret, (code or "").strip(), now, None)
            if step is None:
                raise InvalidInput("the code did not match; check that the device's clock is "
                                   "right and enter the current 6-digit code")
            user.totp_secret = self.box.encrypt(secret, totp_context(user.id))
            user.totp_pending_secret = None
            user.totp_last_step = step
            codes = replace_recovery_codes(s, user.id, now)
            uow.audit(detail=f"{len(codes)} recovery codes issued")
            return codes

    # --- throttling (logins and every other check of a password) -------------------------
    def refuse_if_throttled(self, username: str, client: str, now: dt.datetime,
                            action: str) -> None:
        wait = self._throttle_wait(username, client[:64], now)
        if wait > 0:
            self.ctx.record_failure(
                Actor(None, username or "?", "anonymous"), action, "throttled",
                detail="too many failed logins",
            )
            minutes = max(1, -(-wait // 60))
            raise Throttled(f"too many failed logins; try again in {minutes} minute"
                            f"{'s' if minutes != 1 else ''}", retry_after_s=wait)

    def _throttle_wait(self, username: str, client: str, now: dt.datetime) -> int:
        """Seconds to wait before the next attempt for this user from this address (0: go).

        Counted so that nobody can lock a real user out from elsewhere: failures of one
        user from one address (the pair) throttle that pair; many failures from one address
        throttle that address; only failures of one user from several addresses (more than
        one address may cause) start a slower, growing per-user back-off.
        """
        cfg = self.ctx.settings
        window = dt.timedelta(minutes=cfg.login_window_minutes)
        limit = cfg.login_max_failures
        failed = (LoginAttempt.at >= now - window, LoginAttempt.success.is_(False))
        with self.ctx.db.transaction() as s:
            by_user = s.execute(select(LoginAttempt.client, LoginAttempt.at).where(
                LoginAttempt.username == username, *failed)
                .order_by(LoginAttempt.at.desc()).limit(limit * 40)).all()
            by_client = s.execute(select(LoginAttempt.at).where(
                LoginAttempt.client == client, *failed)
                .order_by(LoginAttempt.at.desc()).limit(limit * 4)).scalars().all()
        pair = [at for c, at in by_user if c == client]
        waits = [_until_below(pair, limit, window, now),
                 _until_below(by_client, limit * 4, window, now)]
        if len(by_user) >= limit * 4:
            # Exponential per-user back-off: 2 s, 4 s, … up to the window, after each failure.
            backoff = dt.timedelta(seconds=min(window.total_seconds(),
                                               2 ** min(len(by_user) - limit * 4 + 1, 20)))
            waits.append(_seconds(by_user[0].at + backoff - now))
        return max(waits)

    def resolve(self, token: str | None) -> SessionInfo:
        """The session for a cookie token, enforcing the absolute timeout; an idle session is
        locked (not ended): it needs the user's PIN or password."""
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
            ending = ("absolute" if old
                      else "temporary expired" if _temporary_expired(row.user, now) else None)
            locked = not ending and (row.locked_at is not None or idle)
            if ending:
                row.ended_at, row.end_reason = now, ending
            elif locked:
                if row.locked_at is None:
                    row.locked_at = now
                    self.ctx.audit.record(s, user_info(row.user).actor, "session.lock", at=now)
            else:
                if now - row.last_seen_at > dt.timedelta(seconds=10):
                    row.last_seen_at = now
                must_enrol = (row.user.role in settings.totp_required_roles
                              and not row.user.totp_secret)
                info = SessionInfo(user_info(row.user), row.csrf_token, row.created_at, must_enrol)
        if ending == "temporary expired":
            raise TemporaryPasswordExpired("your temporary password has expired; ask an "
                                           "administrator to reset your password again")
        if ending:
            raise SessionExpired("your session expired; please log in again")
        if locked:
            raise SessionLocked("the screen is locked after "
                                f"{settings.idle_timeout_minutes} idle minutes: unlock with your "
                                "PIN or password")
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
            self.ctx.audit.record(s, user_info(row.user).actor, "logout", at=now)

    @staticmethod
    def _end_sessions(s: Session, user_id: int, reason: str, now: dt.datetime,
                      keep_token: str | None = None) -> int:
        """End the user's open sessions (but the one of ``keep_token``); how many ended."""
        keep = _token_id(keep_token) if keep_token else None
        ended = 0
        for row in s.execute(select(AuthSession).where(
                AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))).scalars():
            if row.id != keep:
                row.ended_at, row.end_reason = now, reason
                ended += 1
        return ended


def _seconds(delta: dt.timedelta) -> int:
    return max(0, int(-(-delta.total_seconds() // 1)))


def _until_below(newest_first: Sequence[dt.datetime], limit: int, window: dt.timedelta,
                 now: dt.datetime) -> int:
    """Seconds until fewer than ``limit`` of these failures remain in the window."""
    if len(newest_first) < limit:
        return 0
    return _seconds(newest_first[limit - 1] + window - now)


def _temporary_expired(user: User, now: dt.datetime) -> bool:
    return bool(user.must_change_password and user.password_expires_at
                and now >= user.password_expires_at)


def _login_error(reason: str) -> NotAuthenticated:
    if reason == "missing":
        return SecondFactorRequired("enter the 6-digit code from your authenticator app")
    if reason == "wrong":
        return NotAuthenticated("the authenticator code was wrong or already used")
    if reason == "recovery":
        return NotAuthenticated("the recovery code was wrong or already used")
    if reason == "unreadable":
        return TwoFactorUnavailable(
            "two-factor login cannot be checked for this account: its key cannot be decrypted "
            "with this server's secret. Ask an administrator to reset your two-factor login.")
    if reason == "expired":
        return NotAuthenticated("your temporary password has expired; ask an administrator to "
                                "reset your password again")
    return NotAuthenticated("wrong username or password")


# --- recovery codes -----------------------------------------------------------------------
def replace_recovery_codes(s: Session, user_id: int, now: dt.datetime) -> list[str]:
    """A new set of recovery codes for the user; every earlier code stops working."""
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = recovery_codes.new_codes()
    for code in codes:
        salt, digest = recovery_codes.seal(code)
        s.add(RecoveryCode(user_id=user_id, salt=salt, digest=digest, created_at=now))
    return codes


def recovery_codes_left(s: Session, user_id: int) -> int:
    return int(s.execute(select(func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))).scalar_one())


def use_recovery_code(s: Session, user_id: int, code: str, now: dt.datetime) -> int | None:
    """Spend one unused recovery code; the number left, or None if the code is not valid.

    The code is marked used by a conditional UPDATE, so two logins racing with the same code
    cannot both succeed.
    """
    normalized = recovery_codes.normalize(code)
    if normalized is None:
        return None
    unused = s.execute(select(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))).scalars().all()
    hits = [row.id for row in unused
            if recovery_codes.matches(row.salt, row.digest, normalized)]
    if not hits:
        return None
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed wider.
    spent = cast(CursorResult[Any], s.execute(update(RecoveryCode).where(
        RecoveryCode.id == hits[0], RecoveryCode.used_at.is_(None)).values(used_at=now)))
    if spent.rowcount != 1:
        return None
    return recovery_codes_left(s, user_id)
