"""Machine access: service accounts and their API tokens (scoped, expiring, revocable).

A service account is a user of kind "service": it has a role like anyone else, but no usable
password (it never logs in, never enrols in two-factor login) and acts only through bearer
tokens. A token's scopes are permission names (:data:`permissions.SCOPES`); they narrow the
account's role, never widen it (:func:`permissions.allowed` checks both).

The secret (``kct_<prefix>_<random>``, 256 random bits) is returned once when issued; only its
SHA-256 is stored, with the public prefix that identifies the token in lists and on every audit
row it causes. Failed bearer attempts count toward the login throttle (``login_attempts``).
Neither the secret nor its hash is ever logged or audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ketaclinic.services.accounts.auth import (
    AuthService,
    UserInfo,
    existing_user,
    user_info,
    validate_account,
)
from ketaclinic.services.accounts.permissions import ROLE_PERMISSIONS, SCOPES, Perm, Role
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.store.tables import ApiToken, LoginAttempt, User

TOKEN_KIND = "kct"
SERVICE = "service"
# Not an argon2 hash: no password ever verifies against it (verify_password returns False).
NO_PASSWORD = "!service-account: authenticates with API tokens only"
_TOKEN_RE = re.compile(r"^kct_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
_PREFIX_RE = re.compile(r"^(?:kct_)?([0-9a-f]{8})$")
_LAST_USED_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class InvalidToken(NotAuthenticated):
    """A bearer token that is malformed, unknown, expired or revoked."""


@dataclass(frozen=True)
class TokenInfo:
    """The public view of a token (never the secret, never its hash)."""

    id: int
    prefix: str
    label: str
    scopes: tuple[str, ...]
    user_id: int
    username: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def status(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"


@dataclass(frozen=True)
class IssuedToken:
    token: TokenInfo
    secret: str  # shown once: only its hash is kept


@dataclass(frozen=True)
class TokenUse:
    """An authenticated bearer request: the service account and the token it used."""

    user: UserInfo
    token: TokenInfo

    @property
    def actor(self) -> Actor:
        return Actor(self.user.id, self.user.username, self.user.role,
                     scopes=frozenset(self.token.scopes), token=f"kct_{self.token.prefix}")


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.prefix, row.label, tuple(row.scopes.split()), row.user_id,
                     row.user.username, row.created_at, row.expires_at, row.revoked_at,
                     row.last_used_at)


def role_scopes(role: str) -> tuple[str, ...]:
    """The scopes a token of an account with ``role`` may carry (its role's permissions)."""
    try:
        granted = ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return ()
    return tuple(s for s in SCOPES if Perm(s) in granted)


class ApiTokenService:
    def __init__(self, ctx: Context, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    # --- service accounts -------------------------------------------------------------------
    def create_service_account(self, actor: Actor, username: str, full_name: str,
                               role: str) -> UserInfo:
        """A user that cannot log in (no password, no two-factor) and acts only via tokens."""
        work = self.ctx.unit_of_work(actor, "user.create", perm=Perm.USER_MANAGE)
        username = (username or "").strip().lower()
        validate_account(username, full_name, role)
        with work as uow:
            s = uow.session
            if s.execute(select(User.id).where(User.username == username)).first():
                raise Conflict(f"a user named {username!r} already exists")
            user = User(username=username, full_name=full_name.strip(), role=role,
                        password_hash=NO_PASSWORD, active=True, created_at=uow.now,
                        medical_director=False, kind=SERVICE)
            s.add(user)
            s.flush()
            uow.audit(detail=f"service account {username} ({role})")
            return user_info(user)

    # --- tokens -----------------------------------------------------------------------------
    def issue(self, actor: Actor, user_id: int, label: str, scopes: list[str],
              expires_in_days: int) -> IssuedToken:
        """A new token for a service account; the secret is in the result, and nowhere else."""
        work = self.ctx.unit_of_work(actor, "api_token.issue", perm=Perm.USER_MANAGE)
        label = (label or "").strip()
        if not label or len(label) > 100 or any(ord(c) < 32 for c in label):
            raise InvalidInput("label is required: one line of at most 100 characters")
        most = self.ctx.settings.api_token_max_days
        if not 1 <= expires_in_days <= most:
            raise InvalidInput(f"expires_in_days must be 1–{most} (KETACLINIC_API_TOKEN_MAX_DAYS)")
        wanted = sorted({(s or "").strip() for s in scopes} - {""})
        if not wanted:
            raise InvalidInput(f"name at least one scope: {', '.join(SCOPES)}")
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown:
            raise InvalidInput(f"unknown scope {unknown[0]!r}; scopes are: {', '.join(SCOPES)}")
        secret = f"{TOKEN_KIND}_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
        prefix = secret.split("_")[1]
        try:
            with work as uow:
                s, now = uow.session, uow.now
                user = self._service_account(s, user_id)
                beyond = [sc for sc in wanted if sc not in role_scopes(user.role)]
                if beyond:
                    raise InvalidInput(f"the {user.role} role of {user.username} does not "
                                       f"grant the scope {beyond[0]}")
                row = ApiToken(user_id=user.id, prefix=prefix, token_hash=_digest(secret),
                               label=label, scopes=" ".join(wanted), created_at=now,
                               created_by=actor.user_id, expires_at=now + dt.timedelta(
                                   days=expires_in_days))
                s.add(row)
                s.flush()
                uow.audit(detail=(f"token kct_{prefix} for {user.username}; scopes {row.scopes}; "
                                  f"expires {row.expires_at:%Y-%m-%d %H:%M}Z"))
                return IssuedToken(_info(row), secret)
        except IntegrityError as exc:  # the 32-bit prefix was taken: 1 in 4 billion per token
            raise Conflict("please try again (the token prefix collided)") from exc

    def list_tokens(self, actor: Actor, user_id: int | None = None, limit: int | None = None,
                    offset: int = 0) -> Paged[TokenInfo]:
        """Every token (or one account's), oldest first; a window of them with ``limit``."""
        with self.ctx.unit_of_work(actor, "api_token.list", perm=Perm.USER_MANAGE) as uow:
            query = select(ApiToken).order_by(ApiToken.id)
            if user_id is not None:
                query = query.where(ApiToken.user_id == user_id)
            return page_rows(uow.session, query, limit, offset).map(_info)

    def token_id_for(self, actor: Actor, prefix: str) -> int:
        """The id of the token with this public prefix ("kct_1a2b3c4d" or "1a2b3c4d")."""
        work = self.ctx.unit_of_work(actor, "api_token.list", perm=Perm.USER_MANAGE)
        match = _PREFIX_RE.match((prefix or "").strip())
        with work as uow:
            found = uow.session.execute(select(ApiToken.id).where(
                ApiToken.prefix == match.group(1))).scalar_one_or_none() if match else None
        if found is None:
            raise NotFound(f"no API token with prefix {prefix!r}")
        return int(found)

    def revoke(self, actor: Actor, token_id: int) -> TokenInfo:
        """Revoke a token; its next request is refused (idempotent for a revoked token)."""
        with self.ctx.unit_of_work(actor, "api_token.revoke", perm=Perm.USER_MANAGE) as uow:
            row = uow.session.get(ApiToken, token_id)
            if row is None:
                raise NotFound("no such API token")
            if row.revoked_at is None:
                row.revoked_at, row.revoked_by = uow.now, actor.user_id
                uow.audit(detail=f"token kct_{row.prefix} of {row.user.username}")
            return _info(row)

    # --- authentication -----------------------------------------------------------------------
    def authenticate(self, presented: str, client: str = "unknown") -> TokenUse:
        """The service account behind a bearer token; InvalidToken (401) otherwise.

        Throttled like logins: each failure is a failed attempt of the user name
        ``token:<prefix>`` from this address. Expired and revoked are told apart only for the
        genuine secret; anything else is "not valid".
        """
        now = self.ctx.clock()
        match = _TOKEN_RE.match(presented or "")
        prefix = match.group(1) if match else "?"
        self.auth.refuse_if_throttled(f"token:{prefix}", client, now, "api_token.use")
        with self.ctx.db.transaction() as s:
            row = s.execute(select(ApiToken).where(ApiToken.prefix == prefix)
                            ).scalar_one_or_none() if match else None
            genuine = row is not None and hmac.compare_digest(row.token_hash,
                                                              _digest(presented))
            problem = (_problem(row, now) if genuine and row is not None
                       else "unknown" if match else "malformed")
            if problem is None and row is not None:
                if row.last_used_at is None or now - row.last_used_at >= _LAST_USED_EVERY:
                    row.last_used_at = now
                return TokenUse(user_info(row.user), _info(row))
            s.add(LoginAttempt(username=f"token:{prefix}", client=client[:64], at=now,
                               success=False))
            who = (Actor(row.user.id, row.user.username, row.user.role, token=f"kct_{prefix}")
                   if genuine and row is not None
                   else Actor(None, f"token:{prefix}", "anonymous"))
            self.ctx.audit.record(s, who, "api_token.use", at=now, outcome="failed",
                                  detail=f"{problem} token")
        if problem == "revoked":
            raise InvalidToken("the API token was revoked")
        if problem == "expired":
            raise InvalidToken("the API token has expired")
        raise InvalidToken("the API token is not valid")

    @staticmethod
    def _service_account(s: Session, user_id: int) -> User:
        user = existing_user(s, user_id)
        if user.kind != SERVICE:
            raise InvalidInput(f"{user.username} is not a service account: API tokens are for "
                               "service accounts only")
        if not user.active:
            raise Conflict(f"the service account {user.username} is deactivated")
        return user


def _problem(row: ApiToken, now: dt.datetime) -> str | None:
    """Why a genuine token is refused now (None: it is good)."""
    if row.revoked_at is not None:
        return "revoked"
    if now >= row.expires_at:
        return "expired"
    if not row.user.active or row.user.kind != SERVICE:
        return "account deactivated"
    return None
