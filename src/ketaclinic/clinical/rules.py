"""Shared vocabulary of the clinical core: cited values and explained findings.

Every threshold, dose or interval that the core applies is a :class:`Cited` value: the number,
its unit, where it comes from and how sure we are of it. Every decision the core makes returns
:class:`Finding` objects that name the rule, the values it saw and the source, so a clinician can
disagree with it and an auditor can reconstruct it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Grade(StrEnum):
    """Confidence grade of a clinical fact (see shared clinical README)."""

    CONFIRMED = "C"  # read in the primary source
    SECONDARY = "S"  # reputable secondary source
    UNCONFIRMED = "U"  # default that a medical director must confirm


class Level(StrEnum):
    """How a finding affects the workflow."""

    OK = "ok"  # rule checked and passed
    INFO = "info"  # worth knowing, no action needed
    SOFT = "soft"  # warning: may be overridden with a coded reason and free text
    HARD = "hard"  # blocks: no role can override


@dataclass(frozen=True)
class Cited:
    """A configurable clinical value with its unit and citation."""

    value: Any
    unit: str
    source: str
    grade: Grade = Grade.CONFIRMED
    note: str = ""

    @property
    def needs_confirmation(self) -> bool:
        """Unconfirmed values ship only as defaults that a medical director must confirm."""
        return self.grade is Grade.UNCONFIRMED


@dataclass(frozen=True)
class Finding:
    """One explained result of a rule: what fired, what it saw, and where the rule comes from."""

    rule: str
    level: Level
    message: str
    source: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.level.value,
            "message": self.message,
            "source": self.source,
            "values": dict(self.values),
        }


class ClinicalInputError(ValueError):
    """Input that the core refuses: the message says what was wrong, in one line."""
