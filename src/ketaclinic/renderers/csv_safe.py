"""Every CSV the application writes goes through here: cells a spreadsheet cannot execute.

OWASP "CSV Injection": a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return can be run as a formula by Excel, LibreOffice or Google Sheets when a clinician opens
the file (``=HYPERLINK(...)`` leaks data, ``=cmd|...`` runs programs on old Excel). Such a
text cell is prefixed with a single quote, which spreadsheets show as text and do not evaluate;
the ``csv`` module then quotes it and doubles embedded quotes (OWASP's second step).

Numbers stay numbers: an ``int``, ``float`` or ``Decimal`` value is written as it is, a
negative one included (``-3`` cannot start a formula: a spreadsheet reads it as the number
-3). A *text* value that is exactly a decimal number (``-2.5``, ``+1``, ``1e3``) is likewise
left alone; anything else starting with a dangerous character (``-1+2``, ``-cmd``) is text
and is neutralised. Booleans are written as ``True``/``False``; dates in ISO 8601 (they start
with a digit); ``None`` as an empty cell.

Tests: ``tests/unit/test_csv_safe.py`` and ``tests/integration/test_csv_exports_hostile.py``
(every CSV-producing route and command); a test fails when a module writes CSV with the
``csv`` module directly.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import IO, Any

DANGEROUS_FIRST = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def safe_cell(value: Any) -> Any:
    """The value to write in one CSV cell (see the module's rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    text = str(value)
    if text.startswith(DANGEROUS_FIRST) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeWriter:
    """``csv.writer`` whose every cell passes :func:`safe_cell`."""

    def __init__(self, fh: IO[str]) -> None:
        self._w = csv.writer(fh)

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def write_table(fh: IO[str], columns: Sequence[str],
                rows: Iterable[Mapping[str, Any]]) -> None:
    """A header line and one line per mapping (missing keys are empty cells)."""
    w = SafeWriter(fh)
    w.writerow(columns)
    for r in rows:
        w.writerow([r.get(c) for c in columns])
