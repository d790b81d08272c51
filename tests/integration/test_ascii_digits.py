"""What a person or a client types is read in the digits 0-9 only, on every path.

``"١".isdigit()`` is true, ``int("١")`` is 1, ``re`` reads ``\\d`` as any Unicode digit and
Pydantic's int reads "1_0" as 10. A record's version, a lock-screen PIN and FHIR ``_since``
are refused with a clear error when typed otherwise, and nothing changes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import Patient, User

FOREIGN = "is not a number: type it with the digits 0-9"
NOT_AN_INT = "Input should be a valid integer"


def _patient(services) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="DIG-1", family_name="Digit", given_name="Dana", birth_date=dt.date(1980, 1, 2),
        sex="female"))
    return p.id


def _body(**changes) -> dict:  # type: ignore[no-untyped-def]
    return {"mrn": "DIG-1", "family_name": "Digit", "given_name": "Dana",
            "birth_date": "1980-01-02", "sex": "female", **changes}


@pytest.mark.parametrize(("version", "says"), [
    ("1_0", f"version: {NOT_AN_INT}"),  # Pydantic's int read it as 10: someone else's version
    ("١", f"version: {FOREIGN}"),
    ("١٠", f"version: {FOREIGN}"),
    ("1.0", f"version: {NOT_AN_INT}"),
])
def test_a_patient_version_in_other_digits_is_refused_on_the_api_and_the_form(
        services, login, version, says):
    pid = _patient(services)
    c, csrf = login("nurse")
    r = c.put(f"/api/patients/{pid}", json=_body(family_name="Changed", version=version),
              headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and r.json()["detail"].startswith(says), r.text
    page = c.post(f"/patients/{pid}/edit", data=_body(
        family_name="Changed", version=version, csrf_token=csrf), follow_redirects=False)
    assert page.status_code == 422 and says in page.text
    with services.db.transaction() as s:
        row = s.get(Patient, pid)
        assert (row.family_name, row.version) == ("Digit", 1)
    ok = c.put(f"/api/patients/{pid}", json=_body(family_name="Changed", version="1"),
               headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["version"] == 2


def test_facts_and_rule_set_versions_take_the_digits_0_9_only(services, users, login):
    pid = _patient(services)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    for version, says in (("1_0", NOT_AN_INT), ("١", FOREIGN)):
        r = c.put(f"/api/patients/{pid}/clinical-facts", json={"facts": {}, "version": version},
                  headers=h)
        assert r.status_code == 422 and f"version: {says}" in r.text, r.text
        r = c.get(f"/api/rulesets/esketamine-us?version={version}")
        assert r.status_code == 422, r.text


@pytest.mark.parametrize("pin", ["١٢٣٤", "٤٨٢٩١٥", "48291٥", "４８２９１５"])
def test_a_lock_pin_in_other_digits_is_refused_clearly_and_nothing_changes(services, users,
                                                                          login, pin):
    c, csrf = login("nurse")
    r = c.put("/api/me/lock-pin", json={"password": "nurse-password-1", "pin": pin},
              headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "the PIN must be 6 to 8 digits: type it with the digits 0-9"
    page = c.post("/account/pin", data={"csrf_token": csrf, "password": "nurse-password-1",
                                        "pin": pin}, follow_redirects=False)
    assert page.status_code == 422 and "type it with the digits 0-9" in page.text
    with services.db.transaction() as s:
        assert s.execute(select(User.pin_hash).where(User.username == "nurse")
                         ).scalar_one() is None


@pytest.mark.parametrize("since", ["١٢٣٤", "٢٠٢٦-١١-٠٢T١٤:٠٠:٠٠Z",
                                   "2026-11-02T14:00:0٠Z", "2026-11-02T09:00:00-0٥:00"])
def test_a_since_in_other_digits_is_refused_naming_since(services, login, since):
    c, _ = login("admin")
    r = c.get("/api/fhir/$export", params={"_since": since},
              headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    assert r.status_code == 400 and "_since: must be a FHIR instant" in r.text, r.text
