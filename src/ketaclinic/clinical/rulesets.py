"""Versioned, cited rule sets for eligibility screening and dose safety.

A rule set is a JSON document (see ``clinical/data/rulesets/*.json`` and docs/dosing.md). Every
value in it carries its unit, source, confidence grade (C/S/U) and version; grade-U values are
defaults that need a medical director's confirmation (``confirmed_by``, ``confirmed_at``).

:func:`load_ruleset` validates strictly: an error names the JSON path and the reason. Only
:func:`load_bundled_ruleset` reads a file (the bundled data, via importlib.resources).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, TypeGuard

from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade

SCHEMA = "ketaclinic.ruleset/1"
BUNDLED_IDS = ("esketamine-us", "esketamine-eu", "ketamine-iv")
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
_NUMERIC_LIMIT_UNITS = {"mg/kg", "mg", "mg/kg/h", "%", "min", "mg/mL", "mL/h", "mL"}
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


@dataclass(frozen=True)
class Rule:
    """One cited rule value with its version and medical-director confirmation."""

    id: str
    cited: Cited
    version: str
    confirmed_by: str | None = None
    confirmed_at: str | None = None

    @property
    def value(self) -> Any:
        return self.cited.value

    @property
    def unit(self) -> str:
        return self.cited.unit

    @property
    def source(self) -> str:
        return self.cited.source

    @property
    def needs_confirmation(self) -> bool:
        """Grade-U values need a medical director's confirmation until someone confirms them."""
        return self.cited.needs_confirmation and not self.confirmed_by


@dataclass(frozen=True)
class Contraindication:
    id: str
    condition: str
    label: str
    severity: str  # absolute | relative
    source: str
    grade: Grade
    version: str


@dataclass(frozen=True)
class Interaction:
    id: str
    classes: tuple[str, ...]
    names: tuple[str, ...]
    level: str  # info | soft
    effect: str
    source: str
    grade: Grade
    version: str


@dataclass(frozen=True)
class Phase:
    id: str
    population: str
    weeks: tuple[int | None, int | None]
    first_session_dose_mg: int | None
    allowed_doses_mg: tuple[int, ...]
    default_dose_mg: int
    max_sessions: int | None
    frequency: str
    source: str
    grade: Grade
    version: str
    continues_previous: bool = False  # default dose: the previous dose when it is allowed


@dataclass(frozen=True)
class Concentration:
    """One concentration a pump's drug library allows for a route (e.g. ketamine 1 mg/mL bag)."""

    id: str
    label: str
    mg_per_ml: float
    source: str
    grade: Grade
    version: str


@dataclass(frozen=True)
class UnconfirmedRule:
    """A grade-U entry awaiting medical-director confirmation (for the admin report)."""

    path: str
    value: Any
    unit: str
    source: str
    note: str


@dataclass(frozen=True)
class RuleSet:
    """A validated, immutable rule set. ``ref`` (``id@version``) is recorded in every result."""

    id: str
    version: str
    title: str
    treatment: str
    jurisdiction: str
    effective_date: str
    parameters: Mapping[str, Rule]
    dose_limits: Mapping[str, Mapping[str, Rule]]
    contraindications: tuple[Contraindication, ...]
    interactions: tuple[Interaction, ...]
    diazepam_equivalents: Mapping[str, Rule]
    phase_schedule: tuple[Phase, ...]
    bioavailability: Mapping[str, Rule]
    override_reason_codes: tuple[str, ...]
    document: str  # canonical JSON text of the validated document
    infusion_concentrations: Mapping[str, tuple[Concentration, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def param(self, rule_id: str) -> Rule:
        """Return a parameter rule; a missing one is a rule-set error, never a silent default."""
        try:
            return self.parameters[rule_id]
        except KeyError:
            raise RuleSetError(f"rule set {self.ref} has no parameter {rule_id!r}") from None

    def limit(self, route: str, rule_id: str) -> Rule | None:
        return self.dose_limits.get(route, {}).get(rule_id)

    def require_limit(self, route: str, rule_id: str) -> Rule:
        """Return a dose limit that a check cannot do without; missing is a rule-set error."""
        rule = self.limit(route, rule_id)
        if rule is None:
            raise RuleSetError(f"rule set {self.ref} has no {route} limit {rule_id!r}")
        return rule

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.document)


# --------------------------------------------------------------------------- validation


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


def _check_document(doc: Any) -> None:
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


# --------------------------------------------------------------------------- building


def _rule(rule_id: str, doc: dict) -> Rule:
    cited = Cited(
        doc["value"], doc["unit"], doc["source"], Grade(doc["grade"]), doc.get("note", "")
    )
    return Rule(rule_id, cited, doc["version"], doc.get("confirmed_by"), doc.get("confirmed_at"))


def _rules(doc: dict) -> Mapping[str, Rule]:
    return MappingProxyType({k: _rule(k, v) for k, v in doc.items()})


def _phase(doc: dict) -> Phase:
    weeks = doc["weeks"] if isinstance(doc["weeks"], list) else [None, None]
    return Phase(
        doc["id"],
        doc["population"],
        (weeks[0], weeks[1]),
        doc["first_session_dose_mg"],
        tuple(doc["allowed_doses_mg"]),
        doc["default_dose_mg"],
        doc["max_sessions"],
        doc["frequency"],
        doc["source"],
        Grade(doc["grade"]),
        doc["version"],
        bool(doc.get("default_continues_previous", False)),
    )


def _build(doc: dict) -> RuleSet:
    cis = tuple(
        Contraindication(
            c["id"],
            c["condition"],
            c["label"],
            c["severity"],
            c["source"],
            Grade(c["grade"]),
            c["version"],
        )
        for c in doc["contraindications"]
    )
    ixs = tuple(
        Interaction(
            x["id"],
            tuple(s.lower() for s in x["classes"]),
            tuple(s.lower() for s in x["names"]),
            x["level"],
            x["effect"],
            x["source"],
            Grade(x["grade"]),
            x["version"],
        )
        for x in doc["interactions"]
    )
    return RuleSet(
        id=doc["id"],
        version=doc["version"],
        title=doc["title"],
        treatment=doc["treatment"],
        jurisdiction=doc["jurisdiction"],
        effective_date=doc["effective_date"],
        parameters=_rules(doc["parameters"]),
        dose_limits=MappingProxyType({r: _rules(v) for r, v in doc["dose_limits"].items()}),
        contraindications=cis,
        interactions=ixs,
        diazepam_equivalents=_rules({k.lower(): v for k, v in doc["diazepam_equivalents"].items()}),
        phase_schedule=tuple(_phase(p) for p in doc["phase_schedule"]),
        bioavailability=_rules(doc["bioavailability"]),
        override_reason_codes=tuple(r["code"] for r in doc["override_reasons"]),
        document=json.dumps(doc, sort_keys=True, ensure_ascii=False),
        infusion_concentrations=MappingProxyType(
            {
                route: tuple(
                    Concentration(
                        c["id"],
                        c["label"],
                        float(c["value"]),
                        c["source"],
                        Grade(c["grade"]),
                        c["version"],
                    )
                    for c in entries
                )
                for route, entries in doc.get("infusion_concentrations", {}).items()
            }
        ),
    )


def load_ruleset(source: str | bytes | Mapping[str, Any]) -> RuleSet:
    """Validate a rule-set document (JSON text or parsed mapping) and return a :class:`RuleSet`.

    Raises
    ------
    RuleSetError
        One line listing every ``path: reason`` problem found.
    """
    if isinstance(source, str | bytes):
        try:
            doc = json.loads(source)
        except json.JSONDecodeError as exc:
            raise RuleSetError(f"$: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    else:
        doc = json.loads(json.dumps(source))  # deep copy; rejects non-JSON values
    _check_document(doc)
    return _build(doc)


def _read_bundled(*parts: str) -> str:
    """The one place that reads bundled data files (importlib.resources)."""
    return resources.files("ketaclinic.clinical").joinpath("data", *parts).read_text("utf-8")


def load_bundled_ruleset(ruleset_id: str) -> RuleSet:
    """Load one of the rule sets shipped with ketaclinic (:data:`BUNDLED_IDS`)."""
    if ruleset_id not in BUNDLED_IDS:
        raise RuleSetError(f"unknown rule set {ruleset_id!r}; bundled: {', '.join(BUNDLED_IDS)}")
    return load_ruleset(_read_bundled("rulesets", f"{ruleset_id}.json"))


def load_bundled_maudsley() -> dict[str, Any]:
    """Load the bundled Maudsley Staging Method scoring table (protocols.md §6)."""
    return json.loads(_read_bundled("staging", "maudsley.json"))


def copy_ruleset(ruleset: RuleSet, new_id: str, new_version: str) -> RuleSet:
    """Return a copy under a new id and version, for a clinic to edit and re-import."""
    doc = ruleset.to_dict()
    doc["id"], doc["version"] = new_id, new_version
    return load_ruleset(doc)


def _cited_entries(doc: dict) -> Iterator[tuple[str, dict]]:
    for section in ("parameters", "diazepam_equivalents", "bioavailability"):
        for key, entry in doc[section].items():
            yield f"{section}.{key}", entry
    for route, entries in doc["dose_limits"].items():
        for key, entry in entries.items():
            yield f"dose_limits.{route}.{key}", entry
    for section in ("contraindications", "interactions", "phase_schedule", "override_reasons"):
        for i, entry in enumerate(doc[section]):
            name = entry.get("id") or entry.get("code") or str(i)
            yield f"{section}[{name}]", entry
    for route, entries in doc.get("infusion_concentrations", {}).items():
        for entry in entries:
            yield f"infusion_concentrations.{route}[{entry['id']}]", entry


def list_unconfirmed(ruleset: RuleSet) -> tuple[UnconfirmedRule, ...]:
    """Every grade-U entry that no medical director has confirmed yet."""
    return tuple(
        UnconfirmedRule(
            path,
            entry.get("value", entry.get("severity", entry.get("level"))),
            entry.get("unit", ""),
            entry["source"],
            entry.get("note", ""),
        )
        for path, entry in _cited_entries(ruleset.to_dict())
        if entry["grade"] == "U" and not entry.get("confirmed_by")
    )


def confirm_rule(ruleset: RuleSet, path: str, confirmed_by: str, confirmed_at: str) -> RuleSet:
    """Return a new rule set with one entry (by its :func:`list_unconfirmed` path) confirmed."""
    if not confirmed_by.strip() or not confirmed_at.strip():
        raise ClinicalInputError("confirmation needs who (confirmed_by) and when (confirmed_at)")
    doc = ruleset.to_dict()
    for entry_path, entry in _cited_entries(doc):
        if entry_path == path:
            entry["confirmed_by"], entry["confirmed_at"] = confirmed_by, confirmed_at
            return load_ruleset(doc)
    raise ClinicalInputError(f"no rule at {path!r} in {ruleset.ref}")
