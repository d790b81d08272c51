"""The JSON API under /api (add one line per area to ``api_routers``)."""

from __future__ import annotations

from fastapi import APIRouter


def api_routers() -> list[APIRouter]:
    from ketaclinic.api import outcomes, routes

    routers = [routes.router]
    routers.append(outcomes.router)
    return routers
