"""The JSON API under /api: one router per area."""

from __future__ import annotations

from fastapi import APIRouter


def api_routers() -> list[APIRouter]:
    from ketaclinic.api import accounts, chair, dosing, imports, mbc, outcomes, pk, routes
    from ketaclinic.web.pages_lock import api_router as lock_router

    return [routes.router, dosing.router, mbc.router, chair.router, pk.router, outcomes.router,
            accounts.router, imports.router, lock_router]
