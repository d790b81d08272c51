"""A screening whose basis is gone is re-opened, on every backend, through the JSON API.

The chart can withdraw what a screening rested on: the indication diagnosis entered in
error, a corrected birth date, a trial removed. From then on the order, the check-in and the
dose are refused with a message naming what changed, a sign-off cannot cover it, and only a
new screening (which now decides differently) clears the way. Withdrawing what only made
treatment riskier (an allergy, a medicine) re-opens nothing.
"""

from __future__ import annotations

import datetime as dt

import kcchain
from kcchain import FACTS
from sqlalchemy import func, select

from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables_chair import DoseRecord, LedgerEntry, SessionPrecheck
from ketaclinic.store.tables_treatment import TreatmentSession

IV_ORDER = {"route": "iv", "mg_per_kg": 0.5, "infusion_min": 40, "concentration_mg_per_ml": 1}
GONE = "indication diagnosis F33.2 no longer stands"


class Api:
    """The clinic's staff at their own logins, each request with its CSRF token."""

    def __init__(self, login, clock) -> None:  # type: ignore[no-untyped-def]
        self.login, self.clock, self.clients = login, clock, {}

    def __call__(self, role: str, method: str, url: str, body=None):  # type: ignore[no-untyped-def]
        if role not in self.clients:
            self.clients[role] = self.login(role)
        c, csrf = self.clients[role]
        r = c.request(method, url, json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code < 500, r.text
        return r


def _count(services, model, *where) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _status(services, sid: int) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.get(TreatmentSession, sid).status


def _patient(api, services, users, mrn: str) -> tuple[int, int, list[int]]:  # type: ignore[no-untyped-def]
    """Registered, F33.2 and every screening fact on file, on an IV course: (patient id,
    course id, session ids in order). The chair is open and IV stock received."""
    kcchain.open_chair(services, users)
    kcchain.receive(services, users, "LOT-RO", esketamine=False)
    r = api("nurse", "POST", "/api/patients", {
        "mrn": mrn, "family_name": "Reopen", "given_name": "Rae", "birth_date": "1980-05-01",
        "sex": "male", "weight": "80 kg"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = api("prescriber", "POST", f"/api/patients/{pid}/courses", {
        "template_id": kcchain.IV, "start_date": kcchain.MONDAY.isoformat()})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert api("nurse", "POST", f"/api/patients/{pid}/diagnoses", {
        "code": "F33.2", "display": "Recurrent depressive disorder, severe"}).status_code == 201
    assert api("nurse", "PUT", f"/api/patients/{pid}/clinical-facts",
               {"facts": FACTS}).status_code == 200
    sessions = api("nurse", "GET", f"/api/patients/{pid}/sessions").json()["items"]
    return pid, cid, sorted(x["id"] for x in sessions if x["course_id"] == cid)


def _screen(api, pid: int) -> dict:  # type: ignore[no-untyped-def]
    r = api("prescriber", "POST", f"/api/patients/{pid}/screenings",
            {"treatment": "ketamine-iv"})
    assert r.status_code == 201, r.text
    return r.json()


def _order(api, pid: int, cid: int):  # type: ignore[no-untyped-def]
    return api("prescriber", "POST", f"/api/patients/{pid}/doses", IV_ORDER | {"course_id": cid})


def _check_in(api, services, sid: int, clock) -> list[dict]:  # type: ignore[no-untyped-def]
    r = api("nurse", "POST", f"/api/sessions/{sid}/checkin", {
        "version": kcchain.version(services, sid), "consent_on_file": True,
        "ride_home_arranged": True,
        "last_food_at": (clock.now - dt.timedelta(hours=3)).isoformat(),
        "last_liquid_at": (clock.now - dt.timedelta(hours=2)).isoformat()})
    assert r.status_code in (200, 422), r.text
    return r.json().get("findings", [])


def _dose(api, services, sid: int, order_id: int, clock):  # type: ignore[no-untyped-def]
    clock.advance(minutes=5)
    return api("nurse", "POST", f"/api/sessions/{sid}/dose", {
        "version": kcchain.version(services, sid), "lot": "LOT-RO", "dose_mg": 40,
        "dose_order_id": order_id, "order_confirmed": True, "started_at": clock.now.isoformat(),
        "concentration_mg_per_ml": 1, "rate_ml_per_h": 60})


def _screened_ordered_checked_in(api, services, users, clock, mrn: str):  # type: ignore[no-untyped-def]
    """A patient screened eligible, ordered, checked in to the first session with a passing
    pre-dose BP: (patient, course, first and second session, screening, order response)."""
    pid, cid, (first, second, *_) = _patient(api, services, users, mrn)
    screening = _screen(api, pid)
    assert screening["decision"] == "eligible"
    order = _order(api, pid, cid)
    assert order.status_code == 201, order.text
    assert not [f for f in _check_in(api, services, first, clock) if f["level"] == "hard"]
    r = api("nurse", "POST", f"/api/sessions/{first}/predose", {
        "version": kcchain.version(services, first), "sbp_mmhg": 128, "dbp_mmhg": 80})
    assert r.status_code == 200, r.text
    return pid, cid, first, second, screening, order


def _withdraw(api, pid: int, code: str, reason: str = "entered-in-error") -> None:  # type: ignore[no-untyped-def]
    dx = next(d for d in api("nurse", "GET", f"/api/patients/{pid}").json()["diagnoses"]
              if d["code"] == code and d["active"])
    r = api("nurse", "POST", f"/api/patients/{pid}/diagnoses/{dx['id']}/deactivate",
            {"reason": reason})
    assert r.json()["status"] == "deactivated", r.text


def test_an_indication_entered_in_error_refuses_dose_order_and_check_in_until_screened_again(
        services, users, login, clock):
    api = Api(login, clock)
    pid, cid, first, second, screening, order = _screened_ordered_checked_in(
        api, services, users, clock, "RO-1")

    (shown,) = services.patients.banner(SYSTEM, pid).screenings
    assert (shown.decision, shown.clears, shown.reopened) == ("eligible", True, False)

    # the depressive diagnosis was recorded in error: checked in, BP taken, but no dose
    _withdraw(api, pid, "F33.2")
    # the banner on every page about the patient says so too, not "eligible to <date>"
    (shown,) = services.patients.banner(SYSTEM, pid).screenings
    assert (shown.decision, shown.clears, shown.reopened) == ("eligible", False, True)
    assert GONE in shown.gate
    page = api("nurse", "GET", f"/patients/{pid}").text
    assert "ketamine-iv: eligible, re-opened" in page and GONE in page
    r = _dose(api, services, first, order.json()["id"], clock)
    assert r.status_code == 422 and GONE in r.text and "screen again" in r.text, r.text
    assert _count(services, DoseRecord) == 0
    assert _count(services, LedgerEntry, LedgerEntry.kind == "administration") == 0
    assert _status(services, first) == "checked-in"

    # nor a new order, nor the next session's check-in
    r = _order(api, pid, cid)
    assert r.status_code == 422 and GONE in r.text, r.text
    findings = _check_in(api, services, second, clock)
    reopened = [f for f in findings if f["rule"] == "chain.screening_reopened"]
    assert reopened and reopened[0]["level"] == "hard" and GONE in reopened[0]["message"]
    assert _status(services, second) == "planned"

    # a prescriber's sign-off cannot restore it
    r = api("prescriber", "POST", f"/api/patients/{pid}/screenings/{screening['id']}/signoff",
            {"reason": "reviewed"})
    assert r.status_code == 422 and "a sign-off cannot restore it" in r.text, r.text

    # screening again decides on today's facts: no indication, ineligible, still no dose
    assert _screen(api, pid)["decision"] == "ineligible"
    r = _dose(api, services, first, order.json()["id"], clock)
    assert r.status_code == 422 and "ineligible" in r.text, r.text

    # the right diagnosis recorded and screened: the loop runs again
    assert api("nurse", "POST", f"/api/patients/{pid}/diagnoses", {
        "code": "F32.2", "display": "Severe depressive episode"}).status_code == 201
    assert _screen(api, pid)["decision"] == "eligible"
    r = _dose(api, services, first, order.json()["id"], clock)
    assert r.status_code == 200, r.text
    assert _count(services, DoseRecord) == 1


def test_withdrawing_an_allergy_a_medicine_or_a_second_diagnosis_re_opens_nothing(
        services, users, login, clock):
    api = Api(login, clock)
    pid, cid, (first, *_) = _patient(api, services, users, "RO-2")
    assert api("nurse", "POST", f"/api/patients/{pid}/diagnoses", {
        "code": "F32.1", "display": "Depressive episode, moderate"}).status_code == 201
    assert api("nurse", "POST", f"/api/patients/{pid}/allergies",
               {"substance": "penicillin"}).status_code == 201
    r = api("nurse", "POST", f"/api/patients/{pid}/medications",
            {"name": "Lorazepam", "drug_class": "benzodiazepine", "daily_dose_mg": 4})
    assert r.status_code == 201, r.text
    screening = _screen(api, pid)
    assert screening["decision"] == "review"  # the benzodiazepine
    detail = api("nurse", "GET", f"/api/patients/{pid}").json()
    r = api("prescriber", "POST", f"/api/patients/{pid}/screenings/{screening['id']}/signoff",
            {"reason": "taper planned"})
    assert r.status_code == 201, r.text
    # the medicine stopped, the allergy refuted, one of the two depressive diagnoses resolved
    med = detail["medications"][0]["id"]
    assert api("nurse", "POST", f"/api/patients/{pid}/medications/{med}/stop",
               {"reason": "completed"}).status_code == 200
    allergy = detail["allergies"][0]["id"]
    assert api("nurse", "POST", f"/api/patients/{pid}/allergies/{allergy}/deactivate",
               {"reason": "refuted"}).status_code == 200
    _withdraw(api, pid, "F32.1", "resolved")
    assert _order(api, pid, cid).status_code == 201
    assert not [f for f in _check_in(api, services, first, clock) if f["level"] == "hard"]
    assert _status(services, first) == "checked-in"
    # ...but the last indication resolving does
    _withdraw(api, pid, "F33.2", "resolved")
    r = _order(api, pid, cid)
    assert r.status_code == 422, r.text
    assert "indication diagnoses F33.2, F32.1 no longer stand" in r.text, r.text


def test_a_birth_date_corrected_below_the_minimum_age_re_opens_the_screening(
        services, users, login, clock):
    api = Api(login, clock)
    pid, cid, (first, *_) = _patient(api, services, users, "RO-3")
    assert _screen(api, pid)["decision"] == "eligible"
    patient = api("nurse", "GET", f"/api/patients/{pid}").json()
    r = api("nurse", "PUT", f"/api/patients/{pid}", {
        key: patient[key] for key in ("mrn", "family_name", "given_name", "sex", "version")}
        | {"birth_date": "2012-05-01"})  # corrected: 14, not 46
    assert r.status_code == 200, r.text
    findings = _check_in(api, services, first, clock)
    reopened = [f for f in findings if f["rule"] == "chain.screening_reopened"]
    assert reopened and "below the minimum of 18" in reopened[0]["message"], findings
    assert _count(services, SessionPrecheck, SessionPrecheck.outcome.in_(("ok",))) == 0


# --------------------------------------------------------------------------- graded since

ALLERGY = "condition hypersensitivity_ketamine, recorded since the screening"


def test_a_ketamine_allergy_recorded_since_refuses_sign_off_and_dose_until_screened_ineligible(
        services, users, login, clock):
    """Eligible, ordered, checked in, BP taken; then a ketamine allergy is recorded. A new
    screening would call that ineligible (an absolute contraindication), so the prescriber's
    sign-off is refused naming it, and so are the dose, a new order and the next check-in;
    screening again finds the patient ineligible."""
    api = Api(login, clock)
    pid, cid, first, second, screening, order = _screened_ordered_checked_in(
        api, services, users, clock, "RO-4")

    r = api("nurse", "POST", f"/api/patients/{pid}/allergies",
            {"substance": "Ketamine", "reaction": "anaphylaxis"})
    assert r.status_code == 201, r.text
    r = api("prescriber", "POST", f"/api/patients/{pid}/screenings/{screening['id']}/signoff",
            {"reason": "reaction was mild, proceed"})
    assert r.status_code == 422 and ALLERGY in r.text and "a sign-off cannot clear it" in r.text
    r = _dose(api, services, first, order.json()["id"], clock)
    assert r.status_code == 422 and ALLERGY in r.text and "screen again" in r.text, r.text
    assert _count(services, DoseRecord) == 0
    assert _count(services, LedgerEntry, LedgerEntry.kind == "administration") == 0
    r = _order(api, pid, cid)
    assert r.status_code == 422 and ALLERGY in r.text, r.text
    reopened = [f for f in _check_in(api, services, second, clock)
                if f["rule"] == "chain.screening_reopened"]
    assert reopened and reopened[0]["level"] == "hard" and ALLERGY in reopened[0]["message"]
    assert _status(services, second) == "planned"

    again = _screen(api, pid)
    assert again["decision"] == "ineligible"
    assert "ci-hypersensitivity" in {f["rule"] for f in again["findings"]
                                     if f["level"] == "hard"}
    r = _dose(api, services, first, order.json()["id"], clock)
    assert r.status_code == 422 and "ineligible" in r.text, r.text
    assert _count(services, DoseRecord) == 0


def test_a_benzodiazepine_dose_raised_past_the_threshold_re_opens_for_a_sign_off(
        services, users, login, clock):
    """IV ketamine grades benzodiazepines by diazepam-equivalent dose (> 8 mg/d: review).
    Lorazepam 0.5 mg/d at the screening (eligible), restarted at 2 mg/d: the check-in is
    refused until a prescriber signs off, and then it goes ahead."""
    api = Api(login, clock)
    pid, _cid, (first, *_) = _patient(api, services, users, "RO-5")
    r = api("nurse", "POST", f"/api/patients/{pid}/medications",
            {"name": "Lorazepam", "drug_class": "benzodiazepine", "daily_dose_mg": 0.5})
    assert r.status_code == 201, r.text
    screening = _screen(api, pid)
    assert screening["decision"] == "eligible"
    med = api("nurse", "GET", f"/api/patients/{pid}").json()["medications"][0]["id"]
    r = api("nurse", "POST", f"/api/patients/{pid}/medications/{med}/stop",
            {"reason": "other", "note": "restarted at a higher dose"})
    assert r.status_code == 200, r.text
    assert api("nurse", "POST", f"/api/patients/{pid}/medications", {
        "name": "Lorazepam", "drug_class": "benzodiazepine",
        "daily_dose_mg": 2}).status_code == 201
    reopened = [f for f in _check_in(api, services, first, clock)
                if f["rule"] == "chain.screening_reopened"]
    assert reopened and "20 mg/d diazepam-equivalent now, above 8 mg (was 5)" in \
        reopened[0]["message"], reopened
    assert _status(services, first) == "planned"
    r = api("prescriber", "POST", f"/api/patients/{pid}/screenings/{screening['id']}/signoff",
            {"reason": "short course, monitored"})
    assert r.status_code == 201, r.text
    assert not [f for f in _check_in(api, services, first, clock) if f["level"] == "hard"]
    assert _status(services, first) == "checked-in"
