"""The closed loop's gates in the pure core: screening, sign-off, order, events, ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal as D

import pytest
from kcchain import SCREENED_DOC

from ketaclinic.clinical.ledger import Administration, LedgerRefused, Receipt, append_event
from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.rulesets import load_bundled_ruleset
from ketaclinic.clinical.treatment_chain import (
    GivenDose,
    OrderFacts,
    ScreeningState,
    SessionFacts,
    SessionTimeline,
    check_administration,
    check_countersign,
    check_event_time,
    check_ready_to_dose,
    check_screening,
    check_signoff,
    check_verbal_order,
    load_chain_rules,
    order_state,
    predose_vitals_acceptable,
)

RULES = load_chain_rules()
TODAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 2, 10, 0)
FACTS = SCREENED_DOC | {"medications": [{"name": "sertraline", "class": "ssri"}]}
IV = load_bundled_ruleset("ketamine-iv")


def state(decision="eligible", **changes):  # type: ignore[no-untyped-def]
    base = dict(screening_id=1, treatment="ketamine-iv", decision=decision,
                expires_on=date(2027, 1, 31), screened_inputs=FACTS)
    return ScreeningState(**(base | changes))


def order(**changes):  # type: ignore[no-untyped-def]
    base = dict(order_id=7, patient_id=1, course_id=3, treatment="ketamine-iv",
                dose_mg=D(40), status="signed", ordered_at=NOW - timedelta(hours=1),
                rate_ml_per_h=D(60), concentration_mg_per_ml=D(1))
    return OrderFacts(**(base | changes))


SESSION = SessionFacts(session_id=9, patient_id=1, course_id=3, treatment="iv_ketamine")
GIVEN = GivenDose(D(40), D(60), D(1), order_confirmed=True)


@pytest.mark.parametrize(("screening", "rule"), [
    (None, "chain.screening"),
    (state("ineligible"), "chain.screening"),
    (state(expires_on=date(2026, 11, 1)), "chain.screening"),
    (state("review"), "chain.screening_signoff"),
    (state("maybe"), "chain.screening"),
    (state(treatment="esketamine"), "chain.screening"),
])
def test_a_screening_that_does_not_count_is_a_hard_stop(screening, rule):
    finding = check_screening(screening, "ketamine-iv", FACTS, TODAY, IV)
    assert (finding.rule, finding.level) == (rule, Level.HARD)


def test_an_eligible_or_signed_off_review_screening_counts():
    assert check_screening(state(), "ketamine-iv", FACTS, TODAY, IV).level is Level.OK
    signed = state("review", signoff_by="dr", signoff_at=NOW, signoff_reason="benzo taper",
                   signoff_inputs=FACTS)
    assert check_screening(signed, "ketamine-iv", FACTS, TODAY, IV).level is Level.OK


def test_a_medicine_or_condition_recorded_after_the_screening_re_opens_it():
    later = FACTS | {"medications": [*FACTS["medications"], {"name": "phenelzine",
                                                             "class": "maoi"}],
                     "conditions": ["uncontrolled_hypertension"]}
    finding = check_screening(state(), "ketamine-iv", later, TODAY, IV)
    assert finding.rule == "chain.screening_reopened" and finding.level is Level.HARD
    assert finding.values["new"] == ["condition uncontrolled_hypertension",
                                     "medication phenelzine (maoi)"]
    # A sign-off that saw the new facts clears it again; a stopped medicine never re-opens.
    signed = state(signoff_by="dr", signoff_at=NOW, signoff_reason="ok", signoff_inputs=later)
    assert check_screening(signed, "ketamine-iv", later, TODAY, IV).level is Level.OK
    assert check_screening(state(), "ketamine-iv", FACTS | {"medications": []},
                           TODAY, IV).level is Level.OK


def test_only_a_review_or_re_opened_screening_with_a_reason_can_be_signed_off():
    assert check_signoff(state("review"), FACTS, TODAY, "reason", IV).level is Level.OK
    for bad in (check_signoff(state("ineligible"), FACTS, TODAY, "reason", IV),
                check_signoff(state("review", expires_on=date(2026, 1, 1)), FACTS, TODAY, "r", IV),
                check_signoff(state(), FACTS, TODAY, "nothing to sign", IV),
                check_signoff(state("review"), FACTS, TODAY, "  ", IV),
                check_signoff(None, FACTS, TODAY, "reason", IV)):
        assert bad.level is Level.HARD


@pytest.mark.parametrize(("the_order", "given", "rule"), [
    (None, GIVEN, "chain.order_missing"),
    (order(patient_id=2), GIVEN, "chain.order_patient"),
    (order(course_id=4), GIVEN, "chain.order_course"),
    (order(course_id=None), GIVEN, "chain.order_course"),
    (order(treatment="esketamine"), GIVEN, "chain.order_treatment"),
    (order(status="draft"), GIVEN, "chain.order_signed"),
    (order(status="verbal", ordered_at=NOW - timedelta(hours=25)), GIVEN, "chain.order_signed"),
    (order(), GivenDose(D(40), D(60), D(1)), "chain.order_confirmed"),
    (order(), GivenDose(D(42.1), D(60), D(1), True), "chain.dose_matches_order"),
    (order(), GivenDose(D(1500), D(60), D(1), True), "chain.dose_matches_order"),
    (order(), GivenDose(D(40), D(600), D(1), True), "chain.rate_matches_order"),
    (order(), GivenDose(D(40), D(60), D(10), True), "chain.concentration_matches_order"),
    (order(), GivenDose(D(40), None, None, True), "chain.pump_programmed"),
])
def test_an_administration_off_the_signed_order_is_a_hard_stop(the_order, given, rule):
    findings = check_administration(the_order, SESSION, given, NOW, RULES)
    assert rule in {f.rule for f in findings if f.level is Level.HARD}


def test_the_order_given_within_the_tolerance_passes():
    for mg in ("38", "40", "42"):
        findings = check_administration(order(), SESSION, GivenDose(D(mg), D(60), D(1), True),
                                        NOW, RULES)
        assert not [f for f in findings if f.level is Level.HARD], mg
    esk = SessionFacts(9, 1, 3, "esketamine")
    off = check_administration(order(treatment="esketamine", dose_mg=D(56)), esk,
                               GivenDose(D(84), order_confirmed=True), NOW, RULES)
    assert off[0].rule == "chain.dose_matches_order" and off[0].level is Level.HARD


def test_a_verbal_order_counts_within_its_countersign_hours_and_then_is_overdue():
    verbal = order(status="verbal", ordered_at=NOW - timedelta(hours=2))
    assert order_state(verbal, NOW, RULES) == "verbal"
    assert order_state(verbal, NOW + timedelta(hours=23), RULES) == "overdue"
    assert order_state(order(status="countersigned"), NOW, RULES) == "countersigned"


def test_a_verbal_order_is_read_back_without_override_and_countersigned_by_its_prescriber():
    assert check_verbal_order(True, True, []) == []
    rules = {f.rule for f in check_verbal_order(False, False, ["mg-per-kg"])}
    assert rules == {"chain.verbal_prescriber", "chain.verbal_read_back",
                     "chain.verbal_soft_limit"}
    assert check_countersign("verbal", True).level is Level.OK
    assert check_countersign("verbal", False).level is Level.HARD
    assert check_countersign("signed", True).level is Level.HARD


def test_the_dose_comes_after_check_in_and_a_passing_bp_and_never_in_the_future():
    ready = SessionTimeline(NOW - timedelta(minutes=10), "ok", NOW - timedelta(minutes=5), "ok")
    assert check_ready_to_dose(ready, NOW, None, NOW, RULES) == []
    cases = [
        (SessionTimeline(None, ""), NOW),
        (SessionTimeline(NOW, "hard"), NOW),
        (SessionTimeline(NOW, "ok"), NOW),
        (SessionTimeline(NOW, "ok", NOW, "stop"), NOW),
        (ready, NOW - timedelta(minutes=6)),
        (ready, NOW + timedelta(minutes=1)),
    ]
    for timeline, start in cases:
        assert check_ready_to_dose(timeline, start, None, NOW, RULES), (timeline, start)
    assert check_ready_to_dose(ready, NOW, None, NOW, RULES, [NOW + timedelta(minutes=5)])


def test_vitals_and_ratings_lie_within_the_session():
    tl = SessionTimeline(NOW - timedelta(minutes=30), "ok", NOW - timedelta(minutes=20), "ok",
                         discharged_at=None)
    assert check_event_time("vitals", NOW, tl, NOW, RULES) == []
    assert check_event_time("vitals", NOW + timedelta(minutes=1), tl, NOW, RULES)
    assert check_event_time("vitals", NOW - timedelta(hours=2), tl, NOW, RULES)
    left = SessionTimeline(NOW - timedelta(hours=3), "ok", discharged_at=NOW - timedelta(hours=1))
    assert check_event_time("vitals", NOW - timedelta(minutes=30), left, NOW, RULES)


def test_the_rems_form_never_says_vitals_acceptable_without_a_pre_dose_bp():
    assert predose_vitals_acceptable(SessionTimeline(NOW, "ok")) is None
    assert predose_vitals_acceptable(SessionTimeline(NOW, "ok", NOW, "stop")) is False
    assert predose_vitals_acceptable(SessionTimeline(NOW, "ok", NOW, "warn")) is True


def test_the_ledger_takes_one_administration_per_session_with_the_patient():
    receipt = Receipt(entry_id="r1", at=NOW, actor_id="u1", lot="L1", drug="ketamine",
                      supplier_name="S", supplier_address="A", supplier_dea_number="AB1234563",
                      expiry=date(2027, 1, 1), containers=1,
                      volume_ml_per_container=D(10), concentration_mg_per_ml=D(50))
    dose = Administration(entry_id="a1", at=NOW, actor_id="u1", lot="L1", dose_mg=D(40),
                          session_ref="9", patient_ref="1")
    log = append_event([receipt], dose)
    with pytest.raises(LedgerRefused, match="already has its administration"):
        append_event(log, Administration(entry_id="a2", at=NOW, actor_id="u1", lot="L1",
                                         dose_mg=D(40), session_ref="9", patient_ref="1"))
    with pytest.raises(LedgerRefused, match="patient"):
        append_event(log, Administration(entry_id="a3", at=NOW, actor_id="u1", lot="L1",
                                         dose_mg=D(40), session_ref="10"))
