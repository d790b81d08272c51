"""The dashboard on a small hand-computed cohort (see tests/support/kcoutcomes.py), both backends.

Hand calculation (PHQ-9; response = fall ≥ 50 % from baseline; remission = total ≤ 4; issue 13
definitions: baseline = last score in the 14 days before the first dose and ≥ 10; relapse from
the response at the end of induction, at PHQ-9 ≥ 10 twice 5–15 days apart, or an event):

ketamine-iv — courses with a baseline: A (20), C (18); D has none and is left out.
  24h  (12–48 h):  PHQ-9 rates 2 weeks, so it never feeds a 24-hour outcome → 0/0, 0/0
  end of induction (0–14 d after the last induction dose): A d12 = 8 (60 %: resp; 8 > 4: no);
       C has induction sessions pending → not assessable → resp 1/1, rem 0/1
  1m   (21–45 d, target 30): A d30 4 (resp, rem); C d30 17 (no, no) → resp 1/2, rem 1/2
  3m   (70–120 d): A d91 14 (30 %: no, no) → resp 0/1, rem 0/1
  6m:  none → 0/0
esketamine — B (baseline 28, the last score before the first dose, an unlinked one):
  24h: 0/0 (recall);  end of induction: d11 3 → 1/1, 1/1;
  1m: d30 5 → resp 1/1, rem 0/1 (5 > 4);  3m, 6m: 0/0

Relapse, counted from the response assessment at the end of induction:
  A: end of induction d11; d12 = 8 is a response → origin d12; d40 15 and d47 16 are both ≥ 10
     and 7 days apart → relapse d47; duration 35 d, event.
  B: end of induction d10; d11 = 3 is a response → origin d11; no relapse; censored at the
     last score d30 → 19 d.
  C: induction not ended (sessions pending) → relapse not assessed (its hospitalisation on d20
     falls inside induction): not a subject.
  KM: t=19 censored; t=35 S=0 → median 35 d.
"""

from __future__ import annotations

import math

from kcoutcomes import build_hand_cohort
from kctest import counting_statements

from ketaclinic.clinical.km import kaplan_meier
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes.dashboard import DashboardFilters

EXPECTED = {
    # (treatment, timepoint): (resp_k, resp_n, rem_k, rem_n)
    ("ketamine-iv", "24h"): (0, 0, 0, 0),
    ("ketamine-iv", "end_of_induction"): (1, 1, 0, 1),
    ("ketamine-iv", "1m"): (1, 2, 1, 2),
    ("ketamine-iv", "3m"): (0, 1, 0, 1),
    ("ketamine-iv", "6m"): (0, 0, 0, 0),
    ("esketamine", "24h"): (0, 0, 0, 0),
    ("esketamine", "end_of_induction"): (1, 1, 1, 1),
    ("esketamine", "1m"): (1, 1, 0, 1),
    ("esketamine", "3m"): (0, 0, 0, 0),
    ("esketamine", "6m"): (0, 0, 0, 0),
}


def _seed(services, users=None):
    with services.db.transaction() as s:
        return build_hand_cohort(s, created_by=None)


def test_response_and_remission_counts_match_the_hand_calculation(services):
    _seed(services)
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="phq9"))
    got = {(r.treatment, r.timepoint): (r.response.k, r.response.n, r.remission.k,
                                        r.remission.n) for r in dash.outcomes}
    assert got == EXPECTED
    courses = {(r.treatment, r.timepoint): r.courses for r in dash.outcomes}
    assert courses[("ketamine-iv", "24h")] == 2 and courses[("esketamine", "6m")] == 1


def test_relapse_counts_and_the_km_median_match_the_hand_calculation_and_lifelines(services):
    _seed(services)
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="phq9"))
    assert dash.relapse_subjects == 2
    assert dash.km.n == 2 and dash.km.events == 1
    assert dash.km.median == 35.0
    reference = kaplan_meier([35, 19], [1, 0])
    assert reference.median == dash.km.median
    for t, s in zip(dash.km.timeline, dash.km.survival, strict=True):
        assert math.isclose(reference.survival_at(t), s, abs_tol=1e-9)
    assert dash.km.at_risk[0.0] == 2 and dash.km.at_risk[30.0] == 1


def test_filters_narrow_the_cohort(services):
    _seed(services)
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="phq9",
                                                                treatment="esketamine"))
    assert {r.treatment for r in dash.outcomes} == {"esketamine"}
    assert dash.relapse_subjects == 1
    import datetime as dt
    empty = services.outcomes.dashboard(SYSTEM, DashboardFilters(
        date_from=dt.date(2030, 1, 1)))
    assert empty.outcomes == [] and not empty.km.estimable


def test_exposure_flags_come_from_sql_aggregates(services):
    _seed(services)
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters())
    e = dash.exposure
    assert e.patients == 4
    # A: 6 × 40 = 240 mg, B: 4 × 56 = 224, C: 80, D: 120; clock is 2026-11-02, so > 180 days
    # since every first dose: both screens are due for everyone.
    assert e.max_mg == 240.0 and e.due == {"urinary": 4, "cognition": 4}


def test_the_dashboard_issues_a_constant_number_of_statements(services):
    def count_for(extra_copies):
        for i in range(extra_copies):
            with services.db.transaction() as s:
                build_hand_cohort(s, family_prefix=f"Copy{i}x")
        with counting_statements(services.db.engine) as sent:
            dash = services.outcomes.dashboard(SYSTEM, DashboardFilters())
        return sent.n, dash

    small, d1 = count_for(1)
    large, d2 = count_for(6)
    assert d1.relapse_subjects == 2 and d2.relapse_subjects == 14
    assert small == large
    assert small <= 15
