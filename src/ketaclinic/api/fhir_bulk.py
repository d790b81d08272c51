"""FHIR Bulk Data ``$export``-style API: kick-off (202 + Content-Location), status polling (202
while running, then the manifest with the NDJSON file URLs), file download, delete.

Identified data: admin and prescriber only (``export.identified``); every step audited. See
docs/fhir.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ketaclinic.http.deps import ApiViewerDep, ServicesDep
from ketaclinic.services.errors import InvalidInput

router = APIRouter(prefix="/api/fhir", tags=["fhir"])
NDJSON_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}


def operation_outcome(status: int, message: str) -> JSONResponse:
    """A refused Bulk Data request, as the spec asks: an OperationOutcome."""
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": message}]},
        status_code=status, media_type="application/fhir+json")


def _kick_off(request: Request, svc: ServicesDep, viewer: ApiViewerDep,
              background: BackgroundTasks, prefer: str | None, types: str | None,
              output_format: str | None, since: str | None) -> Response:
    jobs = svc.outcomes.fhir_jobs
    try:
        if "respond-async" not in (prefer or ""):
            raise InvalidInput("send the header 'Prefer: respond-async' (FHIR Bulk Data "
                               "kick-off)")
        if output_format and output_format not in NDJSON_FORMATS:
            raise InvalidInput("_outputFormat: only application/fhir+ndjson is offered")
        wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
        job = jobs.start(viewer.actor, wanted, str(request.url), since)
    except InvalidInput as exc:
        return operation_outcome(400, str(exc))
    base = str(request.base_url).rstrip("/")
    background.add_task(jobs.run, viewer.actor, job, f"{base}/api/fhir/$export-files")
    return Response(status_code=202, headers={
        "Content-Location": f"{base}/api/fhir/$export-status/{job}"})


_KICK_OFF_DOC: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted; poll the Content-Location URL"},
    400: {"description": "Refused (bad _since, _type, _outputFormat or no respond-async): "
                         "an OperationOutcome", "content": {"application/fhir+json": {}}}}


@router.get("/$export", status_code=202, responses=_KICK_OFF_DOC)
@router.get("/Patient/$export", status_code=202, responses=_KICK_OFF_DOC,
            include_in_schema=False)
def api_bulk_export_get(
    request: Request, svc: ServicesDep, viewer: ApiViewerDep, background: BackgroundTasks,
    prefer: Annotated[str | None, Header()] = None,
    types: Annotated[str | None, Query(alias="_type", max_length=500)] = None,
    output_format: Annotated[str | None, Query(alias="_outputFormat", max_length=60)] = None,
    since: Annotated[str | None, Query(alias="_since", max_length=40)] = None,
) -> Response:
    """Start an export of every patient's whole record as NDJSON (one file per type);
    ``_type``: only these resource types; ``_since`` (FHIR instant): only the resources
    changed since."""
    return _kick_off(request, svc, viewer, background, prefer, types, output_format, since)


@router.post("/$export", status_code=202, responses=_KICK_OFF_DOC)
def api_bulk_export_post(
    request: Request, svc: ServicesDep, viewer: ApiViewerDep, background: BackgroundTasks,
    prefer: Annotated[str | None, Header()] = None,
    types: Annotated[str | None, Query(alias="_type", max_length=500)] = None,
    output_format: Annotated[str | None, Query(alias="_outputFormat", max_length=60)] = None,
    since: Annotated[str | None, Query(alias="_since", max_length=40)] = None,
) -> Response:
    """The same kick-off by POST (needs the X-CSRF-Token header like every API change)."""
    return _kick_off(request, svc, viewer, background, prefer, types, output_format, since)


@router.get("/$export-status/{job}", responses={
    200: {"description": "The manifest: output[] with type, url and count"},
    202: {"description": "Still running"}})
def api_bulk_export_status(job: str, svc: ServicesDep, viewer: ApiViewerDep) -> Response:
    manifest = svc.outcomes.fhir_jobs.status(viewer.actor, job)
    if manifest is None:
        return Response(status_code=202, headers={"X-Progress": "exporting",
                                                  "Retry-After": "2"})
    return JSONResponse(manifest, headers={"Expires": "0"})


@router.delete("/$export-status/{job}", status_code=202)
def api_bulk_export_delete(job: str, svc: ServicesDep, viewer: ApiViewerDep) -> Response:
    """Delete the job and its files (do it once the files are fetched)."""
    svc.outcomes.fhir_jobs.delete(viewer.actor, job)
    return Response(status_code=202)


@router.get("/$export-files/{job}/{name}", response_class=StreamingResponse, responses={
    200: {"content": {"application/fhir+ndjson": {}}}})
def api_bulk_export_file(job: str, name: str, svc: ServicesDep,
                         viewer: ApiViewerDep) -> StreamingResponse:
    """One NDJSON file of the job (stored encrypted; decrypted as it is sent)."""
    lines = svc.outcomes.fhir_jobs.file(viewer.actor, job, name)
    return StreamingResponse(lines, media_type="application/fhir+ndjson", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
