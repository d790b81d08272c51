"""The Bulk Data `$export`-style endpoint: kick-off 202 + Content-Location, status, NDJSON files,
delete; identified data for admin and prescriber only; every step audited."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote

from kcoutcomes import build_hand_cohort
from sqlalchemy import select

from ketaclinic.store.tables import AuditEvent

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _audit(services, prefix):
    with services.db.transaction() as s:
        return [(a.action, a.username, a.outcome) for a in s.execute(
            select(AuditEvent).where(AuditEvent.action.like(f"{prefix}%"))
            .order_by(AuditEvent.id)).scalars()]


def test_a_prescriber_kicks_off_polls_and_downloads_every_file_of_the_export(services, login):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    c, csrf = login("prescriber")
    r = c.get("/api/fhir/$export", headers=ASYNC)
    assert r.status_code == 202, r.text
    status_url = r.headers["Content-Location"]
    assert "/api/fhir/$export-status/" in status_url
    r = c.get(status_url)
    assert r.status_code == 200
    manifest = r.json()
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    types = {o["type"]: o for o in manifest["output"]}
    assert {"Patient", "Encounter", "Observation", "MedicationAdministration"} <= set(types)
    assert types["Patient"]["count"] == 4
    for o in manifest["output"]:
        f = c.get(o["url"])
        assert f.status_code == 200
        assert f.headers["content-type"].startswith("application/fhir+ndjson")
        lines = f.text.splitlines()
        assert len(lines) == o["count"]
        assert {json.loads(line)["resourceType"] for line in lines} == {o["type"]}
    files = len(manifest["output"])
    actions = _audit(services, "export.fhir")
    assert actions.count(("export.fhir_bulk", "prescriber", "ok")) == 1
    assert actions.count(("export.fhir_file", "prescriber", "ok")) == files
    only = c.post("/api/fhir/$export?_type=Patient,Condition",
                  headers={**ASYNC, "X-CSRF-Token": csrf})
    assert only.status_code == 202
    manifest = c.get(only.headers["Content-Location"]).json()
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Condition"}
    assert c.delete(status_url, headers={"X-CSRF-Token": csrf}).status_code == 202
    assert c.get(status_url).status_code == 404
    assert ("export.fhir_delete", "prescriber", "ok") in _audit(services, "export.fhir")


def test_nurses_and_analysts_may_not_export_identified_data_and_jobs_stay_with_their_owner(
        services, login):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    for role in ("nurse", "analyst"):
        c, _ = login(role)
        assert c.get("/api/fhir/$export", headers=ASYNC).status_code == 403
    denied = [a for a in _audit(services, "export.fhir") if a[2] != "ok"]
    assert {u for _a, u, _o in denied} == {"nurse", "analyst"}
    p, _ = login("prescriber")
    status_url = p.get("/api/fhir/$export", headers=ASYNC).headers["Content-Location"]
    file_url = p.get(status_url).json()["output"][0]["url"]
    admin, _ = login("admin")
    assert admin.get(status_url).status_code == 404
    assert admin.get(file_url).status_code == 404
    assert p.get(status_url.rsplit("/", 1)[0] + "/../../etc").status_code == 404
    assert p.get(file_url.rsplit("/", 1)[0] + "/..%2Fowner.json").status_code == 404


def test_a_kick_off_without_respond_async_or_with_unknown_options_is_refused_clearly(
        services, login):
    c, _ = login("admin")
    before = _audit(services, "export.fhir_bulk")
    r = c.get("/api/fhir/$export")
    assert r.status_code in (400, 422) and "respond-async" in r.text
    for query in ("_outputFormat=text/csv", "_since=2026-01-01", "_type=Account"):
        r = c.get(f"/api/fhir/$export?{query}", headers=ASYNC)
        assert r.status_code in (400, 422), query
    assert _audit(services, "export.fhir_bulk") == before


def test_one_patients_record_comes_as_a_collection_or_a_transaction_bundle(services, login):
    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
    c, _ = login("nurse")
    tx = c.get(f"/api/patients/{ids['A']}/fhir", params={"type": "transaction"})
    assert tx.status_code == 200 and tx.json()["type"] == "transaction"
    assert all(e["request"]["method"] == "PUT" for e in tx.json()["entry"])
    assert c.get(f"/api/patients/{ids['A']}/fhir", params={"type": "batch"}).status_code == 422


def test_a_job_older_than_a_day_is_removed_when_the_next_export_starts(services, login, clock):
    c, _ = login("admin")
    first = c.get("/api/fhir/$export", headers=ASYNC).headers["Content-Location"]
    assert c.get(first).status_code == 200
    clock.advance(hours=23)
    c, _ = login("admin")  # a new session: the first one has expired
    kept = c.get("/api/fhir/$export", headers=ASYNC).headers["Content-Location"]
    assert c.get(first).status_code == 200
    clock.advance(hours=2)
    c, _ = login("admin")
    c.get("/api/fhir/$export", headers=ASYNC)
    assert c.get(first).status_code == 404 and c.get(kept).status_code == 200


def _export(c, query: str = "") -> dict[str, list[dict]]:
    """Kick off, poll and fetch every file: {type: [resources]}."""
    r = c.get(f"/api/fhir/$export{query}", headers=ASYNC)
    assert r.status_code == 202, r.text
    manifest = c.get(r.headers["Content-Location"]).json()
    out = {o["type"]: [json.loads(line) for line in c.get(o["url"]).text.splitlines()]
           for o in manifest["output"]}
    return {"manifest": manifest, **out}


def test_since_exports_only_the_resources_changed_after_the_instant(services, login, clock):
    from ketaclinic.schemas import WeightCreate
    from ketaclinic.services.audit.trail import SYSTEM

    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
    c, _ = login("prescriber")
    full = _export(c)
    assert len(full["Patient"]) == 4
    # The manifest's transactionTime is an instant a client can send back as _since.
    since = full["manifest"]["transactionTime"]
    assert since.endswith("Z")
    assert _export(c, f"?_since={since}")["manifest"]["output"] == []
    clock.advance(seconds=5)
    services.patients.add_weight(SYSTEM, ids["B"], WeightCreate(weight="71 kg"))
    changed = _export(c, f"?_since={since}")
    assert {o["type"] for o in changed["manifest"]["output"]} == {"Observation"}
    [weight] = changed["Observation"]
    assert weight["subject"]["reference"] == f"Patient/p-{ids['B']}"
    assert weight["valueQuantity"]["value"] == 71
    # An instant with another zone is the same moment; _type still narrows the changed set.
    local = (dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
             .astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat())
    assert len(_export(c, f"?_since={quote(local)}")["Observation"]) == 1
    assert _export(c, f"?_since={since}&_type=Patient")["manifest"]["output"] == []
    # Before the cohort was written: everything is "changed".
    everything = _export(c, "?_since=2025-12-31T00:00:00Z")
    assert {k: len(v) for k, v in everything.items() if k != "manifest"} == {
        k: len(v) for k, v in _export(c).items() if k != "manifest"}
    details = [d for (d,) in _details(services, "export.fhir_bulk")]
    assert any("since=" in d for d in details)


def test_since_exports_a_medication_stopped_after_the_instant_as_stopped(services, login, clock):
    """A stop changes an old row: an incremental export must carry it, or the receiving system
    keeps the patient on a medicine they no longer take."""
    from ketaclinic.schemas import MedicationCreate, MedicationStop
    from ketaclinic.services.audit.trail import SYSTEM

    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
    services.patients.add_medication(SYSTEM, ids["A"], MedicationCreate(name="sertraline",
                                                                        daily_dose_mg=100))
    c, _ = login("prescriber")
    clock.advance(seconds=5)
    since = _export(c)["manifest"]["transactionTime"]
    assert _export(c, f"?_since={since}")["manifest"]["output"] == []
    [med] = services.patients.get(SYSTEM, ids["A"]).medications
    clock.advance(seconds=5)
    services.patients.stop_medication(SYSTEM, ids["A"], med["id"],
                                      MedicationStop(reason="completed"))
    changed = _export(c, f"?_since={since}")
    assert {o["type"] for o in changed["manifest"]["output"]} == {"MedicationStatement"}
    [stopped] = changed["MedicationStatement"]
    assert stopped["id"] == f"ms-{med['id']}" and stopped["status"] == "stopped"


def _details(services, action):
    with services.db.transaction() as s:
        return list(s.execute(select(AuditEvent.detail).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).all())


def test_an_invalid_since_is_a_400_operation_outcome_and_starts_nothing(services, login):
    c, csrf = login("admin")
    before = _audit(services, "export.fhir_bulk")
    for bad in ("2026-01-01", "yesterday", "2026-11-02T14:00:00", "2026-13-01T00:00:00Z",
                "2026-02-30T10:00:00Z", "2026-11-02T25:00:00Z", "2026-11-02T14:00Z", ""):
        for r in (c.get(f"/api/fhir/$export?_since={quote(bad)}", headers=ASYNC),
                  c.post(f"/api/fhir/$export?_since={quote(bad)}",
                         headers={**ASYNC, "X-CSRF-Token": csrf})):
            assert r.status_code == 400, (bad, r.status_code, r.text)
            body = r.json()
            assert body["resourceType"] == "OperationOutcome", body
            assert "_since" in body["issue"][0]["diagnostics"]
    assert _audit(services, "export.fhir_bulk") == before
    assert not (services.ctx.settings.data_dir / "fhir-exports").exists() or not any(
        (services.ctx.settings.data_dir / "fhir-exports").iterdir())


def test_the_export_files_on_disk_are_encrypted_and_name_no_patient(services, login):
    with services.db.transaction() as s:
        build_hand_cohort(s, family_prefix="Zyxwenc")
    c, _ = login("prescriber")
    r = c.get("/api/fhir/$export", headers=ASYNC)
    manifest = c.get(r.headers["Content-Location"]).json()
    job = r.headers["Content-Location"].rsplit("/", 1)[-1]
    folder = services.ctx.settings.data_dir / "fhir-exports" / job
    stored = sorted(p for p in folder.iterdir() if p.name.endswith(".enc"))
    assert {p.name for p in stored} == {f"{o['type']}.ndjson.enc" for o in manifest["output"]}
    assert not list(folder.glob("*.ndjson"))  # no plain file, not even for a moment's reuse
    for path in folder.iterdir():
        raw = path.read_bytes()
        assert b"Zyxwenc" not in raw and b"zyxwenc" not in raw.lower(), path.name
        assert b"resourceType" not in raw or path.name in ("manifest.json",), path.name
    # Served decrypted, with the names in them.
    patients = c.get(next(o["url"] for o in manifest["output"] if o["type"] == "Patient")).text
    assert patients.count("Zyxwenc") == 4
    # A line moved to another place in the file no longer decrypts: refused, nothing sent.
    pfile = folder / "Patient.ndjson.enc"
    lines = pfile.read_text().splitlines()
    pfile.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    r = c.get(next(o["url"] for o in manifest["output"] if o["type"] == "Patient"))
    assert r.status_code in (400, 422) and "Zyxwenc" not in r.text


def test_a_job_past_the_retention_setting_is_deleted_when_touched(
        services, users, services_for, clock, tmp_path, app_for):
    from fastapi.testclient import TestClient
    from kctest import USERS

    svc = services_for(export_retention_hours=2, data_dir=tmp_path)
    with TestClient(app_for(svc), raise_server_exceptions=False) as c:
        def login():
            r = c.post("/api/auth/login", json={"username": "admin",
                                                "password": USERS["admin"][3]})
            assert r.status_code == 200

        login()
        status = c.get("/api/fhir/$export", headers=ASYNC).headers["Content-Location"]
        job = status.rsplit("/", 1)[-1]
        assert c.get(status).status_code == 200
        assert (tmp_path / "fhir-exports" / job).is_dir()
        clock.advance(minutes=110)
        login()
        assert c.get(status).status_code == 200
        clock.advance(minutes=11)
        login()
        assert c.get(status).status_code == 404  # touched after 2 h: gone from the disk
        assert not (tmp_path / "fhir-exports" / job).exists()
