"""Rule-set governance on every backend (issue 12 item 6): tighten freely; loosening a hard limit
in effect needs a second person with the medical-director flag; an incomplete rule set is never
imported or activated."""

from __future__ import annotations

import datetime as dt

from kctest import csrf_from
from sqlalchemy import func, select

from ketaclinic.clinical.rulesets import load_bundled_ruleset
from ketaclinic.schemas import DiagnosisCreate, PatientCreate
from ketaclinic.services.audit import SYSTEM
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_dosing import ActiveRuleSet, RuleSetApproval, RuleSetVersion

IV_HARD = ("mg-per-kg-hard-max", "mg-per-kg-hard-min", "total-mg-hard-max",
           "rate-mg-per-kg-per-h-hard-max", "change-pct-hard-max")
FOUR_OVER_TEN = {"route": "iv", "mg_per_kg": "4", "infusion_min": "10",
                 "concentration_mg_per_ml": "1", "weight_basis": "actual"}


def _patient(services) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="GOV-1", family_name="Gov", given_name="Rule", birth_date=dt.date(1975, 3, 3),
        sex="male", weight="80 kg"))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(
        code="F32.2", display="Single episode, severe"))
    return p.id


def _bare_iv() -> dict:
    doc = load_bundled_ruleset("ketamine-iv").to_dict()
    doc["id"], doc["title"] = "bare-iv", "IV without hard limits"
    for key in IV_HARD:
        del doc["dose_limits"]["iv"][key]
    return doc


def _count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def _refused(services, action: str) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return s.execute(select(func.count(AuditEvent.id)).where(
            AuditEvent.action == action, AuditEvent.outcome == "refused")).scalar_one()


def test_the_issue_reproduction_a_rule_set_without_hard_limits_is_never_in_effect(
        services, users, login):
    """Written first: one admin imported a rule set without the hard limits, activated it, and
    prescribers then saved 4 mg/kg over 10 min with no finding."""
    pid = _patient(services)
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    r = admin.post("/api/rulesets/import", json=_bare_iv(), headers=h)
    assert r.status_code == 422, r.text
    assert "lacks hard limits" in r.json()["detail"]
    assert "dose_limits.iv.mg-per-kg-hard-max" in r.json()["detail"]
    assert _count(services, RuleSetVersion) == 0 and _refused(services, "ruleset.import") == 1
    # A copy stored before governance existed cannot be activated either.
    doc = load_bundled_ruleset("ketamine-iv").to_dict()
    with services.db.transaction() as s:
        bare = _bare_iv()
        bare["version"] = "1"
        from ketaclinic.clinical.rulesets import load_ruleset

        s.add(RuleSetVersion(ruleset_id="bare-iv", seq=1, version="1", treatment="ketamine-iv",
                             title="old", based_on="", change_note="stored long ago",
                             document=load_ruleset(bare).document, created_by=None,
                             created_at=dt.datetime(2026, 1, 1)))
    r = admin.put("/api/rulesets/active/ketamine-iv", json={"ruleset_id": "bare-iv"}, headers=h)
    assert r.status_code == 422 and "lacks hard limits" in r.json()["detail"]
    assert _count(services, ActiveRuleSet) == 0
    # The prescriber's 4 mg/kg over 10 min meets the hard limits in effect.
    pres, pcsrf = login("prescriber")
    r = pres.post(f"/api/patients/{pid}/doses", json=FOUR_OVER_TEN,
                  headers={"X-CSRF-Token": pcsrf})
    assert r.status_code == 422
    hard = {c["rule"] for c in r.json()["checks"] if c["level"] == "hard"}
    assert {"mg-per-kg", "rate"} <= hard
    assert doc["dose_limits"]["iv"]["mg-per-kg-hard-max"]["value"] == 1.0


def test_tightening_an_active_set_is_free_loosening_needs_a_medical_director(
        services, users, login):
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    assert admin.post("/api/rulesets/copy", json={"source_id": "ketamine-iv",
                                                  "new_id": "our-iv"}, headers=h).status_code == 201
    assert admin.put("/api/rulesets/active/ketamine-iv", json={"ruleset_id": "our-iv"},
                     headers=h).status_code == 200
    tighter = {"changes": {"dose_limits.iv.mg-per-kg-hard-max": "0.9"}, "note": "stricter",
               "version": 1}
    r = admin.put("/api/rulesets/our-iv/values", json=tighter, headers=h)
    assert r.status_code == 200, r.text
    looser = {"changes": {"dose_limits.iv.mg-per-kg-hard-max": "1.5"}, "note": "titrating",
              "version": 2}
    r = admin.put("/api/rulesets/our-iv/values", json=looser, headers=h)
    assert r.status_code == 422 and "medical-director flag must co-sign" in r.json()["detail"]
    assert "dose_limits.iv.mg-per-kg-hard-max: 0.9 → 1.5" in r.json()["detail"]
    # Not the requester, not without the flag, not with a wrong password.
    pres = users["prescriber"]
    for who, password, needle in (
            ("admin", "admin-password-1", "not you"),
            (pres.username, "prescriber-password-1", "medical-director flag"),
            (pres.username, "wrong", "not accepted")):
        r = admin.put("/api/rulesets/our-iv/values", json=looser, headers={
            **h, "X-Cosign-Username": who, "X-Cosign-Password": password})
        assert r.status_code == 422 and needle in r.json()["detail"], (who, r.text)
    assert _count(services, RuleSetApproval) == 0
    services.auth.set_medical_director(SYSTEM, pres.id, True)
    r = admin.put("/api/rulesets/our-iv/values", json=looser, headers={
        **h, "X-Cosign-Username": pres.username, "X-Cosign-Password": "prescriber-password-1"})
    assert r.status_code == 200, r.text
    view = admin.get("/api/rulesets/our-iv").json()
    assert view["approvals"][0]["by"].startswith("Dr") and view["approvals"][0]["action"] == "edit"
    assert view["approvals"][0]["loosened"] == [
        {"path": "dose_limits.iv.mg-per-kg-hard-max", "old": 0.9, "new": 1.5}]
    page = admin.get("/rulesets/our-iv").text
    assert "Loosened hard limits" in page and "co-signed by" in page
    with services.db.transaction() as s:
        loosen = s.execute(select(AuditEvent.detail).where(
            AuditEvent.action == "ruleset.loosen")).scalars().all()
    assert len(loosen) == 1 and "our-iv@3" in loosen[0]


def test_activating_a_looser_set_needs_a_co_signature_on_the_api_and_the_page(
        services, users, login):
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    admin.post("/api/rulesets/copy", json={"source_id": "esketamine-us", "new_id": "long-window"},
               headers=h)
    # Editing a set that is not in effect is free ...
    r = admin.put("/api/rulesets/long-window/values", headers=h, json={
        "changes": {"parameters.discharge-vitals-window-min": "45"}, "note": "x", "version": 1})
    assert r.status_code == 200, r.text
    # ... putting it in effect is not.
    r = admin.put("/api/rulesets/active/esketamine", json={"ruleset_id": "long-window"},
                  headers=h)
    assert r.status_code == 422 and "parameters.discharge-vitals-window-min: 15 → 45" in r.text
    page = admin.get("/rulesets")
    r = admin.post("/rulesets/active", data={"csrf_token": csrf_from(page.text),
                                             "treatment": "esketamine",
                                             "ruleset_id": "long-window"})
    assert r.status_code == 422 and "co-sign" in r.text
    services.auth.set_medical_director(SYSTEM, users["prescriber"].id, True)
    r = admin.post("/rulesets/active", data={
        "csrf_token": csrf_from(page.text), "treatment": "esketamine",
        "ruleset_id": "long-window", "cosign_username": "prescriber",
        "cosign_password": "prescriber-password-1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    with services.db.transaction() as s:
        assert s.get(ActiveRuleSet, "esketamine").ruleset_id == "long-window"
        approval = s.execute(select(RuleSetApproval)).scalar_one()
        assert approval.action == "activate" and approval.approved_by == users["prescriber"].id


def test_a_new_version_of_the_active_set_by_import_is_governed_too(services, users, login):
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    admin.post("/api/rulesets/copy", json={"source_id": "ketamine-iv", "new_id": "imp-iv"},
               headers=h)
    admin.put("/api/rulesets/active/ketamine-iv", json={"ruleset_id": "imp-iv"}, headers=h)
    doc = admin.get("/api/rulesets/imp-iv").json()["document"]
    doc["infusion_concentrations"]["iv"].append({
        **doc["infusion_concentrations"]["iv"][0], "id": "ketamine-50", "label": "50 mg/mL",
        "value": 5})
    r = admin.post("/api/rulesets/import", json=doc, headers=h)
    assert r.status_code == 422 and "infusion_concentrations.iv" in r.json()["detail"]
    del doc["dose_limits"]["iv"]["volume-ml-hard-max"]
    r = admin.post("/api/rulesets/import", json=doc, headers=h)
    assert r.status_code == 422 and "lacks hard limits" in r.json()["detail"]
    assert admin.get("/api/rulesets/imp-iv").json()["version"] == "1"


def test_only_an_administrator_sets_the_medical_director_flag_on_the_page(services, users,
                                                                           login):
    admin, _ = login("admin")
    page = admin.get("/admin/users").text
    pid = users["prescriber"].id
    r = admin.post(f"/admin/users/{pid}/medical-director",
                   data={"csrf_token": csrf_from(page), "flag": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert services.auth.list_users(SYSTEM)[[u.id for u in services.auth.list_users(
        SYSTEM)].index(pid)].medical_director
    pres, pcsrf = login("prescriber")
    r = pres.post(f"/admin/users/{pid}/medical-director", data={"csrf_token": pcsrf,
                                                                "flag": "0"})
    assert r.status_code == 403
    with services.db.transaction() as s:
        details = s.execute(select(AuditEvent.detail).where(
            AuditEvent.action == "user.update")).scalars().all()
    assert any("medical director set" in d for d in details)


def test_the_command_line_creates_a_medical_director_and_sets_and_clears_the_flag(
        services, users, capsys):
    from kctest import TEST_SECRET

    from ketaclinic.cli import main

    env = {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATABASE_URL": services.settings.database_url}
    assert main(["user", "create", "md", "--role", "prescriber", "--full-name", "Dr Med",
                 "--password", "md-password-12345", "--medical-director"], environ=env) == 0
    assert "(medical director)" in capsys.readouterr().out
    assert main(["user", "medical-director", "nurse"], environ=env) == 2  # prescribers only
    assert main(["user", "medical-director", "prescriber"], environ=env) == 0
    assert main(["user", "medical-director", "md", "--off"], environ=env) == 0
    flags = {u.username: u.medical_director for u in services.auth.list_users(SYSTEM)}
    assert flags["prescriber"] is True and flags["md"] is False and flags["nurse"] is False
    assert main(["user", "medical-director", "nobody"], environ=env) == 4  # not found
