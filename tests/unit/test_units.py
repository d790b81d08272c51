from __future__ import annotations

from decimal import Decimal

import pytest

from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.units import parse_weight_kg


@pytest.mark.parametrize("text, kg", [("82 kg", "82"), ("82.5kg", "82.5"), ("70,25 KG", "70.25"),
                                      ("  100 kilograms ", "100")])
def test_weights_in_kilograms_are_accepted(text, kg):
    assert parse_weight_kg(text) == Decimal(kg)


@pytest.mark.parametrize("text, reason", [
    ("82", "no unit"), ("180 lb", "pounds"), ("180 lbs", "pounds"), ("12 st", "not accepted"),
    ("82000 g", "not accepted"), ("", "empty"), ("0 kg", "outside"), ("1000 kg", "outside"),
    ("nan kg", "number followed"), ("-5 kg", "number followed"), ("eighty kg", "number followed"),
])
def test_weights_without_kilograms_are_refused_with_a_reason(text, reason):
    with pytest.raises(ClinicalInputError, match=reason):
        parse_weight_kg(text)
