"""Cumulative exposure and due urinary/cognition screens (grade-U triggers)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ketaclinic.clinical.cohort import (
    DoseExposure,
    ScreeningRecord,
    load_screening_rules,
    load_timepoints,
    select_assessment_in_window,
    summarise_exposure,
)
from ketaclinic.clinical.rules import ClinicalInputError, Grade, Level

START = date(2025, 1, 6)


def _iv_series(pid="p1", n=6, mg=35.0):
    return [DoseExposure(pid, "ketamine", mg, START + timedelta(days=3 * i)) for i in range(n)]


def test_bundled_screening_rules_are_cited_unconfirmed_defaults():
    rules = {r.kind: r for r in load_screening_rules()}
    assert set(rules) == {"urinary", "cognition"}
    for r in rules.values():
        assert r.interval_days.grade is Grade.UNCONFIRMED and r.interval_days.needs_confirmation
        assert "protocols.md §8" in r.interval_days.source


def test_exposure_sums_milligrams_per_drug_and_counts_sessions():
    doses = _iv_series() + [DoseExposure("p1", "esketamine", 56, START + timedelta(days=30))]
    (p,) = summarise_exposure(doses, [], as_of=START + timedelta(days=31))
    assert p.sessions == 7
    assert p.mg_by_drug == {"ketamine": 210.0, "esketamine": 56.0}
    assert p.total_mg == 266.0
    assert p.due == ()  # 31 days < 90, 266 mg < 1000
    assert all(f.level is Level.OK for f in p.findings)


def test_urinary_screen_is_due_after_the_interval_without_a_screen():
    (p,) = summarise_exposure(_iv_series(), [], as_of=START + timedelta(days=90))
    assert p.due == ("urinary",)
    f = next(f for f in p.findings if f.rule == "urinary_screen_due")
    assert f.level is Level.INFO and "90 days since first dose" in f.message


def test_a_recent_screen_resets_the_clock_and_the_exposure_count():
    doses = [DoseExposure("p1", "ketamine", 100, START + timedelta(days=i)) for i in range(12)]
    as_of = START + timedelta(days=20)
    (p,) = summarise_exposure(doses, [], as_of=as_of)
    assert "urinary" in p.due  # 1200 mg since first dose >= 1000 mg
    screen = ScreeningRecord("p1", "urinary", START + timedelta(days=5))
    (p,) = summarise_exposure(doses, [screen], as_of=as_of)
    assert p.due == ()  # 600 mg since screen, 15 days


def test_doses_after_as_of_are_ignored_and_unknown_drugs_refused():
    assert summarise_exposure(_iv_series(), [], as_of=START - timedelta(days=1)) == []
    with pytest.raises(ClinicalInputError):
        summarise_exposure([DoseExposure("p", "ketamin", 1, START)], [], as_of=START)


def test_timepoints_load_in_report_order_with_24h_window_12_to_48h():
    tps = load_timepoints()
    assert [t.label for t in tps] == ["24h", "end_of_induction", "1m", "3m", "6m"]
    t24 = tps[0]
    assert (t24.window_lo_h.value, t24.window_hi_h.value) == (12, 48)
    assert t24.target_h.needs_confirmation
    assert select_assessment_in_window([2, 20, 30, 50], t24) == 1
    assert select_assessment_in_window([2, 60], t24) is None
