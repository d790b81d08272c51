"""Outcomes API: de-identified research export and FHIR R4 bundles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from ketaclinic.http.deps import ApiViewerDep, ServicesDep

router = APIRouter(prefix="/api")


@router.get("/exports/deidentified", tags=["exports"], response_class=Response,
            responses={200: {"content": {"application/zip": {}},
                             "description": "Zip of CSV or Parquet tables + data dictionary"}})
def api_deidentified_export(svc: ServicesDep, viewer: ApiViewerDep,
                            format: Annotated[str, Query(pattern="^(csv|parquet)$")] = "csv"
                            ) -> Response:
    """De-identified research export (HIPAA Safe Harbor); audited as export.deidentified."""
    name, data = svc.outcomes.deidentified_export(viewer.actor, format)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/patients/{patient_id}/fhir", tags=["exports"], responses={
    200: {"description": "A FHIR R4 Bundle", "content": {"application/fhir+json": {}}}})
def api_patient_fhir(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                     type: Annotated[str, Query(pattern="^(collection|transaction)$")]
                     = "collection") -> Any:
    """The patient's whole record as one FHIR R4 Bundle (collection, or transaction with a PUT
    per resource), valid under fhir.resources R4B; audited as export.fhir."""
    bundle = svc.outcomes.fhir_bundle(viewer.actor, patient_id, type)
    return JSONResponse(bundle, media_type="application/fhir+json")
