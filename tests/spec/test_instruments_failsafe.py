"""Issue 13, Measurement: every suicide item is asked, deep sedation alerts, no partial totals.

Each row of the tables below is a case reproduced in the issue (or its direct sibling on
another instrument); the properties check the invariants behind them on random forms.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.instruments import (
    DefinitionError,
    list_bundled,
    load_bundled,
    load_definition,
    score_answers,
)

URGENCY = {None: 0, "routine": 1, "high": 2, "urgent": 3}

# instrument, suicide item (issue 13: PHQ-9 9, QIDS-SR16 12, MADRS 10, HAM-D17 3)
SUICIDE_ITEMS = [("phq9", 9), ("qids-sr16", 12), ("madrs", 10), ("hamd17", 3)]


def _answers(instrument: str, value: int = 1) -> list:
    d = load_bundled(instrument)
    return [min(max(value, i.min_score), i.max_score) for i in d.items if i.required]


@pytest.mark.parametrize(("instrument", "item"), SUICIDE_ITEMS)
def test_the_suicide_item_is_marked_in_the_instrument_data_with_its_source(instrument, item):
    marked = load_bundled(instrument).suicide_item
    assert marked is not None and marked.item == item
    assert marked.source and marked.priority == "urgent" and marked.action


@pytest.mark.parametrize(("instrument", "item"), SUICIDE_ITEMS)
def test_an_unanswered_suicide_item_raises_an_urgent_ask_in_person_alert(instrument, item):
    answers = _answers(instrument, 0)
    answers[item - 1] = None
    result = score_answers(load_bundled(instrument), answers)
    alerts = [a for a in result.alerts if a.rule == f"{instrument}.suicide_item_unanswered"]
    assert len(alerts) == 1
    assert alerts[0].priority == "urgent" and alerts[0].item == item
    assert "in person" in alerts[0].message and alerts[0].action and alerts[0].source
    assert result.total is None and not result.complete and not result.prorated


def test_phq9_is_never_prorated_over_item_9():
    # the case: 8 items answered, item 9 empty, formerly prorated to a full score
    result = score_answers(load_bundled("phq9"), [2, 2, 2, 2, 2, 2, 2, 2, None])
    assert result.total is None and not result.prorated and result.severity is None
    assert any("never prorated" in n for n in result.notes)


def test_phq9_missing_items_other_than_9_are_still_prorated_and_never_complete():
    result = score_answers(load_bundled("phq9"), [2, None, 2, 2, 2, 2, 2, 2, 0])
    assert result.total == 16 and result.prorated and not result.complete
    assert not [a for a in result.alerts if a.rule.endswith("suicide_item_unanswered")]


@pytest.mark.parametrize(
    ("answers", "total"),
    [
        ([None, 2, 0, 0] + [0] * 12, None),  # sleep domain from 3 of 4 items: no total
        ([0] * 5 + [2, None, 0, 0] + [0] * 7, 2),  # 6 and 7 are alternatives: 7 not applicable
        ([0] * 5 + [2, 1, None, None] + [0] * 7, None),  # weight items both missing
        ([0] * 14 + [1, None], None),  # psychomotor from 1 of 2 items: no total
    ],
)
def test_qids_domains_are_never_scored_from_a_fraction_of_their_items(answers, total):
    result = score_answers(load_bundled("qids-sr16"), answers)
    assert result.total == total


@pytest.mark.parametrize(
    ("instrument", "rating", "fires"),
    [("moaas", 0, True), ("moaas", 1, True), ("moaas", 2, True), ("moaas", 3, False),
     ("moaas", 5, False), ("rass", -5, True), ("rass", -4, True), ("rass", -3, False),
     ("rass", 0, False), ("rass", 4, False)],
)
def test_deep_sedation_is_an_urgent_alert_with_a_required_action(instrument, rating, fires):
    alerts = score_answers(load_bundled(instrument), [rating]).alerts
    deep = [a for a in alerts if a.rule == f"{instrument}.deep_sedation"]
    assert bool(deep) is fires
    for a in deep:
        assert a.priority == "urgent" and a.action and a.source and a.value == rating


def test_recall_windows_are_instrument_data():
    hours = {d.id: d.recall_window.hours for d in list_bundled() if d.recall_window}
    assert hours["phq9"] == 336 and hours["qids-sr16"] == 168 and hours["moaas"] == 0


def test_a_clinic_definition_can_mark_its_suicide_item_and_a_bad_mark_is_refused():
    raw = dict(load_bundled("madrs").raw)
    raw["suicide_item"] = {**raw["suicide_item"], "item": 11}
    with pytest.raises(DefinitionError, match="suicide_item.item"):
        load_definition(json.dumps(raw))
    raw = dict(load_bundled("gad7").raw)
    raw["suicide_item"] = {"item": 7, "source": "clinic test definition", "grade": "U"}
    d = load_definition(json.dumps(raw))
    result = score_answers(d, [0] * 6 + [None])
    assert [a.rule for a in result.alerts] == ["gad7.suicide_item_unanswered"]


# --- properties -----------------------------------------------------------------------------

QUESTIONNAIRES = [d.id for d in list_bundled() if d.scoring.method in ("sum", "domains")]


def _urgency(result) -> int:  # type: ignore[no-untyped-def]
    return max((URGENCY[a.priority] for a in result.alerts), default=0)


@st.composite
def form_and_removal(draw):  # type: ignore[no-untyped-def]
    d = load_bundled(draw(st.sampled_from(QUESTIONNAIRES)))
    items = [i for i in d.items if i.required]
    answers = [draw(st.integers(i.min_score, i.max_score)) for i in items]
    if d.id == "bprs4":  # 0 is "not rated" there, never a score
        answers = [max(1, a) for a in answers]
    removed = list(answers)
    removed[draw(st.integers(0, len(items) - 1))] = None
    return d, answers, removed


@settings(max_examples=examples(300), deadline=None)
@given(form_and_removal())
def test_removing_an_answer_never_lowers_urgency(case):  # type: ignore[no-untyped-def]
    d, answers, removed = case
    assert _urgency(score_answers(d, removed)) >= _urgency(score_answers(d, answers))


@st.composite
def form_without_suicide_item(draw):  # type: ignore[no-untyped-def]
    instrument, item = draw(st.sampled_from(SUICIDE_ITEMS))
    d = load_bundled(instrument)
    answers = [draw(st.one_of(st.none(), st.integers(i.min_score, i.max_score)))
               for i in d.items if i.required]
    answers[item - 1] = draw(st.sampled_from([None, ""]))
    return d, answers


@settings(max_examples=examples(300), deadline=None)
@given(form_without_suicide_item())
def test_a_missing_suicide_item_always_alerts_and_never_gives_a_total(case):  # type: ignore[no-untyped-def]
    d, answers = case
    result = score_answers(d, answers)
    assert any(a.rule.endswith("suicide_item_unanswered") and a.priority == "urgent"
               for a in result.alerts)
    assert result.total is None and not result.complete


def test_an_unanswered_cssrs_question_that_could_make_the_tier_high_is_urgent():
    d = load_bundled("cssrs-screener")
    answered = score_answers(d, ["y", "y", "n", "y", "n", "n", "na"])
    assert _urgency(answered) == URGENCY["urgent"]
    removed = score_answers(d, ["y", "y", "n", None, "n", "n", "na"])
    assert _urgency(removed) == URGENCY["urgent"]


@st.composite
def cssrs_and_removal(draw):  # type: ignore[no-untyped-def]
    yn = st.sampled_from(["y", "n"])
    q1, q2, q6 = draw(yn), draw(yn), draw(yn)
    middle = [draw(yn) for _ in range(3)] if q2 == "y" else ["na"] * 3
    answers = [q1, q2, *middle, q6, draw(yn) if q6 == "y" else "na"]
    askable = [i for i, a in enumerate(answers) if a != "na"]
    removed = list(answers)
    removed[draw(st.sampled_from(askable))] = None
    return load_bundled("cssrs-screener"), answers, removed


@settings(max_examples=examples(200), deadline=None)
@given(cssrs_and_removal())
def test_removing_a_cssrs_answer_never_lowers_urgency(case):  # type: ignore[no-untyped-def]
    d, answers, removed = case
    assert _urgency(score_answers(d, removed)) >= _urgency(score_answers(d, answers))
