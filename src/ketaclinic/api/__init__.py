"""The JSON API under /api: one router per area."""

from __future__ import annotations

from fastapi import APIRouter


def api_routers() -> list[APIRouter]:
    from ketaclinic.api import (
        accounts,
        chair,
        dosing,
        fhir_bulk,
        imports,
        mbc,
        outcomes,
        pk,
        routes,
        tokens,
        webhooks,
    )

    # POST /api/session/unlock lives beside the lock page (web/pages_lock.py), which registers
    # it with the pages (web_routers); the API never imports the web package.
    return [routes.router, dosing.router, mbc.router, chair.router, pk.router, outcomes.router,
            accounts.router, fhir_bulk.router, imports.router, tokens.router,
            webhooks.router]
