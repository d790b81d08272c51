"""Pages for eligibility screening, dose orders and rule sets (thin: parse, call, render)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.clinical.dose_checks import format_dose
from ketaclinic.clinical.dose_plan import ROUTE_LABELS, ROUTES
from ketaclinic.clinical.dosing import ESKETAMINE_PHASES, WEIGHT_BASES
from ketaclinic.http.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.http.inputs import model_from_form
from ketaclinic.services.accounts.permissions import Perm, allowed
from ketaclinic.services.dosing.facts import RESPONSES, condition_choices, facts_from_form
from ketaclinic.services.dosing.inputs import (
    Activation,
    ConfirmBody,
    CopyBody,
    CosignInput,
    DoseInput,
    ImportBody,
    ScreeningRequest,
    SignoffBody,
    ValuesBody,
    VerbalOrderInput,
    changes_from_form,
    overrides_from_form,
)
from ketaclinic.services.dosing.rulesets import Cosign, document_text
from ketaclinic.services.dosing.service import DoseBlocked
from ketaclinic.services.dosing.verbal_orders import prescribers
from ketaclinic.services.errors import Conflict, InvalidInput
from ketaclinic.services.numbers import MAX_ID, optional_int
from ketaclinic.web.render import redirect, render

router = APIRouter()
EXTRA_TRIAL_ROWS = 2
SEVERITY_CHOICES = ("subsyndromal", "mild", "moderate", "severe", "severe-psychotic")
SUBSTANCE_CHOICES = ("", "none", "history", "current")  # "": not asked (review)


def _can(viewer: Viewer, perm: Perm) -> bool:
    return allowed(viewer.actor, perm)


# --------------------------------------------------------------------------- rule sets


def _rulesets_page(request: Request, svc: ServicesDep, viewer: Viewer, status: int = 200,
                   **extra: Any) -> Response:
    items = svc.dosing.rulesets.list(viewer.actor)
    return render(request, "dosing_rulesets.html", status_code=status, items=items,
                  can_manage=_can(viewer, Perm.RULES_MANAGE), **extra)


@router.get("/rulesets")
def rulesets(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return _rulesets_page(request, svc, viewer)


def _cosign(form: dict[str, str]) -> Cosign:
    """The medical director's co-signature fields of a rule-set form (the API's headers)."""
    return model_from_form(CosignInput, form).cosign()


@router.post("/rulesets/active")
async def rulesets_active(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(Activation, form)
        svc.dosing.rulesets.set_active(viewer.actor, data.treatment, data.ruleset_id,
                                       _cosign(form))
    except InvalidInput as exc:
        return _rulesets_page(request, svc, viewer, 422, error=str(exc))
    return redirect("/rulesets")


@router.post("/rulesets/copy")
async def rulesets_copy(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(CopyBody, form)
        rs = svc.dosing.rulesets.copy(viewer.actor, data.source_id, data.new_id, data.title)
    except (InvalidInput, Conflict) as exc:
        return _rulesets_page(request, svc, viewer, exc.status, error=str(exc), values=form)
    return redirect(f"/rulesets/{rs.id}")


@router.post("/rulesets/import")
async def rulesets_import(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(ImportBody, form)
        rs = svc.dosing.rulesets.import_document(viewer.actor, json.dumps(data.document),
                                                 data.note, _cosign(form))
    except (InvalidInput, Conflict) as exc:
        return _rulesets_page(request, svc, viewer, exc.status, error=str(exc), values=form)
    return redirect(f"/rulesets/{rs.id}")


@router.get("/rulesets/unconfirmed")
def rulesets_unconfirmed(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    rows = svc.dosing.rulesets.unconfirmed_report(viewer.actor)
    return render(request, "dosing_unconfirmed.html", rows=rows)


def _ruleset_page(request: Request, svc: ServicesDep, viewer: Viewer, ruleset_id: str,
                  version: int | None = None, status: int = 200, **extra: Any) -> Response:
    view = svc.dosing.rulesets.view(viewer.actor, ruleset_id, version)
    doc = view.ruleset.to_dict()
    return render(request, "dosing_ruleset.html", status_code=status, view=view, doc=doc,
                  rs=view.ruleset, unconfirmed_paths={u.path for u in view.unconfirmed},
                  can_manage=_can(viewer, Perm.RULES_MANAGE),
                  can_confirm=_can(viewer, Perm.PRESCRIBE), **extra)


@router.get("/rulesets/{ruleset_id}")
def ruleset_detail(request: Request, ruleset_id: str, svc: ServicesDep, viewer: ViewerDep,
                   version: int | None = None) -> Response:
    return _ruleset_page(request, svc, viewer, ruleset_id, version)


@router.get("/rulesets/{ruleset_id}/document.json")
def ruleset_download(ruleset_id: str, svc: ServicesDep, viewer: ViewerDep,
                     version: int | None = None) -> Response:
    view = svc.dosing.rulesets.view(viewer.actor, ruleset_id, version)
    name = f"{view.ruleset.id}-{view.ruleset.version}.json"
    return Response(document_text(view.ruleset), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/rulesets/{ruleset_id}/values")
async def ruleset_values(request: Request, ruleset_id: str, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    shown = svc.dosing.rulesets.view(viewer.actor, ruleset_id).ruleset.to_dict()
    try:
        data = model_from_form(ValuesBody, form,
                               extra={"changes": changes_from_form(form, shown)})
        svc.dosing.rulesets.edit_values(viewer.actor, ruleset_id, data.changes_as_text(),
                                        data.note, data.version, _cosign(form))
    except (InvalidInput, Conflict) as exc:
        return _ruleset_page(request, svc, viewer, ruleset_id, status=exc.status, error=str(exc))
    return redirect(f"/rulesets/{ruleset_id}")


@router.post("/rulesets/{ruleset_id}/confirm")
async def ruleset_confirm(request: Request, ruleset_id: str, svc: ServicesDep,
                          viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(ConfirmBody, form)
        svc.dosing.rulesets.confirm(viewer.actor, ruleset_id, data.path, data.version)
    except (InvalidInput, Conflict) as exc:
        return _ruleset_page(request, svc, viewer, ruleset_id, status=exc.status, error=str(exc))
    return redirect(f"/rulesets/{ruleset_id}#unconfirmed")


# --------------------------------------------------------------------------- screening


def _screening_page(request: Request, svc: ServicesDep, viewer: Viewer, patient_id: int,
                    status: int = 200, **extra: Any) -> Response:
    patient = svc.patients.get(viewer.actor, patient_id)
    facts, version = svc.dosing.get_facts(viewer.actor, patient_id)
    history = svc.dosing.list_screenings(viewer.actor, patient_id)
    trials = list(facts["antidepressant_trials"]) + [{}] * EXTRA_TRIAL_ROWS
    return render(request, "dosing_screening.html", status_code=status, patient=patient,
                  facts=facts, facts_version=version, history=history, trials=trials,
                  conditions=condition_choices(), responses=RESPONSES,
                  severities=SEVERITY_CHOICES, substance_choices=SUBSTANCE_CHOICES,
                  today=svc.ctx.today(), can_screen=_can(viewer, Perm.PRESCRIBE),
                  can_edit=_can(viewer, Perm.PATIENT_WRITE), **extra)


@router.get("/patients/{patient_id}/screening")
def screening(request: Request, patient_id: int, svc: ServicesDep,
              viewer: ViewerDep) -> Response:
    return _screening_page(request, svc, viewer, patient_id)


@router.post("/patients/{patient_id}/screening/facts")
async def screening_facts(request: Request, patient_id: int, svc: ServicesDep,
                          viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        count = optional_int(form.get("trial_rows"), "trial_rows", minimum=0, maximum=40) or 0
        facts = facts_from_form(form, count)
        version = optional_int(form.get("facts_version"), "facts_version", minimum=0,
                               maximum=MAX_ID)
        svc.dosing.save_facts(viewer.actor, patient_id, facts, version)
        if form.get("then_screen"):  # one button: save the edits, then screen on them
            svc.dosing.screen(viewer.actor, patient_id, form["then_screen"])
            return redirect(f"/patients/{patient_id}/screening#result")
    except (InvalidInput, Conflict) as exc:
        return _screening_page(request, svc, viewer, patient_id, exc.status, error=str(exc))
    return redirect(f"/patients/{patient_id}/screening#facts")


@router.post("/patients/{patient_id}/screening/run")
async def screening_run(request: Request, patient_id: int, svc: ServicesDep,
                        viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        svc.dosing.screen(viewer.actor, patient_id,
                          model_from_form(ScreeningRequest, form).treatment)
    except InvalidInput as exc:
        return _screening_page(request, svc, viewer, patient_id, exc.status, error=str(exc))
    return redirect(f"/patients/{patient_id}/screening#result")


@router.post("/patients/{patient_id}/screening/{screening_id}/signoff")
async def screening_signoff(request: Request, patient_id: int, screening_id: int,
                            svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        svc.dosing.sign_off(viewer.actor, patient_id, screening_id,
                            model_from_form(SignoffBody, form).reason)
    except InvalidInput as exc:
        return _screening_page(request, svc, viewer, patient_id, exc.status, error=str(exc))
    return redirect(f"/patients/{patient_id}/screening#result")


# --------------------------------------------------------------------------- dose


def _dose_page(request: Request, svc: ServicesDep, viewer: Viewer, patient_id: int,
               route: str, values: dict[str, str], status: int = 200, **extra: Any
               ) -> Response:
    patient = svc.patients.get(viewer.actor, patient_id)
    doses = svc.dosing.list_doses(viewer.actor, patient_id, 10)
    courses = [c for c in svc.chair.courses.for_patient(viewer.actor, patient_id)
               if c.status == "active"]
    can_prescribe = _can(viewer, Perm.PRESCRIBE)
    verbal = not can_prescribe and _can(viewer, Perm.CLINICAL_WRITE)
    return render(request, "dosing_dose.html", status_code=status, patient=patient,
                  courses=courses, verbal=verbal,
                  prescribers=prescribers(svc.dosing, viewer.actor) if verbal else [],
                  route=route, routes=ROUTES, route_labels=ROUTE_LABELS, values=values,
                  doses=doses, bases=WEIGHT_BASES, phases=ESKETAMINE_PHASES,
                  can_prescribe=can_prescribe, fmt=format_dose,
                  idempotency_key=values.get("idempotency_key") or secrets.token_urlsafe(16),
                  today=svc.ctx.today(), **extra)


def _default_values(route: str) -> dict[str, str]:
    if route == "iv":
        return {"mg_per_kg": "0.5", "infusion_min": "40", "weight_basis": "actual"}
    if route == "intranasal":
        return {"phase": "induction", "session_number": "1"}
    return {"weight_basis": "actual"}


@router.get("/patients/{patient_id}/dose")
def dose(request: Request, patient_id: int, svc: ServicesDep, viewer: ViewerDep,
         route: str = "iv", saved: int | None = None) -> Response:
    route = route if route in ROUTES else "iv"
    return _dose_page(request, svc, viewer, patient_id, route, _default_values(route),
                      saved=saved)


@router.post("/patients/{patient_id}/dose")
async def dose_post(request: Request, patient_id: int, svc: ServicesDep,
                    viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    route = form.get("route", "iv") if form.get("route") in ROUTES else "iv"
    action = form.get("action", "check")
    try:
        req = model_from_form(DoseInput, form, extra={"overrides": overrides_from_form(form)})
        if action == "save":
            record, _ = svc.dosing.save(viewer.actor, patient_id, req,
                                        form.get("idempotency_key") or None)
            return redirect(f"/patients/{patient_id}/dose?route={route}&saved={record.id}")
        plan = svc.dosing.check(viewer.actor, patient_id, req)
    except DoseBlocked as exc:
        return _dose_page(request, svc, viewer, patient_id, route, form, 422, plan=exc.plan,
                          error=str(exc))
    except InvalidInput as exc:
        return _dose_page(request, svc, viewer, patient_id, route, form, exc.status,
                          error=str(exc))
    return _dose_page(request, svc, viewer, patient_id, route, form, plan=plan)


@router.post("/patients/{patient_id}/verbal-orders")
async def verbal_order_post(request: Request, patient_id: int, svc: ServicesDep,
                            viewer: ViewerDep) -> Response:
    """The nurse records a read-back verbal/telephone order (same checks as an order): the
    JSON body's model, "read back" a checkbox."""
    form = await read_checked_form(request, viewer)
    route = form.get("route", "iv") if form.get("route") in ROUTES else "iv"
    try:
        record = svc.dosing.take_verbal_order(viewer.actor, patient_id, model_from_form(
            VerbalOrderInput, form, checkboxes=("read_back_confirmed",)))
    except InvalidInput as exc:
        return _dose_page(request, svc, viewer, patient_id, route, form, exc.status,
                          error=str(exc))
    return redirect(f"/patients/{patient_id}/dose?route={route}&saved={record.id}")


@router.post("/patients/{patient_id}/doses/{order_id}/countersign")
async def countersign_post(request: Request, patient_id: int, order_id: int,
                           svc: ServicesDep, viewer: ViewerDep) -> Response:
    """The prescriber who gave a verbal order countersigns it."""
    await read_checked_form(request, viewer)
    try:
        svc.dosing.countersign(viewer.actor, patient_id, order_id)
    except InvalidInput as exc:
        return _dose_page(request, svc, viewer, patient_id, "iv", _default_values("iv"),
                          exc.status, error=str(exc))
    return redirect(f"/patients/{patient_id}/dose#orders")


def panel_loader(svc: Any, viewer: Viewer, patient_id: int) -> dict[str, Any] | None:
    """Patient-page panel: latest screening per treatment (expired?) and recent doses."""
    if not _can(viewer, Perm.PATIENT_READ):
        return None
    data = svc.dosing.panel(viewer.actor, patient_id)
    data["fmt"] = format_dose
    data["can_prescribe"] = _can(viewer, Perm.PRESCRIBE)
    return data
