"""Validation of a rule-set document: every problem found, each as ``path: reason``.

The shape of ``ketaclinic.ruleset/1`` (see ``clinical/data/rulesets/*.json`` and
docs/dosing.md): the known fields, the citation every value carries (source, grade C/S/U,
version, an optional medical-director confirmation), the routes, and that a soft limit sits
inside its hard limit. :mod:`ketaclinic.clinical.rulesets` builds the immutable
:class:`~ketaclinic.clinical.rulesets.RuleSet` from a document that passes
:func:`check_document`.

Examples
--------
>>> from ketaclinic.clinical.rulesets import load_bundled_ruleset
>>> doc = load_bundled_ruleset("ketamine-iv").to_dict()
>>> check_document(doc)
>>> doc["dose_limits"]["iv"]["mg-per-kg-soft-max"]["value"] = 9
>>> del doc["override_reasons"]
>>> check_document(doc)
Traceback (most recent call last):
...
ketaclinic.clinical.ruleset_schema.RuleSetError: $.override_reasons: is required; \
override_reasons: must be a list; dose_limits.iv.mg-per-kg-soft-max: must not exceed the hard \
maximum
"""

from __future__ import annotations

from typing import Any, TypeGuard

from ketaclinic.clinical.rules import ClinicalInputError

__all__ = [
    "INTERACTION_LEVELS",
    "POPULATIONS",
    "ROUTES",
    "SCHEMA",
    "SEVERITIES",
    "TREATMENTS",
    "RuleSetError",
    "check_document",
]

SCHEMA = "ketaclinic.ruleset/1"
TREATMENTS = ("esketamine", "ketamine-iv")
ROUTES = ("iv", "im", "oral", "sublingual", "intranasal")
SEVERITIES = ("absolute", "relative")
INTERACTION_LEVELS = ("info", "soft")
POPULATIONS = ("all", "under-65", "65-plus")

_TOP_KEYS = {
    "schema",
    "id",
    "version",
    "title",
    "treatment",
    "jurisdiction",
    "effective_date",
    "parameters",
    "dose_limits",
    "contraindications",
    "interactions",
    "diazepam_equivalents",
    "phase_schedule",
    "bioavailability",
    "override_reasons",
}
_OPTIONAL_TOP_KEYS = {"infusion_concentrations"}
_CITE_KEYS = {"source", "grade", "version", "confirmed_by", "confirmed_at"}
_VALUE_KEYS = _CITE_KEYS | {"value", "unit"}
_REQUIRED_PARAMETERS = (
    "age-min-years",
    "screening-validity-days",
    "trd-min-failed-trials",
    "trd-min-trial-weeks",
    "trd-max-improvement-pct",
    "benzodiazepine-diazepam-eq-max-mg",
    "bp-pre-dose-systolic-max-mmhg",
    "bp-pre-dose-diastolic-max-mmhg",
    "weight-stale-days",
    "weight-change-max-pct",
    "weight-min-kg",
    "weight-max-kg",
    "tenfold-factor",
    "unit-swap-factor",
    "older-adult-age-years",
)
_LIMIT_STEMS = (
    "mg-per-kg",
    "total-mg",
    "rate-mg-per-kg-per-h",
    "change-pct",
    "rate-ml-per-h",
    "volume-ml",
    "infusion-min",
    "concentration-mg-per-ml",
)


class RuleSetError(ClinicalInputError):
    """A rule set that fails validation; the message lists ``path: reason`` items in one line."""


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append(f"{path}: {reason}")


def _check_keys(doc: Any, path: str, required: set[str], optional: set[str], err: _Errors) -> bool:
    if not isinstance(doc, dict):
        err.add(path, "must be an object")
        return False
    for key in sorted(required - doc.keys()):
        err.add(f"{path}.{key}", "is required")
    for key in sorted(doc.keys() - required - optional):
        err.add(f"{path}.{key}", "is not a known field")
    return True


def _check_citation(doc: dict, path: str, err: _Errors) -> None:
    if not isinstance(doc.get("source"), str) or not doc.get("source", "").strip():
        err.add(f"{path}.source", "must be a non-empty string")
    if doc.get("grade") not in ("C", "S", "U"):
        err.add(f"{path}.grade", "must be one of C, S, U")
    if not isinstance(doc.get("version"), str) or not doc.get("version"):
        err.add(f"{path}.version", "must be a non-empty string")
    for key in ("confirmed_by", "confirmed_at"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            err.add(f"{path}.{key}", "must be null or a string")
    if doc.get("confirmed_by") and not doc.get("confirmed_at"):
        err.add(f"{path}.confirmed_at", "is required when confirmed_by is set")
    if "note" in doc and not isinstance(doc["note"], str):
        err.add(f"{path}.note", "must be a string")


def _check_value(doc: Any, path: str, err: _Errors, numeric: bool = False) -> None:
    if not _check_keys(doc, path, _VALUE_KEYS, {"note"}, err):
        return
    _check_citation(doc, path, err)
    if not isinstance(doc.get("unit"), str):
        err.add(f"{path}.unit", "must be a string")
    value = doc.get("value")
    if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
        err.add(f"{path}.value", "must be a number")
    elif numeric and not value >= 0:
        err.add(f"{path}.value", "must be zero or positive")


def _check_value_map(doc: Any, path: str, err: _Errors, numeric: bool) -> None:
    if not isinstance(doc, dict):
        err.add(path, "must be an object")
        return
    for key, entry in doc.items():
        _check_value(entry, f"{path}.{key}", err, numeric=numeric)


def _check_list(doc: Any, path: str, req: set[str], opt: set[str], err: _Errors) -> list[dict]:
    if not isinstance(doc, list):
        err.add(path, "must be a list")
        return []
    good = []
    for i, entry in enumerate(doc):
        if _check_keys(entry, f"{path}[{i}]", req | _CITE_KEYS, opt | {"note"}, err):
            _check_citation(entry, f"{path}[{i}]", err)
            good.append(entry)
    return good


def _check_contraindications(doc: Any, err: _Errors) -> None:
    entries = _check_list(
        doc, "contraindications", {"id", "condition", "label", "severity"}, set(), err
    )
    for i, entry in enumerate(entries):
        if entry.get("severity") not in SEVERITIES:
            err.add(f"contraindications[{i}].severity", "must be absolute or relative")


def _check_interactions(doc: Any, err: _Errors) -> None:
    req = {"id", "classes", "names", "level", "effect"}
    for i, entry in enumerate(_check_list(doc, "interactions", req, set(), err)):
        if entry.get("level") not in INTERACTION_LEVELS:
            err.add(f"interactions[{i}].level", "must be info or soft")
        for key in ("classes", "names"):
            if not isinstance(entry.get(key), list):
                err.add(f"interactions[{i}].{key}", "must be a list of strings")


def _check_phases(doc: Any, err: _Errors) -> None:
    req = {
        "id",
        "population",
        "weeks",
        "first_session_dose_mg",
        "allowed_doses_mg",
        "default_dose_mg",
        "max_sessions",
        "frequency",
    }
    opt = {"default_continues_previous"}
    for i, entry in enumerate(_check_list(doc, "phase_schedule", req, opt, err)):
        path = f"phase_schedule[{i}]"
        if not isinstance(entry.get("default_continues_previous", False), bool):
            err.add(f"{path}.default_continues_previous", "must be true or false")
        if entry.get("population") not in POPULATIONS:
            err.add(f"{path}.population", f"must be one of {', '.join(POPULATIONS)}")
        allowed = entry.get("allowed_doses_mg")
        if (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(x, int) and x > 0 for x in allowed)
        ):
            err.add(f"{path}.allowed_doses_mg", "must be a non-empty list of positive integers")
        elif entry.get("default_dose_mg") not in allowed:
            err.add(f"{path}.default_dose_mg", "must be one of allowed_doses_mg")


def _check_reasons(doc: Any, err: _Errors) -> None:
    entries = _check_list(doc, "override_reasons", {"code", "label"}, set(), err)
    if isinstance(doc, list) and not entries:
        err.add("override_reasons", "must list at least one reason code")


def check_document(doc: Any) -> None:
    """Raise :class:`RuleSetError` listing every problem of a rule-set document, or return."""
    err = _Errors()
    if not _check_keys(doc, "$", _TOP_KEYS, _OPTIONAL_TOP_KEYS, err):
        raise RuleSetError("; ".join(err.items))
    if doc.get("schema") != SCHEMA:
        err.add("$.schema", f"must be {SCHEMA!r}")
    for key in ("id", "version", "title", "jurisdiction", "effective_date"):
        if not isinstance(doc.get(key), str) or not doc.get(key, "").strip():
            err.add(f"$.{key}", "must be a non-empty string")
    if doc.get("treatment") not in TREATMENTS:
        err.add("$.treatment", f"must be one of {', '.join(TREATMENTS)}")
    _check_value_map(doc.get("parameters"), "parameters", err, numeric=False)
    if isinstance(doc.get("parameters"), dict):
        for rule_id in _REQUIRED_PARAMETERS:
            if rule_id not in doc["parameters"]:
                err.add(f"parameters.{rule_id}", "is required")
    limits = doc.get("dose_limits")
    if not isinstance(limits, dict) or not limits:
        err.add("dose_limits", "must be an object with at least one route")
    else:
        for route, entries in limits.items():
            if route not in ROUTES:
                err.add(f"dose_limits.{route}", f"route must be one of {', '.join(ROUTES)}")
            _check_value_map(entries, f"dose_limits.{route}", err, numeric=True)
    _check_contraindications(doc.get("contraindications"), err)
    _check_interactions(doc.get("interactions"), err)
    _check_value_map(doc.get("diazepam_equivalents"), "diazepam_equivalents", err, numeric=True)
    _check_phases(doc.get("phase_schedule"), err)
    if doc.get("treatment") == "esketamine" and not doc.get("phase_schedule"):
        err.add("phase_schedule", "is required for esketamine")
    _check_value_map(doc.get("bioavailability"), "bioavailability", err, numeric=True)
    _check_reasons(doc.get("override_reasons"), err)
    _check_concentrations(doc.get("infusion_concentrations", {}), err)
    _check_limit_order(doc, err)
    if err.items:
        raise RuleSetError("; ".join(err.items))


def _check_limit_order(doc: dict, err: _Errors) -> None:
    """Soft limits must sit inside hard limits, or the soft warning could never fire first."""
    limits = doc.get("dose_limits")
    if not isinstance(limits, dict):
        return
    for route, entries in limits.items():
        if not isinstance(entries, dict):
            continue
        values = {k: v.get("value") for k, v in entries.items() if isinstance(v, dict)}
        for stem in _LIMIT_STEMS:
            soft, hard = values.get(f"{stem}-soft-max"), values.get(f"{stem}-hard-max")
            if _number(soft) and _number(hard) and soft > hard:
                err.add(f"dose_limits.{route}.{stem}-soft-max", "must not exceed the hard maximum")
            soft, hard = values.get(f"{stem}-soft-min"), values.get(f"{stem}-hard-min")
            if _number(soft) and _number(hard) and soft < hard:
                err.add(
                    f"dose_limits.{route}.{stem}-soft-min", "must not be below the hard minimum"
                )


def _check_concentrations(doc: Any, err: _Errors) -> None:
    """``infusion_concentrations``: per route, the pump library's allowed mg/mL entries."""
    if not isinstance(doc, dict):
        err.add("infusion_concentrations", "must be an object of routes")
        return
    for route, entries in doc.items():
        path = f"infusion_concentrations.{route}"
        if route not in ROUTES:
            err.add(path, f"route must be one of {', '.join(ROUTES)}")
        req = {"id", "label", "value", "unit"}
        for i, entry in enumerate(_check_list(entries, path, req, set(), err)):
            if entry.get("unit") != "mg/mL":
                err.add(f"{path}[{i}].unit", "must be mg/mL")
            value = entry.get("value")
            if not _number(value) or not value > 0:
                err.add(f"{path}[{i}].value", "must be a positive number")


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
