"""Screening checks for missing facts, ICD-10 flags, medicine interactions.

Unknown is never negative. A missing pregnancy, breast-feeding, substance-use or BP answer is a
soft ``facts-missing`` finding listing what is missing; ICD-10 codes set the bipolar and psychosis
findings (data/screening/diagnoses.json); every medicine is resolved through the medication
vocabulary (clinical/medications.py) and one it does not know is a soft finding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ketaclinic.clinical.medications import ResolvedMedication, Vocabulary, normalise
from ketaclinic.clinical.rules import Finding, Level
from ketaclinic.clinical.rulesets import RuleSet

if TYPE_CHECKING:
    from ketaclinic.clinical.eligibility import Medication, PatientFacts


def _dx_key(code: str) -> str:
    return code.replace(".", "").replace(" ", "").upper()


def _dx_match(code: str, prefixes: list[str]) -> bool:
    key = _dx_key(code)
    return bool(key) and any(key.startswith(_dx_key(x)) for x in prefixes)


def is_depressive_icd10(code: str) -> bool:
    """Whether an ICD-10 code is a depressive-episode diagnosis (data/screening/diagnoses.json)."""
    return _dx_match(code, load_bundled_diagnosis_flags()["depressive_episode"]["prefixes"])


def is_depressive_diagnosis(system: str, code: str, label: str) -> bool:
    """Whether a recorded diagnosis is a depressive episode (the indication): by its code when
    the system is ICD-10, else by a keyword of its label not negated just before ("no
    depression" is not one). data/screening/diagnoses.json lists both.

    >>> is_depressive_diagnosis("icd10", "F33.2", "")
    True
    >>> is_depressive_diagnosis("snomed", "370143000", "Major depressive disorder")
    True
    >>> is_depressive_diagnosis("snomed", "1", "Anxiety without depression")
    False
    """
    rule = load_bundled_diagnosis_flags()["depressive_episode"]
    if system == "icd10":
        return _dx_match(code, rule["prefixes"])
    return _label_hit(label, rule.get("label_keywords", []))


def allergy_conditions(substances: Iterable[str]) -> set[str]:
    """Condition flags the recorded allergies set (data/screening/diagnoses.json
    ``allergy_flags``): a substance naming ketamine, esketamine or one of their brands sets
    ``hypersensitivity_ketamine``. Any case, salt suffix ignored; an allergy is never negated.

    >>> sorted(allergy_conditions(["Penicillin", "SPRAVATO nasal spray"]))
    ['hypersensitivity_ketamine']
    >>> allergy_conditions(["Ketalar"]) == allergy_conditions(["esketamine hydrochloride"])
    True
    >>> allergy_conditions(["penicillin"])
    set()
    """
    texts = [normalise(s) for s in substances]
    return {rule["condition"] for rule in load_bundled_diagnosis_flags().get("allergy_flags", [])
            for text in texts if any(name in text for name in rule["substances"])}


_ICD10_SHAPE = re.compile(r"^[A-Za-z][0-9]")
_NEGATIONS = {"without", "no", "non"}


def _label_hit(label: str, keywords: list[str]) -> bool:
    """A keyword in a (non-ICD) diagnosis label, not negated by without/no/non just before."""
    words = re.sub(r"[^a-z]+", " ", label.lower()).split()
    for i, word in enumerate(words):
        negated = _NEGATIONS & set(words[max(0, i - 2) : i])  # the two words before, if any
        if any(word.startswith(k) for k in keywords) and not negated:
            return True
    return False


def _sets_flag(code: str, label: str, rule: dict[str, Any]) -> bool:
    if _ICD10_SHAPE.match(code.strip()):
        return _dx_match(code, rule["prefixes"])
    return _label_hit(label, rule.get("label_keywords", []))


def diagnosis_conditions(p: PatientFacts) -> dict[str, list[str]]:
    """Condition flags the recorded diagnoses set (ICD-10 codes; for other code systems, label
    keywords), with the codes that set each one."""
    found: dict[str, list[str]] = {}
    for rule in load_bundled_diagnosis_flags()["flags"]:
        for d in p.diagnoses:
            if _sets_flag(d.code, d.label, rule) and d.code not in found.get(rule["condition"], []):
                found.setdefault(rule["condition"], []).append(d.code)
    return found


def could_be_pregnant(p: PatientFacts, rs: RuleSet) -> bool:
    """Anyone not recorded male, under the rule set's age for asking, could be pregnant."""
    rule = rs.parameters.get("pregnancy-status-required-max-age-years")
    return p.sex != "male" and (rule is None or p.age_years <= rule.value)


def missing_facts(p: PatientFacts, rs: RuleSet) -> list[str]:
    """Facts screening needs and was not given (unknown is not negative)."""
    missing = []
    if could_be_pregnant(p, rs):
        missing += [k for k in ("pregnant", "breastfeeding") if getattr(p, k) is None]
    if p.substance_use_disorder is None:
        missing.append("substance_use_disorder")
    if p.bp is None:
        missing.append("bp")
    return missing


def check_missing(p: PatientFacts, rs: RuleSet) -> list[Finding]:
    missing = missing_facts(p, rs)
    rule = rs.parameters.get("pregnancy-status-required-max-age-years")
    source = rule.source if rule else rs.ref
    if not missing:
        return [Finding("facts-missing", Level.OK, "Every screening fact was answered", source)]
    return [
        Finding(
            "facts-missing",
            Level.SOFT,
            f"Not answered: {', '.join(missing)}. Unknown is not negative: ask before treating",
            source,
            {"missing": missing, "sex": p.sex, "age_years": p.age_years},
        )
    ]


def _diazepam_eq_mg(med: Medication, rs: RuleSet, vocab: Vocabulary) -> float | None:
    entry = vocab.lookup(med.name)
    key = entry.ingredient if entry else med.name.strip().lower()
    eq = rs.diazepam_equivalents.get(key)
    if eq is None or med.daily_dose_mg is None:
        return None
    return med.daily_dose_mg * 10.0 / eq.value


def _benzodiazepine_findings(
    meds: list[Medication], rs: RuleSet, ix, vocab: Vocabulary
) -> list[Finding]:
    limit = rs.param("benzodiazepine-diazepam-eq-max-mg")
    total, unknown = 0.0, []
    for med in meds:
        eq = _diazepam_eq_mg(med, rs, vocab)
        if eq is None:
            unknown.append(med.name)
        else:
            total += eq
    values = {
        "medications": [m.name for m in meds],
        "diazepam_eq_mg_per_day": round(total, 2),
        "threshold_mg": limit.value,
    }
    if unknown:
        return [
            Finding(
                ix.id,
                Level.SOFT,
                f"Benzodiazepine dose not convertible to diazepam-equivalent "
                f"({', '.join(unknown)}): "
                f"{ix.effect}",
                ix.source,
                values | {"unconverted": unknown},
            )
        ]
    if rs.treatment == "esketamine":  # the dose threshold is IV-ketamine evidence only
        names = ", ".join(m.name for m in meds)
        level = Level.SOFT if ix.level == "soft" else Level.INFO
        return [
            Finding(
                ix.id,
                level,
                f"Benzodiazepine ({names}, {total:g} mg/d diazepam-equivalent): {ix.effect}",
                ix.source,
                values,
            )
        ]
    level = Level.SOFT if total > limit.value else Level.INFO
    rel = "above" if level is Level.SOFT else "at or below"
    return [
        Finding(
            ix.id,
            level,
            f"Benzodiazepines {total:g} mg/d diazepam-equivalent, {rel} "
            f"{limit.value} mg: {ix.effect}",
            ix.source,
            values,
        )
    ]


def _ingredient_or_name(name: str, vocab: Vocabulary) -> str:
    entry = vocab.lookup(name)
    return entry.ingredient if entry else name.strip().lower()


def _matches(med: ResolvedMedication, ix, vocab: Vocabulary) -> bool:
    names = {_ingredient_or_name(n, vocab) for n in ix.names}
    return bool(med.classes & vocab.canonical_classes(ix.classes)) or (
        (med.ingredient or med.entered.strip().lower()) in names
    )


def _check_medications(
    p: PatientFacts, vocab: Vocabulary
) -> tuple[list[ResolvedMedication], list[Finding]]:
    resolved = [vocab.resolve(m.name, m.drug_class) for m in p.medications]
    unknown = [r.entered for r in resolved if not r.known]
    if not unknown:
        return resolved, []
    return resolved, [
        Finding(
            "medication-unrecognised",
            Level.SOFT,
            f"Medicine(s) not in the medication vocabulary ({', '.join(unknown)}): check "
            "interactions by hand",
            vocab.ref,
            {"medications": unknown},
        )
    ]


def check_interactions(p: PatientFacts, rs: RuleSet, vocab: Vocabulary) -> list[Finding]:
    resolved, findings = _check_medications(p, vocab)
    for ix in rs.interactions:
        meds = [m for m, r in zip(p.medications, resolved, strict=True) if _matches(r, ix, vocab)]
        if not meds:
            continue
        if "benzodiazepine" in ix.classes:
            findings += _benzodiazepine_findings(meds, rs, ix, vocab)
            continue
        level = Level.SOFT if ix.level == "soft" else Level.INFO
        names = ", ".join(m.name for m in meds)
        findings.append(
            Finding(
                ix.id,
                level,
                f"Interacting medicine ({names}): {ix.effect}",
                ix.source,
                {"medications": [m.name for m in meds]},
            )
        )
    return findings


# --------------------------------------------------------------------------- bundled data

_DATA: dict[str, Any] = {}


def load_bundled_diagnosis_flags() -> dict[str, Any]:
    """ICD-10 codes that set screening findings (data/screening/diagnoses.json)."""
    from ketaclinic.clinical.rulesets import _read_bundled

    if "dx" not in _DATA:
        _DATA["dx"] = json.loads(_read_bundled("screening", "diagnoses.json"))
    return _DATA["dx"]


def load_bundled_doses_ref() -> str:
    from ketaclinic.clinical.staging import load_bundled_doses

    doc = load_bundled_doses()
    return f"{doc['id']}@{doc['version']} (data/staging/antidepressant_doses.json)"
