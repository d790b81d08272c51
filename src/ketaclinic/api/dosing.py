"""JSON API for eligibility screening, dose checks and orders, and rule sets."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ketaclinic.api.paging import Page, PageDep
from ketaclinic.http.deps import ApiViewerDep, ServicesDep
from ketaclinic.http.inputs import model_from_form
from ketaclinic.schemas import Whole
from ketaclinic.services.dosing.inputs import (
    ActiveBody,
    ConfirmBody,
    CopyBody,
    CosignInput,
    DoseInput,
    ImportBody,
    ScreeningRequest,
    SignoffBody,
    ValuesBody,
    VerbalOrderInput,
)
from ketaclinic.services.dosing.rulesets import Cosign, document_text
from ketaclinic.services.dosing.service import DoseBlocked

router = APIRouter(prefix="/api")
Rows = Page[dict[str, Any]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactsBody(_Strict):
    facts: dict[str, Any]
    version: Whole | None = Field(None, description="The version you read (None: first save)")


# --- screening and facts ------------------------------------------------------------------
@router.get("/patients/{patient_id}/screenings", tags=["screening"], response_model=Rows)
def api_screenings(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                   window: PageDep) -> dict:
    today = svc.ctx.today()
    page = svc.dosing.list_screenings(viewer.actor, patient_id, window.limit, window.offset)
    return window.page(page, [r.as_dict(today) for r in page])


@router.post("/patients/{patient_id}/screenings", status_code=201, tags=["screening"])
def api_screen(patient_id: int, body: ScreeningRequest, svc: ServicesDep,
               viewer: ApiViewerDep) -> dict:
    record = svc.dosing.screen(viewer.actor, patient_id, body.treatment)
    return record.as_dict(svc.ctx.today())


@router.post("/patients/{patient_id}/screenings/{screening_id}/signoff", status_code=201,
             tags=["screening"])
def api_signoff(patient_id: int, screening_id: int, body: SignoffBody, svc: ServicesDep,
                viewer: ApiViewerDep) -> dict:
    """A prescriber signs off a screening that needs review (who, when, why: audited)."""
    record = svc.dosing.sign_off(viewer.actor, patient_id, screening_id, body.reason)
    return record.as_dict(svc.ctx.today())


@router.get("/patients/{patient_id}/clinical-facts", tags=["screening"])
def api_facts(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> dict:
    facts, version = svc.dosing.get_facts(viewer.actor, patient_id)
    return {"facts": facts, "version": version}


@router.put("/patients/{patient_id}/clinical-facts", tags=["screening"],
            responses={409: {"description": "The facts changed since the given version"}})
def api_save_facts(patient_id: int, body: FactsBody, svc: ServicesDep,
                   viewer: ApiViewerDep) -> dict:
    version = svc.dosing.save_facts(viewer.actor, patient_id, body.facts, body.version)
    return {"version": version}


# --- doses --------------------------------------------------------------------------------
@router.post("/patients/{patient_id}/dose/check", tags=["doses"])
def api_dose_check(patient_id: int, body: DoseInput, svc: ServicesDep,
                   viewer: ApiViewerDep) -> dict:
    """Calculate and check a dose; nothing is saved."""
    return svc.dosing.check(viewer.actor, patient_id, body).as_dict()


@router.post("/patients/{patient_id}/doses", status_code=201, tags=["doses"],
             responses={422: {"description": "Blocked: hard finding, or soft findings without "
                                             "a coded reason; the body lists the checks"}})
def api_dose_save(patient_id: int, body: DoseInput, response: Response, svc: ServicesDep,
                  viewer: ApiViewerDep,
                  idempotency_key: Annotated[str | None, Header(max_length=100)] = None
                  ) -> Any:
    try:
        record, created = svc.dosing.save(viewer.actor, patient_id, body,
                                          idempotency_key)
    except DoseBlocked as exc:
        return JSONResponse(status_code=422, content=json.loads(json.dumps({
            "detail": str(exc), "missing_overrides": list(exc.missing),
            **exc.plan.as_dict()}, default=str)))
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/patients/{patient_id}/doses"
    return record.as_dict()


@router.post("/patients/{patient_id}/verbal-orders", status_code=201, tags=["doses"])
def api_verbal_order(patient_id: int, body: VerbalOrderInput, svc: ServicesDep,
                     viewer: ApiViewerDep) -> dict:
    """A verbal or telephone order taken at the chair (audited; countersign within the rule
    set's hours). Its overrides are not taken: soft findings cannot be overridden on one."""
    return svc.dosing.take_verbal_order(viewer.actor, patient_id, body).as_dict()


@router.post("/patients/{patient_id}/doses/{order_id}/countersign", tags=["doses"])
def api_countersign(patient_id: int, order_id: int, svc: ServicesDep,
                    viewer: ApiViewerDep) -> dict:
    """The prescriber who gave a verbal order countersigns it."""
    return svc.dosing.countersign(viewer.actor, patient_id, order_id).as_dict()


@router.get("/patients/{patient_id}/doses", tags=["doses"], response_model=Rows)
def api_doses(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
              window: PageDep) -> dict:
    page = svc.dosing.list_doses(viewer.actor, patient_id, window.limit, window.offset)
    return window.page(page, [r.as_dict() for r in page])


# --- rule sets ----------------------------------------------------------------------------
def _summary(rs) -> dict:
    return {"id": rs.id, "version": rs.version, "ref": rs.ref, "treatment": rs.treatment}


@router.get("/rulesets", tags=["rule sets"], response_model=Rows)
def api_rulesets(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep) -> dict:
    page = svc.dosing.rulesets.list(viewer.actor, window.limit, window.offset)
    return window.page(page, [s.__dict__ for s in page])


@router.get("/rulesets/unconfirmed", tags=["rule sets"], response_model=Rows)
def api_unconfirmed(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep) -> dict:
    return window.page(svc.dosing.rulesets.unconfirmed_report(viewer.actor, window.limit,
                                                              window.offset))


@router.post("/rulesets/copy", status_code=201, tags=["rule sets"])
def api_copy(body: CopyBody, svc: ServicesDep, viewer: ApiViewerDep) -> dict:
    return _summary(svc.dosing.rulesets.copy(viewer.actor, body.source_id, body.new_id,
                                             body.title))


CosignUser = Annotated[str | None, Header(
    alias="X-Cosign-Username", json_schema_extra={"maxLength": 64},
    description="A medical director's username, for a change that loosens a hard limit")]
CosignPassword = Annotated[str | None, Header(
    alias="X-Cosign-Password", json_schema_extra={"maxLength": 200},
    description="That medical director's password")]


def cosign_headers(username: CosignUser = None, password: CosignPassword = None) -> Cosign:
    """The ``X-Cosign-*`` headers read as the rule-set forms' co-signature fields: one model
    (:class:`CosignInput`), so a refusal reads the same on both."""
    return model_from_form(CosignInput, {"cosign_username": username or "",
                                         "cosign_password": password or ""}).cosign()


async def import_body(request: Request) -> ImportBody:
    """The request's body, a rule-set document, read as the import form's text area: the
    model parses it, so bad JSON or a document that is not an object reads the same on both."""
    text = (await request.body()).decode("utf-8", errors="replace")
    return model_from_form(ImportBody, {"document": text})


CosignDep = Annotated[Cosign, Depends(cosign_headers)]
ImportDep = Annotated[ImportBody, Depends(import_body)]
_DOCUMENT = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "title": "Rule-set document", "additionalProperties": True}}}}}


@router.post("/rulesets/import", status_code=201, tags=["rule sets"], openapi_extra=_DOCUMENT)
def api_import(svc: ServicesDep, viewer: ApiViewerDep, body: ImportDep,
               cosign: CosignDep) -> dict:
    """Import a rule-set document (the request's body: validated; one without the hard limits
    of its routes is refused); a known clinic id gets a new version. A new version of an
    active set that loosens a hard limit needs a medical director's co-signature in
    ``X-Cosign-Username`` / ``X-Cosign-Password``."""
    return _summary(svc.dosing.rulesets.import_document(
        viewer.actor, json.dumps(body.document), body.note, cosign))


@router.put("/rulesets/active/{treatment}", tags=["rule sets"])
def api_set_active(treatment: str, body: ActiveBody, svc: ServicesDep, viewer: ApiViewerDep,
                   cosign: CosignDep) -> dict:
    """Activate a rule set: never one without its hard limits; one that loosens a hard limit
    of the set in effect needs the ``X-Cosign-*`` headers of a medical director."""
    return _summary(svc.dosing.rulesets.set_active(viewer.actor, treatment, body.ruleset_id,
                                                   cosign))


@router.get("/rulesets/{ruleset_id}", tags=["rule sets"])
def api_ruleset(ruleset_id: str, svc: ServicesDep, viewer: ApiViewerDep,
                version: Annotated[Whole | None, Query(ge=1)] = None) -> dict:
    view = svc.dosing.rulesets.view(viewer.actor, ruleset_id, version)
    return {**_summary(view.ruleset), "bundled": view.bundled, "active_for": view.active_for,
            "versions": [{"seq": v.seq, "ref": v.ref, "change_note": v.change_note,
                          "created_by": v.created_by, "created_at": v.created_at.isoformat()}
                         for v in view.versions],
            "unconfirmed": [u.path for u in view.unconfirmed],
            "confirmations": [{**c, "at": c["at"].isoformat()} for c in view.confirmations],
            "approvals": [{**a, "at": a["at"].isoformat()} for a in view.approvals],
            "document": json.loads(document_text(view.ruleset))}


@router.put("/rulesets/{ruleset_id}/values", tags=["rule sets"],
            responses={409: {"description": "The rule set changed since the given version"}})
def api_edit_values(ruleset_id: str, body: ValuesBody, svc: ServicesDep,
                    viewer: ApiViewerDep, cosign: CosignDep) -> dict:
    return _summary(svc.dosing.rulesets.edit_values(
        viewer.actor, ruleset_id, body.changes_as_text(), body.note, body.version, cosign))


@router.post("/rulesets/{ruleset_id}/confirm", tags=["rule sets"])
def api_confirm(ruleset_id: str, body: ConfirmBody, svc: ServicesDep,
                viewer: ApiViewerDep) -> dict:
    return _summary(svc.dosing.rulesets.confirm(viewer.actor, ruleset_id, body.path,
                                                body.version))
