"""Invariants of scoring: totals stay in range and never fall when an answer rises; an answer
typed as text is read in the digits 0-9 only, whatever other digits it holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.instruments import load_bundled, score_answers
from ketaclinic.clinical.rules import ClinicalInputError

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


# --- answers typed as text: the digits 0-9 only ------------------------------------------
ALL = [*SUMMED, "moaas", "rass", "cssrs-screener"]
#: every Unicode decimal digit but 0-9 (Arabic-Indic, Devanagari, full-width, Thai …)
FOREIGN_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not "0" <= c <= "9")
#: and numerals that are no decimal digit: superscripts, fractions, CJK and Roman numerals
FOREIGN_NUMERALS = st.sampled_from(["²", "³", "¹", "½", "三", "Ⅲ", "⑤", "٣", "３", "٢"])


@st.composite
def an_answer_in_other_digits(draw):
    """(instrument, position, the answers with one typed in other digits)."""
    d = load_bundled(draw(st.sampled_from(ALL)))
    answers: list[object] = [None] * len(d.items)
    k = draw(st.integers(0, len(d.items) - 1))
    item = d.items[k]
    score = draw(st.integers(max(0, item.min_score), max(0, item.max_score)))
    ascii_text = draw(st.sampled_from(["", "+", " "])) + str(score)
    foreign = st.one_of(FOREIGN_DIGITS, FOREIGN_NUMERALS)
    # replace one or more of its digits (or put a foreign one beside them)
    where = draw(st.integers(0, len(ascii_text)))
    typed = ascii_text[:where] + draw(foreign) + ascii_text[where + 1:]
    answers[k] = typed
    return d, k, typed, answers


@settings(max_examples=examples(300), deadline=None)
@given(an_answer_in_other_digits())
def test_an_answer_typed_in_other_digits_is_refused_naming_the_item(case):
    d, k, typed, answers = case
    with pytest.raises(ClinicalInputError) as refused:
        score_answers(d, answers)
    message = str(refused.value)
    assert message.startswith(f"{d.short_name} item {d.items[k].number}: "), message
    assert "digits 0-9" in message, message


@settings(max_examples=examples(200), deadline=None)
@given(st.data())
def test_an_answer_typed_in_ascii_digits_scores_as_the_number(data):
    d = load_bundled(data.draw(st.sampled_from(SUMMED)))
    numbers = [data.draw(st.integers(i.min_score, i.max_score)) for i in d.items if i.scored]
    typed = [data.draw(st.sampled_from(["{}", " {} ", "+{}", "0{}"])).format(n) for n in numbers]
    assert score_answers(d, typed).total == score_answers(d, numbers).total


@pytest.mark.parametrize("typed", ["٣", "۳", "३", "３", "²", "½", "三", "1٣", "٣.٥", "-٣"])
def test_known_foreign_digits_are_refused_with_why(typed):
    with pytest.raises(ClinicalInputError, match=r"^PHQ-9 item 1: .* is not a number: type it "
                                                 r"with the digits 0-9$"):
        score_answers(load_bundled("phq9"), [typed, *[0] * 8])


@pytest.mark.parametrize("typed", ["9" * 19, "9" * 5000, "1_0", "0x1", "1e0"])
def test_a_long_or_odd_number_is_refused_as_an_answer_never_an_error_of_ours(typed):
    with pytest.raises(ClinicalInputError, match=r"^PHQ-9 item 1: "):
        score_answers(load_bundled("phq9"), [typed, *[0] * 8])
