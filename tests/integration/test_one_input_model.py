"""One input model per request: the tablet's and the patient page's forms build the model the
JSON API takes as its body (pre-dose vitals, timed vitals, in-session ratings, assessments),
so the same typed values store the same row and the same bad value reads the same.

The clinic is in New York: what the form types on the clinic's clock ("09:10") is the instant
the JSON body sends with its offset ("…T09:10:00-05:00"), 14:10 UTC.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from kcchain import check_in, dosed, patient_with_course, version
from kctest import make_settings, page_error
from sqlalchemy import select

from ketaclinic.bootstrap import build_services
from ketaclinic.store.tables_chair import VitalSignRow
from ketaclinic.store.tables_treatment import Assessment

TEN_AM_EST = dt.datetime(2026, 11, 2, 15, 0)  # 10:00 in New York, as the clock gives it (UTC)


@pytest.fixture
def services(services, database_url, clock):  # type: ignore[no-untyped-def]
    """The suite's services (fresh database), rebuilt for a clinic in New York."""
    clock.now = TEN_AM_EST
    svc = build_services(make_settings(database_url, clinic_timezone="America/New_York"),
                         clock=clock)
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
