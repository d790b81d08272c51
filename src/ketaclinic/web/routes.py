"""All server-rendered pages: one router per area (add one line to ``web_routers``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ketaclinic.store.health import readiness, storage_folder

router = APIRouter(include_in_schema=False)


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico by themselves; the page icon is the SVG."""
    return FileResponse(Path(__file__).parent / "static" / "favicon.svg",
                        media_type="image/svg+xml")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers (cheap, touches nothing)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """Readiness: the database takes a write (rolled back), the read replica (when one is
    configured) answers a read, and the disk has room; 503 with the reasons otherwise. No
    patient data and no login needed."""
    svc = request.app.state.services
    cfg = svc.settings
    problems = readiness(svc.ctx.db, storage_folder(cfg.effective_database_url, cfg.data_dir),
                         cfg.min_free_disk_mb)
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503,
                            headers={"Retry-After": "30"})
    return JSONResponse({"status": "ok"})


def web_routers() -> list[APIRouter]:
    from ketaclinic.web import (
        pages_account,
        pages_admin,
        pages_auth,
        pages_chair,
        pages_dosing,
        pages_lock,
        pages_mbc,
        pages_outcomes,
        pages_patients,
        pages_pk,
        pages_tokens,
        pages_webhooks,
    )

    # Area pages come before the patient pages' catch-all /patients/{id}/{kind} route.
    from ketaclinic.web.observe import router as metrics_router

    routers = [router, metrics_router, pages_auth.router, pages_lock.router, pages_admin.router,
               pages_tokens.router, pages_webhooks.router,
               pages_account.router,
               pages_dosing.router,
               pages_mbc.router, pages_chair.router, pages_pk.router, pages_outcomes.router,
               pages_patients.router]
    # The lock screen's JSON call (POST /api/session/unlock) is part of the API schema.
    return [_hidden(r) for r in routers] + [pages_lock.api_router]


def _hidden(r: APIRouter) -> APIRouter:
    wrapper = APIRouter(include_in_schema=False)
    wrapper.include_router(r)
    return wrapper
