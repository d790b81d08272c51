"""Invariants of scoring: totals stay in range and never fall when an answer rises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.instruments import load_bundled, score_answers

SUMMED = ["phq9", "gad7", "qids-sr16", "hamd17", "madrs", "cadss", "cadss6", "bprs4"]


@st.composite
def form_and_bump(draw):
    d = load_bundled(draw(st.sampled_from(SUMMED)))
    items = [i for i in d.items if i.scored]
    answers = [draw(st.integers(i.min_score, i.max_score)) for i in items]
    k = draw(st.integers(0, len(items) - 1))
    bumped = list(answers)
    bumped[k] = min(items[k].max_score, answers[k] + 1)
    return d, answers, bumped


@settings(max_examples=examples(200), deadline=None)
@given(form_and_bump())
def test_totals_are_in_range_and_monotone_in_each_item(case):
    d, answers, bumped = case
    low, high = score_answers(d, answers), score_answers(d, bumped)
    assert d.total_min <= low.total <= d.total_max
    assert high.total >= low.total
    assert low.severity is not None or not d.band_sets
