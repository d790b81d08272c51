"""Readers of typed text take the digits 0-9 only: ``\\d`` (without re.ASCII), ``isdigit()``
and ``int()`` also take "٤٤٢٦١" or "１２", a number nobody typed in the clinic's script."""

from __future__ import annotations

import pytest

from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.instruments.definitions import check_loinc
from ketaclinic.clinical.ledger import dea_number_checksum_ok
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.renderers.csv_safe import safe_cell


def test_a_loinc_code_in_other_digits_is_no_loinc_code():
    assert check_loinc("44261-6")
    assert not check_loinc("٤٤٢٦١-٦") and not check_loinc("44261-٦")


def test_a_dea_number_in_other_digits_fails_its_check():
    assert dea_number_checksum_ok("AB1234563")  # (1+3+5) + 2*(2+4+6) = 33: check digit 3
    assert not dea_number_checksum_ok("AB١٢٣٤٥٦٣")
    assert not dea_number_checksum_ok("AB１２３４５６３")


@pytest.mark.parametrize("cell", ["-١", "+٣", "-١.٥"])
def test_a_cell_that_looks_like_a_number_in_other_digits_is_escaped(cell):
    assert safe_cell(cell) == "'" + cell
    assert safe_cell("-1.5") == "-1.5"  # a plain number stays one


def test_a_number_in_other_digits_with_a_unit_is_no_number_not_a_unit_problem():
    with pytest.raises(ClinicalInputError, match="must be a number"):
        parse_number("weight_kg", "٨٢kg")
    with pytest.raises(ClinicalInputError, match="without a unit"):
        parse_number("weight_kg", "82kg")
