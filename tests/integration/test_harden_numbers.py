"""Numbers typed into forms are parsed one way (ASCII digits, bounded): Unicode digits that
str.isdigit() accepts are a clear 422, never a 500, and a refused request changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit import SYSTEM
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.numbers import optional_id, parse_int
from ketaclinic.store.tables_mbc import ClinicalAlert

UNICODE_DIGITS = ["²", "١٢", "٣", "۴", "⁵", "𝟙"]


@pytest.mark.parametrize("text", [*UNICODE_DIGITS, "9" * 19, "1e3", " ", "+1", "0x10", "1.0"])
def test_only_ascii_digits_within_bounds_are_whole_numbers(text):
    with pytest.raises(InvalidInput, match="seq: must be a whole number"):
        parse_int(text, "seq", maximum=10_000)


def test_whole_numbers_parse_and_blank_is_none():
    assert parse_int(" 42 ", "n") == 42 and parse_int("-3", "n", signed=True) == -3
    assert optional_id("", "id") is None and optional_id("7", "id") == 7
    with pytest.raises(InvalidInput, match="from 1 to 2147483647"):
        optional_id("2147483648", "id")


def _patient(services) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="NUM-1", family_name="Numeral", given_name="Una", birth_date=dt.date(1970, 1, 1),
        sex="female", weight="70 kg"))
    return p.id


def _open_alert(c, csrf: str, pid: int) -> int:  # type: ignore[no-untyped-def]
    c.post(f"/api/patients/{pid}/assessments", headers={"X-CSRF-Token": csrf},
           json={"instrument": "qids-sr16", "answers": [1] * 16})
    alerts = c.get("/api/alerts").json()["items"]
    assert alerts, "no alert was raised"
    return alerts[0]["id"]


def _acknowledged(services, alert_id: int) -> bool:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        alert = s.execute(select(ClinicalAlert).where(ClinicalAlert.id == alert_id)).scalar_one()
        return alert.acknowledged_at is not None


@pytest.mark.parametrize("back", ["²", "١٢", "99999999999"])
def test_a_bad_back_field_refuses_the_acknowledgement_and_leaves_the_alert_open(
        login, services, back):
    c, csrf = login("nurse")
    pid = _patient(services)
    alert_id = _open_alert(c, csrf, pid)
    r = c.post(f"/alerts/{alert_id}/acknowledge", follow_redirects=False,
               data={"csrf_token": csrf, "note": "Called the patient", "back": back})
    assert r.status_code == 422 and "back" in r.text
    assert not _acknowledged(services, alert_id)
    r = c.post(f"/alerts/{alert_id}/acknowledge", follow_redirects=False,
               data={"csrf_token": csrf, "note": "Called the patient", "back": str(pid)})
    assert r.status_code == 303 and _acknowledged(services, alert_id)


@pytest.mark.parametrize("field", ["trial_rows", "facts_version"])
@pytest.mark.parametrize("value", ["²", "١٢"])
def test_unicode_digits_in_screening_counters_are_a_422(login, services, field, value):
    c, csrf = login("prescriber")
    pid = _patient(services)
    r = c.post(f"/patients/{pid}/screening/facts", follow_redirects=False,
               data={"csrf_token": csrf, field: value})
    assert r.status_code == 422 and field in r.text


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 30])
def test_unicode_digits_in_the_audit_filter_and_assessment_course_are_a_422(login, services,
                                                                            value):
    admin, _ = login("admin")
    assert admin.get("/admin/audit", params={"patient_id": value}).status_code == 422
    nurse, csrf = login("nurse")
    pid = _patient(services)
    r = nurse.post(f"/patients/{pid}/assessments", follow_redirects=False,
                   data={"csrf_token": csrf, "instrument": "phq9", "course_id": value,
                         "answers": "0,0,0,0,0,0,0,0,0"})
    assert r.status_code == 422


@pytest.mark.parametrize("height", ["1", "0.5", "1e309", "²"])
def test_an_impossible_height_with_ideal_weight_is_a_422(login, services, height):
    c, csrf = login("prescriber")
    pid = _patient(services)
    r = c.post(f"/api/patients/{pid}/dose/check", headers={"X-CSRF-Token": csrf},
               json={"route": "iv", "mg_per_kg": "0.5", "infusion_min": "40",
                     "concentration_mg_per_ml": "1", "weight_basis": "ideal",
                     "height_cm": height})
    assert r.status_code == 422, r.text
    page = c.post(f"/patients/{pid}/dose", follow_redirects=False,
                  data={"csrf_token": csrf, "route": "iv", "mg_per_kg": "0.5",
                        "infusion_min": "40", "concentration_mg_per_ml": "1",
                        "weight_basis": "ideal", "height_cm": height})
    assert page.status_code == 422, page.text[:300]
