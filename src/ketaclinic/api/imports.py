"""Import API: a FHIR Bundle in, through the same services (docs/import.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from ketaclinic.http.deps import ApiViewerDep, ServicesDep
from ketaclinic.services.interop.fhir_import import ImportService
from ketaclinic.services.interop.import_model import ImportRejected

router = APIRouter(prefix="/api")


@router.post("/import/fhir", tags=["import"], responses={
    200: {"description": "What was (or, for a dry run, would be) created, amended, unchanged "
                         "or skipped, per entry"},
    403: {"description": "Only admins and prescribers import"},
    422: {"description": "Bad entries (entry, resource_type, field, message); nothing written"}})
def api_import_fhir(svc: ServicesDep, viewer: ApiViewerDep,
                    bundle: Annotated[dict[str, Any], Body(
                        description="A FHIR R4/R4B Bundle (collection, transaction or batch)")],
                    dry_run: bool = False) -> Any:
    """Import a Bundle's Patients, Conditions, MedicationStatements, AllergyIntolerances, body
    weights and PHQ-9/GAD-7 forms in one transaction (all or nothing); ``dry_run=true`` reports
    and writes nothing. Admins and prescribers only; audited as ``import.fhir``."""
    try:
        report = ImportService(svc.ctx).import_fhir(viewer.actor, bundle, dry_run=dry_run)
    except ImportRejected as exc:
        return JSONResponse({"detail": str(exc), "errors": [e.as_dict() for e in exc.errors]},
                            status_code=422)
    return report.as_dict()
