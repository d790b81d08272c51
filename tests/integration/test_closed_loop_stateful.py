"""A Hypothesis state machine drives the JSON API as every role, in random order (issue 12):
screen, sign off, order, check in, pre-dose BP, dose (right, wrong, another patient's order,
none), vitals, discharge attempts, retries with the same Idempotency-Key, verbal orders
(recorded, countersigned, left to go overdue as the clock jumps past the countersign hours)
and rule-set edits (an admin's tightening; a loosening without the medical director's
co-signature and the activation of a set without its hard limits, both refused). After every
step:

* no recorded administration lacks a signed order of the same patient and course that matches
  its dose (within the rule set's tolerance);
* no check-in lacks a valid screening (eligible, or review with an earlier sign-off);
* no dose was recorded while every indication diagnosis its screening saw was withdrawn
  (the chart withdraws diagnoses as entered in error or resolved, and records new ones);
* no sign-off, check-in or dose after a ketamine allergy was recorded (an absolute
  contraindication: a new screening is needed, and it finds the patient ineligible);
* the ledger has exactly one administration row per administration, with the patient and lot;
* no dose was recorded under a verbal order that was overdue and not countersigned;
* every rule set in effect carries the hard-limit keys of its routes;
* no request answered with a server error.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from kcchain import FACTS
from sqlalchemy import func, select

from ketaclinic.clinical.eligibility import is_depressive_icd10
from ketaclinic.clinical.ruleset_governance import missing_hard_limits
from ketaclinic.clinical.rulesets import load_bundled_ruleset, load_ruleset
from ketaclinic.clinical.treatment_chain import SCREENING_TREATMENT, load_chain_rules
from ketaclinic.schemas_chair import ChairCreate, ReceiptCreate
from ketaclinic.store.tables import AuditEvent, PatientAllergy, PatientDiagnosis
from ketaclinic.store.tables_chair import DoseRecord, LedgerEntry, SessionPrecheck
from ketaclinic.store.tables_dosing import (
    ActiveRuleSet,
    DoseOrder,
    RuleSetVersion,
    Screening,
    ScreeningSignoff,
)
from ketaclinic.store.tables_treatment import TreatmentSession

# A long property run (10 walks of 30 API steps); test_closed_loop.py covers each step fast.
pytestmark = pytest.mark.slow

ROLES = ("admin", "prescriber", "nurse", "analyst")
MONDAY = dt.date(2026, 11, 2)
TOLERANCE = {t: Decimal(str(c.value)) for t, c in load_chain_rules()
             .dose_match_tolerance_pct.items()}
SIGNED = ("signed", "countersigned")
VERBAL_HOURS = load_chain_rules().verbal_order_countersign_h.value
IV_SET, BARE_SET = "sm-iv", "sm-bare-iv"
#: a hard parameter the chain's patients (80 kg) never come near: tightened step by step
TIGHTEN = "parameters.weight-max-kg"


def _bare_iv() -> dict:
    """The bundled IV set without its mg/kg and rate hard limits."""
    doc = load_bundled_ruleset("ketamine-iv").to_dict()
    doc["id"], doc["title"] = BARE_SET, "IV without hard limits"
    for key in ("mg-per-kg-hard-max", "rate-mg-per-kg-per-h-hard-max"):
        del doc["dose_limits"]["iv"][key]
    return doc


def closed_loop_machine(services, users, login, clock):  # type: ignore[no-untyped-def]
    counter = itertools.count(1)

    class ClosedLoop(RuleBasedStateMachine):
        patients = Bundle("patients")

        # --- plumbing ---------------------------------------------------------------------
        def __init__(self) -> None:
            super().__init__()
            self.clients: dict[str, tuple] = {}
            self.ordered: list[dict] = []  # patients with an order (for "another's order")

        def call(self, role: str, method: str, url: str, json=None,  # type: ignore[no-untyped-def]
                 key: str | None = None):
            clock.advance(seconds=1)  # time passes between requests, as at a real clinic
            for _ in range(2):
                if role not in self.clients:
                    self.clients[role] = login(role)
                c, csrf = self.clients[role]
                headers = {"X-CSRF-Token": csrf} | ({"Idempotency-Key": key} if key else {})
                r = c.request(method, url, json=json, headers=headers)
                if r.status_code != 401:
                    break
                del self.clients[role]  # idle logout after a clock jump: log in again
            assert r.status_code < 500, (method, url, r.status_code, r.text)
            return r

        @staticmethod
        def version(sid: int) -> int:
            with services.db.transaction() as s:
                return s.get(TreatmentSession, sid).version

        # --- setup ----------------------------------------------------------------------
        @initialize()
        def stock(self) -> None:
            admin = users["admin"].actor  # chairs and stock once, for every example
            if not services.chair.schedule.chairs(admin):
                services.chair.schedule.create_chair(admin, ChairCreate(
                    name="Chair S", opening_hours="0-6 00:00-23:59"))
                for drug, lot, vol, conc in (
                        ("ketamine hydrochloride injection 50 mg/mL", "S-IV", "10", "50"),
                        ("esketamine nasal spray 28 mg device", "S-ESK", "0.2", "140")):
                    services.chair.ledger.record_receipt(admin, ReceiptCreate(
                        drug=drug, lot=lot, supplier_name="Supplier", supplier_address="1 Road",
                        supplier_dea_number="AB1234563", expiry=dt.date(2027, 12, 31),
                        containers=500, volume_ml_per_container=Decimal(vol),
                        concentration_mg_per_ml=Decimal(conc)))
                r = self.call("admin", "POST", "/api/rulesets/copy",
                              {"source_id": "ketamine-iv", "new_id": IV_SET})
                assert r.status_code == 201, r.text
                r = self.call("admin", "PUT", "/api/rulesets/active/ketamine-iv",
                              {"ruleset_id": IV_SET})
                assert r.status_code == 200, r.text
                with services.db.transaction() as s:  # stored before governance existed
                    s.add(RuleSetVersion(
                        ruleset_id=BARE_SET, seq=1, version="1", treatment="ketamine-iv",
                        title="old", based_on="", change_note="stored long ago",
                        document=load_ruleset(_bare_iv()).document, created_by=None,
                        created_at=dt.datetime(2026, 1, 1)))

        @rule(target=patients, esk=st.booleans(), stage=st.sampled_from([0, 1, 2, 3, 4, 5, 5, 5]),
              kind=st.sampled_from(["right", "wrong", "other", "none", "retry"]))
        def new_patient(self, esk: bool, stage: int, kind: str):  # type: ignore[no-untyped-def]
            """A new patient, walked ``stage`` steps along the usual path (screen, order,
            check-in, pre-dose BP, a dose of ``kind``) so that random steps meet patients at
            every point of the chain."""
            p = self._register(esk)
            same = [o for o in self.ordered if o["esk"] == esk]
            if kind == "other" and stage == 5 and not same:  # someone else's signed order
                same = [self._register(esk)]
                self.the_clinic_walks_the_chain(same[0], same[0], 2, kind)
                self.ordered.append(same[0])
            self.the_clinic_walks_the_chain(p, same[-1] if same else p, stage, kind)
            if stage >= 2:
                self.ordered.append(p)
            return p

        def _register(self, esk: bool):  # type: ignore[no-untyped-def]
            n = next(counter)
            r = self.call("nurse", "POST", "/api/patients", {
                "mrn": f"SM-{id(self)}-{n}", "family_name": "State", "given_name": f"P{n}",
                "birth_date": "1980-05-01", "sex": "male", "weight": "80 kg"})
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            r = self.call("prescriber", "POST", f"/api/patients/{pid}/courses", {
                "template_id": "esketamine_trd" if esk else "iv_ketamine_induction",
                "start_date": MONDAY.isoformat()})
            assert r.status_code == 201, r.text
            cid = r.json()["id"]
            sessions = self.call("nurse", "GET", f"/api/patients/{pid}/sessions").json()["items"]
            sid = min(x["id"] for x in sessions if x["course_id"] == cid)
            r = self.call("nurse", "POST", f"/api/patients/{pid}/diagnoses", {
                "code": "F33.2", "display": "Recurrent depressive disorder, severe"})
            assert r.status_code == 201, r.text
            r = self.call("nurse", "PUT", f"/api/patients/{pid}/clinical-facts", {"facts": FACTS})
            assert r.status_code == 200, r.text
            return {"pid": pid, "cid": cid, "sid": sid, "esk": esk}

        # --- screening ------------------------------------------------------------------
        @rule(p=patients, role=st.sampled_from(ROLES))
        def screen(self, p, role):  # type: ignore[no-untyped-def]
            self._screen(p, role)

        def _screen(self, p, role):  # type: ignore[no-untyped-def]
            return self.call(role, "POST", f"/api/patients/{p['pid']}/screenings",
                             {"treatment": "esketamine" if p["esk"] else "ketamine-iv"})

        @rule(p=patients, med=st.sampled_from([("Lorazepam", "benzodiazepine", 4),
                                               ("Tranylcypromine", "maoi", 30)]))
        def add_medicine(self, p, med):  # type: ignore[no-untyped-def]
            name, cls, mg = med
            self.call("nurse", "POST", f"/api/patients/{p['pid']}/medications",
                      {"name": name, "drug_class": cls, "daily_dose_mg": mg})

        @rule(p=patients, reason=st.sampled_from(["entered-in-error", "resolved"]))
        def withdraw_diagnosis(self, p, reason):  # type: ignore[no-untyped-def]
            """The chart withdraws the patient's earliest standing diagnosis (the one the
            screening most likely rested on)."""
            detail = self.call("nurse", "GET", f"/api/patients/{p['pid']}").json()
            standing = [d for d in detail["diagnoses"] if d["active"]]
            if standing:
                r = self.call("nurse", "POST", f"/api/patients/{p['pid']}/diagnoses/"
                              f"{standing[0]['id']}/deactivate", {"reason": reason})
                assert r.status_code == 200, r.text

        @rule(p=patients, code=st.sampled_from(["F32.1", "F33.2", "F41.1"]))
        def diagnose(self, p, code):  # type: ignore[no-untyped-def]
            r = self.call("nurse", "POST", f"/api/patients/{p['pid']}/diagnoses", {
                "code": code, "display": "Depressive episode" if code < "F34" else "Anxiety"})
            assert r.status_code == 201, r.text

        @rule(p=patients)
        def the_indication_goes_after_the_check_in_and_the_nurse_tries_the_dose(self, p):  # type: ignore[no-untyped-def]
            """Screened, ordered, checked in and BP taken; then every diagnosis is withdrawn
            and the nurse tries the dose (the invariants check that nothing was recorded)."""
            self.the_clinic_walks_the_chain(p, p, 4, "right")
            for _ in range(3):
                self.withdraw_diagnosis(p, "entered-in-error")
            self.dose(p, p, "nurse", "right")

        @rule(p=consumes(patients))
        def a_ketamine_allergy_is_recorded_and_the_prescriber_tries_to_sign_it_off(self, p):  # type: ignore[no-untyped-def]
            """Screened, ordered, checked in and BP taken; then a ketamine allergy (an
            absolute contraindication in every rule set) is recorded, the prescriber tries
            a sign-off and the nurse the dose (the invariants check that neither was). The
            patient then leaves the walk: nothing can go ahead for them any more, and steps
            spent on them would starve the rest of the chain."""
            self.the_clinic_walks_the_chain(p, p, 4, "right")
            r = self.call("nurse", "POST", f"/api/patients/{p['pid']}/allergies",
                          {"substance": "Ketamine", "reaction": "rash"})
            assert r.status_code == 201, r.text
            self.sign_off(p, "prescriber", "reviewed")
            self.dose(p, p, "nurse", "right")

        @rule(p=patients, role=st.sampled_from(ROLES), reason=st.sampled_from(["", "reviewed"]))
        def sign_off(self, p, role, reason):  # type: ignore[no-untyped-def]
            with services.db.transaction() as s:
                latest = s.execute(select(Screening.id).where(
                    Screening.patient_id == p["pid"]).order_by(Screening.id.desc()).limit(1)
                ).scalar_one_or_none()
            if latest is not None:
                self.call(role, "POST", f"/api/patients/{p['pid']}/screenings/{latest}/signoff",
                          {"reason": reason})

        # --- orders ---------------------------------------------------------------------
        @rule(p=patients, role=st.sampled_from(ROLES), course=st.sampled_from(["own", "none"]),
              key=st.sampled_from([None, "order-a", "order-b"]))
        def order(self, p, role, course, key):  # type: ignore[no-untyped-def]
            cid = p["cid"] if course == "own" else None
            body = ({"route": "intranasal", "phase": "induction", "session_number": 1,
                     "dose_mg": 56, "course_id": cid} if p["esk"] else
                    {"route": "iv", "mg_per_kg": 0.5, "infusion_min": 40,
                     "concentration_mg_per_ml": 1, "course_id": cid})
            self.call(role, "POST", f"/api/patients/{p['pid']}/doses", body,
                      key=None if key is None else f"{key}-{p['pid']}")

        # --- verbal orders --------------------------------------------------------------
        @rule(p=patients, role=st.sampled_from(ROLES), read_back=st.sampled_from([True, True,
                                                                                  False]))
        def verbal_order(self, p, role, read_back):  # type: ignore[no-untyped-def]
            body = ({"route": "intranasal", "phase": "induction", "session_number": 1,
                     "dose_mg": 56, "course_id": p["cid"]} if p["esk"] else
                    {"route": "iv", "mg_per_kg": 0.5, "infusion_min": 40,
                     "concentration_mg_per_ml": 1, "course_id": p["cid"]})
            r = self.call(role, "POST", f"/api/patients/{p['pid']}/verbal-orders",
                          body | {"prescriber": "prescriber", "read_back_confirmed": read_back})
            if not read_back or role == "analyst":
                assert r.status_code in (403, 422), r.text

        @rule(p=patients, role=st.sampled_from(("prescriber", "prescriber", "nurse", "admin")))
        def countersign(self, p, role):  # type: ignore[no-untyped-def]
            with services.db.transaction() as s:  # this patient's verbal order, else any
                found = s.execute(select(DoseOrder.id, DoseOrder.patient_id).where(
                    DoseOrder.status == "verbal").order_by(
                    (DoseOrder.patient_id == p["pid"]).desc(), DoseOrder.id.desc()).limit(1)
                ).first()
            if found is not None:
                oid, pid = found
                r = self.call(role, "POST", f"/api/patients/{pid}/doses/{oid}/countersign")
                assert (r.status_code == 200) == (role == "prescriber"), r.text

        @rule(p=patients)
        def a_verbal_order_goes_overdue_and_the_nurse_tries_it(self, p):  # type: ignore[no-untyped-def]
            """A telephone order nobody countersigns; the clock passes its hours; the nurse
            then tries to give it (the invariants check that nothing was recorded)."""
            self.verbal_order(p, "nurse", True)
            clock.advance(hours=float(VERBAL_HOURS) + 1)
            self.dose(p, p, "nurse", "right")

        # --- rule-set governance ----------------------------------------------------------
        def _iv_set(self) -> tuple[int, float]:
            view = self.call("admin", "GET", f"/api/rulesets/{IV_SET}").json()
            return (max(v["seq"] for v in view["versions"]),
                    view["document"]["parameters"]["weight-max-kg"]["value"])

        @rule()
        def an_admin_tightens_the_rule_set(self):  # type: ignore[no-untyped-def]
            seq, value = self._iv_set()
            if value > 150:
                r = self.call("admin", "PUT", f"/api/rulesets/{IV_SET}/values", {
                    "changes": {TIGHTEN: str(value - 1)}, "note": "stricter", "version": seq})
                assert r.status_code == 200, r.text
                assert self._iv_set() == (seq + 1, value - 1)

        @rule()
        def a_loosening_without_the_medical_director_is_refused(self):  # type: ignore[no-untyped-def]
            seq, value = self._iv_set()
            r = self.call("admin", "PUT", f"/api/rulesets/{IV_SET}/values", {
                "changes": {TIGHTEN: str(value + 10)}, "note": "looser", "version": seq})
            assert r.status_code == 422 and "co-sign" in r.text, r.text
            assert self._iv_set() == (seq, value)

        @rule(how=st.sampled_from(["activate", "import"]))
        def a_set_without_hard_limits_is_refused(self, how):  # type: ignore[no-untyped-def]
            if how == "activate":
                r = self.call("admin", "PUT", "/api/rulesets/active/ketamine-iv",
                              {"ruleset_id": BARE_SET})
            else:
                r = self.call("admin", "POST", "/api/rulesets/import",
                              _bare_iv() | {"id": "sm-bare-import"})
            assert r.status_code == 422 and "lacks hard limits" in r.text, r.text

        # --- the chair ------------------------------------------------------------------
        @rule(p=patients, role=st.sampled_from(ROLES))
        def check_in(self, p, role):  # type: ignore[no-untyped-def]
            self.call(role, "POST", f"/api/sessions/{p['sid']}/checkin", {
                "version": self.version(p["sid"]), "consent_on_file": True,
                "rems_enrolled": True, "ride_home_arranged": True,
                "last_food_at": (clock.now - dt.timedelta(hours=3)).isoformat(),
                "last_liquid_at": (clock.now - dt.timedelta(hours=2)).isoformat()})

        @rule(p=patients, role=st.sampled_from(ROLES), sbp=st.sampled_from([126, 200]))
        def predose(self, p, role, sbp):  # type: ignore[no-untyped-def]
            self.call(role, "POST", f"/api/sessions/{p['sid']}/predose", {
                "version": self.version(p["sid"]), "sbp_mmhg": sbp, "dbp_mmhg": 80,
                "stop_reason": "BP too high: recheck" if sbp > 180 else ""})

        @rule(p=patients, other=patients, role=st.sampled_from(ROLES),
              kind=st.sampled_from(["right", "wrong", "other", "none", "retry"]))
        def dose(self, p, other, role, kind):  # type: ignore[no-untyped-def]
            with services.db.transaction() as s:
                own = s.execute(select(DoseOrder.id).where(
                    DoseOrder.patient_id == p["pid"]).order_by(DoseOrder.id.desc()).limit(1)
                ).scalar_one_or_none()
                theirs = s.execute(select(DoseOrder.id).where(
                    DoseOrder.patient_id == other["pid"]).order_by(DoseOrder.id.desc())
                    .limit(1)).scalar_one_or_none()
            clock.advance(minutes=5)
            mg = 56 if p["esk"] else 40
            body = {"version": self.version(p["sid"]), "lot": "S-ESK" if p["esk"] else "S-IV",
                    "dose_mg": mg * 10 if kind == "wrong" else mg,
                    "dose_order_id": {"other": theirs, "none": None}.get(kind, own),
                    "order_confirmed": True, "started_at": clock.now.isoformat()}
            if p["esk"]:
                body["device_times"] = [(clock.now - dt.timedelta(minutes=5)).isoformat(),
                                        clock.now.isoformat()]
            else:
                body |= {"concentration_mg_per_ml": 1, "rate_ml_per_h": 60}
            url = f"/api/sessions/{p['sid']}/dose"
            self.call(role, "POST", url, body)
            if kind == "retry":  # the tablet resends the same request
                self.call(role, "POST", url, body)

        @rule(p=patients, role=st.sampled_from(ROLES), key=st.sampled_from(["v1", "v2"]))
        def vitals(self, p, role, key):  # type: ignore[no-untyped-def]
            body = {"sbp_mmhg": 130, "dbp_mmhg": 82, "hr_bpm": 72, "spo2_pct": 98,
                    "rr_per_min": 14}
            for _ in range(2):  # a retry with the same Idempotency-Key records once
                self.call(role, "POST", f"/api/sessions/{p['sid']}/vitals", body,
                          key=f"{key}-{p['sid']}")

        @rule(p=patients, role=st.sampled_from(ROLES))
        def discharge(self, p, role):  # type: ignore[no-untyped-def]
            self.call(role, "POST", f"/api/sessions/{p['sid']}/discharge", {
                "version": self.version(p["sid"]), "dissociation_resolved": True,
                "respiratory_depression_resolved": True, "responsible_adult_present": True})

        def the_clinic_walks_the_chain(self, p, other, stage, kind):  # type: ignore[no-untyped-def]
            """The usual path, ``stage`` steps of it, as the right roles."""
            if stage >= 1:
                r = self._screen(p, "prescriber")
                assert r.status_code == 201, r.text
                if r.json()["decision"] == "review":
                    self.sign_off(p, "prescriber", "reviewed")
            if stage >= 2:
                self.order(p, "prescriber", "own", None)
            if stage >= 3:
                self.check_in(p, "nurse")
            if stage >= 4:
                self.predose(p, "nurse", 126)
            if stage >= 5:
                self.dose(p, other, "nurse", kind)

        @rule(minutes=st.integers(1, 20))
        def time_passes(self, minutes):  # type: ignore[no-untyped-def]
            clock.advance(minutes=minutes)

        # --- invariants -----------------------------------------------------------------
        @invariant()
        def every_administration_is_the_signed_order(self) -> None:
            with services.db.transaction() as s:
                for dose, session in s.execute(select(DoseRecord, TreatmentSession).join(
                        TreatmentSession, TreatmentSession.id == DoseRecord.session_id)).all():
                    order = s.get(DoseOrder, dose.dose_order_id) if dose.dose_order_id else None
                    assert order is not None, f"session {session.id}: dose without an order"
                    assert order.patient_id == session.patient_id
                    assert order.course_id == session.course_id
                    assert order.status in SIGNED or (order.status == "verbal" and (
                        dose.recorded_at <= order.created_at + dt.timedelta(hours=VERBAL_HOURS)))
                    off = abs(dose.dose_mg - order.dose_mg) / order.dose_mg * 100
                    assert off <= TOLERANCE[session.treatment], (dose.dose_mg, order.dose_mg)

        @invariant()
        def every_check_in_had_a_valid_screening(self) -> None:
            with services.db.transaction() as s:
                prechecks = s.execute(select(SessionPrecheck, TreatmentSession).join(
                    TreatmentSession, TreatmentSession.id == SessionPrecheck.session_id).where(
                    SessionPrecheck.outcome.in_(("ok", "overridden")))).all()
                for pre, session in prechecks:
                    treatment = "esketamine" if session.treatment == "esketamine" \
                        else "ketamine-iv"
                    screening = s.execute(select(Screening).where(
                        Screening.patient_id == session.patient_id,
                        Screening.treatment == treatment,
                        Screening.created_at <= pre.recorded_at).order_by(
                        Screening.id.desc()).limit(1)).scalar_one_or_none()
                    assert screening is not None, f"session {session.id}: no screening"
                    assert screening.decision in ("eligible", "review")
                    assert screening.expires_on >= pre.recorded_at.date()
                    if screening.decision == "review":
                        assert s.execute(select(ScreeningSignoff.id).where(
                            ScreeningSignoff.screening_id == screening.id,
                            ScreeningSignoff.signed_at <= pre.recorded_at)).first()

        @invariant()
        def no_dose_while_the_screenings_indication_is_withdrawn(self) -> None:
            """At the moment of every dose, a depressive diagnosis the screening in force saw
            still stood (recorded before, not yet withdrawn: rows are only ever withdrawn)."""
            with services.db.transaction() as s:
                for dose, session in s.execute(select(DoseRecord, TreatmentSession).join(
                        TreatmentSession, TreatmentSession.id == DoseRecord.session_id)).all():
                    at = dose.recorded_at
                    screening = s.execute(select(Screening).where(
                        Screening.patient_id == session.patient_id,
                        Screening.treatment == SCREENING_TREATMENT[session.treatment],
                        Screening.created_at <= at).order_by(Screening.id.desc()).limit(1)
                    ).scalar_one()
                    seen = {d["code"] for d in json.loads(screening.inputs_json)["diagnoses"]
                            if not d["resolved"] and is_depressive_icd10(d["code"])}
                    standing = {d.code for d in s.execute(select(PatientDiagnosis).where(
                        PatientDiagnosis.patient_id == session.patient_id,
                        PatientDiagnosis.recorded_at <= at)).scalars()
                        if d.active or (d.updated_at is not None and d.updated_at > at)}
                    assert seen & standing, (session.id, sorted(seen), sorted(standing))

        @invariant()
        def nothing_goes_ahead_after_a_ketamine_allergy_is_recorded(self) -> None:
            """No sign-off, check-in or dose after an allergy to ketamine was recorded (the
            machine never withdraws one, and a new screening then is always ineligible)."""
            with services.db.transaction() as s:
                allergic = dict(s.execute(select(
                    PatientAllergy.patient_id, func.min(PatientAllergy.recorded_at)).where(
                    func.lower(PatientAllergy.substance) == "ketamine").group_by(
                    PatientAllergy.patient_id)).all())
                done = s.execute(select(ScreeningSignoff.patient_id, ScreeningSignoff.signed_at)
                                 ).all() + s.execute(select(
                    TreatmentSession.patient_id, SessionPrecheck.recorded_at).join(
                    SessionPrecheck, SessionPrecheck.session_id == TreatmentSession.id).where(
                    SessionPrecheck.outcome.in_(("ok", "overridden")))).all() + s.execute(
                    select(TreatmentSession.patient_id, DoseRecord.recorded_at).join(
                        DoseRecord, DoseRecord.session_id == TreatmentSession.id)).all()
                for pid, at in done:
                    assert pid not in allergic or at < allergic[pid], (pid, at, allergic[pid])

        @invariant()
        def no_dose_under_an_overdue_uncountersigned_verbal_order(self) -> None:
            with services.db.transaction() as s:
                for dose, order in s.execute(select(DoseRecord, DoseOrder).join(
                        DoseOrder, DoseOrder.id == DoseRecord.dose_order_id).where(
                        DoseOrder.status.in_(("verbal", "countersigned")))).all():
                    due = order.created_at + dt.timedelta(hours=float(VERBAL_HOURS))
                    assert dose.recorded_at <= due or (
                        order.countersigned_at is not None
                        and dose.recorded_at >= order.countersigned_at), (order.id, dose.id)

        @invariant()
        def the_rule_sets_in_effect_have_their_hard_limits(self) -> None:
            with services.db.transaction() as s:
                for active in s.execute(select(ActiveRuleSet)).scalars():
                    doc = s.execute(select(RuleSetVersion.document).where(
                        RuleSetVersion.ruleset_id == active.ruleset_id).order_by(
                        RuleSetVersion.seq.desc()).limit(1)).scalar_one_or_none()
                    if doc is not None:  # else a bundled set, complete by construction
                        assert missing_hard_limits(load_ruleset(doc)) == (), active.ruleset_id
                    assert active.ruleset_id != BARE_SET

        @invariant()
        def one_ledger_row_per_administration(self) -> None:
            with services.db.transaction() as s:
                doses = s.execute(select(DoseRecord, TreatmentSession).join(
                    TreatmentSession, TreatmentSession.id == DoseRecord.session_id)).all()
                rows = s.execute(select(LedgerEntry).where(
                    LedgerEntry.kind == "administration")).scalars().all()
                assert len(rows) == len(doses)
                by_session = {r.session_id: r for r in rows}
                assert len(by_session) == len(rows)
                for dose, session in doses:
                    row = by_session[session.id]
                    assert row.patient_id == session.patient_id and row.lot == dose.lot
                    assert row.amount_mg == dose.dose_mg

    return ClosedLoop


def test_no_path_through_the_api_gives_an_unscreened_unordered_or_unledgered_dose(
        services, users, login, clock):
    machine = closed_loop_machine(services, users, login, clock)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=10, stateful_step_count=30, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck), database=None))
    # The machine reached the interesting places (else the invariants proved nothing).
    with services.db.transaction() as s:
        doses = s.execute(select(func.count()).select_from(DoseRecord)).scalar_one()
        outcomes = dict(s.execute(select(AuditEvent.outcome, func.count()).where(
            AuditEvent.action == "session.dose").group_by(AuditEvent.outcome)).all())
        checkins = s.execute(select(func.count()).select_from(SessionPrecheck)).scalar_one()
        why = [f for r in s.execute(select(SessionPrecheck.findings_json)).scalars()
               for f in json.loads(r) if f["level"] in ("hard", "soft")][:6]
    assert doses >= 1 and outcomes.get("refused", 0) >= 1 and checkins >= 3, (
        doses, outcomes, checkins, why)
    with services.db.transaction() as s:  # a dose was refused because the basis was gone
        basis = s.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "session.dose", AuditEvent.outcome == "refused",
            AuditEvent.detail.contains("no longer stands"))).scalar_one()
    assert basis >= 1, outcomes
    with services.db.transaction() as s:  # and because a ketamine allergy was recorded since
        allergy = s.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("session.dose", "screening.signoff")),
            AuditEvent.outcome == "refused",
            AuditEvent.detail.contains("hypersensitivity_ketamine"))).scalar_one()
    assert allergy >= 1, outcomes
    with services.db.transaction() as s:
        actions = dict(s.execute(select(AuditEvent.action, func.count()).where(
            AuditEvent.outcome == "ok", AuditEvent.action.in_(
                ("dose.verbal", "dose.countersign")))
            .group_by(AuditEvent.action)).all())
        tightened = s.execute(select(func.count()).select_from(RuleSetVersion).where(
            RuleSetVersion.ruleset_id == IV_SET)).scalar_one() - 1
        hours = dt.timedelta(hours=float(VERBAL_HOURS))  # went overdue before countersigning
        overdue = sum(1 for o in s.execute(select(DoseOrder).where(
            DoseOrder.status.in_(("verbal", "countersigned")))).scalars()
            if (o.countersigned_at or clock.now) > o.created_at + hours)
    assert actions.get("dose.verbal", 0) >= 1 and actions.get("dose.countersign", 0) >= 1, actions
    assert tightened >= 1 and overdue >= 1, (tightened, overdue)
