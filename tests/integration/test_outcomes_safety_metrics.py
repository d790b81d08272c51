"""The dashboard's safety metrics and the progress report read the chair, dosing and MBC tables.

Hand data on top of the hand cohort (tests/support/kcoutcomes.py: 15 doses given — A 6,
B 4 (esketamine), C 2, D 3). The clock stands at 2026-11-02.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from kcoutcomes import T0, build_hand_cohort
from sqlalchemy import select

from ketaclinic.renderers.fhir_codes import validate_bundle
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes.dashboard import DashboardFilters
from ketaclinic.store.tables_chair import (
    AdverseEventRow,
    RemsFormRow,
    SessionAlert,
    VitalSignRow,
)
from ketaclinic.store.tables_dosing import DoseOrder, DoseOverride
from ketaclinic.store.tables_mbc import ClinicalAlert
from ketaclinic.store.tables_treatment import Assessment, TreatmentSession

TODAY = dt.date(2026, 11, 2)


def _order(s, patient_id, treatment, overrides):  # type: ignore[no-untyped-def]
    o = DoseOrder(patient_id=patient_id, treatment=treatment, route="iv", ruleset_ref="r@1",
                  dose_mg=Decimal("40"), checks_json="[]", created_at=T0)
    s.add(o)
    s.flush()
    for i in range(overrides):
        s.add(DoseOverride(dose_order_id=o.id, rule=f"rule.{i}", reason_code="clinical",
                           free_text="reason", ruleset_ref="r@1", username="prescriber",
                           at=T0))
    return o


def _seed(services):  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
        sess = {k: list(s.execute(select(TreatmentSession).where(
            TreatmentSession.patient_id == ids[k], TreatmentSession.dose_started_at.is_not(None))
            .order_by(TreatmentSession.id)).scalars()) for k in ("A", "B")}
        a, b = sess["A"], sess["B"]
        # adverse events: 2 in course A, 1 in course B
        for row, code in ((a[0], "nausea"), (a[1], "hypertension"), (b[0], "dizziness")):
            s.add(AdverseEventRow(session_id=row.id, code=code, severity="mild",
                                  onset_at=row.dose_started_at, action_taken="observed",
                                  created_at=T0))
        # chair alerts: 2 BP (A open, B open) + 1 heart-rate (A, actioned)
        s.add(SessionAlert(session_id=a[0].id, rule="vitals.sbp_mmhg_high", message="m",
                           created_at=T0))
        s.add(SessionAlert(session_id=a[1].id, rule="vitals.hr_bpm_high", message="m",
                           action_taken="rechecked", action_at=T0, created_at=T0))
        s.add(SessionAlert(session_id=b[1].id, rule="vitals.dbp_mmhg_low", message="m",
                           created_at=T0))
        # MBC alerts: 2 open, 1 acknowledged
        aid = s.execute(select(Assessment.id).where(Assessment.patient_id == ids["A"])
                        ).scalars().first()
        for acked in (None, None, T0):
            s.add(ClinicalAlert(patient_id=ids["A"], assessment_id=aid, instrument_id="phq9",
                                rule="phq9.item9", priority="high", message="m", raised_at=T0,
                                acknowledged_at=acked))
        # REMS: due in 3 days, overdue, due in 10 days (not counted), submitted (not counted)
        for row, due, status in ((b[0], 3, "due"), (b[1], -5, "due"), (b[2], 10, "due"),
                                 (b[3], 1, "submitted")):
            s.add(RemsFormRow(session_id=row.id, patient_id=ids["B"],
                              treatment_date=row.dose_started_at.date(),
                              due_on=TODAY + dt.timedelta(days=due), status=status,
                              created_at=T0))
        # dose orders used by sessions: A one with an override, A one without, B one with two
        for row, tr, n in ((a[0], "ketamine-iv", 1), (a[1], "ketamine-iv", 0),
                           (b[0], "esketamine", 2)):
            row.dose_order_id = _order(s, row.patient_id, tr, n).id
        _order(s, ids["A"], "ketamine-iv", 1)  # never used by a session: not counted
        # vitals for patient A's first session
        s.add(VitalSignRow(session_id=a[0].id, kind="predose", taken_at=a[0].dose_started_at,
                           sbp_mmhg=128, dbp_mmhg=82, hr_bpm=70, spo2_pct=98, created_at=T0))
    return ids


def _metrics(dash):  # type: ignore[no-untyped-def]
    return {m.key: m for m in dash.cards + dash.safety}


def test_safety_metrics_count_the_real_chair_dosing_and_mbc_rows(services):
    _seed(services)
    m = _metrics(services.outcomes.dashboard(SYSTEM, DashboardFilters()))
    assert all(x.available for x in m.values())
    assert m["open_alerts"].value == "4"  # 2 MBC + 2 chair alerts without action
    assert m["rems_due"].value == "2"
    assert m["adverse_events"].rate.events == 3 and m["adverse_events"].rate.sessions == 15
    assert m["adverse_events"].value.startswith("20.0 per 100 sessions")
    assert m["bp_alerts"].value.startswith("13.3 per 100 sessions")
    assert m["bp_alerts"].value.endswith("2 in 15")
    assert m["soft_overrides"].value.startswith("2/3 (66.7 %")


def test_safety_metrics_follow_the_course_filters(services):
    _seed(services)
    m = _metrics(services.outcomes.dashboard(SYSTEM, DashboardFilters(treatment="esketamine")))
    assert m["adverse_events"].value.startswith("25.0 per 100 sessions")
    assert m["adverse_events"].value.endswith("1 in 4")
    assert m["bp_alerts"].value.endswith("1 in 4")
    assert m["soft_overrides"].value.startswith("1/1 (100.0 %")
    none = _metrics(services.outcomes.dashboard(SYSTEM, DashboardFilters(
        date_from=dt.date(2030, 1, 1))))
    assert none["adverse_events"].value == "no sessions"
    assert none["soft_overrides"].value.startswith("0/0")


def test_the_progress_report_lists_the_patients_adverse_events(services):
    from ketaclinic.services.outcomes.progress_report import _adverse_events

    ids = _seed(services)
    with services.db.transaction() as s:
        lines = _adverse_events(s, ids["A"])
        assert [(x.event, x.severity, x.action) for x in lines] == [
            ("nausea", "mild", "observed"), ("hypertension", "mild", "observed")]
        assert _adverse_events(s, ids["C"]) == []
    pdf = services.outcomes.progress_report_pdf(SYSTEM, ids["A"])
    assert pdf.startswith(b"%PDF")


def test_the_fhir_bundle_carries_the_vitals_as_a_bp_panel(services):
    ids = _seed(services)
    bundle = services.outcomes.fhir_bundle(SYSTEM, ids["A"])
    assert validate_bundle(bundle) == []
    codes = [c["code"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
             for c in e["resource"]["code"]["coding"]]
    assert codes.count("85354-9") == 1 and "8867-4" in codes and "59408-5" in codes
    panel = next(r for r in (e["resource"] for e in bundle["entry"])
                 if r["resourceType"] == "Observation"
                 and r["code"]["coding"][0]["code"] == "85354-9")
    assert [c["valueQuantity"]["value"] for c in panel["component"]] == [128, 82]
    other = services.outcomes.fhir_bundle(SYSTEM, ids["C"])
    assert "85354-9" not in str(other)
