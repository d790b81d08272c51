"""Patient registry pages: search, register, view, amend."""

from __future__ import annotations

import datetime as dt
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ketaclinic.http.deps import ServicesDep, ViewerDep, read_checked_form
from ketaclinic.http.inputs import model_from_form
from ketaclinic.schemas import (
    AllergyCreate,
    AllergyDeactivate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    MedicationCreate,
    MedicationStop,
    PatientCreate,
    PatientUpdate,
    WeightCreate,
)
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.errors import Conflict, InvalidInput
from ketaclinic.services.registry.icd10 import icd10_display
from ketaclinic.services.registry.patients import PossibleDuplicate
from ketaclinic.web.panels import home_for, load_panels
from ketaclinic.web.render import redirect, render

router = APIRouter()
PAGE_SIZE = 25


def _date_or_none(text: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput("date of birth must be a date like 1980-04-30") from exc


@router.get("/")
def home(viewer: ViewerDep) -> Response:
    """Each role's own start page: the nurse's chairs today, the analyst's dashboard."""
    return redirect(home_for(viewer.role))


@router.get("/patients")
def patient_list(request: Request, svc: ServicesDep, viewer: ViewerDep, q: str = "",
                 birth_date: str = "", mrn: str = "", page: int = 1) -> Response:
    page = max(1, min(page, 10_000))
    result = svc.patients.search(viewer.actor, query=q[:200], birth_date=_date_or_none(
        birth_date), mrn=mrn[:32], limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    pages = max(1, -(-result.total // PAGE_SIZE))
    return render(request, "patients.html", result=result, q=q, birth_date=birth_date, mrn=mrn,
                  page=page, pages=pages)


@router.get("/patients/new")
def patient_new(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    svc.ctx.require(viewer.actor, Perm.PATIENT_WRITE, "patient.create")  # no form for analysts
    return render(request, "patient_form.html", mode="new", values={},
                  idempotency_key=secrets.token_urlsafe(16))


@router.post("/patients/new")
async def patient_create(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        data = model_from_form(PatientCreate, form)
        patient, _ = svc.patients.create(viewer.actor, data,
                                         idempotency_key=form.get("idempotency_key") or None,
                                         refuse_duplicates=form.get("not_duplicate") != "on")
    except PossibleDuplicate as exc:
        return render(request, "patient_form.html", status_code=409, mode="new", values=form,
                      duplicates=exc.matches, idempotency_key=secrets.token_urlsafe(16))
    except (InvalidInput, Conflict) as exc:
        return render(request, "patient_form.html", status_code=exc.status, mode="new",
                      values=form, error=str(exc),
                      idempotency_key=form.get("idempotency_key") or secrets.token_urlsafe(16))
    return redirect(f"/patients/{patient.id}")


@router.get("/patients/{patient_id}")
def patient_detail(request: Request, patient_id: int, svc: ServicesDep,
                   viewer: ViewerDep) -> Response:
    patient = svc.patients.get(viewer.actor, patient_id)
    return render(request, "patient_detail.html", patient=patient, today=svc.ctx.today(),
                  panels=load_panels(svc, viewer, patient_id))


@router.get("/patients/{patient_id}/edit")
def patient_edit(request: Request, patient_id: int, svc: ServicesDep,
                 viewer: ViewerDep) -> Response:
    patient = svc.patients.get(viewer.actor, patient_id, action="patient.view")
    values = {k: getattr(patient, k) for k in PatientUpdate.model_fields if hasattr(patient, k)}
    return render(request, "patient_form.html", mode="edit", values=values, patient=patient)


@router.post("/patients/{patient_id}/edit")
async def patient_update(request: Request, patient_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    try:
        svc.patients.update(viewer.actor, patient_id, model_from_form(PatientUpdate, form))
    except Conflict as exc:
        current = svc.patients.get(viewer.actor, patient_id)
        return render(request, "conflict.html", status_code=409, error=str(exc),
                      patient=current, mine=form)
    except InvalidInput as exc:
        patient = svc.patients.get(viewer.actor, patient_id)
        return render(request, "patient_form.html", status_code=422, mode="edit", values=form,
                      patient=patient, error=str(exc))
    return redirect(f"/patients/{patient_id}")


@router.get("/patients/{patient_id}/history")
def patient_history(request: Request, patient_id: int, svc: ServicesDep,
                    viewer: ViewerDep) -> Response:
    patient = svc.patients.get(viewer.actor, patient_id)
    rows = svc.patients.history(viewer.actor, patient_id)
    return render(request, "patient_history.html", patient=patient, rows=rows)


# kind -> (the form's model, the PatientService method that adds it)
_CHILDREN: dict[str, tuple[type[BaseModel], str]] = {
    "weights": (WeightCreate, "add_weight"),
    "diagnoses": (DiagnosisCreate, "add_diagnosis"),
    "medications": (MedicationCreate, "add_medication"),
    "allergies": (AllergyCreate, "add_allergy"),
}


@router.post("/patients/{patient_id}/{kind}")
async def patient_add_child(request: Request, patient_id: int, kind: str, svc: ServicesDep,
                            viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)
    if kind not in _CHILDREN:
        raise InvalidInput("unknown record type")
    model, method = _CHILDREN[kind]
    if kind == "diagnoses" and form.get("system", "icd10") == "icd10" and not form.get(
            "display", "").strip():
        form = {**form, "display": icd10_display(form.get("code", "")) or ""}
    try:
        getattr(svc.patients, method)(viewer.actor, patient_id, model_from_form(model, form))
    except InvalidInput as exc:
        patient = svc.patients.get(viewer.actor, patient_id)
        return render(request, "patient_detail.html", status_code=422, patient=patient,
                      today=svc.ctx.today(), error=str(exc), error_section=kind,
                      values=form, panels=load_panels(svc, viewer, patient_id))
    return redirect(f"/patients/{patient_id}#{kind}")


@router.post("/patients/{patient_id}/medications/{medication_id}/stop")
async def patient_stop_medication(request: Request, patient_id: int, medication_id: int,
                                  svc: ServicesDep, viewer: ViewerDep) -> Response:
    """Stop a medication on a day for a reason (the JSON route's MedicationStop)."""
    return await _deactivate(request, svc, viewer, patient_id, "medications", medication_id)


@router.post("/patients/{patient_id}/diagnoses/{diagnosis_id}/deactivate")
async def patient_deactivate_diagnosis(request: Request, patient_id: int, diagnosis_id: int,
                                       svc: ServicesDep, viewer: ViewerDep) -> Response:
    """A diagnosis resolved or entered in error (the JSON route's DiagnosisDeactivate)."""
    return await _deactivate(request, svc, viewer, patient_id, "diagnoses", diagnosis_id)


@router.post("/patients/{patient_id}/allergies/{allergy_id}/deactivate")
async def patient_deactivate_allergy(request: Request, patient_id: int, allergy_id: int,
                                     svc: ServicesDep, viewer: ViewerDep) -> Response:
    """An allergy entered in error or refuted (the JSON route's AllergyDeactivate)."""
    return await _deactivate(request, svc, viewer, patient_id, "allergies", allergy_id)


# kind → (the model the JSON route takes too, the service method)
_DEACTIVATE: dict[str, tuple[type[BaseModel], str]] = {
    "diagnoses": (DiagnosisDeactivate, "deactivate_diagnosis"),
    "allergies": (AllergyDeactivate, "deactivate_allergy"),
    "medications": (MedicationStop, "stop_medication")}


async def _deactivate(request: Request, svc: ServicesDep, viewer: ViewerDep,
                      patient_id: int, kind: str, row_id: int) -> Response:
    form = await read_checked_form(request, viewer)
    model, method = _DEACTIVATE[kind]
    try:
        getattr(svc.patients, method)(viewer.actor, patient_id, row_id,
                                      model_from_form(model, form))
    except InvalidInput as exc:
        patient = svc.patients.get(viewer.actor, patient_id)
        return render(request, "patient_detail.html", status_code=422, patient=patient,
                      today=svc.ctx.today(), error=str(exc), error_section=kind,
                      values={}, error_row=row_id, row_values=form,
                      panels=load_panels(svc, viewer, patient_id))
    return redirect(f"/patients/{patient_id}#{kind}")
