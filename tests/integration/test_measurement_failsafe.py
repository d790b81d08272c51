"""Issue 13, Measurement, through the real services, API and pages on every backend.

* an all-empty self-report is refused with a clear message and the link stays usable;
* a deep-sedation rating at the chair raises a session alert and a worklist alert; actioning
  either closes both, and discharge waits for it;
* a RASS rating does not fill the MOAA/S schedule.
"""

from __future__ import annotations

from decimal import Decimal

from kcchain import dosed, receive
from sqlalchemy import func, select

from ketaclinic.store.tables_chair import SessionAlert
from ketaclinic.store.tables_mbc import ClinicalAlert, SelfReportLink
from ketaclinic.store.tables_treatment import Assessment

PAT = {"mrn": "F-1", "family_name": "Failsafe", "given_name": "Sam",
       "birth_date": "1980-04-30", "sex": "female"}


def _dosed_esketamine(services, users, clock) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """An esketamine session given as ordered, the clock at the second device."""
    pid, _, sid = dosed(services, users, clock, "F-2", family="Sedation", given="Alex")
    return pid, sid


def _link(c, csrf) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    pid = c.post("/api/patients", json=PAT, headers={"X-CSRF-Token": csrf}).json()["id"]
    link = c.post(f"/api/patients/{pid}/self-report-links", json={"instrument": "phq9"},
                  headers={"X-CSRF-Token": csrf})
    assert link.status_code == 201, link.text
    return link.json()["url"].split("/r/")[1], {"pid": pid}


def test_an_all_empty_self_report_is_refused_on_the_api_and_the_link_is_not_consumed(
        login, client, services):
    c, csrf = login("nurse")
    token, _ = _link(c, csrf)
    form = client.get(f"/api/self-report/{token}").json()
    for _ in range(11):  # more than the failure limit (10): an empty form never locks the link
        r = client.post(f"/api/self-report/{token}",
                        json={"form_key": form["form_key"], "answers": [None] * 10})
        assert r.status_code == 422 and "no answer was given" in r.json()["detail"]
    with services.db.transaction() as s:
        assert s.execute(select(func.count(Assessment.id))).scalar_one() == 0
        link = s.execute(select(SelfReportLink)).scalar_one()
        assert link.used_at is None and link.failed_attempts == 0
    # only the unscored difficulty item (PHQ-9 item 10): still an empty questionnaire
    r = client.post(f"/api/self-report/{token}",
                    json={"form_key": form["form_key"], "answers": [None] * 9 + [2]})
    assert r.status_code == 422 and "no answer was given" in r.json()["detail"]
    r = client.post(f"/api/self-report/{token}",
                    json={"form_key": form["form_key"], "answers": [0] * 9 + [None]})
    assert r.status_code == 201, r.text


def test_an_all_empty_self_report_page_is_refused_with_the_form_shown_again(
        login, client, services):
    from bs4 import BeautifulSoup

    c, csrf = login("nurse")
    token, _ = _link(c, csrf)
    page = client.get(f"/r/{token}")
    key = BeautifulSoup(page.text, "html.parser").find("input",
                                                        attrs={"name": "form_key"})["value"]
    r = client.post(f"/r/{token}", data={"form_key": key})
    assert r.status_code == 422 and "no answer was given" in r.text
    assert "form_key" in r.text  # the form is shown again, the link still works
    with services.db.transaction() as s:
        assert s.execute(select(SelfReportLink.used_at)).scalar_one() is None


def test_deep_sedation_at_the_chair_is_an_alert_in_the_session_and_on_the_worklist(
        services, users, login, clock):
    pid, sid = _dosed_esketamine(services, users, clock)
    clock.advance(minutes=20)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "moaas", "answers": [2]},
               headers=h)
    assert r.status_code == 201, r.text
    assert [a["rule"] for a in r.json()["alerts"]] == ["moaas.deep_sedation"]
    assert r.json()["alerts"][0]["action"].startswith("Stop further dosing")
    session = c.get(f"/api/sessions/{sid}").json()
    open_alerts = [a for a in session["alerts"] if not a["action_taken"]]
    assert [a["rule"] for a in open_alerts] == ["moaas.deep_sedation"]
    worklist = c.get("/api/alerts").json()["items"]
    assert [(a["rule"], a["priority"]) for a in worklist] == [("moaas.deep_sedation", "urgent")]
    page = c.get("/alerts").text
    assert "Sedation, Alex" in page and "deep sedation" in page
    # actioned on the worklist with a note: the session alert is closed with the same note
    r = c.post(f"/api/alerts/{worklist[0]['id']}/acknowledge",
               json={"note": "Airway supported, O2 given, MOAA/S 4 at 5 min"}, headers=h)
    assert r.status_code == 200, r.text
    session = c.get(f"/api/sessions/{sid}").json()
    assert [a["action_taken"] for a in session["alerts"]] == [
        "Airway supported, O2 given, MOAA/S 4 at 5 min"]
    assert c.get("/api/alerts").json()["items"] == []


def test_a_rass_deep_sedation_alert_actioned_in_the_session_leaves_the_worklist(
        services, users, login, clock):
    _, sid = _dosed_esketamine(services, users, clock)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "rass", "answers": [-4]},
               headers=h)
    assert r.status_code == 201, r.text
    alert_id = r.json()["alerts"][0]["id"]
    assert len(c.get("/api/alerts").json()["items"]) == 1
    r = c.post(f"/api/sessions/{sid}/alerts/{alert_id}",
               json={"action_taken": "Stimulated, oxygen, prescriber called"}, headers=h)
    assert r.status_code == 200, r.text
    assert c.get("/api/alerts").json()["items"] == []
    with services.db.transaction() as s:
        ack = s.execute(select(ClinicalAlert.ack_note)).scalar_one()
        open_session = s.execute(select(func.count(SessionAlert.id)).where(
            SessionAlert.action_taken == "")).scalar_one()
    assert ack == "Stimulated, oxygen, prescriber called" and open_session == 0


def test_a_rass_rating_does_not_fill_the_moaas_schedule_and_an_empty_rating_is_refused(
        services, users, login, clock):
    _, sid = _dosed_esketamine(services, users, clock)
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "rass", "answers": [0]},
               headers=h)
    assert r.status_code == 201 and r.json()["alerts"] == []
    due = {(d["label"], d["t_min"]) for d in c.get(f"/api/sessions/{sid}").json()["due"]}
    assert ("MOAA/S", 0) in due
    r = c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "moaas", "answers": [5]},
               headers=h)
    due = {(d["label"], d["t_min"]) for d in c.get(f"/api/sessions/{sid}").json()["due"]}
    assert ("MOAA/S", 0) not in due
    r = c.post(f"/api/sessions/{sid}/ratings", json={"instrument": "moaas",
                                                      "answers": [None]}, headers=h)
    assert r.status_code == 422 and "enter the rating" in r.json()["detail"]


def test_the_ledger_page_says_an_inventory_that_skipped_a_lot_is_incomplete(
        services, users, login):
    from ketaclinic.schemas_chair import CountCreate

    nurse = users["nurse"].actor
    for lot in ("LOT-A", "LOT-B"):  # 2 vials of 500 mg each
        receive(services, users, lot, esketamine=False, containers=2)
    services.chair.ledger.record_count(nurse, CountCreate(lot="LOT-A", counted_mg=Decimal(1000),
                                                          kind="initial"))
    c, _ = login("nurse")
    page = c.get("/ledger").text
    assert 'id="inventory-incomplete"' in page and "LOT-B" in page
    assert "initial inventory due" in page  # the partial count did not count as the inventory
    services.chair.ledger.record_count(nurse, CountCreate(lot="LOT-B", counted_mg=Decimal(1000),
                                                          kind="initial"))
    page = c.get("/ledger").text
    assert 'id="inventory-incomplete"' not in page and "biennial inventory due" in page
