"""Age from the birth date is computed in one place: ``ketaclinic.clinical.age.age_on``.

An AST scan of the whole package: no module but clinical/age.py subtracts one ``.year`` from
another (``day.year - birth.year``), the shape every hand-written age takes. A second copy once
drifted (29 February, the day of the birthday); one function, cited by every caller, cannot.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import kcsource
from hypothesis import given
from hypothesis import strategies as st

import ketaclinic
from ketaclinic.clinical.age import AGE_BANDS, age_band, age_on

PACKAGE = Path(ketaclinic.__file__).parent
HOME = "clinical/age.py"


def _year(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "year"


def year_differences(source: str | ast.Module, where: str = "<string>") -> list[str]:
    """Every ``<x>.year - <y>.year`` in ``source`` (text, or its parsed tree)."""
    tree = ast.parse(source) if isinstance(source, str) else source
    return [f"{where}:{node.lineno}: computes an age (year - year); use clinical.age.age_on"
            for node in ast.walk(tree)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub)
            and _year(node.left) and _year(node.right)]


def test_the_scan_catches_a_hand_written_age():
    bad = ("age = today.year - p.birth_date.year - ((today.month, today.day) < (1, 2))\n"
           "years = on.year - born.year\n")
    assert len(year_differences(bad)) == 2
    assert year_differences("y = today.year - 1\nz = a.month - b.month\n") == []


def test_no_module_but_the_core_computes_an_age():
    paths = sorted(PACKAGE.rglob("*.py"))
    assert len(paths) > 100, "the scan lost the package's modules"
    found = []
    for path in paths:
        where = path.relative_to(PACKAGE).as_posix()
        if where != HOME:
            found += year_differences(kcsource.tree(path), where)
    assert found == [], "\n".join(found)
    assert year_differences((PACKAGE / HOME).read_text(encoding="utf-8")), "age_on moved"


days = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31))


@given(days, days)
def test_age_is_the_completed_years_between_the_two_days(birth, day):
    age = age_on(birth, day)
    if day >= birth:
        assert age >= 0
        # the last birthday is on or before the day, the next one after it
        def birthday(years: int) -> dt.date:
            y = birth.year + years
            try:
                return birth.replace(year=y)
            except ValueError:  # 29 February in a common year: 1 March
                return dt.date(y, 3, 1)
        assert birthday(age) <= day
        if birth.year + age + 1 <= 9999:
            assert birthday(age + 1) > day
    else:
        assert age < 0


@given(days, days)
def test_age_band_is_the_band_of_age_on(birth, day):
    band = age_band(birth, day)
    age = age_on(birth, day)
    lowers = [lo for lo, _ in AGE_BANDS]
    index = max([i for i, lo in enumerate(lowers) if age >= lo], default=0)
    assert band == AGE_BANDS[index][1]
    assert age_band(None, day) is None
