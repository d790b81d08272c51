"""Measurement-based care: rating-scale definitions as data, exact scoring and alerts.

Public API::

    load_bundled(instrument_id) -> InstrumentDefinition
    list_bundled() -> tuple[InstrumentDefinition, ...]
    load_definition(json_text) -> InstrumentDefinition      # clinic-supplied files, validated
    score_answers(definition, answers, band_set=None) -> ScoreResult
    parse_answer_text(text) -> tuple[str | None, ...]       # "1,2,,0" as typed on the CLI
"""

from ketaclinic.clinical.instruments.definitions import (
    DefinitionError,
    InstrumentDefinition,
    check_loinc,
)
from ketaclinic.clinical.instruments.loading import (
    BUNDLED_IDS,
    list_bundled,
    load_bundled,
    load_definition,
    parse_definition,
)
from ketaclinic.clinical.instruments.scoring import (
    Alert,
    ItemScore,
    ScoreResult,
    parse_answer_text,
    score_answers,
)

__all__ = [
    "BUNDLED_IDS",
    "Alert",
    "DefinitionError",
    "InstrumentDefinition",
    "ItemScore",
    "ScoreResult",
    "check_loinc",
    "list_bundled",
    "load_bundled",
    "load_definition",
    "parse_answer_text",
    "parse_definition",
    "score_answers",
]
