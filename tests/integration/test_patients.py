"""The patient registry over the API and the pages, on every backend."""

from __future__ import annotations

import threading

from bs4 import BeautifulSoup
from kctest import csrf_from, page_error
from sqlalchemy import func, select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import AuditEvent, Patient, PatientAmendment, PatientWeight

JO = {"mrn": "T-100", "family_name": "Doe", "given_name": "Jo", "birth_date": "1980-04-30",
      "sex": "female", "weight": "82 kg"}


def count(services, model) -> int:
    with services.db.transaction() as s:
        return s.execute(select(func.count(model.id))).scalar_one()


def actions(services, patient_id=None) -> list[str]:
    with services.db.transaction() as s:
        stmt = select(AuditEvent.action).order_by(AuditEvent.id)
        if patient_id is not None:
            stmt = stmt.where(AuditEvent.patient_id == patient_id)
        return list(s.execute(stmt).scalars())


def test_a_nurse_registers_finds_and_views_a_patient(login, services):
    c, csrf = login("nurse")
    r = c.post("/api/patients", json=JO, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    found = c.get("/api/patients", params={"q": "jo doe"}).json()
    assert [p["id"] for p in found["items"]] == [pid]
    assert c.get("/api/patients", params={"mrn": "t-100"}).json()["total"] == 1
    assert c.get("/api/patients", params={"birth_date": "1980-04-30"}).json()["total"] == 1
    assert c.get("/api/patients", params={"q": "nobody"}).json()["total"] == 0
    detail = c.get(f"/api/patients/{pid}").json()
    assert detail["weights"][0]["weight_kg"] == "82.00" or float(
        detail["weights"][0]["weight_kg"]) == 82
    # Each search that showed the patient is audited against the patient (not the "nobody" one).
    assert actions(services, pid) == ["patient.create", *["patient.search"] * 3, "patient.view"]


def test_every_search_and_view_is_audited(login, services):
    c, csrf = login("prescriber")
    pid = c.post("/api/patients", json=JO, headers={"X-CSRF-Token": csrf}).json()["id"]
    c.get("/patients?q=doe")
    c.get(f"/patients/{pid}")
    c.get(f"/patients/{pid}/history")
    trail = actions(services)
    assert trail.count("patient.search") == 1
    assert trail.count("patient.view") == 2  # the detail page and the history page header
    assert "patient.history" in trail


def test_an_edit_keeps_the_old_value_in_the_history(login, services):
    c, csrf = login("nurse")
    pid = c.post("/api/patients", json=JO, headers={"X-CSRF-Token": csrf}).json()["id"]
    body = {k: v for k, v in JO.items() if k != "weight"} | {"family_name": "Doe-Smith",
                                                              "version": 1}
    r = c.put(f"/api/patients/{pid}", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["version"] == 2
    history = c.get(f"/api/patients/{pid}/history").json()["items"]
    assert history[0]["field"] == "family_name"
    assert (history[0]["old_value"], history[0]["new_value"]) == ("Doe", "Doe-Smith")


def test_a_stale_edit_is_rejected_and_changes_nothing(login, services):
    c, csrf = login("nurse")
    pid = c.post("/api/patients", json=JO, headers={"X-CSRF-Token": csrf}).json()["id"]
    base = {k: v for k, v in JO.items() if k != "weight"}
    first = c.put(f"/api/patients/{pid}", json=base | {"given_name": "Joanna", "version": 1},
                  headers={"X-CSRF-Token": csrf})
    assert first.status_code == 200
    stale = c.put(f"/api/patients/{pid}", json=base | {"given_name": "Josephine", "version": 1},
                  headers={"X-CSRF-Token": csrf})
    assert stale.status_code == 409
    assert "changed since you opened it" in stale.json()["detail"]
    assert c.get(f"/api/patients/{pid}").json()["given_name"] == "Joanna"


def test_a_stale_edit_in_the_web_form_shows_both_versions(login, services):
    c, _ = login("nurse")
    created, _ = services.patients.create(SYSTEM, PatientCreate(**JO))
    form_page = c.get(f"/patients/{created.id}/edit")
    csrf = csrf_from(form_page.text)
    fields = {k: v for k, v in JO.items() if k != "weight"} | {"csrf_token": csrf}
    assert c.post(f"/patients/{created.id}/edit", data=fields | {"given_name": "A",
                  "version": "1"}, follow_redirects=False).status_code == 303
    r = c.post(f"/patients/{created.id}/edit", data=fields | {"given_name": "B", "version": "1"})
    assert r.status_code == 409
    assert "Someone else changed this record" in r.text
    assert services.patients.get(SYSTEM, created.id).given_name == "A"


def test_a_resubmitted_create_with_the_same_key_makes_one_patient(login, services):
    c, csrf = login("nurse")
    headers = {"X-CSRF-Token": csrf, "Idempotency-Key": "abc-123"}
    first = c.post("/api/patients", json=JO, headers=headers)
    again = c.post("/api/patients", json=JO, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert count(services, Patient) == 1


def test_a_double_submitted_web_form_makes_one_patient(login, services):
    c, _ = login("nurse")
    page = c.get("/patients/new")
    key = page.text.split('name="idempotency_key" value="')[1].split('"')[0]
    form = {k: v for k, v in JO.items()} | {"csrf_token": csrf_from(page.text),
                                            "idempotency_key": key}
    for _ in range(2):
        assert c.post("/patients/new", data=form, follow_redirects=False).status_code == 303
    assert count(services, Patient) == 1


def test_html_in_a_patient_name_is_stored_and_shown_as_text(login, services):
    c, csrf = login("nurse")
    evil = "<script>alert(1)</script>"
    pid = c.post("/api/patients", json=JO | {"given_name": evil},
                 headers={"X-CSRF-Token": csrf}).json()["id"]
    assert c.get(f"/api/patients/{pid}").json()["given_name"] == evil
    page = c.get(f"/patients/{pid}")
    soup = BeautifulSoup(page.text, "html.parser")
    assert not [s for s in soup.find_all("script") if "alert" in (s.string or "")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert evil in soup.h1.get_text()


def test_a_weight_in_pounds_or_without_a_unit_is_refused(login, services):
    c, csrf = login("nurse")
    for weight in ("180 lb", "180", "82 stone", "-5 kg", "0 kg"):
        r = c.post("/api/patients", json=JO | {"weight": weight}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 422, weight
        assert "weight" in r.json()["detail"]
    assert count(services, Patient) == 0
    pid = c.post("/api/patients", json=JO, headers={"X-CSRF-Token": csrf}).json()["id"]
    r = c.post(f"/api/patients/{pid}/weights", json={"weight": "176 lbs"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and "pounds" in r.json()["detail"]
    assert count(services, PatientWeight) == 1


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(login, services):
    c, csrf = login("nurse")
    h = {"X-CSRF-Token": csrf}
    cases = [
        c.post("/api/patients", content=b"", headers=h | {"content-type": "application/json"}),
        c.post("/api/patients", content=b"{not json", headers=h | {
            "content-type": "application/json"}),
        c.post("/api/patients", content=b'{"mrn": "\xff\xfe"}', headers=h | {
            "content-type": "application/json"}),
        c.post("/api/patients", json=JO | {"birth_date": "yesterday"}, headers=h),
        c.post("/api/patients", json=JO | {"birth_date": "2999-01-01"}, headers=h),
        c.post("/api/patients", json=JO | {"family_name": ""}, headers=h),
        c.post("/api/patients", json=JO | {"family_name": "x" * 101}, headers=h),
        c.post("/api/patients", json=JO | {"sex": 7}, headers=h),
        c.post("/api/patients", json=JO | {"unexpected": 1}, headers=h),
        c.post("/api/patients", json=JO | {"given_name": "a\x00b"}, headers=h),
        c.post("/api/patients", content=b"x" * 2_000_000, headers=h | {
            "content-type": "application/json"}),
        c.post("/patients/new", content=b"csrf_token=" + csrf.encode() + b"&family_name=%ff%fe",
               headers={"content-type": "application/x-www-form-urlencoded"}),
        c.get("/api/patients/not-a-number"),
        c.get("/api/patients", params={"limit": "many"}),
        c.get("/api/patients/999999"),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
        assert "Traceback" not in r.text
    assert cases[10].status_code == 413
    assert "UTF-8" in cases[11].text
    assert count(services, Patient) == 0


def test_an_analyst_is_refused_a_named_patient_and_the_refusal_is_audited(login, services):
    created, _ = services.patients.create(SYSTEM, PatientCreate(**JO))
    c, _ = login("analyst")
    assert c.get(f"/api/patients/{created.id}").status_code == 403
    assert c.get(f"/patients/{created.id}").status_code == 403
    assert c.get("/api/patients").status_code == 403
    with services.db.transaction() as s:
        denied = s.execute(select(AuditEvent).where(AuditEvent.outcome == "denied")).scalars()
        assert {(e.action, e.patient_id) for e in denied} == {
            ("patient.view", created.id), ("patient.search", None)}


def test_the_web_form_shows_what_was_wrong(login, services):
    c, _ = login("nurse")
    page = c.get("/patients/new")
    form = JO | {"csrf_token": csrf_from(page.text), "weight": "150 lb"}
    r = c.post("/patients/new", data=form)
    assert r.status_code == 422
    assert "weight" in r.text and "pounds" in r.text
    r = c.post("/patients/new", data=form | {"weight": "80 kg", "birth_date": "2999-01-01"})
    assert r.status_code == 422 and "birth_date: is in the future" in r.text
    assert 'value="Doe"' in r.text  # what was typed is kept
    assert count(services, Patient) == 0


def test_concurrent_creates_never_fail_with_database_is_locked(services):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                services.patients.create(SYSTEM, PatientCreate(
                    mrn=f"C-{n}-{i}", family_name="Load", given_name=f"W{n}",
                    birth_date="1990-01-01", sex="other"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(services, Patient) == 60
    assert services.audit_log.verify().ok


# --- one input model: the JSON body and the form are one PatientCreate / PatientUpdate ------
TYPED = {"family_name": "  Same-Person ", "given_name": "Alex", "birth_date": "1975-06-07",
         "sex": "other", "phone": "+1 (555) 010-2030", "email": "alex@example.org",
         "address": "1 Clinic Road", "notes": "Prefers mornings.\nInterpreter: no.",
         "weight": "81.5 kg"}
EDITED = {"given_name": "Alexis", "phone": "", "notes": "Prefers afternoons."}


def _stored_patient(services, patient_id: int) -> dict:  # type: ignore[no-untyped-def]
    """A patient as stored, with its weights and amendments, without what differs by nature
    (ids, the MRN each needs of its own, times)."""
    with services.db.transaction() as s:
        p = s.get(Patient, patient_id)
        row = {c.key: getattr(p, c.key) for c in Patient.__table__.columns}
        row["weights"] = [(w.measured_on, w.weight_kg) for w in s.execute(
            select(PatientWeight).where(PatientWeight.patient_id == patient_id)).scalars()]
        row["amendments"] = [(a.field, a.old_value, a.new_value, a.version) for a in s.execute(
            select(PatientAmendment).where(PatientAmendment.patient_id == patient_id)
            .order_by(PatientAmendment.id)).scalars()]
    for key in ("id", "mrn", "created_at", "updated_at"):
        row.pop(key)
    return row


def test_the_json_body_and_the_form_register_and_amend_the_same_patient(login, services):
    """One input model: the same typed registration and edit, sent as JSON or as the form,
    store the same record, weight and history."""
    c, csrf = login("nurse")
    stored = []
    for how in ("form", "json"):  # the form first: it asks about a same-name patient
        mrn = f"SAME-{how}"
        if how == "json":
            r = c.post("/api/patients", json=TYPED | {"mrn": mrn}, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            edit = {k: v for k, v in TYPED.items() if k != "weight"} | EDITED | {
                "mrn": mrn, "version": 1}
            r = c.put(f"/api/patients/{pid}", json=edit, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text
        else:
            r = c.post("/patients/new", data=TYPED | {"mrn": mrn, "csrf_token": csrf},
                       follow_redirects=False)
            assert r.status_code == 303, r.text
            pid = int(r.headers["location"].rsplit("/", 1)[1])
            page = c.get(f"/patients/{pid}/edit").text
            version = page.split('name="version" value="')[1].split('"')[0]
            edit = {k: v for k, v in TYPED.items() if k != "weight"} | EDITED | {
                "mrn": mrn, "version": version, "csrf_token": csrf}
            r = c.post(f"/patients/{pid}/edit", data=edit, follow_redirects=False)
            assert r.status_code == 303, r.text
        stored.append(_stored_patient(services, pid))
    assert stored[0] == stored[1]
    assert stored[0]["family_name"] == "Same-Person" and stored[0]["version"] == 2
    assert [a[0] for a in stored[0]["amendments"]] == ["given_name", "phone", "notes"]


BAD_PATIENT = [
    ({"birth_date": "2999-01-01"}, "birth_date: is in the future"),
    ({"sex": "robot"}, "sex: Input should be"),
    ({"mrn": "A B"}, "mrn: MRN must be 1–32 letters, digits or '-'"),
    ({"email": "not-an-address"}, "email: is not an e-mail address"),
    ({"given_name": "a\x07b"}, "given_name: contains control or invalid characters"),
    ({"family_name": "x" * 101}, "family_name: String should have at most 100 characters"),
    ({"family_name": "   "}, "family_name: String should have at least 1 character"),
    ({"weight": "180 lb"}, "weight:"),
    ({"birth_date": "1800-01-01", "phone": "call me"}, "birth_date: is before 1900; phone:"),
]


def test_bad_patient_input_reads_the_same_on_the_form_and_the_api(login, services):
    c, csrf = login("nurse")
    pid = c.post("/api/patients", json=JO, headers={"X-CSRF-Token": csrf}).json()["id"]
    base = {k: v for k, v in JO.items() if k != "weight"}
    for bad, needle in BAD_PATIENT:
        api = c.post("/api/patients", json=JO | {"mrn": "T-200"} | bad,
                     headers={"X-CSRF-Token": csrf})
        page = c.post("/patients/new", data=JO | {"mrn": "T-200", "csrf_token": csrf} | bad)
        assert api.status_code == page.status_code == 422, (bad, api.text)
        assert api.json()["detail"] == page_error(page.text), bad
        assert api.json()["detail"].startswith(needle), (bad, api.json()["detail"])
        if "weight" in bad:
            continue  # a weight is given at registration; an edit does not take one
        api = c.put(f"/api/patients/{pid}", json=base | {"version": 1} | bad,
                    headers={"X-CSRF-Token": csrf})
        page = c.post(f"/patients/{pid}/edit",
                      data=base | {"version": "1", "csrf_token": csrf} | bad)
        assert api.status_code == page.status_code == 422, (bad, api.text)
        assert api.json()["detail"] == page_error(page.text), bad
    assert count(services, Patient) == 1
    assert c.get(f"/api/patients/{pid}").json()["version"] == 1
