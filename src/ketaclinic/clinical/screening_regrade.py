"""How a new screening would grade what the chart recorded since a stored screening.

A stored screening is re-opened by facts recorded since it (or since its last sign-off):
:func:`ketaclinic.clinical.treatment_chain.new_since_screening` lists them. Whether a
prescriber's sign-off may clear the re-opened screening depends on how a new screening, under
the rule set it would use (the clinic's active one), grades them:

* **ineligible** (:func:`graded_ineligible`): an absolute contraindication under the rule set
  (a ketamine or esketamine hypersensitivity, an aneurysm; pregnancy where a set grades it
  absolute) or any other finding that makes a screening ineligible. Only a new screening
  clears it: a sign-off must never wave through what a new screening forbids;
* **review**: relative contraindications, interacting medicines, a condition or medicine the
  rule set or the vocabulary does not recognise (unknown is never "ok"). A sign-off clears
  these, as it always did.

Doses are compared where the rule set grades by dose (:func:`thresholds_crossed`): the IV
ketamine set grades benzodiazepines by their total diazepam-equivalent daily dose against
``benzodiazepine-diazepam-eq-max-mg`` (Andrashko 2020; Feeney 2023, protocols.md §5), so a dose
raised since the screening past that threshold, or one no longer convertible (unknown), re-opens
the screening like a new medicine does. The esketamine sets grade a benzodiazepine as review
whatever its dose, so a raised dose there changes no grade and re-opens nothing.

Pure: facts in, reasons out; every reason names the fact, the grade and the rule set.
"""

from __future__ import annotations

from datetime import date

from ketaclinic.clinical.eligibility import PatientFacts, patient_conditions, screen_patient
from ketaclinic.clinical.medications import load_bundled_vocabulary
from ketaclinic.clinical.rules import Finding, Level
from ketaclinic.clinical.rulesets import RuleSet
from ketaclinic.clinical.screening_checks import check_interactions

__all__ = ["graded_ineligible", "thresholds_crossed"]


def graded_ineligible(then: PatientFacts, now: PatientFacts, rs: RuleSet,
                      today: date) -> list[str]:
    """What a new screening of ``now`` under ``rs`` on ``today`` would grade HARD (ineligible),
    one reason per finding; empty when a new screening would not find the patient ineligible.

    ``then`` is what the screening (or its last sign-off) saw: a condition flag it lacked is
    named as recorded since; one it had is named as graded absolute by ``rs`` (the clinic's
    rule set changed since the screening).

    Examples
    --------
    >>> from ketaclinic.clinical.eligibility import Diagnosis
    >>> from ketaclinic.clinical.rulesets import load_bundled_ruleset
    >>> iv = load_bundled_ruleset("ketamine-iv")
    >>> then = PatientFacts(age_years=46, diagnoses=(Diagnosis("F33.2", "", True),))
    >>> graded_ineligible(then, then, iv, date(2026, 11, 2))
    []
    >>> now = PatientFacts(age_years=46, diagnoses=then.diagnoses,
    ...                    conditions=frozenset({"hypersensitivity_ketamine"}))
    >>> graded_ineligible(then, now, iv, date(2026, 11, 2))  # doctest: +ELLIPSIS
    ['condition hypersensitivity_ketamine, recorded since the screening: Absolute contrai...']
    """
    seen = patient_conditions(then)
    result = screen_patient(now, rs.treatment, rs, today)
    return [_why_hard(f, seen, rs) for f in result.findings if f.level is Level.HARD]


def _why_hard(f: Finding, seen: set[str], rs: RuleSet) -> str:
    condition = f.values.get("condition")
    if condition is None:
        return f"{f.message} ({rs.ref})"
    when = "recorded since the screening" if condition not in seen else \
        f"graded absolute by {rs.ref} since the screening"
    return f"condition {condition}, {when}: {f.message} ({rs.ref})"


def thresholds_crossed(then: PatientFacts, now: PatientFacts, rs: RuleSet) -> list[str]:
    """Interactions a new screening would grade review that the facts ``then`` kept below
    review (information only): a medicine's dose raised past a dose threshold of ``rs``, or a
    dose no longer known (unknown is not negative). A medicine new since the screening is not
    listed here: :func:`~ketaclinic.clinical.treatment_chain.new_since_screening` names it.

    Examples
    --------
    >>> from ketaclinic.clinical.eligibility import Medication
    >>> from ketaclinic.clinical.rulesets import load_bundled_ruleset
    >>> iv = load_bundled_ruleset("ketamine-iv")
    >>> low = PatientFacts(age_years=46, medications=(Medication("lorazepam", "benzodiazepine",
    ...                                                          0.5),))
    >>> high = PatientFacts(age_years=46, medications=(Medication("lorazepam", "benzodiazepine",
    ...                                                           2),))
    >>> thresholds_crossed(low, high, iv)
    ['benzodiazepine dose (lorazepam): 20 mg/d diazepam-equivalent now, above 8 mg (was 5)']
    >>> thresholds_crossed(high, low, iv)
    []
    """
    vocab = load_bundled_vocabulary()
    before = {f.rule: f for f in check_interactions(then, rs, vocab)}
    out = []
    for f in check_interactions(now, rs, vocab):
        was = before.get(f.rule)
        if f.level is Level.SOFT and was is not None and was.level is not Level.SOFT:
            out.append(_why_crossed(f, was))
    return out


def _why_crossed(f: Finding, was: Finding) -> str:
    meds = ", ".join(f.values.get("medications", []))
    if f.values.get("unconverted"):
        return (f"{f.rule.removeprefix('ix-')} dose ({meds}) no longer known: "
                f"{', '.join(f.values['unconverted'])} not convertible to diazepam-equivalent")
    if "diazepam_eq_mg_per_day" in f.values:
        return (f"{f.rule.removeprefix('ix-')} dose ({meds}): "
                f"{f.values['diazepam_eq_mg_per_day']:g} mg/d diazepam-equivalent now, above "
                f"{f.values['threshold_mg']:g} mg (was {was.values['diazepam_eq_mg_per_day']:g})")
    return f"{f.rule} ({meds}) now needs review: {f.message}"
