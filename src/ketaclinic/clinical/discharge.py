"""Discharge is earned: the gate that says whether a patient may leave.

Ready only when every finding is OK:

- the observation time has passed (esketamine: 120 min after the first device, the label and
  REMS rule; IV: the session rule's minutes after the infusion end). There is no override: a
  patient who leaves earlier is recorded as *left against advice* (:func:`left_against_advice`),
  never as ready;
- a complete set of vitals (BP, HR, SpO2) taken within the rule set's window
  (``discharge-vitals-window-min``) before discharge, with no alert threshold crossed and the BP
  at or below the rule set's discharge maximum (``discharge-sbp-max-mmhg`` /
  ``discharge-dbp-max-mmhg``);
- a MOAA/S equal to the session rule (5) rated within the same window;
- dissociation and respiratory depression resolved, a responsible adult present;
- every alert of the session has its action recorded.

Unknown is not negative: a missing time, rating, reading, alert count or rule-set value blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ketaclinic.clinical.monitoring import VitalSigns, check_vitals
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Level
from ketaclinic.clinical.rulesets import Rule, RuleSet, RuleSetError
from ketaclinic.clinical.session_rules import SessionRules, require_treatment

FAIL_CLOSED = "ketaclinic fail-closed policy (ENGINEERING.md principle 4)"
COMPLETE = ("sbp_mmhg", "dbp_mmhg", "hr_bpm", "spo2_pct")
LABELS = {"sbp_mmhg": "systolic BP", "dbp_mmhg": "diastolic BP", "hr_bpm": "heart rate",
          "spo2_pct": "SpO2"}
LIMIT_KEYS = ("discharge-vitals-window-min", "discharge-sbp-max-mmhg", "discharge-dbp-max-mmhg")
LEFT_AGAINST_ADVICE = "left-against-advice"


@dataclass(frozen=True)
class DischargeInput:
    """The state of the patient at the time of the discharge request (None = not recorded)."""

    treatment: str
    now: datetime
    first_device_at: datetime | None = None  # esketamine
    infusion_end_at: datetime | None = None  # IV ketamine
    moaas: int | None = None  # the latest MOAA/S of the session
    moaas_at: datetime | None = None
    dissociation_resolved: bool | None = None
    respiratory_depression_resolved: bool | None = None
    responsible_adult_present: bool | None = None
    vitals: tuple[VitalSigns, ...] = ()  # the session's readings, any order
    open_alerts: int | None = None  # alerts without an action taken


@dataclass(frozen=True)
class DischargeDecision:
    """Ready to leave, and the findings that explain why or why not."""

    ready: bool
    findings: tuple[Finding, ...] = field(default=())
    earliest_at: datetime | None = None  # when the observation time is over


def _f(rule: str, level: Level, message: str, source: str = "", **values: Any) -> Finding:
    return Finding(rule, level, message, source, values)


def _cited_f(rule: str, ok: bool, message: str, cited: Cited | Rule, **values: Any) -> Finding:
    grade_of = cited.cited.grade if isinstance(cited, Rule) else cited.grade
    grade = "" if ok else f" (grade {grade_of.value})"
    return _f(rule, Level.OK if ok else Level.HARD, message + grade, cited.source, **values)


def _observation(inp: DischargeInput, rules: SessionRules,
                 limits: RuleSet | None) -> tuple[Finding, datetime | None]:
    if inp.treatment == "esketamine":
        need: Cited = rules.discharge["esketamine_min_after_first_device_min"]
        since, what = inp.first_device_at, "first device"
        own = limits.parameters.get("observation-min") if limits is not None else None
        if own is not None and isinstance(own.value, int | float) and own.value > need.value:
            need = own.cited  # a clinic may observe longer, never shorter than the label
    else:
        need = rules.discharge["iv_min_after_infusion_end_min"]
        since, what = inp.infusion_end_at, "infusion end"
    if since is None:
        return _f("discharge.observation_time", Level.HARD, f"time of {what} not recorded",
                  need.source), None
    earliest = since + timedelta(minutes=need.value)
    elapsed = (inp.now - since).total_seconds() / 60
    if elapsed >= need.value:
        return _f("discharge.observation_time", Level.OK, f"{elapsed:.0f} min since {what}",
                  need.source, elapsed_min=round(elapsed, 1), need_min=need.value), earliest
    return _f("discharge.observation_time", Level.HARD,
              f"only {elapsed:.0f} of {need.value} min since {what}: not before "
              f"{earliest:%H:%M}; no override (a patient who leaves now has left against "
              "advice)", need.source, elapsed_min=round(elapsed, 1), need_min=need.value,
              earliest=earliest.isoformat()), earliest


def _limits(limits: RuleSet | None) -> dict[str, Rule] | Finding:
    if limits is None:
        return _f("discharge.limits", Level.HARD, "no rule set: the discharge limits are "
                  "unknown", FAIL_CLOSED)
    try:
        return {k: limits.param(k) for k in LIMIT_KEYS}
    except RuleSetError as exc:
        return _f("discharge.limits", Level.HARD, f"{exc}: the discharge limits are unknown; "
                  "the medical director must add them", FAIL_CLOSED, rule_set=limits.ref)


def _in_window(at: datetime | None, now: datetime, window_min: float) -> bool:
    return at is not None and now - timedelta(minutes=window_min) <= at <= now


def _latest_complete(vitals: Sequence[VitalSigns], now: datetime,
                     window_min: float) -> VitalSigns | None:
    complete = [v for v in vitals if all(getattr(v, k) is not None for k in COMPLETE)
                and _in_window(v.taken_at, now, window_min)]
    return max(complete, key=lambda v: v.taken_at) if complete else None


def _explain_missing(vitals: Sequence[VitalSigns], now: datetime, window_min: float) -> str:
    recent = [v for v in vitals if v.taken_at <= now]
    if not recent:
        return "no vitals recorded"
    last = max(recent, key=lambda v: v.taken_at)
    age = (now - last.taken_at).total_seconds() / 60
    missing = [LABELS[k] for k in COMPLETE if getattr(last, k) is None]
    what = f"latest reading {age:.0f} min old"
    return what + (f", without {', '.join(missing)}" if missing else "")


def _check_vitals(inp: DischargeInput, rules: SessionRules,
                  lim: dict[str, Rule]) -> list[Finding]:
    window = lim["discharge-vitals-window-min"]
    reading = _latest_complete(inp.vitals, inp.now, window.value)
    if reading is None:
        return [_cited_f("discharge.vitals", False,
                         f"no complete set of vitals (BP, HR, SpO2) in the last {window.value:g} "
                         f"min ({_explain_missing(inp.vitals, inp.now, window.value)}): take a "
                         "full set now", window, window_min=window.value)]
    seen = {k: getattr(reading, k) for k in COMPLETE} | {"taken_at": reading.taken_at.isoformat()}
    alerts = check_vitals(reading, inp.treatment, rules)
    why = "; ".join(a.message for a in alerts)
    out = [Finding("discharge.vitals", Level.HARD, f"vitals before discharge not acceptable: {why}",
                   rules.vital_thresholds_source.source, seen) if alerts else
           _f("discharge.vitals", Level.OK, f"complete vitals at {reading.taken_at:%H:%M} "
              "acceptable", window.source, **seen)]
    sbp, dbp = lim["discharge-sbp-max-mmhg"], lim["discharge-dbp-max-mmhg"]
    bp_ok = reading.sbp_mmhg <= sbp.value and reading.dbp_mmhg <= dbp.value
    out.append(_cited_f("discharge.bp", bp_ok,
                        f"BP {reading.sbp_mmhg:g}/{reading.dbp_mmhg:g} "
                        + ("within" if bp_ok else "above") + f" the discharge limit "
                        f"{sbp.value:g}/{dbp.value:g} mmHg", sbp,
                        sbp_mmhg=reading.sbp_mmhg, dbp_mmhg=reading.dbp_mmhg,
                        sbp_max=sbp.value, dbp_max=dbp.value))
    return out


def _check_sedation(inp: DischargeInput, rules: SessionRules,
                    lim: dict[str, Rule]) -> Finding:
    need, window = rules.discharge["moaas_required"], lim["discharge-vitals-window-min"].value
    if inp.moaas is None:
        return _cited_f("discharge.sedation", False, "no MOAA/S rated", need)
    if not _in_window(inp.moaas_at, inp.now, window):
        return _cited_f("discharge.sedation", False, f"MOAA/S not rated in the last {window:g} "
                        "min: rate again", need, moaas=inp.moaas,
                        moaas_at=inp.moaas_at.isoformat() if inp.moaas_at else None)
    ok = inp.moaas == need.value
    return _cited_f("discharge.sedation", ok, f"MOAA/S {inp.moaas} (needs {need.value})", need,
                    moaas=inp.moaas)


def _check_state(inp: DischargeInput) -> list[Finding]:
    out = []
    for rule, value, what in (
        ("discharge.dissociation", inp.dissociation_resolved, "dissociation resolved"),
        ("discharge.respiratory", inp.respiratory_depression_resolved,
         "respiratory depression resolved"),
        ("discharge.responsible_adult", inp.responsible_adult_present,
         "responsible adult present / transport arranged"),
    ):
        out.append(_f(rule, Level.OK if value else Level.HARD,
                      what if value else f"not confirmed: {what}"))
    if inp.open_alerts is None:
        out.append(_f("discharge.alerts", Level.HARD, "alerts of the session unknown",
                      FAIL_CLOSED))
    else:
        out.append(_f("discharge.alerts", Level.OK if inp.open_alerts == 0 else Level.HARD,
                      "every alert actioned" if inp.open_alerts == 0 else
                      f"{inp.open_alerts} alert(s) still need the action taken",
                      open_alerts=inp.open_alerts))
    return out


def evaluate_discharge(inp: DischargeInput, rules: SessionRules,
                       limits: RuleSet | None = None) -> DischargeDecision:
    """The discharge checklist under the session rules and the treatment's rule set."""
    require_treatment(inp.treatment)
    time_finding, earliest = _observation(inp, rules, limits)
    findings = [time_finding]
    lim = _limits(limits)
    if isinstance(lim, Finding):
        findings.append(lim)
    else:
        findings += _check_vitals(inp, rules, lim)
        findings.append(_check_sedation(inp, rules, lim))
    findings += _check_state(inp)
    ready = not any(f.level in (Level.HARD, Level.SOFT) for f in findings)
    return DischargeDecision(ready, tuple(findings), earliest)


def left_against_advice(decision: DischargeDecision, statement: str) -> list[Finding]:
    """Record a patient leaving before the checklist passes: never "ready". ``statement`` is
    what the patient was told and said (required). Returns the findings to store: the unmet
    criteria at the time the patient left, led by a ``discharge.left_against_advice`` finding."""
    if decision.ready:
        raise ClinicalInputError("the discharge checklist passes: discharge the patient instead")
    if not statement.strip():
        raise ClinicalInputError("record what the patient was told and what they said")
    unmet = [f for f in decision.findings if f.level in (Level.HARD, Level.SOFT)]
    lead = _f("discharge.left_against_advice", Level.HARD,
              "left against advice before the discharge criteria were met: "
              + "; ".join(f.message for f in unmet), FAIL_CLOSED,
              unmet=[f.rule for f in unmet], statement=statement.strip())
    return [lead, *decision.findings]
