"""Rating-scale definitions as data: the dataclasses, a validator and the loaders.

An instrument definition is one JSON document (schema ``ketaclinic.instrument/1``) that holds the
items, answer options, scoring rule, severity band sets, alert rules, recall period, licence and
terminology codes of one rating scale. ketaclinic bundles one file per instrument under
``ketaclinic/clinical/data/instruments/``. Licensed instruments ship with item numbers and short
neutral labels only; a clinic that holds a licence may load its own definition file with the item
text (:func:`load_definition`), which is validated here before anything uses it.

The file format is documented in ``docs/instruments.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ketaclinic.clinical.rules import ClinicalInputError, Grade

SCHEMA = "ketaclinic.instrument/1"
PROJECT_CODE_SYSTEM = "https://ketaclinic.org/fhir/CodeSystem/instruments"
LOINC_SYSTEM = "http://loinc.org"
HANDLINGS = ("bundled", "score-only", "clinic-supplied")
METHODS = ("sum", "domains", "single", "cssrs-triage")
SPECIAL_MEANINGS = ("not_assessed", "not_rated", "not_asked")
PRIORITIES = ("urgent", "high", "routine")
OPERATORS = (">=", "<=", "==")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$", re.ASCII)  # \d is 0-9 only
_LOINC_RE = re.compile(r"^\d{1,7}-\d$", re.ASCII)


class DefinitionError(ClinicalInputError):
    """An instrument definition file that cannot be used; ``errors`` lists every problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("invalid instrument definition: " + "; ".join(self.errors))


@dataclass(frozen=True)
class Source:
    citation: str
    grade: Grade


@dataclass(frozen=True)
class Licence:
    statement: str
    handling: str  # bundled | score-only | clinic-supplied
    grade: Grade
    supplied_by: str = ""  # set by a clinic that loads its own licensed definition


@dataclass(frozen=True)
class AnswerOption:
    score: int
    label: str = ""
    code: str = ""
    tokens: tuple[str, ...] = ()  # extra accepted inputs, e.g. ("y", "yes")


@dataclass(frozen=True)
class SpecialAnswer:
    """A non-score answer such as HAM-D item 16 "not assessed" or BPRS 0 "not rated"."""

    token: str
    meaning: str  # not_assessed | not_rated | not_asked
    label: str = ""


@dataclass(frozen=True)
class Condition:
    item: int
    equals: int


@dataclass(frozen=True)
class ItemDef:
    number: int
    label: str
    min_score: int
    max_score: int
    text: str = ""
    options: tuple[AnswerOption, ...] = ()
    special: tuple[SpecialAnswer, ...] = ()
    scored: bool = True
    required: bool = True
    asked_if: Condition | None = None
    code: str = ""


@dataclass(frozen=True)
class Domain:
    name: str
    items: tuple[int, ...]
    combine: str = "max"


@dataclass(frozen=True)
class Tier:
    """One C-SSRS triage tier: it applies when any of its conditions holds."""

    name: str
    any_of: tuple[Condition, ...]
    priority: str
    message: str
    source: str
    grade: Grade


@dataclass(frozen=True)
class ScoringRule:
    method: str
    max_missing: int = 0
    impute: str = ""  # "" or "mean"
    rounding: str = ""  # "half-up" when imputing
    domains: tuple[Domain, ...] = ()
    either_or: tuple[tuple[int, ...], ...] = ()
    tiers: tuple[Tier, ...] = ()
    source: str = ""
    grade: Grade = Grade.CONFIRMED
    note: str = ""


@dataclass(frozen=True)
class Band:
    min_score: int
    max_score: int
    label: str


@dataclass(frozen=True)
class BandSet:
    name: str
    bands: tuple[Band, ...]
    source: str
    grade: Grade

    def label_for(self, total: int) -> str | None:
        for band in self.bands:
            if band.min_score <= total <= band.max_score:
                return band.label
        return None


@dataclass(frozen=True)
class AlertRule:
    rule: str
    item: int
    op: str
    threshold: int
    priority: str
    message: str
    source: str
    grade: Grade
    action: str = ""  # the action the alert requires (recorded with a note when actioned)


@dataclass(frozen=True)
class SuicideItem:
    """The item that asks about suicide or self-harm (PHQ-9 item 9, QIDS-SR16 item 12 …).

    When it is unanswered the form raises an urgent "ask in person" alert and is never prorated
    over it. A clinic-supplied licensed definition marks its own item the same way.
    """

    item: int
    source: str
    grade: Grade
    priority: str = "urgent"
    message: str = ""
    action: str = ""


@dataclass(frozen=True)
class RecallWindow:
    """The period the respondent is asked about, in hours (PHQ-9: 2 weeks = 336 h)."""

    hours: int
    source: str
    grade: Grade


@dataclass(frozen=True)
class Codes:
    system: str
    panel: str = ""
    total: str = ""


@dataclass(frozen=True)
class InstrumentDefinition:
    id: str
    name: str
    short_name: str
    version: str
    recall_period: str
    respondent: str
    licence: Licence
    items: tuple[ItemDef, ...]
    scoring: ScoringRule
    total_min: int | None
    total_max: int | None
    band_sets: tuple[BandSet, ...]
    default_band_set: str
    alerts: tuple[AlertRule, ...]
    codes: Codes
    sources: tuple[Source, ...]
    instructions: str = ""
    suicide_item: SuicideItem | None = None
    recall_window: RecallWindow | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rule_version(self) -> str:
        return f"{self.id}@{self.version}"

    def item(self, number: int) -> ItemDef:
        for item in self.items:
            if item.number == number:
                return item
        raise KeyError(number)

    def band_set(self, name: str | None = None) -> BandSet | None:
        wanted = name or self.default_band_set
        for band_set in self.band_sets:
            if band_set.name == wanted:
                return band_set
        if name:
            raise ClinicalInputError(f"{self.id}: unknown band set {name!r}")
        return None


def check_loinc(code: str) -> bool:
    """True when a numeric LOINC code carries a correct mod-10 check digit.

    Examples
    --------
    >>> check_loinc("44261-6"), check_loinc("44261-5")
    (True, False)
    """
    if not _LOINC_RE.match(code):
        return False
    body, check = code.split("-")
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return (10 - total % 10) % 10 == int(check)
