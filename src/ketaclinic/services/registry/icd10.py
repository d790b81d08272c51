"""The ICD-10-CM codes the diagnosis form offers (depressive and common comorbid disorders),
from a cited data file; typing any other code stays possible."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "icd10_depression.json"


@lru_cache(maxsize=1)
def icd10_choices() -> tuple[tuple[str, str], ...]:
    """(code, description) pairs in the file's order."""
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    return tuple((c["code"], c["display"]) for c in doc["codes"])


def icd10_display(code: str) -> str | None:
    """The listed description of ``code`` ("f33.2" and "F33.2" alike), else None."""
    wanted = code.strip().upper()
    return next((d for c, d in icd10_choices() if c == wanted), None)
