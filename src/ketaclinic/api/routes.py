"""The JSON API under /api: the same services, authentication and audit as the pages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel

from ketaclinic.api.paging import Page, PageDep
from ketaclinic.http.deps import (
    SESSION_COOKIE,
    ApiViewerDep,
    ServicesDep,
    client_address,
    set_session_cookie,
)
from ketaclinic.schemas import (
    AllergyCreate,
    AllergyDeactivate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    LoginRequest,
    MedicationCreate,
    MedicationStop,
    PatientCreate,
    PatientUpdate,
    UserCreate,
    UtcTimestamp,
    WeightCreate,
)

router = APIRouter(prefix="/api")


class UserPublic(BaseModel):
    id: int
    username: str
    full_name: str
    role: str
    active: bool
    totp_enrolled: bool = False
    must_change_password: bool = False
    kind: str = "person"  # "service": a service account (API tokens only)


class LoginResponse(BaseModel):
    csrf_token: str
    user: UserPublic


class PatientPublic(BaseModel):
    id: int
    mrn: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str


class WeightPublic(BaseModel):
    measured_on: dt.date
    weight_kg: Decimal


class PatientDetailPublic(PatientPublic):
    phone: str
    email: str
    address: str
    notes: str
    version: int
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    weights: list[WeightPublic]
    diagnoses: list[dict]
    medications: list[dict]
    allergies: list[dict]


class AmendmentPublic(BaseModel):
    field: str
    old_value: str
    new_value: str
    changed_by: int | None
    changed_at: UtcTimestamp
    version: int


class AuditRow(BaseModel):
    id: int
    occurred_at: UtcTimestamp
    user_id: int | None
    username: str
    action: str
    patient_id: int | None
    outcome: str
    detail: str
    row_hash: str


class AuditVerify(BaseModel):
    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str


def _user(u) -> UserPublic:
    return UserPublic(id=u.id, username=u.username, full_name=u.full_name, role=u.role,
                      active=u.active, totp_enrolled=u.totp_enrolled,
                      must_change_password=u.must_change_password, kind=u.kind)


def _detail(p) -> PatientDetailPublic:
    return PatientDetailPublic.model_validate(p, from_attributes=True)


# --- auth ---------------------------------------------------------------------------------
@router.post("/auth/login", response_model=LoginResponse, tags=["auth"])
def api_login(body: LoginRequest, request: Request, response: Response,
              svc: ServicesDep) -> LoginResponse:
    result = svc.auth.login(body.username, body.password, client_address(request),
                            totp_code=body.totp_code, recovery_code=body.recovery_code)
    set_session_cookie(response, request, result.token, svc.settings.secure_cookies)
    return LoginResponse(csrf_token=result.csrf_token, user=_user(result.user))


@router.post("/auth/logout", status_code=204, tags=["auth"])
def api_logout(request: Request, response: Response, svc: ServicesDep,
               viewer: ApiViewerDep) -> Response:
    svc.auth.logout(request.cookies.get(SESSION_COOKIE))
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    return out


@router.get("/me", response_model=UserPublic, tags=["auth"])
def api_me(viewer: ApiViewerDep) -> UserPublic:
    return _user(viewer.session.user)


# --- patients -----------------------------------------------------------------------------
@router.get("/patients", response_model=Page[PatientPublic], tags=["patients"])
def api_patients(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep,
                 q: Annotated[str, Query(max_length=200)] = "",
                 birth_date: dt.date | None = None,
                 mrn: Annotated[str, Query(max_length=32)] = "") -> dict:
    page = svc.patients.search(viewer.actor, q, birth_date, mrn, window.limit, window.offset)
    return {"items": [PatientPublic.model_validate(p, from_attributes=True) for p in page.items],
            "total": page.total, "limit": window.limit, "offset": window.offset}


@router.post("/patients", response_model=PatientPublic, status_code=201, tags=["patients"])
def api_create_patient(
    body: PatientCreate, response: Response, svc: ServicesDep, viewer: ApiViewerDep,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> PatientPublic:
    patient, created = svc.patients.create(viewer.actor, body, idempotency_key)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/patients/{patient.id}"
    return PatientPublic.model_validate(patient, from_attributes=True)


@router.get("/patients/{patient_id}", response_model=PatientDetailPublic, tags=["patients"])
def api_patient(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> PatientDetailPublic:
    return _detail(svc.patients.get(viewer.actor, patient_id))


@router.put("/patients/{patient_id}", response_model=PatientDetailPublic, tags=["patients"],
            responses={409: {"description": "The record changed since the given version"}})
def api_update_patient(patient_id: int, body: PatientUpdate, svc: ServicesDep,
                       viewer: ApiViewerDep) -> PatientDetailPublic:
    return _detail(svc.patients.update(viewer.actor, patient_id, body))


@router.get("/patients/{patient_id}/history", response_model=Page[AmendmentPublic],
            tags=["patients"])
def api_patient_history(patient_id: int, svc: ServicesDep, viewer: ApiViewerDep,
                        window: PageDep) -> dict:
    return window.page(svc.patients.history(viewer.actor, patient_id, window.limit,
                                            window.offset))


@router.post("/patients/{patient_id}/weights", status_code=201, tags=["patients"])
def api_add_weight(patient_id: int, body: WeightCreate, svc: ServicesDep,
                   viewer: ApiViewerDep) -> dict[str, str]:
    weight = svc.patients.add_weight(viewer.actor, patient_id, body)
    return {"weight_kg": str(weight)}


@router.post("/patients/{patient_id}/diagnoses", status_code=201, tags=["patients"])
def api_add_diagnosis(patient_id: int, body: DiagnosisCreate, svc: ServicesDep,
                      viewer: ApiViewerDep) -> dict[str, str]:
    svc.patients.add_diagnosis(viewer.actor, patient_id, body)
    return {"status": "created"}


@router.post("/patients/{patient_id}/medications", status_code=201, tags=["patients"])
def api_add_medication(patient_id: int, body: MedicationCreate, svc: ServicesDep,
                       viewer: ApiViewerDep) -> dict:
    """Stored as the vocabulary's ingredient; ``recognised: false`` means screening will review."""
    found = svc.patients.add_medication(viewer.actor, patient_id, body)
    return {"status": "created", "medication": found.as_dict()}


@router.post("/patients/{patient_id}/allergies", status_code=201, tags=["patients"])
def api_add_allergy(patient_id: int, body: AllergyCreate, svc: ServicesDep,
                    viewer: ApiViewerDep) -> dict[str, str]:
    svc.patients.add_allergy(viewer.actor, patient_id, body)
    return {"status": "created"}


@router.post("/patients/{patient_id}/diagnoses/{diagnosis_id}/deactivate", tags=["patients"])
def api_deactivate_diagnosis(patient_id: int, diagnosis_id: int, body: DiagnosisDeactivate,
                             svc: ServicesDep, viewer: ApiViewerDep) -> dict[str, str]:
    """Mark a diagnosis resolved or entered in error. The row is kept (history, FHIR export
    as Condition clinicalStatus resolved or verificationStatus entered-in-error). A resolved
    diagnosis is still history for screening (e.g. a past psychotic episode) but no longer the
    indication; one entered in error counts nowhere. Repeating the request changes nothing
    (``status: unchanged``)."""
    changed = svc.patients.deactivate_diagnosis(viewer.actor, patient_id, diagnosis_id, body)
    return {"status": "deactivated" if changed else "unchanged", "reason": body.reason}


@router.post("/patients/{patient_id}/medications/{medication_id}/stop", tags=["patients"])
def api_stop_medication(patient_id: int, medication_id: int, body: MedicationStop,
                        svc: ServicesDep, viewer: ApiViewerDep) -> dict[str, str]:
    """Stop a medication, as the patient page's Stop form does: on ``stopped_on`` (the
    clinic-local day, default today; not in the future, not before the day it was started)
    for a coded ``reason`` (``other`` needs a ``note``). The row is kept (history; FHIR export
    as MedicationStatement status stopped, or entered-in-error, with effectivePeriod.end and
    statusReason) and no longer counts in screening (interactions, current medicines).
    Stopping one already stopped with other values amends its stop (``status: amended``);
    repeating the request changes nothing (``status: unchanged``)."""
    status = svc.patients.stop_medication(viewer.actor, patient_id, medication_id, body)
    return {"status": status, "reason": body.reason}


@router.post("/patients/{patient_id}/allergies/{allergy_id}/deactivate", tags=["patients"])
def api_deactivate_allergy(patient_id: int, allergy_id: int, body: AllergyDeactivate,
                           svc: ServicesDep, viewer: ApiViewerDep) -> dict[str, str]:
    """Mark an allergy entered in error or refuted: screening stops counting it. The row is
    kept (history, FHIR export as AllergyIntolerance verificationStatus entered-in-error or
    refuted). Repeating the request changes nothing (``status: unchanged``)."""
    changed = svc.patients.deactivate_allergy(viewer.actor, patient_id, allergy_id, body)
    return {"status": "deactivated" if changed else "unchanged", "reason": body.reason}


# --- administration -----------------------------------------------------------------------
@router.get("/users", response_model=Page[UserPublic], tags=["admin"])
def api_users(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep) -> dict:
    page = svc.auth.list_users(viewer.actor, window.limit, window.offset)
    return window.page(page, [_user(u) for u in page])


@router.post("/users", response_model=UserPublic, status_code=201, tags=["admin"])
def api_create_user(body: UserCreate, svc: ServicesDep, viewer: ApiViewerDep) -> UserPublic:
    return _user(svc.auth.create_user(viewer.actor, body.username, body.full_name, body.role,
                                      body.password))


@router.get("/audit", response_model=Page[AuditRow], tags=["admin"])
def api_audit(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep,
              patient_id: int | None = None,
              action: Annotated[str, Query(max_length=64)] = "") -> dict:
    rows, total = svc.audit_log.page(viewer.actor, limit=window.limit, offset=window.offset,
                                     patient_id=patient_id, action=action)
    return {"items": [AuditRow.model_validate(r, from_attributes=True) for r in rows],
            "total": total, "limit": window.limit, "offset": window.offset}


@router.get("/audit/verify", response_model=AuditVerify, tags=["admin"])
def api_audit_verify(svc: ServicesDep, viewer: ApiViewerDep) -> AuditVerify:
    r = svc.audit_log.verify(viewer.actor)
    return AuditVerify(ok=r.ok, checked=r.checked, first_bad_id=r.first_bad_id, reason=r.reason)
