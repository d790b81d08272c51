"""Request-scoped helpers shared by the web pages and the JSON API (one place, thin shells).

The session cookie, the logged-in viewer, CSRF checks and strict form parsing: ``web/`` and
``api/`` both import them from here. The API also accepts a service account's bearer token
(``Authorization: Bearer kct_…``, services/api_tokens.py): no cookie, no CSRF token, never a
page.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from ketaclinic.bootstrap import Services
from ketaclinic.services.api_tokens import InvalidToken
from ketaclinic.services.audit import Actor
from ketaclinic.services.auth import SessionInfo
from ketaclinic.services.errors import InvalidInput, PermissionDenied

SESSION_COOKIE = "kc_session"
PRELOGIN_COOKIE = "kc_prelogin"
CSRF_HEADER = "x-csrf-token"
FORM_TYPE = "application/x-www-form-urlencoded"


class CsrfError(PermissionDenied):
    """A state change without a valid CSRF token."""


class EnrolmentRequired(PermissionDenied):
    """The account's role must set up two-factor login before doing anything else."""


class PasswordChangeRequired(PermissionDenied):
    """An administrator reset the password: the user must choose a new one before anything."""


ENROLMENT_PAGE = "/account/totp"
CHANGE_PASSWORD_PAGE = "/account/password"
CHANGE_PASSWORD_API = "/api/me/password"
# What a user who must change the password may reach: that page (or API call), logging out,
# who am I. After the change, a user whose role requires two-factor login enrols next.
_DURING_PASSWORD_CHANGE = {CHANGE_PASSWORD_PAGE, CHANGE_PASSWORD_API, "/logout",
                           "/api/auth/logout", "/api/me"}
# What a user who still has to enrol may reach: the enrolment page, logging out, who am I.
_DURING_ENROLMENT = _DURING_PASSWORD_CHANGE | {ENROLMENT_PAGE}


def services(request: Request) -> Services:
    return request.app.state.services


@dataclass(frozen=True)
class Viewer:
    """The logged-in user for this request (or the service account of a bearer token)."""

    session: SessionInfo
    bearer: Actor | None = None  # set for a bearer-token request: the scoped actor

    @property
    def actor(self) -> Actor:
        return self.bearer or self.session.user.actor

    @property
    def role(self) -> str:
        return self.session.user.role

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def set_session_cookie(response: Response, request: Request, token: str, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path="/",
                        secure=secure or request.url.scheme == "https")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def current_viewer(request: Request, svc: Annotated[Services, Depends(services)]) -> Viewer:
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    viewer = Viewer(svc.auth.resolve(request.cookies.get(SESSION_COOKIE)))
    request.state.viewer = viewer
    path = request.url.path
    if viewer.session.must_change_password and path not in _DURING_PASSWORD_CHANGE:
        raise PasswordChangeRequired(
            "your password was reset by an administrator: choose a new one first (page "
            f"{CHANGE_PASSWORD_PAGE}, or POST {CHANGE_PASSWORD_API} with current_password and "
            "new_password)")
    if viewer.session.must_enrol_totp and path not in _DURING_ENROLMENT:
        raise EnrolmentRequired(f"your role must set up two-factor login first: open "
                                f"{ENROLMENT_PAGE}")
    return viewer


def check_csrf(viewer: Viewer, supplied: str | None) -> None:
    if not supplied or not hmac.compare_digest(supplied, viewer.csrf_token):
        raise CsrfError("the form or request is missing its CSRF token; reload the page and "
                        "try again")


# The two ways into the API, declared for the OpenAPI schema (securitySchemes and each
# operation's ``security``); the checks themselves are api_viewer's.
SESSION_SCHEME = APIKeyCookie(
    name=SESSION_COOKIE, scheme_name="sessionCookie", auto_error=False,
    description="The session cookie set by POST /api/auth/login; state-changing requests "
    "must also carry the X-CSRF-Token header")
BEARER_SCHEME = HTTPBearer(
    scheme_name="bearerToken", bearerFormat="kct_<prefix>_<secret>", auto_error=False,
    description="A service account's API token (ketaclinic tokens issue); scoped, expiring, "
    "revocable; no CSRF token needed; never opens the HTML pages")


def bearer_viewer(request: Request, svc: Services) -> Viewer:
    """The service account of the request's ``Authorization: Bearer`` token (401 if none)."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header must be 'Bearer <API token>'")
    use = svc.tokens.authenticate(token.strip(), client_address(request))
    return Viewer(SessionInfo(use.user, "", use.token.created_at), bearer=use.actor)


def api_viewer(
    request: Request, svc: Annotated[Services, Depends(services)],
    _cookie: Annotated[str | None, Security(SESSION_SCHEME)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)] = None,
) -> Viewer:
    """The API's viewer: a bearer token if the request has an Authorization header (the
    cookie is then ignored), else the session cookie, whose state-changing requests must
    carry the X-CSRF-Token header."""
    if "authorization" in request.headers:
        return bearer_viewer(request, svc)
    viewer = current_viewer(request, svc)
    if request.method not in {"GET", "HEAD", "OPTIONS"}:
        check_csrf(viewer, request.headers.get(CSRF_HEADER))
    return viewer


async def read_form(request: Request) -> dict[str, str]:
    """Parse a URL-encoded form strictly: non-UTF-8 or other content types are refused."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise InvalidInput(f"forms must be sent as {FORM_TYPE}")
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("the form was not valid UTF-8 text") from exc
    return dict(pairs)


async def read_checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    form = await read_form(request)
    check_csrf(viewer, form.get("csrf_token") or request.headers.get(CSRF_HEADER))
    return form


ServicesDep = Annotated[Services, Depends(services)]
ViewerDep = Annotated[Viewer, Depends(current_viewer)]
ApiViewerDep = Annotated[Viewer, Depends(api_viewer)]
