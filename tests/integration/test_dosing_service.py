"""Screening, dose orders and rule sets through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from kcchain import screen_ok
from sqlalchemy import func, select

from ketaclinic.clinical.rulesets import load_bundled_ruleset
from ketaclinic.schemas import (
    AllergyCreate,
    DiagnosisCreate,
    MedicationCreate,
    PatientCreate,
    WeightCreate,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.dosing.inputs import DoseInput
from ketaclinic.services.dosing.service import DoseBlocked
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ketaclinic.store.tables import AuditEvent, PatientAmendment, PatientWeight
from ketaclinic.store.tables_dosing import DoseOrder, DoseOverride

dose_request = DoseInput.model_validate  # the dose request as the JSON body or the form gives it

TRIALS = [
    {"drug": "escitalopram", "dose_mg": 20, "weeks": 8, "improvement_pct": 10,
     "current_episode": True},
    {"drug": "venlafaxine", "dose_mg": 225, "weeks": 10, "response": "minimal",
     "current_episode": True},
]


def actor(users, role):  # type: ignore[no-untyped-def]
    return users[role].actor


def make_patient(services, weight="80 kg", mrn="DOS-1", birth=dt.date(1980, 5, 1)) -> int:
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Dose", given_name="Test", birth_date=birth, sex="female",
        weight=weight))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(
        code="F33.2", display="Recurrent depressive disorder, severe"))
    return p.id


def iv(mg_per_kg="0.5", **extra):  # type: ignore[no-untyped-def]
    data = {"route": "iv", "mg_per_kg": mg_per_kg, "infusion_min": "60",
            "concentration_mg_per_ml": "1"}
    data.update(extra)
    return data


def test_screening_uses_facts_and_registry_and_records_the_rule_set(services, users):
    pid = make_patient(services)
    services.patients.add_medication(SYSTEM, pid, MedicationCreate(
        name="Lorazepam", drug_class="benzodiazepine", daily_dose_mg=4))
    services.dosing.save_facts(actor(users, "nurse"), pid, {
        "antidepressant_trials": TRIALS, "episode_duration_months": 18,
        "symptom_severity": "severe"}, None)
    result = services.dosing.screen(actor(users, "prescriber"), pid, "ketamine-iv")
    assert result.rule_set == load_bundled_ruleset("ketamine-iv").ref
    assert result.adequate_failed_trials == 2
    assert result.maudsley_score is not None
    rules = {f["rule"]: f for f in result.findings}
    assert rules["ix-benzodiazepine"]["level"] == "soft"  # 4 mg lorazepam = 40 mg diazepam
    assert result.decision == "review"
    assert result.expires_on > result.screened_on
    history = services.dosing.list_screenings(actor(users, "nurse"), pid)
    assert [h.id for h in history] == [result.id]


def test_a_ketamine_allergy_makes_the_patient_ineligible(services, users):
    pid = make_patient(services)
    services.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance="Ketamine"))
    result = services.dosing.screen(actor(users, "prescriber"), pid, "esketamine")
    assert result.decision == "ineligible"
    assert any(f["values"].get("condition") == "hypersensitivity_ketamine"
               for f in result.findings)


@pytest.mark.parametrize("substance", ["Spravato", "KETALAR", "esketamine hydrochloride",
                                       "Ketanest S"])
def test_an_allergy_recorded_under_a_brand_or_salt_name_makes_the_patient_ineligible(
        services, users, substance):
    pid = make_patient(services)
    services.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance=substance))
    result = services.dosing.screen(actor(users, "prescriber"), pid, "esketamine")
    assert result.decision == "ineligible"
    assert any(f["values"].get("condition") == "hypersensitivity_ketamine"
               for f in result.findings)


def test_a_diagnosis_outside_icd10_is_the_indication_only_when_its_label_says_so_unnegated(
        services, users):
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="DOS-SCT", family_name="Dose", given_name="Snomed", birth_date=dt.date(1980, 5, 1),
        sex="female", weight="80 kg"))
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(
        system="snomed", code="197480006", display="Anxiety disorder without depression"))
    def indication(result):  # type: ignore[no-untyped-def]
        return next(f for f in result.findings if f["rule"] == "depressive-episode")

    first = services.dosing.screen(actor(users, "prescriber"), p.id, "esketamine")
    assert (first.decision, indication(first)["level"]) == ("ineligible", "hard")
    services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(
        system="snomed", code="370143000", display="Major depressive disorder"))
    second = services.dosing.screen(actor(users, "prescriber"), p.id, "esketamine")
    assert indication(second)["level"] == "ok"
    assert indication(second)["values"]["codes"] == ["370143000"]


def test_a_nurse_cannot_screen_and_the_denial_is_audited(services, users):
    pid = make_patient(services)
    with pytest.raises(PermissionDenied):
        services.dosing.screen(actor(users, "nurse"), pid, "ketamine-iv")
    with services.db.transaction() as s:
        denied = s.execute(select(AuditEvent).where(AuditEvent.outcome == "denied")).scalars()
        assert any(e.action == "screening.create" and e.patient_id == pid for e in denied)


def test_facts_are_amendable_with_history_and_stale_versions_conflict(services, users):
    pid = make_patient(services)
    nurse = actor(users, "nurse")
    v1 = services.dosing.save_facts(nurse, pid, {"ect_used": True}, None)
    v2 = services.dosing.save_facts(nurse, pid, {"ect_used": False, "pregnant": True}, v1)
    assert v2 == v1 + 1
    with pytest.raises(Conflict):
        services.dosing.save_facts(nurse, pid, {"ect_used": True}, v1)
    facts, version = services.dosing.get_facts(nurse, pid)
    assert facts["pregnant"] is True and version == v2
    with services.db.transaction() as s:
        rows = s.execute(select(PatientAmendment).where(
            PatientAmendment.field == "clinical_facts")).scalars().all()
        assert len(rows) == 2 and '"ect_used": true' in rows[1].old_value


def test_bad_facts_are_refused_with_a_reason(services, users):
    pid = make_patient(services)
    with pytest.raises(InvalidInput, match="weeks"):
        services.dosing.save_facts(actor(users, "nurse"), pid, {
            "antidepressant_trials": [{"drug": "x", "weeks": -1}]}, None)
    with pytest.raises(InvalidInput, match="unknown"):
        services.dosing.save_facts(actor(users, "nurse"), pid, {"colour": "red"}, None)


def test_a_standard_iv_dose_is_calculated_and_saved_with_the_rule_set(services, users):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    record, created = services.dosing.save(actor(users, "prescriber"), pid,
                                           dose_request(iv()))
    assert created and record.dose_mg == 40.0 and record.rate_ml_per_h == 40.0
    assert record.rule_set == load_bundled_ruleset("ketamine-iv").ref
    assert services.dosing.list_doses(actor(users, "nurse"), pid)[0].id == record.id


def test_a_soft_finding_needs_a_coded_reason_and_text_which_are_stored(services, users):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    pres = actor(users, "prescriber")
    with pytest.raises(DoseBlocked) as blocked:
        services.dosing.save(pres, pid, dose_request(iv("0.8")))
    assert "mg-per-kg" in blocked.value.missing
    with pytest.raises(DoseBlocked):
        services.dosing.save(pres, pid, dose_request({**iv("0.8"), "overrides": [
            {"rule": "mg-per-kg", "reason_code": "not-a-code", "free_text": "x"}]}))
    record, _ = services.dosing.save(pres, pid, dose_request({**iv("0.8"), "overrides": [
        {"rule": "mg-per-kg", "reason_code": "titration-per-response",
         "free_text": "partial response at 0.75"}]}))
    assert record.overrides[0]["reason_code"] == "titration-per-response"
    assert record.overrides[0]["user"] == "prescriber"
    assert float(record.overrides[0]["limit"]) == 0.75


def test_a_hard_limit_blocks_every_role_including_admin(services, users):
    pid = make_patient(services)
    for role in ("prescriber", "admin", "nurse"):
        with pytest.raises((DoseBlocked, PermissionDenied)):
            services.dosing.save(actor(users, role), pid, dose_request(iv("3")))
    with services.db.transaction() as s:
        assert s.execute(select(func.count()).select_from(DoseOrder)).scalar_one() == 0
        blocked = s.execute(select(AuditEvent).where(AuditEvent.outcome == "blocked")).scalars()
        assert any(e.action == "dose.create" for e in blocked)


def test_a_stale_weight_forces_re_entry_which_then_is_recorded(services, users, clock):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    clock.advance(days=60)
    pres = actor(users, "prescriber")
    plan = services.dosing.check(pres, pid, dose_request(iv()))
    assert plan.result.reentry_required
    assert any(f.rule == "weight-stale" for f in plan.result.checks)
    record, _ = services.dosing.save(pres, pid, dose_request(iv(weight_reentry="82 kg")))
    assert record.weight_kg == 82.0
    with services.db.transaction() as s:
        weights = s.execute(select(PatientWeight).where(PatientWeight.patient_id == pid)
                            ).scalars().all()
        assert any(float(w.weight_kg) == 82.0 and w.measured_on == clock().date()
                   for w in weights)


def test_a_weight_change_over_ten_percent_stops_until_the_new_weight_is_confirmed(
        services, users, clock):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    pres = actor(users, "prescriber")
    services.dosing.save(pres, pid, dose_request(iv()))
    clock.advance(days=7)
    services.patients.add_weight(SYSTEM, pid, WeightCreate(weight="92 kg"))
    plan = services.dosing.check(pres, pid, dose_request(iv()))
    assert any(f.rule == "weight-changed" and f.level.value == "hard"
               for f in plan.result.checks)
    confirmed = services.dosing.check(pres, pid, dose_request(iv(weight_reentry="92 kg")))
    assert not confirmed.result.blocked


def test_pounds_are_refused_as_a_re_entered_weight():
    with pytest.raises(InvalidInput, match="pounds"):
        dose_request(iv(weight_reentry="180 lb"))
    with pytest.raises(InvalidInput, match="without a unit"):
        dose_request(iv("0.5mg"))


def test_esketamine_dose_follows_the_label_phase(services, users):
    pid = make_patient(services)
    screen_ok(services, users, pid, "esketamine")
    pres = actor(users, "prescriber")
    plan = services.dosing.check(pres, pid, dose_request(
        {"route": "intranasal", "phase": "induction", "session_number": "1"}))
    assert plan.dose_mg == 56 and plan.devices == 2
    assert plan.pk_query == "route=nasal&dose_mg=56"
    record, _ = services.dosing.save(pres, pid, dose_request(
        {"route": "intranasal", "phase": "induction", "session_number": "1"}))
    assert record.devices == 2 and record.treatment == "esketamine"


def test_an_oral_dose_notes_its_bioavailability(services, users):
    pid = make_patient(services)
    plan = services.dosing.check(actor(users, "prescriber"), pid,
                                 dose_request({"route": "oral", "mg_per_kg": "1"}))
    assert any("Bioavailability" in n for n in plan.notes)


def test_a_raising_checker_blocks_the_save(services, users):
    pid = make_patient(services)

    def broken(order, ruleset):  # type: ignore[no-untyped-def]
        raise RuntimeError("library corrupted")

    services.dosing.checker = broken
    with pytest.raises(DoseBlocked) as exc:
        services.dosing.save(actor(users, "prescriber"), pid, dose_request(iv()))
    assert any(f.rule == "checker-error" for f in exc.value.plan.result.checks)


def test_the_idempotency_key_saves_once(services, users):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    pres = actor(users, "prescriber")
    a, created_a = services.dosing.save(pres, pid, dose_request(iv()), "key-1")
    b, created_b = services.dosing.save(pres, pid, dose_request(iv()), "key-1")
    assert created_a and not created_b and a.id == b.id


def test_rule_set_copy_edit_confirm_and_activate(services, users):
    admin, pres = actor(users, "admin"), actor(users, "prescriber")
    rules = services.dosing.rulesets
    copy = rules.copy(admin, "ketamine-iv", "clinic-iv")
    assert copy.ref == "clinic-iv@1"
    edited = rules.edit_values(admin, "clinic-iv", {"dose_limits.iv.mg-per-kg-soft-max": "0.9"},
                               "policy 2026", 1)
    assert edited.ref == "clinic-iv@2"
    assert edited.limit("iv", "mg-per-kg-soft-max").value == 0.9
    with pytest.raises(Conflict):
        rules.edit_values(admin, "clinic-iv", {"dose_limits.iv.mg-per-kg-soft-max": "0.8"},
                          "stale", 1)
    with pytest.raises(PermissionDenied):
        rules.edit_values(pres, "clinic-iv", {"dose_limits.iv.mg-per-kg-soft-max": "0.8"},
                          "x", 2)
    report = rules.unconfirmed_report(admin)
    path = next(r["path"] for r in report if r["ruleset_id"] == "clinic-iv")
    confirmed = rules.confirm(pres, "clinic-iv", path)
    assert confirmed.ref == "clinic-iv@3"
    view = rules.view(admin, "clinic-iv")
    assert view.confirmations[0]["by"].startswith("Dr Pim")
    assert [v.seq for v in view.versions] == [3, 2, 1]
    assert path not in {u.path for u in view.unconfirmed}
    rules.set_active(admin, "ketamine-iv", "clinic-iv")
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    record, _ = services.dosing.save(pres, pid, dose_request({**iv("0.8"), "overrides": [
        {"rule": "mg-per-kg", "reason_code": "clinical-judgement", "free_text": "x"}]}))
    assert record.rule_set == "clinic-iv@3"  # 0.8 is under the edited soft max: no override
    assert record.overrides == []


def test_bundled_rule_sets_are_read_only_and_imports_are_validated(services, users):
    admin = actor(users, "admin")
    rules = services.dosing.rulesets
    with pytest.raises(InvalidInput):
        rules.edit_values(admin, "ketamine-iv", {"parameters.age-min-years": "16"}, "x", None)
    doc = load_bundled_ruleset("esketamine-eu").to_dict()
    with pytest.raises(InvalidInput, match="bundled"):
        rules.import_document(admin, json.dumps(doc))
    doc["id"] = "clinic-eu"
    doc["dose_limits"]["intranasal"]["total-mg-hard-max"]["value"] = "lots"
    with pytest.raises(InvalidInput, match="must be a number"):
        rules.import_document(admin, json.dumps(doc))
    doc["dose_limits"]["intranasal"]["total-mg-hard-max"]["value"] = 84
    assert rules.import_document(admin, json.dumps(doc)).ref == "clinic-eu@1"
    assert rules.import_document(admin, json.dumps(doc)).ref == "clinic-eu@2"
    with pytest.raises(InvalidInput, match="is for esketamine"):
        rules.set_active(admin, "ketamine-iv", "clinic-eu")
    with pytest.raises(NotFound):
        rules.set_active(admin, "esketamine", "nope")


def test_reads_are_audited(services, users):
    pid = make_patient(services)
    nurse = actor(users, "nurse")
    services.dosing.list_screenings(nurse, pid)
    services.dosing.list_doses(nurse, pid)
    services.dosing.panel(nurse, pid)
    with services.db.transaction() as s:
        actions = set(s.execute(select(AuditEvent.action).where(
            AuditEvent.patient_id == pid)).scalars())
    assert {"screening.list", "dose.list", "dosing.panel"} <= actions


def test_overrides_have_reason_rows(services, users):
    pid = make_patient(services)
    screen_ok(services, users, pid, "ketamine-iv")
    services.dosing.save(actor(users, "prescriber"), pid, dose_request({**iv("0.8"), "overrides": [
        {"rule": "mg-per-kg", "reason_code": "clinical-judgement", "free_text": "why"}]}))
    with services.db.transaction() as s:
        rows = s.execute(select(DoseOverride)).scalars().all()
        assert len(rows) == 1 and rows[0].username == "prescriber" and rows[0].free_text == "why"
