"""The FastAPI application factory: pages, the JSON API, security headers and error pages."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DataError, OperationalError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ketaclinic import __version__
from ketaclinic.bootstrap import Services
from ketaclinic.clinical.medications import MEDICATION_STOP_REASONS
from ketaclinic.clinical.monitoring import is_respiratory
from ketaclinic.http.deps import (
    CHANGE_PASSWORD_PAGE,
    ENROLMENT_PAGE,
    EnrolmentRequired,
    PasswordChangeRequired,
)
from ketaclinic.http.inputs import describe_errors
from ketaclinic.services.accounts.auth import SessionLocked
from ketaclinic.services.chair.schedule import hours_label
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.errors import NotAuthenticated, ServiceError, Throttled
from ketaclinic.services.registry.icd10 import icd10_choices
from ketaclinic.services.registry.medication_vocab import name_choices as medication_name_choices
from ketaclinic.store.health import storage_problem
from ketaclinic.web.audit_checkpoints import PeriodicAuditCheckpoint
from ketaclinic.web.audit_probes import audit_not_found

log = logging.getLogger("ketaclinic.web")
HERE = Path(__file__).parent


def format_number(value: object) -> str:
    """Numbers as clinicians write them: no trailing zeros ("82 kg", "0.5 mg/kg", "82.5")."""
    if value is None:
        return ""
    text = format(Decimal(str(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def make_templates(clinic_name: str, clinic_time: ClinicTime | None = None) -> Jinja2Templates:
    """Jinja templates; ``{{ t|local }}`` shows a stored (UTC) time on the clinic's clock:
    ``t|local('%H:%M')``, ``t|local(zone=True)`` adds the abbreviation ("09:00 EST")."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    from ketaclinic.web.panels import nav_for

    clinic_time = clinic_time or ClinicTime()
    templates.env.globals.update(version=__version__, clinic_name=clinic_name, nav_for=nav_for,
                                 clinic_zone=clinic_time.zone_name)
    templates.env.filters["num"] = format_number
    templates.env.filters["local"] = clinic_time.format
    templates.env.filters["hours_label"] = hours_label
    from ketaclinic.web.filters import FILTERS

    templates.env.filters.update(FILTERS)
    templates.env.tests["respiratory"] = is_respiratory
    templates.env.globals["icd10_choices"] = icd10_choices
    templates.env.globals["medication_choices"] = medication_name_choices
    templates.env.globals["stop_reasons"] = MEDICATION_STOP_REASONS
    return templates

DEFAULT_RETRY_AFTER_S = 60  # a 429 whose cause did not say when to come back
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class SecurityHeaders:
    """Security headers on every response; nothing authenticated is cached.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware runs every request through an
    extra task group and body stream, a measurable share of a small request's CPU.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, secure_cookies: bool) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = scope.get("scheme") == "https" or self.secure_cookies
        cache = not scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if cache:
                    headers["Cache-Control"] = "no-store"
                if hsts:
                    headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
                if message["status"] == 429 and "retry-after" not in headers:
                    headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_S)
            await send(message)

        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isascii() or not length.isdigit()
                                   or int(length) > self.max_body_bytes):
            response = _error(Request(scope, receive), 413, "the request is too large")
            await response(scope, receive, send_with_headers)
            return
        await self._call_limited(scope, receive, send_with_headers)

    async def _call_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the body as it streams in (chunked bodies carry no Content-Length): past the
        limit, answer 413 at once, read nothing more, and drop whatever the app still sends."""
        state = {"read": 0, "started": False, "refused": False}

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        async def limited_receive() -> Message:
            if state["refused"]:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.max_body_bytes:
                    if not state["started"]:
                        response = _error(Request(scope), 413, "the request is too large")
                        await response(scope, receive, send)
                    state["refused"] = True
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as exc:  # noqa: BLE001 - every failure ends here, logged without data
            if state["refused"]:
                return
            ref = _log_crash(scope, exc)
            if not state["started"]:
                response = _error(Request(scope), 500,
                                  f"something went wrong on our side (reference {ref})")
                await response(scope, receive, send)


def _log_crash(scope: Scope, exc: Exception) -> str:
    """Log an unhandled error by type and route only, never its message (which may carry
    patient data, e.g. a database error's parameters), and do not re-raise it: the server
    would print the whole traceback. Returns the reference shown to the user."""
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled %s on %s %s (ref %s)", type(exc).__name__, scope.get("method", "?"),
              _route_path(scope), ref)
    return ref


def _route_path(scope: Scope) -> str:
    return str(getattr(scope.get("route"), "path", "?"))


class BodyTooLarge(Exception):
    """The request body passed KETACLINIC_MAX_BODY_BYTES while it was being read."""


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    viewer = getattr(request.state, "viewer", None)
    # A refused page form (bad input, conflict): app.js takes the user back to the form with
    # the input kept and the reason beside the field, instead of leaving a bare error page.
    refused_form = (request.method == "POST" and status in (400, 409, 413, 422)
                    and viewer is not None)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "viewer": viewer,
                                "refused_form": refused_form},
        status_code=status,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SessionLocked)
    async def _locked(request: Request, exc: SessionLocked) -> Response:
        # Idle: the session is locked, not ended; nothing is shown until the user unlocks.
        if _wants_json(request):
            return JSONResponse({"detail": str(exc), "locked": True}, status_code=401)
        return RedirectResponse(f"/unlock?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(NotAuthenticated)
    async def _unauthenticated(request: Request, exc: NotAuthenticated) -> Response:
        if _wants_json(request):
            bearer = "authorization" in request.headers
            return JSONResponse({"detail": str(exc)}, status_code=401, headers=(
                {"WWW-Authenticate": 'Bearer error="invalid_token"'} if bearer else None))
        target = quote(request.url.path)
        # A message code, never text: the login page shows only what the app wrote.
        return RedirectResponse(f"/login?next={target}&msg={quote(exc.login_message)}",
                                status_code=303)

    @app.exception_handler(EnrolmentRequired)
    async def _enrol_first(request: Request, exc: EnrolmentRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return RedirectResponse(ENROLMENT_PAGE, status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    async def _change_first(request: Request, exc: PasswordChangeRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return RedirectResponse(CHANGE_PASSWORD_PAGE, status_code=303)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        await audit_not_found(request, exc)
        response = _error(request, exc.status, str(exc))
        if isinstance(exc, Throttled):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, describe_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(OSError)
    async def _unavailable(request: Request, exc: Exception) -> Response:
        problem = storage_problem(exc)
        if problem is None:
            raise exc  # not a storage problem: the crash path logs it without its message
        log.error("%s: %s on %s %s", problem.code, type(exc).__name__, request.method,
                  _route_path(request.scope))
        response = _error(request, 503, problem.message)
        response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> Response:
        # A number too large for the database column (e.g. an id of 2**70): the input is wrong.
        return _error(request, 422, "a number in the request is out of range")


def _root_path(value: str) -> str:
    from ketaclinic.web.root_path import normalise_root_path

    return normalise_root_path(value)


def create_app(services: Services) -> FastAPI:
    """Build the app around already-wired services (see ``ketaclinic.bootstrap``)."""
    settings = services.settings
    app = FastAPI(
        title="ketaclinic",
        version=__version__,
        description="ketaclinic JSON API. Decision support for clinicians, not medical advice. "
        "Authenticate with POST /api/auth/login; send the returned csrf_token as the "
        "X-CSRF-Token header on every state-changing request. Times are ISO 8601 instants in "
        "UTC (2026-11-02T14:00:00Z); requests may give any offset, and a time without one is "
        "UTC. Dates are the clinic's calendar days. The clinic time zone "
        "(KETACLINIC_CLINIC_TIMEZONE) applies to pages, PDFs and iCalendar only.",
        docs_url=None,  # our own page below: the vendored Swagger UI under the app's CSP
        redoc_url=None,
        openapi_url="/api/openapi.json",
        servers=[{"url": root}] if (root := _root_path(settings.root_path)) else None,
    )
    app.state.templates = make_templates(settings.clinic_name, services.ctx.clinic_time)
    _bind(app, services)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from ketaclinic.api import api_routers
    from ketaclinic.web.routes import web_routers

    for router in api_routers():
        app.include_router(router)
    for router in web_routers():
        app.include_router(router)
    from ketaclinic.web.openapi import install_api_docs, install_error_responses

    install_api_docs(app)

    install_error_responses(app)
    return app


def _bind(app: FastAPI, services: Services) -> None:
    """What of the app belongs to ``services``: the state routes read, and every middleware.

    Starlette builds the middleware on the first request; dropping the built stack makes the
    next request build new instances, so no middleware state (the audit checkpoint's next due
    time) outlives the services it was counted for.
    """
    settings = services.settings
    root = _root_path(settings.root_path)
    app.state.services = services
    app.middleware_stack = None
    app.user_middleware.clear()
    app.add_middleware(SecurityHeaders, max_body_bytes=settings.max_body_bytes,
                       secure_cookies=settings.secure_cookies)
    app.add_middleware(PeriodicAuditCheckpoint, services=services,
                       minutes=settings.audit_checkpoint_minutes)
    from ketaclinic.web.observe import Observe, install_access_log_handler

    if settings.access_log:
        install_access_log_handler()
    app.add_middleware(Observe, access_log_on=settings.access_log)  # sees the final status
    if root:
        from ketaclinic.web.root_path import RootPath

        app.add_middleware(RootPath, root_path=root)
    if settings.trusted_proxy_list:
        # Outermost, so every later step sees the real client address and scheme. Only these
        # proxies' forwarded headers count (the server itself never believes them: see serve).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)


def rebind(app: FastAPI, services: Services) -> None:
    """Point an app from ``create_app`` at other services with equal settings.

    The routes, the OpenAPI schema and the templates derive from the settings alone and are
    kept (FastAPI's analysis of every route is most of ``create_app``'s cost); the services and
    every middleware are replaced, as ``create_app(services)`` would make them. The test suite
    builds one app per worker this way. Other settings need a new app: ValueError.
    """
    if services.settings != app.state.services.settings:
        raise ValueError("rebind needs equal settings; build a new app with create_app")
    _bind(app, services)
