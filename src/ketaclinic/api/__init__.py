"""The JSON API under /api (add one line per area to ``api_routers``)."""

from __future__ import annotations

from fastapi import APIRouter


def api_routers() -> list[APIRouter]:
    from ketaclinic.api import mbc, routes

    routers = [routes.router]
    routers.append(__import__("ketaclinic.api.dosing", fromlist=["router"]).router)
    routers.append(mbc.router)
    from ketaclinic.api.chair import router as chair_router  # chair area (issue 5)
    routers.append(chair_router)
    routers.append(__import__("ketaclinic.api.pk", fromlist=["router"]).router)
    return routers
