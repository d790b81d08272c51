"""The clinical core's screening fixtures shared by the eligibility specs (imported as
`kcfacts`): the bundled rule sets and a patient who meets every criterion but the one a test
changes (with ``dataclasses.replace``)."""

from __future__ import annotations

from datetime import date

from ketaclinic.clinical.eligibility import BloodPressure, Diagnosis, PatientFacts
from ketaclinic.clinical.rulesets import load_bundled_ruleset
from ketaclinic.clinical.staging import AntidepressantTrial

US, EU, IV = (load_bundled_ruleset(i) for i in ("esketamine-us", "esketamine-eu", "ketamine-iv"))
#: each rule set with the treatment it screens for
ALL = [(US, "esketamine"), (EU, "esketamine"), (IV, "ketamine-iv")]
ON = date(2026, 1, 5)
#: two adequate trials that failed in this episode
FAILED = (
    AntidepressantTrial("sertraline", 8, 150, improvement_pct=10),
    AntidepressantTrial("venlafaxine", 6, 225, response="none"),
)
#: eligible everywhere: an adult with moderate depression after two failed trials
BASE = PatientFacts(
    age_years=40,
    sex="female",
    pregnant=False,
    breastfeeding=False,
    substance_use_disorder="none",
    diagnoses=(Diagnosis("F32.2", "MDD", True),),
    antidepressant_trials=FAILED,
    episode_duration_months=10,
    symptom_severity="moderate",
    bp=BloodPressure(120, 80),
)
