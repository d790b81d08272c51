"""Measurement-based care over the JSON API and the pages, on every backend."""

from __future__ import annotations

import datetime as dt
import re

from bs4 import BeautifulSoup
from kctest import csrf_from
from sqlalchemy import select

from ketaclinic.services.fhir_bulk import r4b_problems
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_care import Course, TreatmentSession

PAT = {"mrn": "W-1", "family_name": "Webperson", "given_name": "Robin",
       "birth_date": "1980-04-30", "sex": "female"}
START = dt.datetime(2026, 11, 2, 9, 0, 0)


def new_patient(c, csrf) -> int:
    r = c.post("/api/patients", json=PAT, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def actions(services, patient_id) -> list[tuple[str, str]]:
    with services.db.transaction() as s:
        return [(e.action, e.username) for e in s.execute(
            select(AuditEvent).where(AuditEvent.patient_id == patient_id)
            .order_by(AuditEvent.id)).scalars()]


def test_assessment_post_is_idempotent_and_maps_to_a_valid_fhir_questionnaire_response(login):
    c, csrf = login("nurse")
    pid = new_patient(c, csrf)
    body = {"instrument": "phq9", "answers": [1, 2, 1, 0, 1, 2, 1, 0, 0, 1]}
    h = {"X-CSRF-Token": csrf, "Idempotency-Key": "form-1"}
    r1 = c.post(f"/api/patients/{pid}/assessments", json=body, headers=h)
    r2 = c.post(f"/api/patients/{pid}/assessments", json=body, headers=h)
    assert (r1.status_code, r2.status_code) == (201, 200), r1.text
    assert r1.json()["id"] == r2.json()["id"] and r1.json()["total"] == 8
    listed = c.get(f"/api/patients/{pid}/assessments").json()["items"]
    assert [a["id"] for a in listed] == [r1.json()["id"]]
    fhir = c.get(f"/api/patients/{pid}/assessments/{r1.json()['id']}/fhir")
    assert fhir.status_code == 200, fhir.text
    qr = fhir.json()["questionnaire_response"]
    assert r4b_problems([qr, *fhir.json()["observations"]]) == []
    assert qr["subject"]["reference"] == f"Patient/p-{pid}"  # the export's stable id
    total = fhir.json()["observations"][-1]
    assert total["code"]["coding"][0]["code"] == "44261-6"
    assert total["valueQuantity"]["value"] == 8


def test_bad_answers_are_a_422_naming_the_item_and_nothing_is_stored(login):
    c, csrf = login("nurse")
    pid = new_patient(c, csrf)
    r = c.post(f"/api/patients/{pid}/assessments", headers={"X-CSRF-Token": csrf},
               json={"instrument": "phq9", "answers": [0, 0, "lots", 0, 0, 0, 0, 0, 0]})
    assert r.status_code == 422 and "item 3" in r.json()["detail"]
    r = c.post(f"/api/patients/{pid}/assessments", headers={"X-CSRF-Token": csrf},
               json={"instrument": "nope", "answers": [0]})
    assert r.status_code == 404 and "unknown instrument" in r.json()["detail"]
    page = c.get(f"/patients/{pid}")
    form = {"csrf_token": csrf_from(page.text), "instrument": "phq9",
            "answers": "1,2,x,0,0,0,0,0,0"}
    r = c.post(f"/patients/{pid}/assessments", data=form)
    assert r.status_code == 422 and "item 3" in r.text
    assert c.get(f"/api/patients/{pid}/assessments").json()["items"] == []


def test_alerts_api_lists_and_acknowledges_with_a_note(login, services):
    c, csrf = login("nurse")
    pid = new_patient(c, csrf)
    c.post(f"/api/patients/{pid}/assessments", headers={"X-CSRF-Token": csrf},
           json={"instrument": "qids-sr16", "answers": [1] * 16})
    alerts = c.get("/api/alerts").json()["items"]
    assert [a["rule"] for a in alerts] == ["qids-sr16.item12"]
    aid = alerts[0]["id"]
    r = c.post(f"/api/alerts/{aid}/acknowledge", json={"note": ""},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    r = c.post(f"/api/alerts/{aid}/acknowledge", json={"note": "Reviewed with patient"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "nurse"
    assert c.get("/api/alerts").json()["items"] == []
    assert ("alert.acknowledge", "nurse") in actions(services, pid)
    a, _ = login("analyst")
    assert a.get("/api/alerts").status_code == 403
    assert a.get("/alerts").status_code == 403


def test_the_whole_self_report_journey_through_the_pages(login, client, services):
    c, csrf = login("nurse")
    pid = new_patient(c, csrf)
    page = c.get(f"/patients/{pid}")
    token = csrf_from(page.text)
    r = c.post(f"/patients/{pid}/self-report-links",
               data={"csrf_token": token, "instrument": "phq9", "delivery": "shown"})
    assert r.status_code == 200
    url = BeautifulSoup(r.text, "html.parser").find("a", id="sr-link")["href"]
    path = "/r/" + url.split("/r/")[1]
    form_page = client.get(path)  # no login
    assert form_page.status_code == 200
    assert "Webperson" not in form_page.text and "Robin" not in form_page.text
    assert "W-1" not in form_page.text
    soup = BeautifulSoup(form_page.text, "html.parser")
    key = soup.find("input", attrs={"name": "form_key"})["value"]
    answers = {f"item_{n}": "0" for n in range(1, 10)} | {"item_9": "1", "item_10": "0"}
    r = client.post(path, data={"form_key": "wrong", **answers})
    assert r.status_code == 422 and "out of date" in r.text
    r = client.post(path, data={"form_key": key, **answers})
    assert r.status_code == 200 and "Thank you" in r.text
    again = client.get(path)
    assert again.status_code == 410 and "already been sent" in again.text
    worklist = c.get("/alerts")
    assert "Webperson, Robin" in worklist.text and "item 9" in worklist.text
    aid = int(re.search(r'id="alert-(\d+)"', worklist.text).group(1))
    r = c.post(f"/alerts/{aid}/acknowledge", data={"csrf_token": token, "note": ""})
    assert r.status_code == 422
    r = c.post(f"/alerts/{aid}/acknowledge",
               data={"csrf_token": token, "note": "Phoned; no current intent"},
               follow_redirects=False)
    assert r.status_code == 303
    assert "No open alerts" in c.get("/alerts").text
    trail = actions(services, pid)
    assert ("assessment.create", "patient-link") in trail
    assert ("alert.acknowledge", "nurse") in trail


def test_an_unknown_self_report_link_says_so_and_the_api_submit_works(login, client):
    r = client.get("/r/not-a-real-token")
    assert r.status_code == 410 and "not valid" in r.text
    c, csrf = login("prescriber")
    pid = new_patient(c, csrf)
    link = c.post(f"/api/patients/{pid}/self-report-links", json={"instrument": "gad7"},
                  headers={"X-CSRF-Token": csrf})
    assert link.status_code == 201, link.text
    token = link.json()["url"].split("/r/")[1]
    form = client.get(f"/api/self-report/{token}").json()
    assert form["instrument"] == "gad7" and len(form["items"]) == 7
    r = client.post(f"/api/self-report/{token}",
                    json={"form_key": form["form_key"], "answers": [1] * 7})
    assert r.status_code == 201
    r = client.post(f"/api/self-report/{token}",
                    json={"form_key": form["form_key"], "answers": [1] * 7})
    assert r.status_code == 410


def test_the_patient_page_shows_outcomes_and_the_trajectory_chart(login, services):
    c, csrf = login("prescriber")
    pid = new_patient(c, csrf)
    now = START
    with services.db.transaction() as s:
        course = Course(patient_id=pid, template_id="iv_ketamine_induction",
                        treatment="ketamine-iv", start_date=(now - dt.timedelta(days=20)).date(),
                        created_at=now, updated_at=now)
        s.add(course)
        s.flush()
        for n, d in enumerate((20, 17, 14, 10, 7, 3), 1):
            at = now - dt.timedelta(days=d)
            s.add(TreatmentSession(patient_id=pid, course_id=course.id, number=n,
                                   treatment="ketamine-iv", status="discharged",
                                   planned_date=at.date(), dose_started_at=at,
                                   created_at=now, updated_at=now))
    for d, answers in ((21, [3, 3, 2, 2, 2, 2, 2, 2, 0]), (12, [1, 1, 1, 1, 1, 1, 1, 1, 0]),
                       (2, [0, 1, 0, 1, 0, 0, 1, 0, 0])):
        r = c.post(f"/api/patients/{pid}/assessments", headers={"X-CSRF-Token": csrf},
                   json={"instrument": "phq9", "answers": answers,
                         "administered_at": (now - dt.timedelta(days=d)).isoformat()})
        assert r.status_code == 201, r.text
    page = c.get(f"/patients/{pid}")
    soup = BeautifulSoup(page.text, "html.parser")
    panel = soup.find("section", id="mbc")
    assert panel is not None
    svg = panel.find("svg")
    assert svg is not None and svg.find("title").text == "PHQ-9 score trajectory"
    assert len(svg.select("line.dose")) == 6
    assert panel.select_one(".mbc-status").text == "remission"
    assert "Baseline" in panel.text and "18" in panel.text
    out = c.get(f"/api/patients/{pid}/outcomes").json()["items"][0]
    assert out["status"] == "remission" and out["days_since_last_dose"] == 3


def test_a_clinical_event_form_records_relapse_evidence(login, services):
    c, csrf = login("nurse")
    pid = new_patient(c, csrf)
    r = c.post(f"/patients/{pid}/clinical-events",
               data={"csrf_token": csrf, "kind": "suicide_attempt",
                     "occurred_on": START.date().isoformat(), "note": "ED visit"},
               follow_redirects=False)
    assert r.status_code == 303
    r = c.post(f"/patients/{pid}/clinical-events",
               data={"csrf_token": csrf, "kind": "suicide_attempt", "occurred_on": "soon"})
    assert r.status_code == 422 and "occurred_on" in r.text
    assert ("clinical_event.create", "nurse") in actions(services, pid)
