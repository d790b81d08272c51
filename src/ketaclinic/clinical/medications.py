"""Medication vocabulary: normalise what a person typed to an ingredient and its classes.

The bundled vocabulary (``data/medications/vocabulary.json``) lists ingredients with their
generic and brand names, RxNorm ingredient ids and ATC codes (each graded), and their class
membership as the labels name it (Spravato US PI §7: CNS depressants, psychostimulants, MAOIs;
EU SmPC §4.5 extras). Matching ignores case, spacing, a trailing plural "s" and common salt or
release suffixes, so "Benzodiazepines", "lorazepam", "Ativan" and "alprazolam" (whatever class was
typed beside it) all resolve to the benzodiazepine class.

A name the vocabulary does not know stays *unknown*: screening sends it to review, never to
eligible (see :mod:`ketaclinic.clinical.eligibility`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from ketaclinic.clinical.rules import ClinicalInputError

#: Why a recorded medicine was stopped (the registry's coded stop reason): code → the words a
#: page shows. Every one of them ends the medicine for screening (a stopped medicine no longer
#: interacts; one entered in error never did); a stop whose reason was not recorded is stopped
#: all the same.
MEDICATION_STOP_REASONS: Mapping[str, str] = MappingProxyType({
    "completed": "completed",
    "adverse-effect": "adverse effect",
    "ineffective": "ineffective",
    "patient-choice": "patient choice",
    "entered-in-error": "entered in error",
    "other": "other",
})

SCHEMA = "ketaclinic.medications/1"
_SUFFIXES = {
    "hydrochloride",
    "hcl",
    "hydrobromide",
    "sulfate",
    "sulphate",
    "maleate",
    "succinate",
    "tartrate",
    "mesylate",
    "besylate",
    "citrate",
    "fumarate",
    "oxalate",
    "sodium",
    "potassium",
    "er",
    "xr",
    "sr",
    "cr",
    "xl",
    "ir",
    "la",
    "mr",
    "retard",
    "depot",
    "tablet",
    "tablets",
    "capsule",
    "capsules",
    "oral",
    "patch",
    "odt",
}


def normalise(text: str) -> str:
    """Lower-case, one space, no trailing plural "s" on any word, no salt/release suffix.

    Examples
    --------
    >>> normalise("  Benzodiazepines ")
    'benzodiazepine'
    >>> normalise("Sertraline Hydrochloride")
    'sertraline'
    >>> normalise("MAO-B inhibitors")
    'mao b inhibitor'
    """
    words = re.sub(r"[^a-z0-9]+", " ", str(text).lower()).split()
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    return " ".join(_singular(w) for w in words)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "sis")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class DrugClass:
    id: str
    label: str
    cns_depressant: bool
    source: str
    grade: str


@dataclass(frozen=True)
class MedicationEntry:
    ingredient: str
    names: tuple[str, ...]
    classes: tuple[str, ...]
    rxnorm: str | None
    atc: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedMedication:
    """What the vocabulary made of one entered medicine."""

    entered: str
    ingredient: str | None  # None: the vocabulary does not know this name
    classes: frozenset[str]
    rxnorm: str | None = None

    @property
    def known(self) -> bool:
        return self.ingredient is not None


@dataclass(frozen=True)
class Vocabulary:
    id: str
    version: str
    classes: Mapping[str, DrugClass]
    entries: tuple[MedicationEntry, ...]
    _names: Mapping[str, MedicationEntry]
    _aliases: Mapping[str, str]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def lookup(self, name: str) -> MedicationEntry | None:
        """The entry for a generic or brand name, or None."""
        return self._names.get(normalise(name))

    def class_id(self, text: str) -> str | None:
        """The canonical class for a typed class name ("Benzodiazepines" -> benzodiazepine)."""
        key = normalise(text)
        return self._aliases.get(key) if key else None

    def canonical_classes(self, texts: tuple[str, ...] | list[str]) -> frozenset[str]:
        """Canonical ids for rule-set class names; names the vocabulary lacks kept normalised."""
        return frozenset(self.class_id(t) or normalise(t) for t in texts if normalise(t))

    def resolve(self, name: str, entered_class: str = "") -> ResolvedMedication:
        """Ingredient and classes of an entered medicine; the typed class is added, never lost."""
        entry = self.lookup(name)
        classes = set(entry.classes) if entry else set()
        for part in re.split(r"[,;/|]", entered_class):  # "opioid, benzodiazepine"
            if normalise(part):
                classes.add(self.class_id(part) or normalise(part))
        if entry is None:
            return ResolvedMedication(name, None, frozenset(classes))
        return ResolvedMedication(name, entry.ingredient, frozenset(classes), entry.rxnorm)

    def is_cns_depressant(self, med: ResolvedMedication) -> bool:
        return any(self.classes[c].cns_depressant for c in med.classes if c in self.classes)


def _fail(path: str, reason: str) -> None:
    raise ClinicalInputError(f"medication vocabulary {path}: {reason}")


def _check_class(cid: str, doc: Any) -> DrugClass:
    if not isinstance(doc, dict):
        _fail(f"classes.{cid}", "must be an object")
    for key in ("label", "source"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            _fail(f"classes.{cid}.{key}", "must be a non-empty string")
    if doc.get("grade") not in ("C", "S", "U"):
        _fail(f"classes.{cid}.grade", "must be one of C, S, U")
    if not isinstance(doc.get("aliases"), list):
        _fail(f"classes.{cid}.aliases", "must be a list")
    return DrugClass(
        cid, doc["label"], bool(doc.get("cns_depressant")), doc["source"], doc["grade"]
    )


def _check_id(doc: Any, path: str) -> None:
    if doc is None:
        return
    if (
        not isinstance(doc, dict)
        or doc.get("grade") not in ("C", "S", "U")
        or not doc.get("source")
    ):
        _fail(path, "needs a grade (C, S, U) and a source")


def load_vocabulary(doc: Mapping[str, Any]) -> Vocabulary:
    """Validate a vocabulary document; names and aliases must resolve to one thing each."""
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        _fail("$.schema", f"must be {SCHEMA!r}")
    classes = {cid: _check_class(cid, c) for cid, c in doc.get("classes", {}).items()}
    aliases: dict[str, str] = {}
    for cid, c in doc["classes"].items():
        for alias in [cid, *c["aliases"]]:
            key = normalise(alias)
            if aliases.setdefault(key, cid) != cid:
                _fail(f"classes.{cid}", f"alias {alias!r} already names {aliases[key]!r}")
    entries: list[MedicationEntry] = []
    names: dict[str, MedicationEntry] = {}
    for i, m in enumerate(doc.get("medications", [])):
        path = f"medications[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("ingredient"), str):
            _fail(path, "needs an ingredient")
        unknown = [c for c in m.get("classes", []) if c not in classes]
        if unknown or not m.get("classes"):
            _fail(f"{path}.classes", f"must name known classes, got {m.get('classes')!r}")
        _check_id(m.get("rxnorm"), f"{path}.rxnorm")
        _check_id(m.get("atc"), f"{path}.atc")
        entry = MedicationEntry(
            m["ingredient"],
            tuple(m.get("names", [])),
            tuple(m["classes"]),
            (m.get("rxnorm") or {}).get("id"),
            tuple((m.get("atc") or {}).get("codes", [])),
        )
        for name in [entry.ingredient, *entry.names]:
            key = normalise(name)
            if names.setdefault(key, entry) is not entry:
                _fail(path, f"name {name!r} already names {names[key].ingredient!r}")
        entries.append(entry)
    return Vocabulary(
        doc.get("id", ""),
        doc.get("version", ""),
        MappingProxyType(classes),
        tuple(entries),
        MappingProxyType(names),
        MappingProxyType(aliases),
    )


@lru_cache(maxsize=1)
def load_bundled_vocabulary() -> Vocabulary:
    """The vocabulary shipped with ketaclinic (read once)."""
    from ketaclinic.clinical.rulesets import _read_bundled

    return load_vocabulary(json.loads(_read_bundled("medications", "vocabulary.json")))
