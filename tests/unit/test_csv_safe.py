"""CSV cells a spreadsheet would run as a formula are neutralised; numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import pathlib
from decimal import Decimal

import pytest

from ketaclinic.renderers.csv_safe import SafeWriter, safe_cell, write_table

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "ketaclinic"


@pytest.mark.parametrize("hostile", [
    "=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
    "\t=1+1", "\r=1+1", "-cmd", "=", "@",
])
def test_a_text_cell_starting_a_formula_is_prefixed_with_a_single_quote(hostile):
    assert safe_cell(hostile) == "'" + hostile


@pytest.mark.parametrize("value", [-3, -2.5, Decimal("-0.25"), 0, 7, "-2.5", "+1", "1e3",
                                   "-4", "Zoë", "a=b", "F33.2"])
def test_numbers_negative_ones_included_and_plain_text_stay_as_they_are(value):
    assert safe_cell(value) == value


def test_none_dates_and_booleans_are_written_plainly():
    assert safe_cell(None) == ""
    assert safe_cell(dt.date(2026, 1, 2)) == "2026-01-02"
    assert safe_cell(True) == "True"


def test_the_writer_quotes_and_round_trips_what_it_neutralised():
    buf = io.StringIO()
    write_table(buf, ["code", "n"], [{"code": '=HYPERLINK("x","y")', "n": -1}, {"n": 2}])
    SafeWriter(buf).writerow(["@x", 3])
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows == [["code", "n"], ["'=HYPERLINK(\"x\",\"y\")", "-1"], ["", "2"], ["'@x", "3"]]


def test_no_module_writes_csv_without_the_safe_writer():
    """One function for every CSV: csv.writer/DictWriter anywhere else is a new hole."""
    offenders = sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                       if p.name != "csv_safe.py" and any(
                           w in p.read_text(encoding="utf-8")
                           for w in ("csv.writer(", "csv.DictWriter(")))
    assert offenders == []
