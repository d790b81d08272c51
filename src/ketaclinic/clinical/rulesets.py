"""Versioned, cited rule sets for eligibility screening and dose safety.

A rule set is a JSON document (see ``clinical/data/rulesets/*.json`` and docs/dosing.md). Every
value in it carries its unit, source, confidence grade (C/S/U) and version; grade-U values are
defaults that need a medical director's confirmation (``confirmed_by``, ``confirmed_at``).

:func:`load_ruleset` validates strictly (:mod:`ketaclinic.clinical.ruleset_schema`): an error
names the JSON path and the reason. Only
:func:`load_bundled_ruleset` reads a file (the bundled data, via importlib.resources).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade
from ketaclinic.clinical.ruleset_schema import TREATMENTS as TREATMENTS
from ketaclinic.clinical.ruleset_schema import RuleSetError as RuleSetError
from ketaclinic.clinical.ruleset_schema import check_document

BUNDLED_IDS = ("esketamine-us", "esketamine-eu", "ketamine-iv")


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
    check_document(doc)
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
