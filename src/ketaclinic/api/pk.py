"""GET /api/patients/{id}/pk: predicted exposure in the CLI's JSON shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ketaclinic.http.deps import ApiViewerDep, ServicesDep

router = APIRouter(prefix="/api", tags=["pk"])


@router.get("/patients/{patient_id}/pk")
def api_pk(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep, route: str = "iv",
           dose_mg: str = "", minutes: str = "", model: str = "", hours: str = "",
           course: bool = False) -> dict[str, Any]:
    """One dose (route, dose_mg, minutes for IV, optional model, hours), or ``course=true`` for
    the patient's treatment sessions. Same shape as ``ketaclinic pk simulate --json`` plus
    ``percentiles`` (500 virtual patients) and ``covariates``. Explains exposure; never doses."""
    if course:
        result = svc.pk.course(viewer.actor, patient_id, model=model or None)
        if result is None:
            return {"model": None, "times_min": [], "concentration_ng_per_ml": {},
                    "warnings": [], "caution": "explains exposure; does not set doses",
                    "doses": []}
        doses = [d | {"at": d["at"].isoformat()} for d in result.doses]
        return result.data | {"doses": doses}
    return svc.pk.one_dose(viewer.actor, patient_id, route=route, dose_mg=dose_mg or None,
                           minutes=minutes or None, model=model or None,
                           hours=hours or None).data
