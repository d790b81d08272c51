"""Issue 13 outcome definitions in the SQL-maintained summary, on every backend.

The dashboard reads the summary (services/outcomes/summary_sql.py); these cases pin that it
applies the same definitions as the pure core: remission per treatment, "no baseline" courses
reported and not counted, and a rise inside induction that is not a relapse.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from kcoutcomes import T0, _course, _doses, _patient, at, build_hand_cohort

from ketaclinic.clinical.outcomes import Assessment, default_criteria, evaluate_course
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes.dashboard import DashboardFilters, relapse_subjects
from ketaclinic.services.outcomes.dashboard_sql import Dialect
from ketaclinic.store.tables_treatment import Assessment as ARow


def _madrs(s, c, scores):  # type: ignore[no-untyped-def]
    for day, total in scores:
        s.add(ARow(patient_id=c.patient_id, course_id=c.id, instrument_id="madrs",
                   administered_at=at(day), total=Decimal(total), created_at=T0))


def test_madrs_remission_is_12_for_esketamine_and_10_for_iv_ketamine_in_the_dashboard(services):
    with services.db.transaction() as s:
        for treatment in ("esketamine", "ketamine-iv"):
            p = _patient(s, "RM", f"Remit{treatment}", dt.date(1980, 1, 1))
            c = _course(s, p, treatment, None, psychotherapy=False)
            _doses(s, c, [0, 3, 7, 10])
            _madrs(s, c, [(-1, 34), (30, 11)])  # 1 month: MADRS 11
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="madrs"))
    month = {r.treatment: (r.remission.k, r.remission.n) for r in dash.outcomes
             if r.timepoint == "1m"}
    assert month == {"esketamine": (1, 1), "ketamine-iv": (0, 1)}
    for treatment, k in (("esketamine", 1), ("ketamine-iv", 0)):  # the core agrees
        out = evaluate_course([Assessment(at(-1), "madrs", 34), Assessment(at(30), "madrs", 11)],
                              [at(0)], default_criteria("madrs", treatment))
        assert (out.first_remission is not None) == bool(k)


def test_courses_without_a_qualifying_baseline_are_reported_and_not_counted(services, login):
    with services.db.transaction() as s:
        build_hand_cohort(s)  # D: first score after the first dose
        p = _patient(s, "NB", "Mildbaseline", dt.date(1980, 1, 1))
        c = _course(s, p, "ketamine-iv", None, psychotherapy=False)
        _doses(s, c, [0, 2, 4])
        for day, total in ((-1, 7), (30, 3)):  # PHQ-9 7 at baseline: below 10
            s.add(ARow(patient_id=p.id, course_id=c.id, instrument_id="phq9",
                       administered_at=at(day), total=Decimal(total), created_at=T0))
        p = _patient(s, "NB", "Oldbaseline", dt.date(1980, 1, 1))
        c = _course(s, p, "esketamine", None, psychotherapy=False)
        _doses(s, c, [0, 3])
        for day, total in ((-20, 22), (30, 3)):  # 20 days before the first dose: too old
            s.add(ARow(patient_id=p.id, course_id=c.id, instrument_id="phq9",
                       administered_at=at(day), total=Decimal(total), created_at=T0))
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="phq9"))
    assert dash.no_baseline == {"esketamine": 1, "ketamine-iv": 2}
    courses = {r.treatment: r.courses for r in dash.outcomes if r.timepoint == "1m"}
    assert courses == {"esketamine": 1, "ketamine-iv": 2}  # B; A and C
    c, _ = login("analyst")
    page = c.get("/dashboard", params={"instrument": "phq9"})
    assert page.status_code == 200
    assert "1 esketamine course; 2 ketamine-iv courses" in page.text


def test_a_rise_inside_induction_is_not_a_relapse_in_sql_or_core(services):
    with services.db.transaction() as s:
        p = _patient(s, "IR", "Insideinduction", dt.date(1980, 1, 1))
        c = _course(s, p, "ketamine-iv", None, psychotherapy=False)
        _doses(s, c, [0, 2, 4, 7, 9, 11])
        scores = [(-1, 20), (4.1, 9), (7.1, 11), (9.1, 12), (12, 8), (30, 6)]
        for day, total in scores:
            s.add(ARow(patient_id=p.id, course_id=c.id, instrument_id="phq9",
                       administered_at=at(day), total=Decimal(total), created_at=T0))
    with services.db.engine.connect() as conn:
        got = {cid: (sub.duration_days, sub.relapsed) for cid, sub in relapse_subjects(
            conn, Dialect(services.db.dialect), DashboardFilters(), default_criteria("phq9"))}
    assert list(got.values()) == [(18.0, False)]  # followed from day 12, censored at day 30
    out = evaluate_course([Assessment(at(d), "phq9", t) for d, t in scores],
                          [at(d) for d in (0, 2, 4, 7, 9, 11)], default_criteria("phq9"),
                          end_of_induction=at(11))
    assert out.relapse_at is None and out.relapse_origin.at == at(12)
