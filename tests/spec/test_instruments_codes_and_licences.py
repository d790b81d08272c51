"""Pinned LOINC codes (instruments.md §3.1) and licence handling of the bundled definitions."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from ketaclinic.clinical.instruments import BUNDLED_IDS, check_loinc, list_bundled, load_bundled

# instruments.md §3.1, copied by hand: wrong codes circulate, so these are pinned here.
PHQ9_ITEMS = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
CSSRS_ITEMS = ["93246-7", "93247-5", "93248-3", "93249-1", "93250-9", "93267-3", "93269-9"]
FREQ_ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
LICENSED = ("madrs", "qids-sr16", "cadss", "cadss6", "cssrs-screener", "moaas", "rass")


def test_phq9_codes_match_the_loinc_table():
    d = load_bundled("phq9")
    assert (d.codes.system, d.codes.panel, d.codes.total) == (
        "http://loinc.org",
        "44249-1",
        "44261-6",
    )
    assert [i.code for i in d.items[:9]] == PHQ9_ITEMS
    assert d.item(9).code == "44260-8"  # not 44258-2 (item 6)
    assert d.item(10).code == "69722-7" and not d.item(10).scored
    assert [o.code for o in d.item(1).options] == FREQ_ANSWERS


def test_gad7_codes_match_the_loinc_table():
    d = load_bundled("gad7")
    assert (d.codes.panel, d.codes.total) == ("69737-5", "70274-6")
    assert [i.code for i in d.items] == GAD7_ITEMS
    assert "69726-8" not in json.dumps(d.raw)  # "Discharge instructions", a circulating error
    assert [o.code for o in d.item(1).options] == FREQ_ANSWERS


def test_cssrs_screener_codes_match_the_loinc_table():
    d = load_bundled("cssrs-screener")
    assert d.codes.panel == "93373-9"
    assert [i.code for i in d.items] == CSSRS_ITEMS
    assert {o.score: o.code for o in d.item(1).options} == {1: "LA33-6", 0: "LA32-8"}


@pytest.mark.parametrize(
    "code",
    PHQ9_ITEMS + GAD7_ITEMS + CSSRS_ITEMS + ["44249-1", "44261-6", "69737-5", "70274-6", "93373-9"],
)
def test_pinned_loinc_codes_carry_valid_check_digits(code):
    assert check_loinc(code)


def test_instruments_without_loinc_use_the_project_code_system():
    for ident in ("qids-sr16", "hamd17", "madrs", "cadss", "cadss6", "bprs4", "moaas", "rass"):
        assert (
            load_bundled(ident).codes.system == "https://ketaclinic.org/fhir/CodeSystem/instruments"
        )


def test_every_instrument_is_bundled_with_sources_and_a_licence_statement():
    assert [d.id for d in list_bundled()] == list(BUNDLED_IDS)
    for d in list_bundled():
        assert d.sources and d.licence.statement and d.version and d.recall_period


@pytest.mark.parametrize("ident", LICENSED)
def test_no_licensed_instrument_file_contains_item_text_or_anchors(ident):
    path = resources.files("ketaclinic.clinical") / "data" / "instruments" / f"{ident}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["licence"]["handling"] in ("score-only", "clinic-supplied")
    assert "instructions" not in raw
    for item in raw["items"]:
        assert "text" not in item
        assert len(item["label"]) <= 45
    for options in raw.get("option_sets", {}).values():
        assert all("label" not in o for o in options)


@pytest.mark.parametrize("ident", ["phq9", "gad7", "hamd17", "bprs4"])
def test_free_instruments_ship_their_item_text(ident):
    d = load_bundled(ident)
    assert d.licence.handling == "bundled"
    assert all(i.text for i in d.items)
