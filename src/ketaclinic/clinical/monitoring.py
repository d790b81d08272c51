"""Monitoring at the chair: pre-dose BP gate, timed vitals and assessments, vital-sign alerts.

All times are passed in (``start`` = first device or infusion start, ``now``); nothing reads
the clock. Thresholds come from :class:`~ketaclinic.clinical.session_rules.SessionRules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ketaclinic.clinical.rules import ClinicalInputError, Finding, Level
from ketaclinic.clinical.session_rules import SessionRules, require_treatment

DUE_NOW = "due_now"
OVERDUE = "overdue"
MISSED = "missed"

#: plausible ranges; values outside are typing errors, not alerts
PLAUSIBLE = {
    "sbp_mmhg": (40, 300),
    "dbp_mmhg": (20, 200),
    "hr_bpm": (20, 250),
    "spo2_pct": (50, 100),
    "rr_per_min": (2, 60),
}

#: how a clinician reads each vital sign: its name and unit ("SpO₂ 89 %")
VITAL_WORDS = {
    "sbp_mmhg": ("Systolic BP", "mmHg"),
    "dbp_mmhg": ("Diastolic BP", "mmHg"),
    "hr_bpm": ("Heart rate", "/min"),
    "spo2_pct": ("SpO₂", "%"),
    "rr_per_min": ("Respiratory rate", "/min"),
}


#: vital signs whose alerts are shown red like urgent ones: breathing is at stake
RESPIRATORY = ("spo2_pct", "rr_per_min")


def is_respiratory(rule: str) -> bool:
    """Whether a vitals alert rule ("vitals.spo2_pct_low") concerns breathing.

    >>> is_respiratory("vitals.spo2_pct_low"), is_respiratory("vitals.sbp_mmhg_high")
    (True, False)
    """
    return any(rule.startswith(f"vitals.{param}") for param in RESPIRATORY)


def describe_vital(param: str, value: float, op: str, threshold: float) -> str:
    """A threshold crossing in words with units: "SpO₂ 89 % — below 92 %".

    >>> describe_vital("rr_per_min", 8, "<", 10)
    'Respiratory rate 8 /min — below 10 /min'
    """
    name, unit = VITAL_WORDS.get(param, (param, ""))
    side = {"<": "below", "<=": "at or below", ">": "above", ">=": "at or above"}.get(op, op)
    return f"{name} {value:g} {unit} — {side} {threshold:g} {unit}".replace("  ", " ")


@dataclass(frozen=True)
class VitalSigns:
    """One set of vital signs; any value may be missing (None)."""

    taken_at: datetime
    sbp_mmhg: float | None = None
    dbp_mmhg: float | None = None
    hr_bpm: float | None = None
    spo2_pct: float | None = None
    rr_per_min: float | None = None


@dataclass(frozen=True)
class Due:
    """A scheduled observation that is due now, overdue or was missed."""

    label: str
    t_min: int
    due_at: datetime
    status: str
    minutes_late: float


def _bp_rule(treatment: str, jurisdiction: str, age_years: int | None, rules: SessionRules):
    for rule in rules.bp_gate:
        if rule.applies(treatment, jurisdiction, age_years):
            return rule
    raise ClinicalInputError(
        f"no BP gate rule for {treatment} in jurisdiction {jurisdiction!r}"
    )


def check_predose_bp(
    sbp_mmhg: float,
    dbp_mmhg: float,
    treatment: str,
    jurisdiction: str,
    age_years: int | None,
    rules: SessionRules,
) -> Finding:
    """Gate the dose on the pre-dose blood pressure.

    Returns one finding: HARD (do not dose: at or above the stop values), SOFT (above the
    guide value: weigh the rise against the benefit, consider delaying; override needs a
    reason) or OK. With an unknown age the stricter under-65 guide value applies.
    """
    require_treatment(treatment)
    _check_plausible({"sbp_mmhg": sbp_mmhg, "dbp_mmhg": dbp_mmhg})
    rule = _bp_rule(treatment, jurisdiction, age_years, rules)
    seen = {"sbp_mmhg": sbp_mmhg, "dbp_mmhg": dbp_mmhg, "rule_id": rule.rule_id}
    stop_s, stop_d = rules.bp_stop_sbp, rules.bp_stop_dbp
    if sbp_mmhg >= stop_s.value or dbp_mmhg >= stop_d.value:
        return Finding(
            "bp_gate.stop", Level.HARD,
            f"BP {sbp_mmhg:.0f}/{dbp_mmhg:.0f} mmHg is at or above {stop_s.value}/{stop_d.value}: "
            f"do not dose today; recheck and inform the prescriber (grade {stop_s.grade.value})",
            stop_s.source, {**seen, "stop": f"{stop_s.value}/{stop_d.value}"},
        )
    warn_s, warn_d = rule.sbp_warn, rule.dbp_warn
    if sbp_mmhg > warn_s.value or dbp_mmhg > warn_d.value:
        return Finding(
            "bp_gate.warn", Level.SOFT,
            f"BP {sbp_mmhg:.0f}/{dbp_mmhg:.0f} mmHg is above {warn_s.value}/{warn_d.value}: "
            f"weigh the rise against the benefit, consider delaying (grade {warn_s.grade.value})",
            warn_s.source, {**seen, "guide": f"{warn_s.value}/{warn_d.value}"},
        )
    return Finding("bp_gate.ok", Level.OK,
                   f"BP {sbp_mmhg:.0f}/{dbp_mmhg:.0f} mmHg within {warn_s.value}/{warn_d.value}",
                   warn_s.source, seen)


def vitals_schedule(
    treatment: str, rules: SessionRules, interval_min: int | None = None
) -> list[int]:
    """Minutes after start at which vitals are due: every ``interval_min`` plus fixed extras.

    Esketamine adds a BP at about 40 min (peak; spravatohcp.com, C).

    >>> from ketaclinic.clinical.session_rules import load_session_rules
    >>> vitals_schedule("esketamine", load_session_rules())[:5]
    [0, 15, 30, 40, 45]
    """
    require_treatment(treatment)
    step = int(interval_min or rules.vitals_interval_min.value)
    if step <= 0:
        raise ClinicalInputError("vitals interval must be positive")
    span = rules.vitals_span_min[treatment]
    return sorted(set(range(0, span + 1, step)) | set(rules.vitals_extra_t_min[treatment]))


def due_items(
    label: str,
    start: datetime,
    recorded_times: Iterable[datetime],
    now: datetime,
    schedule_t_min: Sequence[int],
    tolerance_min: float = 5.0,
    grace_min: float = 5.0,
) -> list[Due]:
    """Scheduled observations not yet satisfied whose time has come.

    A point at ``t`` is satisfied by a recording in its window, which opens ``tolerance_min``
    early (but not before the midpoint from the previous point) and closes at the midpoint to
    the next point. An unsatisfied point is *due now* until ``grace_min`` late, then *overdue*
    until its window closes, then *missed*.
    """
    points = sorted(set(schedule_t_min))
    recorded = sorted(recorded_times)
    tol, grace = timedelta(minutes=tolerance_min), timedelta(minutes=grace_min)
    out = []
    for i, t in enumerate(points):
        due_at = start + timedelta(minutes=t)
        opens = due_at - tol
        if i > 0:
            opens = max(opens, start + timedelta(minutes=(points[i - 1] + t) / 2))
        closes = (start + timedelta(minutes=(t + points[i + 1]) / 2)
                  if i + 1 < len(points) else None)
        if now < opens or any(opens <= r and (closes is None or r < closes) for r in recorded):
            continue
        if now <= due_at + grace:
            status = DUE_NOW
        elif closes is None or now < closes:
            status = OVERDUE
        else:
            status = MISSED
        late = max(0.0, (now - due_at).total_seconds() / 60)
        out.append(Due(label, t, due_at, status, late))
    return out


def vitals_due(
    start: datetime,
    recorded_times: Iterable[datetime],
    now: datetime,
    treatment: str,
    rules: SessionRules,
    interval_min: int | None = None,
) -> list[Due]:
    """Vitals due now, overdue or missed for a session that started at ``start``."""
    return due_items(
        "vitals", start, recorded_times, now, vitals_schedule(treatment, rules, interval_min),
        float(rules.vitals_tolerance_min.value), float(rules.vitals_grace_min.value),
    )


def assessments_due(
    start: datetime,
    recorded: Iterable[tuple[str, datetime]],
    now: datetime,
    treatment: str,
    rules: SessionRules,
) -> list[Due]:
    """Sedation (MOAA/S) and dissociation (CADSS) ratings due, per instrument."""
    require_treatment(treatment)
    recorded = list(recorded)
    out: list[Due] = []
    for instrument, t_mins in rules.assessments[treatment]:
        times = [at for name, at in recorded if name == instrument]
        out += due_items(instrument, start, times, now, t_mins,
                         float(rules.vitals_tolerance_min.value),
                         float(rules.vitals_grace_min.value))
    return sorted(out, key=lambda d: (d.due_at, d.label))


def _check_plausible(values: dict[str, float | None]) -> None:
    for name, value in values.items():
        low, high = PLAUSIBLE[name]
        if value is not None and not low <= value <= high:
            raise ClinicalInputError(f"{name} {value} is outside the plausible range {low}-{high}")


def check_vitals(reading: VitalSigns, treatment: str, rules: SessionRules) -> list[Finding]:
    """Alert findings for a vitals reading; each carries the action to take in ``values``.

    Thresholds are grade U defaults (vendor guides; IV cut-offs attributed to the APA
    consensus) that need medical-director confirmation. An empty list means no alert.
    """
    require_treatment(treatment)
    observed = {name: getattr(reading, name) for name in PLAUSIBLE}
    _check_plausible(observed)
    src = rules.vital_thresholds_source
    findings = []
    for th in rules.vital_thresholds:
        value = observed.get(th.param)
        if treatment not in th.treatments or value is None or not th.fires(value):
            continue
        findings.append(Finding(
            f"vitals.{th.param}{'_high' if th.op == '>' else '_low'}", Level.SOFT,
            f"{describe_vital(th.param, value, th.op, th.value)}: {th.action} "
            f"(grade {src.grade.value})",
            src.source,
            {th.param: value, "threshold": th.value, "action": th.action,
             "action_required": True, "taken_at": reading.taken_at.isoformat()},
        ))
    return findings
