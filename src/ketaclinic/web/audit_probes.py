"""A request about a patient id that finds nothing is audited too (outcome ``not_found``).

Walking ids (``/api/patients/1``, ``/2``, …) to learn which exist, or asking for another
patient's course, is an access attempt a reviewer wants to see, even though no data left the
server. The error handler calls :func:`audit_not_found` for every 404 of a route with a
``patient_id`` path parameter, when a user is logged in; the row names the probed id and the
route template (never the query).
"""

from __future__ import annotations

import logging

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ketaclinic.services.errors import NotFound, ServiceError

log = logging.getLogger("ketaclinic.web")


async def audit_not_found(request: Request, exc: ServiceError) -> None:
    if not isinstance(exc, NotFound):
        return
    raw = request.path_params.get("patient_id")
    viewer = getattr(request.state, "viewer", None)
    if raw is None or viewer is None or getattr(viewer, "actor", None) is None:
        return
    try:
        patient_id = int(raw)
    except (TypeError, ValueError):
        return
    route = getattr(request.scope.get("route"), "path", "") or request.url.path
    services = request.app.state.services
    try:
        await run_in_threadpool(
            services.ctx.record_failure, viewer.actor, "patient.lookup", "not_found",
            patient_id=patient_id, detail=f"{request.method} {route}"[:500])
    except Exception as exc_audit:  # noqa: BLE001 - the 404 is answered regardless
        log.warning("not-found probe not audited: %s", type(exc_audit).__name__)
