"""Published scoring rules of each instrument, as tables of cases (instruments.md §2)."""

from __future__ import annotations

import pytest

from ketaclinic.clinical.instruments import load_bundled, score_answers
from ketaclinic.clinical.instruments.scoring import replace_alert_threshold
from ketaclinic.clinical.rules import ClinicalInputError


def score(instrument, answers, **kw):
    return score_answers(load_bundled(instrument), answers, **kw)


# --- totals: all zero / all max, every instrument ------------------------------------------

HAMD_MAX = [4, 4, 4, 2, 2, 2, 4, 4, 4, 4, 4, 2, 2, 2, 4, 2, 2]

EXTREMES = [
    ("phq9", [0] * 9, 0, "none-minimal"),
    ("phq9", [3] * 9 + [3], 27, "severe"),
    ("gad7", [0] * 7, 0, "minimal"),
    ("gad7", [3] * 7, 21, "severe"),
    ("qids-sr16", [0] * 16, 0, "none"),
    ("qids-sr16", [3] * 16, 27, "very severe"),
    ("hamd17", [0] * 17, 0, "normal"),
    ("hamd17", HAMD_MAX, 52, "very severe"),
    ("madrs", [0] * 10, 0, "normal"),
    ("madrs", [6] * 10, 60, "severe"),
    ("cadss", [0] * 23, 0, None),
    ("cadss", [4] * 23, 92, None),
    ("cadss6", [0] * 6, 0, None),
    ("cadss6", [4] * 6, 24, None),
    ("bprs4", [1] * 4, 4, None),
    ("bprs4", [7] * 4, 28, None),
    ("moaas", [5], 5, "alert"),
    ("moaas", [0], 0, "no response"),
    ("rass", [4], 4, "combative"),
    ("rass", [-5], -5, "unarousable"),
]


@pytest.mark.parametrize(("instrument", "answers", "total", "severity"), EXTREMES)
def test_all_zero_and_all_max_give_the_published_range(instrument, answers, total, severity):
    result = score(instrument, answers)
    assert (result.total, result.severity, result.complete, result.prorated) == (
        total,
        severity,
        True,
        False,
    )


# --- band boundaries ------------------------------------------------------------------------


def _sum_answers(instrument, n_items, item_max, total):
    answers, left = [], total
    for _ in range(n_items):
        answers.append(min(item_max, left))
        left -= answers[-1]
    assert left == 0
    return answers


BANDS = {
    "phq9": (
        9,
        3,
        [
            (0, "none-minimal"),
            (4, "none-minimal"),
            (5, "mild"),
            (9, "mild"),
            (10, "moderate"),
            (14, "moderate"),
            (15, "moderately severe"),
            (19, "moderately severe"),
            (20, "severe"),
        ],
    ),
    "gad7": (
        7,
        3,
        [
            (4, "minimal"),
            (5, "mild"),
            (9, "mild"),
            (10, "moderate"),
            (14, "moderate"),
            (15, "severe"),
        ],
    ),
    "madrs": (
        10,
        6,
        [
            (6, "normal"),
            (7, "mild"),
            (19, "mild"),
            (20, "moderate"),
            (34, "moderate"),
            (35, "severe"),
        ],
    ),
}


@pytest.mark.parametrize(
    ("instrument", "total", "band"),
    [(i, t, b) for i, (_, _, cases) in BANDS.items() for t, b in cases],
)
def test_every_band_boundary_falls_in_the_published_band(instrument, total, band):
    n, item_max, _ = BANDS[instrument]
    assert score(instrument, _sum_answers(instrument, n, item_max, total)).severity == band


def _hamd(total):
    answers, left = [], total
    for item_max in HAMD_MAX:
        answers.append(min(item_max, left))
        left -= answers[-1]
    return answers


@pytest.mark.parametrize(
    ("total", "camcops", "zimmerman"),
    [
        (7, "normal", "no depression"),
        (8, "mild", "mild"),
        (13, "mild", "mild"),
        (14, "moderate", "mild"),
        (16, "moderate", "mild"),
        (17, "moderate", "moderate"),
        (18, "moderate", "moderate"),
        (19, "severe", "moderate"),
        (22, "severe", "moderate"),
        (23, "very severe", "moderate"),
        (24, "very severe", "severe"),
    ],
)
def test_hamd17_band_sets_camcops_and_zimmerman_are_both_available(total, camcops, zimmerman):
    assert score("hamd17", _hamd(total)).severity == camcops
    alt = score("hamd17", _hamd(total), band_set="zimmerman2013")
    assert (alt.total, alt.severity, alt.band_set) == (total, zimmerman, "zimmerman2013")


@pytest.mark.parametrize(
    ("domains_total", "band"),
    [
        (5, "none"),
        (6, "mild"),
        (10, "mild"),
        (11, "moderate"),
        (15, "moderate"),
        (16, "severe"),
        (20, "severe"),
        (21, "very severe"),
    ],
)
def test_qids_band_boundaries(domains_total, band):
    # one item per single-item domain plus sleep/appetite/psychomotor maxima, built to a total
    domain_items = [[1, 2, 3, 4], [5], [6, 7, 8, 9], [10], [11], [12], [13], [14], [15, 16]]
    answers = [0] * 16
    left = domains_total
    for items in domain_items:
        value = min(3, left)
        answers[items[0] - 1] = value
        left -= value
    assert score("qids-sr16", answers).total == domains_total
    assert score("qids-sr16", answers).severity == band


# --- PHQ-9 missing items --------------------------------------------------------------------


def test_phq9_with_one_missing_item_is_prorated_by_the_mean_of_answered_items():
    result = score("phq9", [2, 2, 2, 2, None, 2, 2, 2, 1])
    # 15 over 8 items, mean 1.875, prorated 16.875 -> 17
    assert (result.total, result.prorated, result.complete) == (17, True, False)
    assert result.prorated_total_exact == pytest.approx(16.875)
    assert any("prorated" in n for n in result.notes)


def test_phq9_with_two_missing_items_is_prorated_and_half_rounds_up():
    result = score("phq9", [1, 1, 1, 0, None, None, 1, 1, 0])
    # 5 over 7 items -> 5 * 9 / 7 = 6.43 -> 6
    assert result.total == 6 and result.prorated
    result = score("phq9", [1, 1, 1, 1, 1, 1, None, "", 1])
    assert result.total == 9  # 7 over 7 items, exactly 9
    result = score("phq9", [2, 1, 0, 0, 0, 0, None, None, 0])
    # 3 over 7 items -> 3.857 -> 4
    assert result.total == 4


def test_phq9_half_up_rounding_of_an_exact_half():
    # 8 answered items summing to 4: 4 * 9 / 8 = 4.5, rounded half up to 5
    result = score("phq9", [1, 1, 1, 1, 0, 0, 0, None, 0])
    assert result.prorated_total_exact == pytest.approx(4.5)
    assert (result.total, result.severity) == (5, "mild")


def test_phq9_with_three_missing_items_is_not_scorable_and_says_so():
    result = score("phq9", [3, 3, None, None, None, 3, 3, 3, 0])
    assert (result.total, result.severity, result.complete, result.prorated) == (
        None,
        None,
        False,
        False,
    )
    assert any("not scorable" in n for n in result.notes)


def test_phq9_item_10_is_unscored_and_optional():
    assert score("phq9", [1] * 9 + [3]).total == 9
    assert score("phq9", [1] * 9).complete


def test_gad7_does_not_impute_a_missing_item():
    result = score("gad7", [1, 1, 1, None, 1, 1, 1])
    assert (result.total, result.complete, result.prorated) == (None, False, False)


# --- invalid answers ------------------------------------------------------------------------

INVALID = [
    ("phq9", ["4"] + ["0"] * 8, "item 1: 4 is out of range 0 to 3"),
    ("phq9", ["-1"] + ["0"] * 8, "item 1: -1 is out of range"),
    ("phq9", ["0", "x"] + ["0"] * 7, "item 2: 'x' is not a number"),
    ("phq9", ["0", "0", "1.5"] + ["0"] * 6, "item 3: decimal answer '1.5'"),
    ("phq9", [0, 0, 0, 1.0, 0, 0, 0, 0, 0], "item 4: decimal answer"),
    ("phq9", [True] + [0] * 8, "item 1: True is not a score"),
    ("phq9", [0] * 11, "expected 10 answers, got 11"),
    ("phq9", [0] * 8, "expected 9 answers, got 8"),
    ("madrs", [7] + [0] * 9, "MADRS item 1: 7 is out of range 0 to 6"),
    ("hamd17", [0, 0, 0, 3] + [0] * 13, "HAM-D17 item 4: 3 is out of range 0 to 2"),
    ("hamd17", [0] * 15 + ["3", 0], "HAM-D17 item 16: 3 is out of range 0 to 2; use 'na'"),
    ("bprs4", [8, 1, 1, 1], "item 1: 8 is out of range 1 to 7"),
    ("rass", ["5"], "RASS item 1: 5 is out of range -5 to 4"),
    ("moaas", ["six"], "MOAA/S item 1: 'six' is not a number"),
    (
        "cssrs-screener",
        ["maybe", "n", "", "", "", "n", ""],
        "item 1: 'maybe' is not an answer (use y/n)",
    ),
]


@pytest.mark.parametrize(("instrument", "answers", "message"), INVALID)
def test_invalid_answers_are_refused_naming_the_item_and_reason(instrument, answers, message):
    with pytest.raises(ClinicalInputError) as caught:
        score(instrument, answers)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- QIDS-SR16 either/or items and domains ---------------------------------------------------


def test_qids_either_or_items_take_the_answered_alternative():
    answers = [0] * 16
    answers[5], answers[6] = 2, None  # appetite decreased answered, increased not
    answers[7], answers[8] = None, 3  # weight increased answered
    result = score("qids-sr16", answers)
    assert result.total == 3 and result.complete
    statuses = {i.number: i.status for i in result.items}
    assert statuses[7] == statuses[8] == "not_applicable"


def test_qids_domains_take_the_maximum_of_their_items():
    answers = [1, 3, 2, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 2, 1]
    result = score("qids-sr16", answers)
    assert [d.score for d in result.domains] == [3, 1, 0, 1, 1, 0, 1, 1, 2]
    assert result.total == 10


def test_qids_domain_with_all_items_missing_makes_the_total_not_computable():
    answers = [None, None, None, None] + [1] * 12
    result = score("qids-sr16", answers)
    assert result.total is None and result.domains[0].score is None and not result.complete


def test_qids_partly_missing_domain_gives_no_total():
    # issue 13: a domain is never scored from a fraction of its items (Rush 2003 scores each
    # domain as the highest of ALL its items); the total is not computable, not a lower bound
    answers = [None, 2, 0, 0] + [0] * 12
    result = score("qids-sr16", answers)
    assert result.total is None and not result.complete and result.severity is None
    assert result.domains[0].score is None
    assert any("never from a fraction" in n for n in result.notes)


# --- HAM-D17 item 16 ------------------------------------------------------------------------


def test_hamd17_item_16_not_assessed_is_ignored():
    answers = [2] * 3 + [1] * 3 + [2] * 5 + [1] * 3 + [2] + ["na", 1]
    result = score("hamd17", answers)
    assert result.total == 2 * 3 + 3 + 2 * 5 + 3 + 2 + 1
    assert result.complete and any("not assessed" in n for n in result.notes)


def test_hamd17_incomplete_form_is_not_scored():
    assert score("hamd17", [1] * 16 + [None]).total is None


# --- BPRS not rated -------------------------------------------------------------------------


def test_bprs4_zero_means_not_rated_and_the_subscale_is_not_scorable():
    result = score("bprs4", [0, 3, 3, 3])
    assert result.total is None and result.items[0].status == "not_rated"


# --- alerts ---------------------------------------------------------------------------------

ALERTS = [
    ("phq9", [0] * 8 + [1], "phq9.item9", True),
    ("phq9", [0] * 9, "phq9.item9", False),
    ("qids-sr16", [0] * 11 + [1] + [0] * 4, "qids-sr16.item12", True),
    ("qids-sr16", [0] * 16, "qids-sr16.item12", False),
    ("madrs", [0] * 9 + [4], "madrs.item10", True),
    ("madrs", [0] * 9 + [3], "madrs.item10", False),
    ("moaas", [0], "moaas.deep_sedation", True),
    ("moaas", [2], "moaas.deep_sedation", True),
    ("moaas", [3], "moaas.deep_sedation", False),
    ("rass", [-4], "rass.deep_sedation", True),
    ("rass", [-5], "rass.deep_sedation", True),
    ("rass", [-3], "rass.deep_sedation", False),
    ("hamd17", [0, 0, 1] + [0] * 14, "hamd17.item3", True),
]


@pytest.mark.parametrize(("instrument", "answers", "rule", "fires"), ALERTS)
def test_alert_rules_fire_at_their_cited_thresholds(instrument, answers, rule, fires):
    alerts = score(instrument, answers).alerts
    assert (rule in [a.rule for a in alerts]) is fires
    for alert in alerts:
        assert alert.source and alert.priority == "urgent"


def test_phq9_item9_alert_fires_even_when_the_form_is_not_scorable():
    result = score("phq9", [None, None, None, 0, 0, 0, 0, 0, 2])
    assert result.total is None
    assert [(a.rule, a.item, a.value) for a in result.alerts] == [("phq9.item9", 9, 2)]


def test_alert_threshold_is_configurable():
    stricter = replace_alert_threshold(load_bundled("madrs"), "madrs.item10", 2)
    assert [a.rule for a in score_answers(stricter, [0] * 9 + [2]).alerts] == ["madrs.item10"]
    with pytest.raises(ClinicalInputError):
        replace_alert_threshold(load_bundled("madrs"), "madrs.nope", 2)


# --- C-SSRS screener ------------------------------------------------------------------------

CSSRS = [
    # Q1  Q2   Q3    Q4    Q5    Q6   Q6-3mo  -> tier
    (["n", "n", "na", "na", "na", "n", "na"], "none"),
    (["n", "n", "", "", "", "n", ""], "none"),
    (["y", "n", "na", "na", "na", "n", "na"], "low"),
    (["y", "y", "n", "n", "n", "n", "na"], "low"),
    (["y", "y", "y", "n", "n", "n", "na"], "moderate"),
    (["n", "n", "na", "na", "na", "y", "n"], "moderate"),
    (["y", "y", "y", "y", "n", "n", "na"], "high"),  # Q4 is HIGH, not moderate
    (["y", "y", "n", "y", "n", "n", "na"], "high"),
    (["y", "y", "y", "y", "y", "n", "na"], "high"),
    (["n", "n", "na", "na", "na", "y", "y"], "high"),
]


@pytest.mark.parametrize(("answers", "tier"), CSSRS)
def test_cssrs_screener_triage_tiers(answers, tier):
    result = score("cssrs-screener", answers)
    assert result.severity == tier and result.complete and result.total is None
    priorities = {"high": "urgent", "moderate": "high", "low": "routine"}
    assert [a.priority for a in result.alerts] == ([priorities[tier]] if tier != "none" else [])


def test_cssrs_q2_no_skips_q3_to_q5_as_not_asked_not_missing():
    result = score("cssrs-screener", ["y", "n", "", "", "", "n", ""])
    assert [i.status for i in result.items[2:5]] == ["not_asked"] * 3
    assert result.items[6].status == "not_asked" and result.complete


def test_cssrs_answer_to_a_skipped_question_is_refused():
    with pytest.raises(ClinicalInputError, match="item 3: not asked when item 2 is No"):
        score("cssrs-screener", ["y", "n", "y", "", "", "n", ""])


def test_cssrs_not_asked_where_the_question_must_be_asked_is_refused():
    with pytest.raises(ClinicalInputError, match="item 4: must be asked when item 2 is Yes"):
        score("cssrs-screener", ["y", "y", "n", "na", "n", "n", ""])


def test_cssrs_missing_recency_is_incomplete_and_flagged():
    result = score("cssrs-screener", ["n", "n", "na", "na", "na", "y", ""])
    assert result.severity == "moderate" and not result.complete
    assert "cssrs-screener.incomplete" in [a.rule for a in result.alerts]


def test_answers_may_be_given_as_a_mapping_of_item_numbers():
    assert score("gad7", {n: 1 for n in range(1, 8)}).total == 7
    with pytest.raises(ClinicalInputError, match="no item 8"):
        score("gad7", {8: 1})
