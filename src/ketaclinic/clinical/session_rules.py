"""The chair-side rule set: pre-checks, BP gate, vitals schedule and thresholds, discharge.

Loaded from ``data/chair/session.json`` (and ``adverse_events.json``) by
:func:`load_session_rules`; every value is :class:`Cited`. A clinic may build its own
:class:`SessionRules` from its confirmed configuration with :func:`session_rules_from_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketaclinic.clinical.chair_data import cited_from_dict, load_bundled_json
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Grade

TREATMENTS = ("esketamine", "iv_ketamine")
# The pre-check's "pregnancy test relevant" box starts ticked for a woman below this age; the
# nurse can untick or tick it (the screening's own question uses the rule set's age).
PREGNANCY_TEST_DEFAULT_BELOW_AGE = Cited(
    55, "years", "clinic policy default: pregnancy test offered to women under 55 at the "
    "pre-check", Grade.UNCONFIRMED, "requires medical-director confirmation")


def pregnancy_test_relevant(sex: str, age_years: float) -> bool:
    """Whether the pre-check's pregnancy-test box starts ticked.

    >>> pregnancy_test_relevant("female", 54), pregnancy_test_relevant("female", 55)
    (True, False)
    >>> pregnancy_test_relevant("male", 30)
    False
    """
    return sex == "female" and age_years < PREGNANCY_TEST_DEFAULT_BELOW_AGE.value


@dataclass(frozen=True)
class BpGateRule:
    """Pre-dose BP guide value for one treatment, jurisdiction and age band."""

    rule_id: str
    treatment: str
    jurisdiction: str
    min_age: int | None
    max_age: int | None
    sbp_warn: Cited
    dbp_warn: Cited

    def applies(self, treatment: str, jurisdiction: str, age_years: int | None) -> bool:
        if self.treatment != treatment or self.jurisdiction not in ("any", jurisdiction):
            return False
        if age_years is None:
            return self.min_age is None
        low_ok = self.min_age is None or age_years >= self.min_age
        return low_ok and (self.max_age is None or age_years <= self.max_age)


@dataclass(frozen=True)
class VitalThreshold:
    """An alert threshold on one vital sign (``op`` is ``>`` or ``<``)."""

    param: str
    op: str
    value: float
    treatments: tuple[str, ...]
    action: str

    def fires(self, observed: float) -> bool:
        return observed > self.value if self.op == ">" else observed < self.value


@dataclass(frozen=True)
class SessionRules:
    """Everything the chair-side checks read; see ``data/chair/session.json``."""

    version: str
    pre_checks: dict[str, dict[str, Cited]]
    weight_max_age_days: Cited
    pregnancy_test_max_age_days: Cited
    bp_gate: tuple[BpGateRule, ...]
    bp_stop_sbp: Cited
    bp_stop_dbp: Cited
    vitals_interval_min: Cited
    vitals_tolerance_min: Cited
    vitals_grace_min: Cited
    vitals_extra_t_min: dict[str, tuple[int, ...]]
    vitals_span_min: dict[str, int]
    vitals_extra_source: dict[str, Cited | None]
    vital_thresholds: tuple[VitalThreshold, ...]
    vital_thresholds_source: Cited
    assessments: dict[str, tuple[tuple[str, tuple[int, ...]], ...]]
    assessments_source: Cited
    discharge: dict[str, Cited]
    ae_terms: dict[str, dict[str, str]]
    ae_severities: tuple[str, ...]
    ae_source: Cited


def _c(raw: dict[str, Any]) -> Cited:
    cited = cited_from_dict(raw)
    assert cited is not None
    return cited


def _pre_checks(raw: dict[str, Any]) -> dict[str, dict[str, Cited]]:
    return {t: {k: _c(v) for k, v in raw[t].items()} for t in TREATMENTS}


def _bp_gate(raw: list[dict[str, Any]]) -> tuple[BpGateRule, ...]:
    return tuple(
        BpGateRule(r["id"], r["treatment"], r["jurisdiction"], r["min_age"], r["max_age"],
                   _c(r["sbp_warn"]), _c(r["dbp_warn"]))
        for r in raw
    )


def _thresholds(raw: list[dict[str, Any]]) -> tuple[VitalThreshold, ...]:
    out = []
    for r in raw:
        if r["op"] not in (">", "<"):
            raise ClinicalInputError(f"threshold operator must be > or <, not {r['op']!r}")
        out.append(VitalThreshold(r["param"], r["op"], float(r["value"]),
                                  tuple(r["treatments"]), r["action"]))
    return tuple(out)


def session_rules_from_dict(raw: dict[str, Any], ae_raw: dict[str, Any]) -> SessionRules:
    """Build :class:`SessionRules` from the JSON forms of the session and AE files."""
    vs = raw["vitals_schedule"]
    try:
        return SessionRules(
            version=raw["version"],
            pre_checks=_pre_checks(raw["pre_checks"]),
            weight_max_age_days=_c(raw["pre_checks"]["weight_max_age_days"]),
            pregnancy_test_max_age_days=_c(raw["pre_checks"]["pregnancy_test_max_age_days"]),
            bp_gate=_bp_gate(raw["bp_gate"]),
            bp_stop_sbp=_c(raw["bp_stop"]["sbp"]),
            bp_stop_dbp=_c(raw["bp_stop"]["dbp"]),
            vitals_interval_min=_c(vs["interval_min"]),
            vitals_tolerance_min=_c(vs["tolerance_min"]),
            vitals_grace_min=_c(vs["grace_min"]),
            vitals_extra_t_min={t: tuple(vs[t]["extra_t_min"]) for t in TREATMENTS},
            vitals_span_min={t: int(vs[t]["span_min"]) for t in TREATMENTS},
            vitals_extra_source={t: cited_from_dict(vs[t]["extra_source"]) for t in TREATMENTS},
            vital_thresholds=_thresholds(raw["vital_thresholds"]),
            vital_thresholds_source=_c(raw["vital_thresholds_source"]),
            assessments={
                t: tuple((a["instrument"], tuple(a["t_min"])) for a in raw["assessments"][t])
                for t in TREATMENTS
            },
            assessments_source=_c(raw["assessments"]["source"]),
            discharge={k: _c(v) for k, v in raw["discharge"].items()},
            ae_terms={t["code"]: t for t in ae_raw["terms"]},
            ae_severities=tuple(ae_raw["severities"]),
            ae_source=_c(ae_raw["source"]),
        )
    except KeyError as exc:
        raise ClinicalInputError(f"session rule set lacks {exc.args[0]!r}") from exc


def load_session_rules() -> SessionRules:
    """Load the bundled chair-side rule set."""
    return session_rules_from_dict(
        load_bundled_json("chair/session.json"), load_bundled_json("chair/adverse_events.json")
    )


def require_treatment(treatment: str) -> str:
    """Return ``treatment`` if known, else raise a one-line :class:`ClinicalInputError`."""
    if treatment not in TREATMENTS:
        raise ClinicalInputError(f"unknown treatment {treatment!r}; use one of {list(TREATMENTS)}")
    return treatment
