"""A small hand-computed cohort: response, remission, relapse counts and their intervals.

Definitions used for the hand calculation (protocols.md §7 defaults): response = MADRS fall of
≥ 50 % from baseline (score ≤ baseline / 2); remission = MADRS ≤ 12.

IV ketamine, MADRS, 24 h after the first dose (baseline → 24 h):

    course  baseline  24 h   ≤ half?        ≤ 12?
    iv1     34        10     10 ≤ 17 yes    yes
    iv2     30        14     14 ≤ 15 yes    no
    iv3     28        20     20 ≤ 14 no     no
    iv4     40        18     18 ≤ 20 yes    no
    iv5     26        12     12 ≤ 13 yes    yes
    iv6     32         8      8 ≤ 16 yes    yes
    iv7     36        30     30 ≤ 18 no     no
    iv8     24        12     12 ≤ 12 yes    yes
    iv9     38        19     19 ≤ 19 yes    no
    iv10    30        —      not assessable (missing 24 h score)

    → response 7 / 9, remission 4 / 9 (iv10 excluded from both denominators), 10 courses.

Wilson 95 % for 7/9 (z = 1.959964, z² = 3.841459):
    denom  = 1 + z²/n = 1.426829
    centre = (0.777778 + z²/18) / denom = (0.777778 + 0.213414) / 1.426829 = 0.694680
    half   = z/denom · √(p(1−p)/n + z²/(4n²)) = 1.373640 · √(0.019204 + 0.011857) = 0.242092
    → 0.4526 – 0.9368
Wilson 95 % for 4/9: centre = (0.444444 + 0.213414)/1.426829 = 0.461062;
    half = 1.373640 · √(0.027435 + 0.011857) = 0.272235 → 0.1888 – 0.7333

Esketamine, MADRS, end of induction: es1 28→10 (resp, remit), es2 30→16 (no: 16 > 15; no),
es3 34→17 (resp; no), es4 26→22 (no; no) → response 2/4, remission 1/4.
"""

from __future__ import annotations

import math

import pytest

from ketaclinic.clinical.cohort import (
    OutcomeRecord,
    kaplan_meier,
    proportion_ci,
    rate_per_100_sessions,
    tabulate_outcomes,
)
from ketaclinic.clinical.rules import ClinicalInputError

IV_24H = {
    "iv1": (34, 10), "iv2": (30, 14), "iv3": (28, 20), "iv4": (40, 18), "iv5": (26, 12),
    "iv6": (32, 8), "iv7": (36, 30), "iv8": (24, 12), "iv9": (38, 19), "iv10": (30, None),
}
ES_EOI = {"es1": (28, 10), "es2": (30, 16), "es3": (34, 17), "es4": (26, 22)}


def _record(course: str, treatment: str, tp: str, baseline: int, score: int | None):
    if score is None:
        return OutcomeRecord(course, treatment, "madrs", tp, None, None)
    return OutcomeRecord(course, treatment, "madrs", tp, score <= baseline / 2, score <= 12)


def _cohort() -> list[OutcomeRecord]:
    recs = [_record(c, "iv_ketamine", "24h", b, s) for c, (b, s) in IV_24H.items()]
    recs += [_record(c, "esketamine", "end_of_induction", b, s) for c, (b, s) in ES_EOI.items()]
    return recs


def test_hand_computed_cohort_gives_the_hand_counts_and_wilson_intervals():
    rows = {(r.treatment, r.timepoint): r for r in tabulate_outcomes(_cohort())}
    iv = rows[("iv_ketamine", "24h")]
    assert iv.courses == 10
    assert (iv.response.k, iv.response.n) == (7, 9)
    assert (iv.remission.k, iv.remission.n) == (4, 9)
    assert iv.response.lo == pytest.approx(0.4526, abs=5e-5)
    assert iv.response.hi == pytest.approx(0.9368, abs=5e-5)
    assert iv.remission.lo == pytest.approx(0.1888, abs=5e-5)
    assert iv.remission.hi == pytest.approx(0.7333, abs=5e-5)
    es = rows[("esketamine", "end_of_induction")]
    assert (es.response.k, es.response.n, es.remission.k, es.remission.n) == (2, 4, 1, 4)


def test_outcome_rows_are_ordered_by_treatment_instrument_then_timepoint_order():
    recs = [
        OutcomeRecord("a", "iv", "madrs", "3m", True, False),
        OutcomeRecord("a", "iv", "madrs", "24h", True, True),
        OutcomeRecord("a", "iv", "madrs", "end_of_induction", False, False),
        OutcomeRecord("b", "es", "phq9", "1m", None, None),
    ]
    keys = [(r.treatment, r.instrument, r.timepoint) for r in tabulate_outcomes(recs)]
    assert keys == [
        ("es", "phq9", "1m"),
        ("iv", "madrs", "24h"),
        ("iv", "madrs", "end_of_induction"),
        ("iv", "madrs", "3m"),
    ]
    empty = tabulate_outcomes(recs)[0]
    assert empty.response.n == 0 and empty.response.p is None


def test_a_course_with_two_outcomes_at_one_timepoint_is_refused():
    rec = OutcomeRecord("a", "iv", "madrs", "24h", True, True)
    with pytest.raises(ClinicalInputError):
        tabulate_outcomes([rec, rec])


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (8, 10, 0.4902, 0.9433),  # brief / Newcombe 1998 style worked value
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe 1998 Table I example (81/263, method 3)
        (1, 29, 0.0061, 0.1718),  # Newcombe 1998 Table I example (1/29)
    ],
)
def test_wilson_interval_matches_published_values(k, n, lo, hi):
    p = proportion_ci(k, n)
    assert p.lo == pytest.approx(lo, abs=1e-4)
    assert p.hi == pytest.approx(hi, abs=1e-4)
    assert p.p == pytest.approx(k / n)


def test_proportion_of_zero_trials_has_no_estimate_and_bad_counts_are_refused():
    assert proportion_ci(0, 0).p is None
    with pytest.raises(ClinicalInputError):
        proportion_ci(3, 2)
    with pytest.raises(ClinicalInputError):
        proportion_ci(-1, 2)


@pytest.mark.parametrize(
    ("events", "lo", "hi"),
    # Exact Poisson 95 % limits for the count (Garwood 1936 tables): 0 → 0–3.689, 3 → 0.619–8.767
    [(0, 0.0, 3.6889), (3, 0.6187, 8.7673), (10, 4.7954, 18.3904)],
)
def test_poisson_exact_rate_per_100_sessions_matches_tables(events, lo, hi):
    r = rate_per_100_sessions(events, 100)
    assert r.per_100 == pytest.approx(events)
    assert r.lo == pytest.approx(lo, abs=1e-3)
    assert r.hi == pytest.approx(hi, abs=1e-3)
    # scaling: 3 events in 300 sessions = 1 per 100
    assert rate_per_100_sessions(3, 300).per_100 == pytest.approx(1.0)
    assert rate_per_100_sessions(0, 0).per_100 is None


# Responders followed from response to relapse (days): event 1 = relapse, 0 = censored.
#   t   at risk  relapses  S(t)
#   10  8        1         7/8          = 0.875
#   18  7        1 (+1 c)  0.875 · 6/7  = 0.75
#   25  5        1         0.75 · 4/5   = 0.6
#   30  4        0 (1 c)   0.6
#   40  3        1         0.6 · 2/3    = 0.4   ← first S ≤ 0.5 → median 40 days
#   60, 90 censored.   Relapses: 4 of 8.
# Greenwood sum at 40: 1/(8·7) + 1/(7·6) + 1/(5·4) + 1/(3·2) = 0.258333
RELAPSE_DAYS = [10, 18, 18, 25, 30, 40, 60, 90]
RELAPSED = [1, 1, 0, 1, 0, 1, 0, 0]


def test_hand_computed_kaplan_meier_relapse_curve_and_median():
    km = kaplan_meier(RELAPSE_DAYS, RELAPSED)
    assert km.n == 8 and km.events == 4
    assert km.median == 40
    for t, s in [(0, 1.0), (9.9, 1.0), (10, 0.875), (18, 0.75), (25, 0.6), (39, 0.6), (40, 0.4)]:
        assert km.survival_at(t) == pytest.approx(s)
    assert km.at_risk([0, 10, 18, 19, 40, 90, 100]) == [8, 8, 7, 5, 3, 1, 0]
    # log-log band at 40 days from the hand Greenwood sum
    s, v, z = 0.4, 0.258333, 1.959964
    w = z * math.sqrt(v) / abs(math.log(s))
    lo, hi = km.band_at(40)
    assert lo == pytest.approx(math.exp(-math.exp(math.log(-math.log(s)) + w)), abs=1e-5)
    assert hi == pytest.approx(math.exp(-math.exp(math.log(-math.log(s)) - w)), abs=1e-5)


def test_median_is_infinite_when_the_curve_never_reaches_one_half():
    km = kaplan_meier([5, 10, 20], [1, 0, 0])
    assert math.isinf(km.median)
    assert km.as_dict()["median"] is None
