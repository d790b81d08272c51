"""Issue 13 smaller items over the web and the API, on SQLite and PostgreSQL: mg/kg of actual
weight beside an ideal/adjusted dose, an implausible height refused with a 422, a racemic oral
dose through the S-ketamine default model warned about."""

from __future__ import annotations

import datetime as dt

from kctest import csrf_from

from ketaclinic.schemas import DiagnosisCreate, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM

IDEAL = {"route": "iv", "mg_per_kg": "0.5", "infusion_min": "60", "concentration_mg_per_ml": "1",
         "weight_basis": "ideal", "height_cm": "170"}


def make_patient(services, weight="120 kg", birth=dt.date(1975, 3, 3)) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="FS-1", family_name="Safe", given_name="Fail", birth_date=birth, sex="male",
        weight=weight))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(code="F32.2", display="MDD"))
    return p.id


def test_the_api_shows_mg_per_kg_of_actual_weight_beside_an_ideal_weight_dose(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    r = c.post(f"/api/patients/{pid}/dose/check", json=IDEAL, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dose_weight"]["basis"] == "ideal"
    assert body["dose_weight"]["actual_weight_kg"] == 120
    assert abs(body["dose_weight"]["mg_per_kg_actual"] - 0.275) < 0.001
    assert body["display"]["mg_per_kg_actual"] == "0.275 mg/kg"


def test_the_dose_page_shows_mg_per_kg_of_actual_weight(services, login):
    pid = make_patient(services)
    c, _ = login("prescriber")
    csrf = csrf_from(c.get(f"/patients/{pid}/dose").text)
    r = c.post(f"/patients/{pid}/dose", data={**IDEAL, "csrf_token": csrf, "action": "check",
                                              "idempotency_key": "fs-1"})
    assert r.status_code == 200
    assert "mg/kg of actual weight" in r.text and "0.275 mg/kg" in r.text


def test_an_actual_weight_dose_does_not_repeat_the_mg_per_kg(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    r = c.post(f"/api/patients/{pid}/dose/check", json={**IDEAL, "weight_basis": "actual"},
               headers={"X-CSRF-Token": csrf})
    assert "mg_per_kg_actual" not in r.json()["display"]


def test_an_implausible_height_is_a_422_on_the_api_and_the_page(services, login):
    pid = make_patient(services)
    c, csrf = login("prescriber")
    for height in ("1780", "5.9"):
        r = c.post(f"/api/patients/{pid}/dose/check", json={**IDEAL, "height_cm": height},
                   headers={"X-CSRF-Token": csrf})
        assert r.status_code == 422 and "plausible adult range" in r.text
    page_csrf = csrf_from(c.get(f"/patients/{pid}/dose").text)
    r = c.post(f"/patients/{pid}/dose", data={**IDEAL, "height_cm": "1780", "csrf_token":
                                              page_csrf, "action": "check",
                                              "idempotency_key": "fs-2"})
    assert r.status_code == 422 and "plausible adult range" in r.text


def test_an_oral_dose_through_the_default_s_ketamine_model_is_warned_about(services, login):
    pid = make_patient(services, weight="70 kg")
    c, _ = login("prescriber")
    r = c.get(f"/api/patients/{pid}/pk?route=oral&dose_mg=50")
    assert r.status_code == 200
    assert any("racemic oral ketamine" in w for w in r.json()["warnings"])
    r = c.get(f"/api/patients/{pid}/pk?route=iv&dose_mg=35&minutes=40")
    assert not any("racemic oral" in w for w in r.json()["warnings"])

