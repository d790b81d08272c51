"""One input model per request: the tablet's and the patient page's forms build the model the
JSON API takes as its body (pre-dose vitals, timed vitals, in-session ratings, assessments,
clinical events, self-report links, alert acknowledgements, the patient's self-report), so the
same typed values store the same row and the same bad value reads the same. So do the rule-set
pages' forms (activation, values, confirmation, import) and their co-signature fields, whose
JSON twins take the co-signature in X-Cosign-* headers. A form without a JSON twin
(reminders) is read as its model all the same: its refusals are the model's.

The clinic is in New York: what the form types on the clinic's clock ("09:10") is the instant
the JSON body sends with its offset ("…T09:10:00-05:00"), 14:10 UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

import pytest
from kcchain import IV, check_in, dosed, patient_with_course, screen_eligible, version
from kctest import make_settings, page_error
from sqlalchemy import func, select

from ketaclinic.bootstrap import build_services
from ketaclinic.schemas import MedicationCreate, PatientCreate
from ketaclinic.schemas_chair import ChairCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.mbc.self_report import hash_token
from ketaclinic.store.tables import ApiToken, PatientMedication, User
from ketaclinic.store.tables_chair import VitalSignRow
from ketaclinic.store.tables_dosing import (
    ActiveRuleSet,
    DoseOrder,
    RuleConfirmation,
    RuleSetApproval,
    RuleSetVersion,
    Screening,
)
from ketaclinic.store.tables_mbc import (
    ClinicalAlert,
    OutboxMessage,
    ReminderSchedule,
    SelfReportLink,
)
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, TreatmentSession

TEN_AM_EST = dt.datetime(2026, 11, 2, 15, 0)  # 10:00 in New York, as the clock gives it (UTC)


@pytest.fixture
def services(services, database_url, clock, _open_databases):  # type: ignore[no-untyped-def]
    """The suite's services (fresh database), rebuilt for a clinic in New York (on the
    worker's one Database, as the suite's are)."""
    clock.now = TEN_AM_EST
    svc = build_services(make_settings(database_url, clinic_timezone="America/New_York"),
                         clock=clock, database=_open_databases(database_url))
    yield svc
    svc.close()


def _row(services, model, **where) -> dict:  # type: ignore[no-untyped-def]
    """The one row of ``model`` matching ``where``, without what differs by nature: its id
    and the ids of the patient, course and session each path has of its own."""
    with services.db.transaction() as s:
        found = s.execute(select(model).filter_by(**where)).scalar_one()
        row = {c.key: getattr(found, c.key) for c in model.__table__.columns}
    for key in ("id", "session_id", "patient_id", "course_id"):
        row.pop(key, None)
    return row


def _sessions(services, users, clock, prefix: str, *, monitoring: bool) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One session per path ("json", "form"), set up before either posts (so the clock reads
    the same for both saves): checked in, or (``monitoring``) dosed."""
    out = {}
    for how in ("json", "form"):
        mrn = f"{prefix}-{how}"
        if monitoring:
            out[how] = dosed(services, users, clock, mrn, lot="LOT-NY", family=mrn).session_id
        else:
            chain = patient_with_course(services, users, mrn, lot="LOT-NY", family=mrn)
            check_in(services, users, chain.session_id, clock)
            out[how] = chain.session_id
    return out


def _session(services, users, clock, mrn: str, *, monitoring: bool) -> int:  # type: ignore[no-untyped-def]
    if monitoring:
        return dosed(services, users, clock, mrn, lot="LOT-NY", family=mrn).session_id
    chain = patient_with_course(services, users, mrn, lot="LOT-NY", family=mrn)
    check_in(services, users, chain.session_id, clock)
    return chain.session_id


class Both:
    """Post one step of a session as JSON (the API) and as the tablet's form."""

    def __init__(self, client, csrf: str, services) -> None:  # type: ignore[no-untyped-def]
        self.c, self.csrf, self.services = client, csrf, services

    def json(self, path: str, body: dict, key: str | None = None):  # type: ignore[no-untyped-def]
        headers = {"X-CSRF-Token": self.csrf} | ({"Idempotency-Key": key} if key else {})
        return self.c.post(f"/api{path}", json=body, headers=headers)

    def form(self, path: str, data: dict):  # type: ignore[no-untyped-def]
        return self.c.post(path, data={"csrf_token": self.csrf} | data,
                           follow_redirects=False)


# --- pre-dose vitals ---------------------------------------------------------------------
def test_the_json_body_and_the_form_store_the_same_predose_vitals(services, users, login,
                                                                    clock):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    sessions = _sessions(services, users, clock, "PRE", monitoring=False)
    typed = {"sbp_mmhg": "152", "dbp_mmhg": "94", "hr_bpm": "88", "spo2_pct": "97",
             "rr_per_min": "16", "proceed_reason": "Anxious on arrival; repeat reading lower"}
    stored = []
    for how, sid in sessions.items():
        if how == "json":
            r = both.json(f"/sessions/{sid}/predose", typed | {
                "version": version(services, sid), "taken_at": "2026-11-02T10:00:00-05:00"})
            assert r.status_code == 200, r.text
        else:
            r = both.form(f"/sessions/{sid}/predose", typed | {
                "version": str(version(services, sid)), "taken_at": "10:00"})
            assert r.status_code == 303, r.text
        stored.append(_row(services, VitalSignRow, session_id=sid, kind="predose"))
    assert stored[0] == stored[1]
    assert stored[0]["taken_at"] == dt.datetime(2026, 11, 2, 15, 0)  # 10:00 EST in UTC
    assert stored[0]["sbp_mmhg"] == 152 and stored[0]["gate"]


BAD_PREDOSE = [
    ({"sbp_mmhg": 500}, "sbp_mmhg: Input should be less than or equal to 400"),
    ({"hr_bpm": "²"}, "hr_bpm: Input should be a valid integer"),
    ({"dbp_mmhg": None}, "dbp_mmhg: Field required"),  # left out of JSON, empty on the form
    ({"spo2_pct": -1, "rr_per_min": "12.5"},
     "spo2_pct: Input should be greater than or equal to 0; rr_per_min:"),
    ({"proceed_reason": "x" * 301}, "proceed_reason: String should have at most 300"),
]


def test_bad_predose_vitals_read_the_same_on_the_form_and_the_api(services, users, login,
                                                                  clock):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    sid = _session(services, users, clock, "PRE-BAD", monitoring=False)
    good = {"sbp_mmhg": 128, "dbp_mmhg": 80, "version": version(services, sid)}
    for bad, needle in BAD_PREDOSE:
        body = {k: v for k, v in (good | bad).items() if v is not None}
        api = both.json(f"/sessions/{sid}/predose", body)
        page = both.form(f"/sessions/{sid}/predose",
                         {k: "" if v is None else str(v) for k, v in (good | bad).items()})
        assert api.status_code == page.status_code == 422, (bad, api.text)
        assert api.json()["detail"] == page_error(page.text), bad
        assert api.json()["detail"].startswith(needle), (bad, api.json()["detail"])
    with services.db.transaction() as s:
        assert s.execute(select(VitalSignRow).filter_by(session_id=sid)).first() is None


# --- timed vitals ------------------------------------------------------------------------
def test_the_json_body_and_the_form_store_the_same_timed_vitals(services, users, login,
                                                                clock):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    sessions = _sessions(services, users, clock, "VIT", monitoring=True)
    typed = {"sbp_mmhg": "176", "dbp_mmhg": "92", "hr_bpm": "101", "spo2_pct": "95",
             "rr_per_min": "12"}
    stored = []
    for how, sid in sessions.items():
        if how == "json":
            r = both.json(f"/sessions/{sid}/vitals", typed | {
                "taken_at": "2026-11-02T10:09:00-05:00"}, key=f"vitals-{how}")
            assert r.status_code == 201, r.text
        else:
            r = both.form(f"/sessions/{sid}/vitals", typed | {
                "taken_at": "10:09", "idempotency_key": f"vitals-{how}"})
            assert r.status_code == 303, r.text
        stored.append(_row(services, VitalSignRow, session_id=sid, kind="timed"))
    assert stored[0] == stored[1]
    assert stored[0]["taken_at"] == dt.datetime(2026, 11, 2, 15, 9)


BAD_VITALS = [
    ({"sbp_mmhg": 401}, "sbp_mmhg: Input should be less than or equal to 400"),
    ({"hr_bpm": "١٢"}, "hr_bpm: Input should be a valid integer"),
    ({"spo2_pct": "97%"}, "spo2_pct: Input should be a valid integer"),
    # 11:30 in New York is after the clock's 10:05: the service refuses it alike
    ({"taken_at": ("2026-11-02T11:30:00-05:00", "11:30")}, ""),
]


def test_bad_timed_vitals_read_the_same_on_the_form_and_the_api(services, users, login,
                                                                clock):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    sid = _session(services, users, clock, "VIT-BAD", monitoring=True)
    for bad, needle in BAD_VITALS:
        body = {k: v[0] if isinstance(v, tuple) else v for k, v in bad.items()}
        typed = {k: v[1] if isinstance(v, tuple) else str(v) for k, v in bad.items()}
        api = both.json(f"/sessions/{sid}/vitals", {"sbp_mmhg": 120} | body)
        page = both.form(f"/sessions/{sid}/vitals", {"sbp_mmhg": "120"} | typed)
        assert api.status_code == page.status_code == 422, (bad, api.text)
        assert api.json()["detail"] == page_error(page.text), bad
        assert api.json()["detail"].startswith(needle), (bad, api.json()["detail"])
    with services.db.transaction() as s:
        assert s.execute(select(VitalSignRow).filter_by(session_id=sid, kind="timed")
                         ).first() is None


# --- in-session ratings (entered item by item) --------------------------------------------
CADSS6 = [1, 0, 2, 1, 0, 1]


def test_the_json_body_and_the_form_store_the_same_rating(services, users, login, clock):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    sessions = _sessions(services, users, clock, "RAT", monitoring=True)
    stored = []
    for how, sid in sessions.items():
        if how == "json":
            r = both.json(f"/sessions/{sid}/ratings", {
                "instrument": "cadss6", "answers": CADSS6,
                "administered_at": "2026-11-02T10:09:00-05:00"}, key=f"cadss-{how}")
            assert r.status_code == 201, r.text
        else:
            items = {f"item_{n}": str(a) for n, a in enumerate(CADSS6, 1)}
            r = both.form(f"/sessions/{sid}/ratings", items | {
                "instrument": "cadss6", "administered_at": "10:09",
                "idempotency_key": f"cadss-{how}"})
            assert r.status_code == 303, r.text
        stored.append(_row(services, Assessment, session_id=sid))
    assert stored[0] == stored[1]
    assert json.loads(stored[0]["answers_json"]) == CADSS6
    assert stored[0]["administered_at"] == dt.datetime(2026, 11, 2, 15, 9)


def test_a_bad_rating_reads_the_same_on_the_form_and_the_api(services, users, login, clock):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    sid = _session(services, users, clock, "RAT-BAD", monitoring=True)
    for answer, needle in ((7, "item 1: 7 is out of range"),
                           ("x", "answers.0: Input should be a valid integer")):
        api = both.json(f"/sessions/{sid}/ratings", {"instrument": "moaas",
                                                     "answers": [answer]})
        page = both.form(f"/sessions/{sid}/ratings", {"instrument": "moaas",
                                                      "item_1": str(answer)})
        assert api.status_code == page.status_code == 422, (answer, api.text)
        assert api.json()["detail"] == page_error(page.text), answer
        assert needle in api.json()["detail"], api.json()["detail"]
    with services.db.transaction() as s:
        assert s.execute(select(Assessment).filter_by(session_id=sid)).first() is None


# --- assessments on the patient page (entered item by item) -------------------------------
PHQ9 = [1, 2, 0, 1, 3, 1, 0, 2, 0]


def test_the_json_body_and_the_form_store_the_same_assessment(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    chains = {how: patient_with_course(services, users, f"ASM-{how}", lot="LOT-NY",
                                       family=f"ASM-{how}", ready=False)
              for how in ("json", "form")}
    stored = []
    for how, chain in chains.items():
        path = f"/patients/{chain.patient_id}/assessments"
        if how == "json":
            r = both.json(path, {"instrument": "phq9", "answers": PHQ9,
                                 "administered_at": "2026-11-02T08:45:00-05:00",
                                 "course_id": chain.course_id}, key=f"phq9-{how}")
            assert r.status_code == 201, r.text
        else:
            items = {f"item_{n}": str(a) for n, a in enumerate(PHQ9, 1)}
            r = both.form(path, items | {"instrument": "phq9", "course_id": str(
                chain.course_id), "administered_at": "2026-11-02T08:45",
                "idempotency_key": f"phq9-{how}"})
            assert r.status_code == 303, r.text
        with services.db.transaction() as s:
            assert s.execute(select(Assessment.course_id).filter_by(
                patient_id=chain.patient_id)).scalar_one() == chain.course_id
        stored.append(_row(services, Assessment, patient_id=chain.patient_id))
    assert stored[0] == stored[1]
    assert stored[0]["total"] == 10
    assert stored[0]["administered_at"] == dt.datetime(2026, 11, 2, 13, 45)


def test_an_assessment_whose_last_items_are_left_unanswered_stores_them_as_missing(
        services, users, login):
    """C-SSRS screener, no to items 1, 2 and 6: items 3-5 and 7 are not asked, and their radio
    rows send nothing. The form says it showed 7 items, so they are missing answers, as the
    JSON body's nulls are (without that, the form read as 6 answers and was refused)."""
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    answers = [0, 0, None, None, None, 0, None]
    stored = []
    for how, chain in _chains(services, users, "CSSRS").items():
        path = f"/patients/{chain.patient_id}/assessments"
        if how == "json":
            r = both.json(path, {"instrument": "cssrs-screener", "answers": answers})
            assert r.status_code == 201, r.text
        else:
            r = both.form(path, {"instrument": "cssrs-screener", "items": "7"} | {
                f"item_{n}": str(a) for n, a in enumerate(answers, 1) if a is not None})
            assert r.status_code == 303, r.text
        stored.append(_row(services, Assessment, patient_id=chain.patient_id))
    assert stored[0] == stored[1]
    assert json.loads(stored[0]["answers_json"]) == ["0", "0", None, None, None, "0", None]


def test_a_bad_assessment_reads_the_same_on_the_form_and_the_api(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    chain = patient_with_course(services, users, "ASM-BAD", lot="LOT-NY", family="Bad",
                                ready=False)
    path = f"/patients/{chain.patient_id}/assessments"
    cases = [  # (JSON body changes, form changes, what the message holds)
        ({"answers": [0, 0, "lots", *[0] * 6]}, {"item_3": "lots"}, "PHQ-9 item 3:"),
        ({"answers": [4, *[0] * 8]}, {"item_1": "4"}, "PHQ-9 item 1: 4 is out of range"),
        ({"course_id": "١٢"}, {"course_id": "١٢"}, "course_id: must be a whole number"),
        ({"course_id": 2**31}, {"course_id": str(2**31)}, "course_id: Input should be less"),
        ({"course_id": chain.course_id + 100}, {"course_id": str(chain.course_id + 100)},
         "course_id: no such course for this patient"),
        ({"administered_at": "2026-11-02T11:00:00-05:00"},
         {"administered_at": "2026-11-02T11:00"}, "administered_at: is in the future"),
        ({"instrument": "nope"}, {"instrument": "nope"}, "unknown instrument"),
    ]
    items = {f"item_{n}": "0" for n in range(1, 10)}
    for body, typed, needle in cases:
        api = both.json(path, {"instrument": "phq9", "answers": [0] * 9} | body)
        page = both.form(path, {"instrument": "phq9"} | items | typed)
        assert api.status_code == page.status_code and api.status_code in (404, 422), (
            body, api.status_code, page.status_code, api.text)
        assert api.json()["detail"] == page_error(page.text), body
        assert needle in api.json()["detail"], (body, api.json()["detail"])
    with services.db.transaction() as s:
        assert s.execute(select(Assessment)).first() is None


def _refused_alike(api, page, needle: str, case: object) -> None:  # type: ignore[no-untyped-def]
    """The JSON API and the page refused ``case`` with one status and one message."""
    assert api.status_code == page.status_code and 400 <= api.status_code < 500, (
        case, api.status_code, page.status_code, api.text)
    assert api.json()["detail"] == page_error(page.text), case
    assert api.json()["detail"].startswith(needle), (case, api.json()["detail"])


def _chains(services, users, prefix: str) -> dict:  # type: ignore[no-untyped-def]
    """A patient on a course (no stock, not screened) per path, "json" and "form"."""
    return {how: patient_with_course(services, users, f"{prefix}-{how}", lot=None,
                                     family=f"{prefix}-{how}", ready=False)
            for how in ("json", "form")}


def _typed(body: dict) -> dict[str, str]:
    """A JSON body as a form types it (a left-out field is an empty one)."""
    return {k: "" if v is None else str(v) for k, v in body.items()}


# --- clinical events (the patient page's event form) -------------------------------------
def test_the_json_body_and_the_form_store_the_same_clinical_event(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    stored = []
    for how, chain in _chains(services, users, "EVT").items():
        body = {"kind": "suicide_attempt", "occurred_on": "2026-11-01",
                "note": "  ED visit; safe now ", "course_id": chain.course_id}
        path = f"/patients/{chain.patient_id}/clinical-events"
        r = both.json(path, body) if how == "json" else both.form(path, _typed(body))
        assert r.status_code == (201 if how == "json" else 303), r.text
        with services.db.transaction() as s:
            assert s.execute(select(ClinicalEvent.course_id).filter_by(
                patient_id=chain.patient_id)).scalar_one() == chain.course_id
        stored.append(_row(services, ClinicalEvent, patient_id=chain.patient_id))
    assert stored[0] == stored[1]
    assert stored[0]["note"] == "ED visit; safe now"
    assert stored[0]["occurred_on"] == dt.date(2026, 11, 1)


def test_a_bad_clinical_event_reads_the_same_on_the_form_and_the_api(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    chain = patient_with_course(services, users, "EVT-BAD", lot=None, family="Bad", ready=False)
    path = f"/patients/{chain.patient_id}/clinical-events"
    good = {"kind": "hospitalisation_for_depression", "occurred_on": "2026-10-30"}
    for bad, needle in [
        ({"kind": "relapse"}, "kind: Input should be 'hospitalisation_for_depression'"),
        ({"kind": None}, "kind: Field required"),
        ({"occurred_on": "soon"}, "occurred_on: is not a date: enter it as year-month-day"),
        ({"occurred_on": "2026-11-03"}, "occurred_on: is in the future"),  # today: Nov 2
        ({"note": "x" * 2001}, "note: String should have at most 2000 characters"),
        ({"course_id": "١٢"}, "course_id: must be a whole number from 1 to 2147483647"),
        ({"course_id": 2**31}, "course_id: Input should be less than or equal to 2147483647"),
        ({"course_id": chain.course_id + 100}, "course_id: no such course for this patient"),
    ]:
        body = {k: v for k, v in (good | bad).items() if v is not None}
        _refused_alike(both.json(path, body), both.form(path, _typed(good | bad)), needle, bad)
    with services.db.transaction() as s:
        assert s.execute(select(ClinicalEvent)).first() is None


# --- self-report links (the patient page's link form) ------------------------------------
def test_the_json_body_and_the_form_create_the_same_self_report_link(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    stored = []
    for how, chain in _chains(services, users, "LNK").items():
        body = {"instrument": "gad7", "course_id": chain.course_id, "delivery": "console"}
        path = f"/patients/{chain.patient_id}/self-report-links"
        r = both.json(path, body) if how == "json" else both.form(path, _typed(body))
        assert r.status_code == (201 if how == "json" else 200), r.text
        row = _row(services, SelfReportLink, patient_id=chain.patient_id)
        row.pop("token_hash")  # a random token of its own
        stored.append(row)
        with services.db.transaction() as s:
            assert s.execute(select(SelfReportLink.course_id).filter_by(
                patient_id=chain.patient_id)).scalar_one() == chain.course_id
            assert s.execute(select(OutboxMessage.channel).filter_by(
                patient_id=chain.patient_id)).scalar_one() == "console"
    assert stored[0] == stored[1]
    assert stored[0]["instrument_id"] == "gad7" and stored[0]["delivery"] == "console"


def test_a_bad_self_report_link_reads_the_same_on_the_form_and_the_api(services, users,
                                                                      login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    chain = patient_with_course(services, users, "LNK-BAD", lot=None, family="Bad", ready=False)
    path = f"/patients/{chain.patient_id}/self-report-links"
    for bad, needle in [
        ({"instrument": None}, "instrument: Field required"),
        ({"instrument": "madrs"}, "instrument: 'madrs' cannot be self-reported here"),
        ({"delivery": "fax"}, "delivery: Input should be 'shown', 'console', 'email' or 'sms'"),
        ({"delivery": "email"}, "delivery: e-mail is not configured"),
        ({"course_id": "١٢"}, "course_id: must be a whole number from 1 to 2147483647"),
        ({"course_id": chain.course_id + 100}, "course_id: no such course for this patient"),
    ]:
        full = {"instrument": "phq9"} | bad
        body = {k: v for k, v in full.items() if v is not None}
        _refused_alike(both.json(path, body), both.form(path, _typed(full)), needle, bad)
    with services.db.transaction() as s:
        assert s.execute(select(SelfReportLink)).first() is None


# --- alert acknowledgement (the worklist's form) -----------------------------------------
def _alert(services, users, mrn: str) -> int:  # type: ignore[no-untyped-def]
    """An open clinical alert (QIDS-SR16 item 12) on a new patient."""
    chain = patient_with_course(services, users, mrn, lot=None, family=mrn, ready=False)
    record, _ = services.mbc.assessments.record(users["nurse"].actor, chain.patient_id,
                                                "qids-sr16", [1] * 16)
    with services.db.transaction() as s:
        return s.execute(select(ClinicalAlert.id).filter_by(assessment_id=record.id)
                         ).scalar_one()


def test_the_json_body_and_the_form_acknowledge_an_alert_alike(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    stored = []
    for how in ("json", "form"):
        alert_id = _alert(services, users, f"ACK-{how}")
        body = {"note": "  Phoned; no current intent "}
        path = f"/alerts/{alert_id}/acknowledge"
        r = both.json(path, body) if how == "json" else both.form(path, body)
        assert r.status_code == (200 if how == "json" else 303), r.text
        row = _row(services, ClinicalAlert, id=alert_id)
        row.pop("assessment_id")
        stored.append(row)
    assert stored[0] == stored[1]
    assert stored[0]["ack_note"] == "Phoned; no current intent"
    assert stored[0]["acknowledged_at"] == TEN_AM_EST


def test_a_bad_acknowledgement_reads_the_same_on_the_form_and_the_api(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    alert_id = _alert(services, users, "ACK-BAD")
    path = f"/alerts/{alert_id}/acknowledge"
    for note, needle in [(None, "note: Field required"),
                         ("   ", "note: String should have at least 1 character"),
                         ("x" * 2001, "note: String should have at most 2000 characters")]:
        body = {} if note is None else {"note": note}
        _refused_alike(both.json(path, body), both.form(path, _typed({"note": note})),
                       needle, note)
    with services.db.transaction() as s:
        assert s.get(ClinicalAlert, alert_id).acknowledged_at is None


# --- the patient's own self-report (the public phone form, no login) ---------------------
def _opened_link(services, users, mrn: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(token, form key) of a PHQ-9 link to a new patient, its form opened."""
    chain = patient_with_course(services, users, mrn, lot=None, family=mrn, ready=False)
    _, token = services.mbc.self_report.create_link(users["nurse"].actor, chain.patient_id,
                                                    "phq9", course_id=chain.course_id)
    return token, services.mbc.self_report.open_form(token, "10.2.0.1").form_key


def _phone_form(key: str, answers: list) -> dict[str, str]:  # type: ignore[type-arg]
    """What the phone's form posts: the key, the number of items shown (PHQ-9 shows 10) and
    one field per answered item (a radio row left unanswered sends nothing)."""
    return {"form_key": key, "items": "10"} | {
        f"item_{n}": str(a) for n, a in enumerate(answers, 1) if a is not None}


def test_the_json_body_and_the_phone_form_store_the_same_self_report(services, users, client):
    answers = [1, 2, 0, 1, 3, 1, 0, 2, 0, None]  # item 10 (difficulty) left unanswered
    stored = []
    for how in ("json", "form"):
        token, key = _opened_link(services, users, f"SR-{how}")
        if how == "json":
            r = client.post(f"/api/self-report/{token}",
                            json={"form_key": key, "answers": answers})
            assert r.status_code == 201, r.text
        else:
            r = client.post(f"/r/{token}", data=_phone_form(key, answers))
            assert r.status_code == 200 and "Thank you" in r.text, r.text
        with services.db.transaction() as s:
            used_at, assessment_id = s.execute(
                select(SelfReportLink.used_at, SelfReportLink.assessment_id)
                .where(SelfReportLink.token_hash == hash_token(token))).one()
        assert used_at == TEN_AM_EST
        stored.append(_row(services, Assessment, id=assessment_id))
    assert stored[0] == stored[1]
    assert stored[0]["source"] == "self-report" and stored[0]["total"] == 10
    assert json.loads(stored[0]["answers_json"]) == [*map(str, answers[:9]), None]


def test_a_bad_self_report_reads_the_same_on_the_phone_form_and_the_api(services, users,
                                                                       client):
    token, key = _opened_link(services, users, "SR-BAD")
    good = [0] * 9
    for answers, form_key, needle in [
        ([0, 0, "lots", *[0] * 6], key, "PHQ-9 item 3: 'lots' is not a number"),
        ([4, *[0] * 8], key, "PHQ-9 item 1: 4 is out of range 0 to 3"),
        (good, "stale", "the form is out of date; open the link again"),
        ([None] * 9, key, "Please answer the questions before sending"),
    ]:
        api = client.post(f"/api/self-report/{token}",
                          json={"form_key": form_key, "answers": answers})
        page = client.post(f"/r/{token}", data=_phone_form(form_key, answers))
        _refused_alike(api, page, needle, (answers, form_key))
        assert "form_key" in page.text  # the form is shown again, to answer again
    with services.db.transaction() as s:
        link = s.execute(select(SelfReportLink)).scalar_one()
        assert link.used_at is None and link.failed_attempts == 6  # an empty one is no guess


def test_a_self_report_post_that_is_not_a_form_is_refused_with_the_form_shown_again(
        services, users, client):
    token, _ = _opened_link(services, users, "SR-JSON")
    r = client.post(f"/r/{token}", json={"answers": [0] * 9})
    assert r.status_code == 422 and "forms must be sent as" in page_error(r.text)


# --- reminder schedules (a form of the patient page; no JSON twin) -----------------------
def test_a_reminder_form_is_read_as_its_model_and_a_bad_one_changes_nothing(services, users,
                                                                           login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    chain = patient_with_course(services, users, "REM", lot=None, family="Rem", ready=False)
    path = f"/patients/{chain.patient_id}/reminders"
    good = {"course_id": str(chain.course_id), "instrument": "phq9", "days": "7, 1,3,3"}
    for bad, needle in [
        ({"days": "١,٣"}, "days: give whole days after a dose, e.g. 1,3,7"),
        ({"days": "1,-3"}, "days: give whole days after a dose, e.g. 1,3,7"),
        ({"days": "400"}, "days: 1 to 20 whole days between 0 and 365, e.g. 1,3,7"),
        ({"days": ""}, "days: Field required"),
        ({"course_id": ""}, "course_id: Field required"),
        ({"course_id": "²"}, "course_id: must be a whole number from 1 to 2147483647"),
        ({"channel": "fax"}, "channel: Input should be 'console', 'email' or 'sms'"),
        ({"instrument": "madrs"}, "instrument: 'madrs' cannot be self-reported here"),
    ]:
        page = both.form(path, good | bad)
        assert page.status_code == 422, (bad, page.text)
        assert page_error(page.text).startswith(needle), (bad, page_error(page.text))
    with services.db.transaction() as s:
        assert s.execute(select(ReminderSchedule)).first() is None
    assert both.form(path, good).status_code == 303
    with services.db.transaction() as s:
        row = s.execute(select(ReminderSchedule)).scalar_one()
        assert (row.days_after_dose, row.channel, row.course_id) == ("1,3,7", "console",
                                                                     chain.course_id)


# --- verbal orders (the dose page's verbal-order form) -----------------------------------
def _screened(services, users, mrn: str):  # type: ignore[no-untyped-def]
    """A patient on an IV course, screened eligible, without an order."""
    chain = patient_with_course(services, users, mrn, IV, lot=None, family=mrn, ready=False)
    screen_eligible(services, users, chain.patient_id, "ketamine-iv")
    return chain


def _without_ids(value):  # type: ignore[no-untyped-def]
    """``value`` (decoded JSON) without the ids each path has of its own."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items()
                if k not in ("course_id", "screening_id")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


VERBAL = {"route": "iv", "mg_per_kg": "0.5", "infusion_min": "40",
          "concentration_mg_per_ml": "1", "weight_basis": "actual", "prescriber": "prescriber"}


def test_the_json_body_and_the_form_record_the_same_verbal_order(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    stored = []
    for how in ("json", "form"):
        chain = _screened(services, users, f"VRB-{how}")
        path = f"/patients/{chain.patient_id}/verbal-orders"
        if how == "json":
            # an override sent with it is not taken (the form has none to send)
            r = both.json(path, VERBAL | {"course_id": chain.course_id,
                                          "read_back_confirmed": True, "overrides": [
                {"rule": "weight", "reason_code": "other", "free_text": "by phone"}]})
            assert r.status_code == 201, r.text
        else:
            r = both.form(path, VERBAL | {"course_id": str(chain.course_id),
                                          "read_back_confirmed": "on"})
            assert r.status_code == 303, r.text
        with services.db.transaction() as s:
            assert s.execute(select(DoseOrder.course_id).filter_by(
                patient_id=chain.patient_id)).scalar_one() == chain.course_id
        row = _row(services, DoseOrder, patient_id=chain.patient_id)
        for key in ("checks_json", "inputs_json"):  # they name the course and screening
            row[key] = _without_ids(json.loads(row[key]))
        stored.append(row)
    assert stored[0] == stored[1]
    assert stored[0]["status"] == "verbal" and stored[0]["read_back_confirmed"]
    assert stored[0]["verbal_prescriber_id"] == users["prescriber"].id


def test_a_bad_verbal_order_reads_the_same_on_the_form_and_the_api(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    chain = _screened(services, users, "VRB-BAD")
    path = f"/patients/{chain.patient_id}/verbal-orders"
    good = VERBAL | {"course_id": chain.course_id}
    for bad, read_back, needle in [
        ({}, False, "read the order back to the prescriber"),
        ({"prescriber": "nurse"}, True, "name the prescriber"),
        ({"prescriber": None}, True, "prescriber: Field required"),
        ({"prescriber": "p" * 65}, True, "prescriber: String should have at most 64"),
        ({"mg_per_kg": "٣"}, True, "mg/kg must be a number"),
        ({"course_id": "١٢"}, True, "course: must be a whole number"),
    ]:
        full = good | bad
        body = {k: v for k, v in full.items() if v is not None} | {
            "read_back_confirmed": read_back}
        typed = _typed(full) | ({"read_back_confirmed": "on"} if read_back else {})
        _refused_alike(both.json(path, body), both.form(path, typed), needle, bad)
    with services.db.transaction() as s:
        assert s.execute(select(DoseOrder)).first() is None


# --- forms of the chair area without a JSON twin: read as their models all the same -------
def test_the_end_of_an_infusion_is_read_as_its_model_on_the_clinics_clock(services, users,
                                                                         login, clock):
    sid = dosed(services, users, clock, "END", IV, lot="LOT-NY-IV", family="End").session_id
    clock.advance(minutes=45)
    c, csrf = login("nurse")  # (after the clock moved on: an idle session would be locked)
    both = Both(c, csrf, services)
    path = f"/sessions/{sid}/infusion-end"
    good = {"version": str(version(services, sid)), "ended_at": "10:40"}
    for bad, needle in [
        ({"version": ""}, "version: Field required"),
        ({"version": "0"}, "version: Input should be greater than or equal to 1"),
        ({"version": "١"}, "version: is not a number: type it with the digits 0-9"),
        ({"version": "1_0"}, "version: Input should be a valid integer"),  # not version 10
        ({"ended_at": ""}, "ended_at: Field required"),
        ({"ended_at": "soon"}, "ended_at: enter a time like 14:05"),
        ({"ended_at": "09:59"}, "the infusion cannot end before it started"),
    ]:
        page = both.form(path, good | bad)
        assert page.status_code == 422, (bad, page.text)
        assert page_error(page.text).startswith(needle), (bad, page_error(page.text))
    with services.db.transaction() as s:
        assert s.get(TreatmentSession, sid).dose_ended_at is None
    assert both.form(path, good).status_code == 303
    with services.db.transaction() as s:
        assert s.get(TreatmentSession, sid).dose_ended_at == dt.datetime(2026, 11, 2, 15, 40)


def test_a_chair_change_is_read_as_its_model_and_a_bad_one_changes_nothing(services, users,
                                                                          login):
    c, csrf = login("admin")
    both = Both(c, csrf, services)
    chair = services.chair.schedule.create_chair(users["admin"].actor, ChairCreate(
        name="Chair NY", opening_hours="0-4 08:00-18:00"))
    path = f"/admin/chairs/{chair.id}"
    for hours, needle in [
        ("٠-4 08:00-18:00", "opening hours: '٠-4 08:00-18:00' is not like '0-4 08:00-18:00'"),
        ("0-4 18:00-08:00", "opening hours: 18:00 is not before 08:00"),
        ("0-4 08:00-18:00; " * 20, "opening_hours: String should have at most 300"),
    ]:
        page = both.form(path, {"opening_hours": hours, "active": "on"})
        assert page.status_code == 422, (hours, page.text)
        assert page_error(page.text).startswith(needle), (hours, page_error(page.text))
    assert services.chair.schedule.chairs(users["admin"].actor) == [chair]
    assert both.form(path, {"opening_hours": "5 09:00-13:00"}).status_code == 303
    [changed] = services.chair.schedule.chairs(users["admin"].actor, include_inactive=True)
    assert (changed.active, changed.hours_text) == (False, "5 09:00-13:00")  # box not ticked
    assert both.form(path, {"opening_hours": "0-4 08:00-18:00", "active": "on"}
                     ).status_code == 303
    assert services.chair.schedule.chairs(users["admin"].actor) == [chair]


# --- answers typed in other digits: refused on every path, in the same words --------------
FOREIGN = ["٣", "３", "²", "1٣", "٣.٥"]  # Arabic-Indic, full-width, superscript, mixed, decimal


@pytest.mark.parametrize("typed", FOREIGN)
def test_an_answer_in_other_digits_is_refused_alike_on_every_path(services, users, login,
                                                                 clock, client, typed):
    """"٣" is 3 to Python's int() and the scorer's old \\d; an answer is read in 0-9 only."""
    chain = patient_with_course(services, users, "DIG", lot=None, family="Digits", ready=False)
    sid = _session(services, users, clock, "DIG-S", monitoring=True)
    token, key = _opened_link(services, users, "DIG-L")
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    path = f"/patients/{chain.patient_id}/assessments"
    api = both.json(path, {"instrument": "phq9", "answers": [typed, *[0] * 8]})
    page = both.form(path, {"instrument": "phq9", "item_1": typed} | {
        f"item_{n}": "0" for n in range(2, 10)})
    _refused_alike(api, page, f"PHQ-9 item 1: {typed!r} is not a number: type it with the "
                   "digits 0-9", typed)
    api = both.json(f"/sessions/{sid}/ratings", {"instrument": "moaas", "answers": [typed]})
    page = both.form(f"/sessions/{sid}/ratings", {"instrument": "moaas", "item_1": typed})
    _refused_alike(api, page, "answers.0: is not a number: type it with the digits 0-9", typed)
    answers = [typed, *[0] * 8]
    api = client.post(f"/api/self-report/{token}", json={"form_key": key, "answers": answers})
    page = client.post(f"/r/{token}", data=_phone_form(key, answers))
    _refused_alike(api, page, f"PHQ-9 item 1: {typed!r} is not a number", typed)
    with services.db.transaction() as s:
        assert s.execute(select(Assessment)).first() is None


# --- screening, rule-set copies, users and API tokens: the same table, role by role -------
def test_bad_screening_signoff_copy_user_and_token_forms_read_as_their_json_bodies(
        services, users, login):
    """Each form builds its JSON route's body (ScreeningRequest, SignoffBody, CopyBody,
    UserCreate, ServiceAccountCreate, TokenCreate): the same bad value, the same 422."""
    chain = patient_with_course(services, users, "SCR", IV, lot=None, family="Scr", ready=False)
    account = services.tokens.create_service_account(users["admin"].actor, "feed-ny", "Feed",
                                                     "nurse")
    pid, aid = chain.patient_id, account.id
    cases = [  # (role, page, JSON route, body, what the message starts with)
        ("prescriber", f"/patients/{pid}/screening/run", f"/patients/{pid}/screenings",
         {"treatment": "ketamine"}, "treatment: Input should be 'ketamine-iv' or 'esketamine'"),
        ("prescriber", f"/patients/{pid}/screening/run", f"/patients/{pid}/screenings",
         {}, "treatment: Field required"),
        ("prescriber", f"/patients/{pid}/screening/1/signoff",
         f"/patients/{pid}/screenings/1/signoff", {}, "reason: Field required"),
        ("prescriber", f"/patients/{pid}/screening/1/signoff",
         f"/patients/{pid}/screenings/1/signoff", {"reason": "r" * 1001},
         "reason: String should have at most 1000 characters"),
        ("admin", "/rulesets/copy", "/rulesets/copy", {"new_id": "our-iv"},
         "source_id: Field required"),
        ("admin", "/rulesets/copy", "/rulesets/copy",
         {"source_id": "ketamine-iv", "new_id": "x" * 61},
         "new_id: String should have at most 60 characters"),
        ("admin", "/admin/users", "/users", {"username": "nell", "full_name": "Nell N",
                                             "role": "root", "password": "long-enough-pw"},
         "role: Input should be 'admin', 'prescriber', 'nurse' or 'analyst'"),
        ("admin", "/admin/users", "/users", {"username": "nell", "full_name": "Nell N",
                                             "role": "nurse", "password": "short"},
         "password: String should have at least 12 characters"),
        ("admin", "/admin/service-accounts", "/service-accounts",
         {"username": "x", "full_name": "Feed", "role": "nurse"},
         "username: String should have at least 2 characters"),
        ("admin", f"/admin/service-accounts/{aid}/tokens", f"/service-accounts/{aid}/tokens",
         {"label": "EHR", "scopes": ["patient.read"], "expires_in_days": "١٤"},
         "expires_in_days: is not a number: type it with the digits 0-9"),
        ("admin", f"/admin/service-accounts/{aid}/tokens", f"/service-accounts/{aid}/tokens",
         {"label": "EHR", "scopes": ["patient.read"], "expires_in_days": "1_4"},
         "expires_in_days: Input should be a valid integer"),
        ("admin", f"/admin/service-accounts/{aid}/tokens", f"/service-accounts/{aid}/tokens",
         {"label": "EHR", "scopes": [], "expires_in_days": 14},
         "scopes: List should have at least 1 item"),
    ]
    for role, page_path, api_path, body, needle in cases:
        c, csrf = login(role)
        both = Both(c, csrf, services)
        typed = {k: v for k, v in body.items() if k != "scopes"}
        scopes = "".join(f"&scope={s}" for s in body.get("scopes", []))
        if "scopes" in body:  # the scope boxes repeat one field name
            page = c.post(page_path, content=urlencode(typed | {"csrf_token": csrf}) + scopes,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            page = both.form(page_path, _typed(typed))
        _refused_alike(both.json(api_path, body), page, needle, (page_path, body))
    with services.db.transaction() as s:
        assert s.execute(select(Screening)).first() is None
        assert s.execute(select(func.count()).select_from(User)).scalar_one() == len(users) + 1
        assert s.execute(select(ApiToken)).first() is None


def test_a_users_flag_is_read_as_its_model_and_garbage_changes_nothing(services, users,
                                                                     login):
    """The users page's buttons send 1 or 0; anything else was read as 0 (a deactivation)."""
    c, csrf = login("admin")
    both = Both(c, csrf, services)
    nurse = users["nurse"].id
    for path, field in ((f"/admin/users/{nurse}/active", "active"),
                        (f"/admin/users/{users['prescriber'].id}/medical-director", "flag")):
        for value, needle in (("maybe", f"{field}: Input should be a valid boolean"),
                              ("", f"{field}: Field required")):
            page = both.form(path, {field: value})
            assert page.status_code == 422, (path, value, page.text)
            assert page_error(page.text).startswith(needle), page_error(page.text)
    assert {u.username: u.active for u in services.auth.list_users(SYSTEM)}["nurse"]
    assert both.form(f"/admin/users/{nurse}/active", {"active": "0"}).status_code == 303
    assert not {u.username: u.active for u in services.auth.list_users(SYSTEM)}["nurse"]


# --- rule sets: activation, values, confirmation, import and the co-signature ------------
SOFT_MAX = "dose_limits.iv.mg-per-kg-soft-max"
HARD_MAX = "dose_limits.iv.mg-per-kg-hard-max"
WINDOW = "parameters.discharge-vitals-window-min"
DIRECTOR = {"cosign_username": "prescriber", "cosign_password": "prescriber-password-1"}
DIRECTOR_HEADERS = {"X-Cosign-Username": "prescriber", "X-Cosign-Password": "prescriber-password-1"}


def _ruleset_rows(services, model, ruleset_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every row of ``model`` for one clinic copy, oldest first, as the other path's would
    read: its row id left out and the copy's own id written ``ID`` (in its document too)."""
    with services.db.transaction() as s:
        found = s.execute(select(model).filter_by(ruleset_id=ruleset_id).order_by(model.id)
                          ).scalars().all()
        rows = [{c.key: getattr(r, c.key) for c in model.__table__.columns} for r in found]
    return [{k: v.replace(ruleset_id, "ID") if isinstance(v, str) else v
             for k, v in row.items() if k != "id"} for row in rows]


def _copies(admin, csrf: str, source: str, suffix: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A clinic copy of ``source`` per path: {"json": "json-<suffix>", "form": …}."""
    ids = {how: f"{how}-{suffix}" for how in ("json", "form")}
    for new_id in ids.values():
        r = admin.post("/api/rulesets/copy", json={"source_id": source, "new_id": new_id},
                       headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
    return ids


def test_the_json_body_and_the_form_store_the_same_rule_set_edit_confirmation_and_import(
        services, users, login):
    """The values page sends every value, one field per path; the unchanged ones are no
    change, so the form's edit is the JSON body's ``changes`` of one path."""
    admin, csrf = login("admin")
    pres, pcsrf = login("prescriber")
    ids = _copies(admin, csrf, "ketamine-iv", "iv")
    shown = admin.get(f"/api/rulesets/{ids['form']}").json()["document"]
    unchanged = str(shown["dose_limits"]["iv"]["mg-per-kg-hard-max"]["value"])
    for how, rid in ids.items():
        if how == "json":
            steps = [
                admin.put(f"/api/rulesets/{rid}/values", headers={"X-CSRF-Token": csrf}, json={
                    "changes": {SOFT_MAX: 0.8}, "note": "local policy", "version": 1}),
                pres.post(f"/api/rulesets/{rid}/confirm", headers={"X-CSRF-Token": pcsrf},
                          json={"path": SOFT_MAX, "version": 2})]
            doc = admin.get(f"/api/rulesets/{rid}").json()["document"]
            steps.append(admin.post("/api/rulesets/import", json=doc,
                                    headers={"X-CSRF-Token": csrf}))
            assert [r.status_code for r in steps] == [200, 200, 201], [r.text for r in steps]
        else:
            steps = [
                admin.post(f"/rulesets/{rid}/values", data={
                    "csrf_token": csrf, "version": "1", "note": "local policy",
                    f"value:{SOFT_MAX}": "0.8", f"value:{HARD_MAX}": unchanged},
                    follow_redirects=False),
                pres.post(f"/rulesets/{rid}/confirm", data={
                    "csrf_token": pcsrf, "version": "2", "path": SOFT_MAX},
                    follow_redirects=False)]
            doc = admin.get(f"/api/rulesets/{rid}").json()["document"]
            steps.append(admin.post("/rulesets/import", data={
                "csrf_token": csrf, "document": json.dumps(doc, indent=2)},
                follow_redirects=False))
            assert [r.status_code for r in steps] == [303, 303, 303], [r.text for r in steps]
    for model in (RuleSetVersion, RuleConfirmation):
        stored = [_ruleset_rows(services, model, rid) for rid in ids.values()]
        assert stored[0] == stored[1], model
    versions = _ruleset_rows(services, RuleSetVersion, ids["form"])
    assert [v["seq"] for v in versions] == [1, 2, 3, 4]
    assert versions[1]["change_note"] == f"local policy ({SOFT_MAX})"
    assert versions[3]["change_note"] == "imported from a file"
    assert json.loads(versions[3]["document"])["dose_limits"]["iv"]["mg-per-kg-soft-max"][
        "value"] == 0.8


def test_the_json_headers_and_the_form_co_sign_the_same_activation(services, users, login):
    """Activating a set that loosens a hard limit in effect, co-signed by the medical director:
    in the API's X-Cosign-* headers, in the form's cosign fields; the same approval."""
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    ids = _copies(admin, csrf, "esketamine-us", "eu")
    for rid in ids.values():  # a set not in effect is edited freely
        r = admin.put(f"/api/rulesets/{rid}/values", headers=h, json={
            "changes": {WINDOW: "45"}, "note": "longer window", "version": 1})
        assert r.status_code == 200, r.text
    services.auth.set_medical_director(SYSTEM, users["prescriber"].id, True)
    stored = []
    for how, rid in ids.items():
        if how == "json":
            r = admin.put("/api/rulesets/active/esketamine", json={"ruleset_id": rid},
                          headers=h | DIRECTOR_HEADERS)
            assert r.status_code == 200, r.text
        else:
            r = admin.post("/rulesets/active", data={
                "csrf_token": csrf, "treatment": "esketamine", "ruleset_id": rid} | DIRECTOR,
                follow_redirects=False)
            assert r.status_code == 303, r.text
        with services.db.transaction() as s:
            active = s.get(ActiveRuleSet, "esketamine")
            row = {"ruleset_id": active.ruleset_id.replace(rid, "ID"),
                   "set_by": active.set_by, "set_at": active.set_at}
        stored.append(row | {"approvals": _ruleset_rows(services, RuleSetApproval, rid)})
        # back to the bundled set (tightening: no co-signature) for the other path
        assert admin.put("/api/rulesets/active/esketamine", json={"ruleset_id":
                         "esketamine-us"}, headers=h).status_code == 200
    assert stored[0] == stored[1]
    assert stored[0]["ruleset_id"] == "ID"
    assert [a["action"] for a in stored[0]["approvals"]] == ["activate"]
    assert stored[0]["approvals"][0]["approved_by"] == users["prescriber"].id


def test_bad_rule_set_forms_read_as_their_json_bodies_and_co_signature_headers(
        services, users, login):
    """The same bad activation, values edit, confirmation or import (or co-signature) is
    refused with one status and one message by the page and the API, and changes nothing."""
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    for source, new_id in (("ketamine-iv", "gov-iv"), ("esketamine-us", "loose-eu")):
        assert admin.post("/api/rulesets/copy", json={"source_id": source, "new_id": new_id},
                          headers=h).status_code == 201
    assert admin.put("/api/rulesets/active/ketamine-iv", json={"ruleset_id": "gov-iv"},
                     headers=h).status_code == 200
    assert admin.put("/api/rulesets/loose-eu/values", headers=h, json={
        "changes": {WINDOW: "45"}, "note": "longer", "version": 1}).status_code == 200
    with services.db.transaction() as s:
        before = (s.execute(select(func.count()).select_from(RuleSetVersion)).scalar_one(),
                  s.get(ActiveRuleSet, "esketamine"), s.get(ActiveRuleSet, "ketamine-iv"))
        before = (before[0], before[1] and before[1].ruleset_id, before[2].ruleset_id)
    long_name = {"cosign_username": "p" * 65, "cosign_password": "x"}
    cases = [  # (role, method, API path, JSON body or raw text, headers, page, form, needle)
        ("admin", "PUT", "/rulesets/active/ketamine-iv", {}, {}, "/rulesets/active",
         {"treatment": "ketamine-iv"}, "ruleset_id: Field required"),
        ("admin", "PUT", "/rulesets/active/ketamine-iv", {"ruleset_id": "x" * 61}, {},
         "/rulesets/active", {"treatment": "ketamine-iv", "ruleset_id": "x" * 61},
         "ruleset_id: String should have at most 60 characters"),
        ("admin", "PUT", "/rulesets/active/ketamine", {"ruleset_id": "gov-iv"}, {},
         "/rulesets/active", {"treatment": "ketamine", "ruleset_id": "gov-iv"},
         "treatment must be one of esketamine, ketamine-iv"),
        ("admin", "PUT", "/rulesets/active/esketamine", {"ruleset_id": "loose-eu"}, {},
         "/rulesets/active", {"treatment": "esketamine", "ruleset_id": "loose-eu"},
         "loose-eu@2 loosens hard limits of esketamine-us@"),  # co-signature required
        ("admin", "PUT", "/rulesets/active/esketamine", {"ruleset_id": "loose-eu"},
         {"X-Cosign-Username": "p" * 65, "X-Cosign-Password": "x"}, "/rulesets/active",
         {"treatment": "esketamine", "ruleset_id": "loose-eu"} | long_name,
         "cosign_username: String should have at most 64 characters"),
        ("admin", "PUT", "/rulesets/gov-iv/values",
         {"changes": {HARD_MAX: "1.5"}, "note": "titrating", "version": 1}, {},
         "/rulesets/gov-iv/values", {f"value:{HARD_MAX}": "1.5", "note": "titrating",
                                     "version": "1"},
         "gov-iv@2 loosens hard limits of gov-iv@1: "),  # co-signature required
        ("admin", "PUT", "/rulesets/gov-iv/values",
         {"changes": {SOFT_MAX: "0.8"}, "version": 1}, {}, "/rulesets/gov-iv/values",
         {f"value:{SOFT_MAX}": "0.8", "version": "1"}, "note: Field required"),
        ("admin", "PUT", "/rulesets/gov-iv/values",
         {"changes": {SOFT_MAX: "0.8"}, "note": "n", "version": "١"}, {},
         "/rulesets/gov-iv/values", {f"value:{SOFT_MAX}": "0.8", "note": "n", "version": "١"},
         "version: is not a number: type it with the digits 0-9"),
        ("admin", "PUT", "/rulesets/gov-iv/values",
         {"changes": {SOFT_MAX: "0,8"}, "note": "n", "version": 1}, {},
         "/rulesets/gov-iv/values", {f"value:{SOFT_MAX}": "0,8", "note": "n", "version": "1"},
         f"{SOFT_MAX} must be a number, got '0,8'"),
        ("admin", "PUT", "/rulesets/gov-iv/values",
         {"changes": {SOFT_MAX: "0.8"}, "note": "n", "version": 7}, {},
         "/rulesets/gov-iv/values", {f"value:{SOFT_MAX}": "0.8", "note": "n", "version": "7"},
         "rule set gov-iv changed since you opened it (you edited version 7"),
        ("prescriber", "POST", "/rulesets/gov-iv/confirm", {"version": 1}, {},
         "/rulesets/gov-iv/confirm", {"version": "1"}, "path: Field required"),
        ("admin", "POST", "/rulesets/import", "{not json", {}, "/rulesets/import",
         {"document": "{not json"}, "document: not valid JSON (Expecting property name "
                                    "enclosed in double quotes at line 1)"),
        ("admin", "POST", "/rulesets/import", "[1]", {}, "/rulesets/import",
         {"document": "[1]"}, "document: must be a JSON object"),
        ("admin", "POST", "/rulesets/import", "", {}, "/rulesets/import", {"document": ""},
         "document: Field required"),
    ]
    for role, method, api_path, body, headers, page_path, form, needle in cases:
        c, token = login(role)
        sent = {"X-CSRF-Token": token} | headers
        if isinstance(body, str):  # the import's body is the document itself, as text here
            api = c.request(method, f"/api{api_path}", content=body,
                            headers=sent | {"Content-Type": "application/json"})
        else:
            api = c.request(method, f"/api{api_path}", json=body, headers=sent)
        page = c.post(page_path, data={"csrf_token": token} | form, follow_redirects=False)
        _refused_alike(api, page, needle, (page_path, form))
    with services.db.transaction() as s:
        after = (s.execute(select(func.count()).select_from(RuleSetVersion)).scalar_one(),
                 s.get(ActiveRuleSet, "esketamine"), s.get(ActiveRuleSet, "ketamine-iv"))
        after = (after[0], after[1] and after[1].ruleset_id, after[2].ruleset_id)
        assert s.execute(select(RuleSetApproval)).first() is None
        assert s.execute(select(RuleConfirmation)).first() is None
    assert after == before


# --- stopping a medication (the patient page's Stop form) ----------------------------------
def _medication(services, mrn: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A patient with sertraline started on 1 October: (patient id, medication id)."""
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name=mrn, given_name="Med", birth_date=dt.date(1980, 1, 2),
        sex="female"))
    services.patients.add_medication(SYSTEM, p.id, MedicationCreate(
        name="sertraline", started_on=dt.date(2026, 10, 1)))
    return p.id, services.patients.get(SYSTEM, p.id).medications[0]["id"]


def test_the_json_body_and_the_form_stop_a_medication_alike(services, users, login):
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    stored = []
    for how in ("json", "form"):
        pid, med = _medication(services, f"STOP-{how}")
        path = f"/patients/{pid}/medications/{med}/stop"
        body = {"stopped_on": "2026-10-30", "reason": "other", "note": "  moved abroad "}
        r = both.json(path, body) if how == "json" else both.form(path, _typed(body))
        assert r.status_code == (200 if how == "json" else 303), r.text
        stored.append(_row(services, PatientMedication, id=med))
    assert stored[0] == stored[1]
    assert (stored[0]["active"], stored[0]["stopped_on"], stored[0]["stop_reason"],
            stored[0]["stop_note"]) == (False, dt.date(2026, 10, 30), "other", "moved abroad")


def test_a_bad_stop_reads_the_same_on_the_form_and_the_api(services, users, login):
    """The clinic is in New York at 10:00 on 2 November: the 3rd is tomorrow there."""
    c, csrf = login("nurse")
    both = Both(c, csrf, services)
    pid, med = _medication(services, "STOP-BAD")
    path = f"/patients/{pid}/medications/{med}/stop"
    for body, needle in [
        ({"reason": "completed", "stopped_on": "2026-11-03"}, "stopped_on: is in the future"),
        ({"reason": "completed", "stopped_on": "2026-09-30"},
         "stopped_on: is before the day the medication was started"),
        ({"reason": "completed", "stopped_on": "٢٠٢٦-10-30"},
         "stopped_on: is not a date: enter it as year-month-day"),
        ({"reason": "other", "note": "   "}, "note: say why when the reason is other"),
        ({"reason": "Completed"}, "reason: Input should be 'completed'"),
        ({"stopped_on": "2026-10-30"}, "reason: Field required"),
    ]:
        _refused_alike(both.json(path, body), both.form(path, _typed(body)), needle, body)
    assert services.patients.get(SYSTEM, pid).medications[0]["active"] is True
    with services.db.transaction() as s:
        assert s.get(PatientMedication, med).stopped_on is None
