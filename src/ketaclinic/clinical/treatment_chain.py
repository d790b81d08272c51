"""The closed loop from screening to ledger: the gates every route passes.

Pure functions over plain values; the services load the facts and call these gates, they never
decide a hard stop themselves. The chain, in order::

    screening (eligible, or review + prescriber sign-off; unexpired; not re-opened by new
               facts; its basis still true; nothing a new screening would call ineligible)
      -> signed order of this patient and course (or a read-back verbal order in its hours)
      -> check-in (reads the stored screening) -> passing pre-dose BP gate
      -> administration matching the order (rule-set tolerance) -> one ledger row

Every gate returns :class:`Finding` objects with the rule, the values seen and the source.
Unknown is not negative: a missing or unrecognised fact is a HARD finding, never "ok".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ketaclinic.clinical.chair_data import cited_from_dict, load_bundled_json
from ketaclinic.clinical.eligibility import (
    PatientFacts,
    diagnosis_conditions,
    indication_codes,
    missing_facts,
    patient_conditions,
    patient_from_dict,
)
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Level
from ketaclinic.clinical.rulesets import RuleSet
from ketaclinic.clinical.screening_regrade import graded_ineligible, thresholds_crossed
from ketaclinic.clinical.staging import count_adequate_failed_trials

#: a chair session's treatment -> the screening (rule-set) treatment it needs
SCREENING_TREATMENT = {"iv_ketamine": "ketamine-iv", "esketamine": "esketamine"}
CHAIN_SOURCE = "ketaclinic closed-loop policy: nothing is given that was not " \
    "screened, ordered and checked for this patient"
SIGNED_STATES = ("signed", "countersigned")


@dataclass(frozen=True)
class ChainRules:
    """Tolerances and hours of the chain, each cited (``data/chair/administration.json``)."""

    version: str
    dose_match_tolerance_pct: Mapping[str, Cited]
    rate_match_tolerance_pct: Cited
    verbal_order_countersign_h: Cited
    future_tolerance_min: Cited


def chain_rules_from_dict(raw: Mapping[str, Any]) -> ChainRules:
    """Build :class:`ChainRules` from its JSON form; a missing key is a ClinicalInputError."""
    try:
        return ChainRules(
            version=raw["version"],
            dose_match_tolerance_pct={t: _c(raw["dose_match_tolerance_pct"][t])
                                      for t in SCREENING_TREATMENT},
            rate_match_tolerance_pct=_c(raw["rate_match_tolerance_pct"]),
            verbal_order_countersign_h=_c(raw["verbal_order_countersign_h"]),
            future_tolerance_min=_c(raw["future_tolerance_min"]),
        )
    except (KeyError, TypeError) as exc:
        raise ClinicalInputError(f"administration rule set lacks {exc.args[0]!r}") from exc


def load_chain_rules() -> ChainRules:
    """The bundled chain rules."""
    return chain_rules_from_dict(load_bundled_json("chair/administration.json"))


def _c(raw: Any) -> Cited:
    cited = cited_from_dict(raw)
    if cited is None:
        raise ClinicalInputError("a chain rule has no value")
    return cited


def _f(rule: str, level: Level, message: str, source: str = CHAIN_SOURCE,
       **values: Any) -> Finding:
    return Finding(f"chain.{rule}", level, message, source, values)


def hard_messages(findings: Sequence[Finding]) -> list[str]:
    """The messages of the HARD findings (what stops the step), in order."""
    return [f.message for f in findings if f.level is Level.HARD]


# --------------------------------------------------------------------------- screening


@dataclass(frozen=True)
class ScreeningState:
    """The latest stored screening of one treatment, with its latest prescriber sign-off."""

    screening_id: int
    treatment: str
    decision: str  # eligible | review | ineligible
    expires_on: date
    screened_inputs: Mapping[str, Any]
    signoff_by: str = ""
    signoff_at: datetime | None = None
    signoff_reason: str = ""
    signoff_inputs: Mapping[str, Any] | None = None


def _meds(doc: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(str(m.get("name", "")).strip().lower(), str(m.get("class", "")).strip().lower())
            for m in doc.get("medications") or []}


def new_since_screening(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Contraindications and interacting medicines in ``current`` that ``baseline`` lacked."""
    new = [f"condition {c}" for c in sorted(set(current.get("conditions") or [])
                                            - set(baseline.get("conditions") or []))]
    new += [f"medication {name}" + (f" ({cls})" if cls else "")
            for name, cls in sorted(_meds(current) - _meds(baseline))]
    for flag in ("pregnant", "breastfeeding"):
        if current.get(flag) and not baseline.get(flag):
            new.append(flag)
    sud = current.get("substance_use_disorder") or "none"
    if sud != "none" and sud != (baseline.get("substance_use_disorder") or "none"):
        new.append(f"substance use disorder {sud}")
    return new


#: condition flags new_since_screening reports itself (its own answers)
_FLAGS_SEEN_AS_NEW = frozenset({"pregnancy", "breastfeeding", "substance_use_disorder"})


def _read(doc: Mapping[str, Any] | None) -> PatientFacts | str:
    """The facts of a screening document, or why they cannot be read."""
    if not isinstance(doc, Mapping):
        return "no facts stored"
    try:
        return patient_from_dict(dict(doc))
    except ClinicalInputError as exc:
        return " ".join(str(exc).split())


def _age_bands_lost(then: PatientFacts, now: PatientFacts, rs: RuleSet) -> list[str]:
    """Age limits the screening's age met and today's age does not. Growing older never loses
    one (natural ageing is not a correction); a corrected birth date can."""
    gone = []
    minimum = rs.param("age-min-years").value
    if then.age_years >= minimum > now.age_years:
        gone.append(f"age {now.age_years:g} is below the minimum of {minimum:g} (the "
                    f"screening saw {then.age_years:g})")
    older = rs.parameters.get("older-adult-age-years")
    if older is not None and "bp-pre-dose-older-systolic-max-mmhg" in rs.parameters \
            and then.age_years >= older.value > now.age_years:
        gone.append(f"age {now.age_years:g} is below {older.value:g}, whose blood-pressure "
                    f"limits the screening used (it saw {then.age_years:g})")
    return gone


def basis_gone(screened: Mapping[str, Any] | None, current: Mapping[str, Any] | None,
               rs: RuleSet) -> list[str]:
    """What the screening's decision rested on and is no longer true (empty: it all holds).

    ``screened`` is the facts document the screening saw, ``current`` today's (the same
    schema, docs/dosing.md; a diagnosis entered in error is not in it, a resolved one is
    marked resolved) and ``rs`` the rule set a new screening would use. Lost are:

    * the indication: none of the depressive-episode diagnoses the screening saw still stands
      (withdrawn, resolved, entered in error, or its code changed to one that is not an
      indication); another depressive diagnosis recorded since is not one it screened;
    * adequate failed antidepressant trials: fewer now than at the screening (same rules);
    * an age limit the screening's age met (the minimum; the older-adult BP limits);
    * a fact the screening knew that is unknown now (pregnancy, breast-feeding, substance
      use, BP): unknown is not negative;
    * "no such contraindication": a condition flag set by a diagnosis recorded since
      (bipolar, psychosis; resolved ones are history and count) or by a psychotic symptom
      severity (the flags :func:`new_since_screening` does not see);
    * and facts that cannot be read, then or now (unknown is not negative).

    What only makes treatment safer never counts: a second depressive diagnosis, a stopped
    medicine, a withdrawn allergy, more trials, growing older.
    """
    then, now = _read(screened), _read(current)
    if isinstance(then, str):
        return [f"the facts the screening saw cannot be read ({then})"]
    if isinstance(now, str):
        return [f"the patient's current facts cannot be read ({now})"]
    gone = []
    was, still = indication_codes(then), indication_codes(now)
    if not was:
        gone.append("the screening saw no indication (depressive-episode) diagnosis")
    elif not set(was) & set(still):
        gone.append((f"indication diagnosis {was[0]} no longer stands" if len(was) == 1 else
                     f"indication diagnoses {', '.join(was)} no longer stand")
                    + " (withdrawn, resolved, entered in error or changed)"
                    + (f"; {', '.join(still)} was not screened" if still else ""))
    trials_then, _ = count_adequate_failed_trials(then.antidepressant_trials, rs)
    trials_now, _ = count_adequate_failed_trials(now.antidepressant_trials, rs)
    if trials_now < trials_then:
        gone.append(f"adequate failed antidepressant trials: {trials_now} now, "
                    f"{trials_then} at the screening")
    gone += _age_bands_lost(then, now, rs)
    unknown = [m for m in missing_facts(now, rs) if m not in missing_facts(then, rs)]
    if unknown:
        gone.append(f"no longer known: {', '.join(unknown)}")
    # flags new_since_screening cannot see: set by a diagnosis or a psychotic severity
    dx = diagnosis_conditions(now)
    gone += [f"condition {c}" + (f" (diagnosis {', '.join(dx[c])})" if c in dx else
                                 f" (symptom severity {now.symptom_severity})")
             for c in sorted(patient_conditions(now) - patient_conditions(then)
                             - set(now.conditions) - _FLAGS_SEEN_AS_NEW)]
    return gone


def _baseline(state: ScreeningState) -> Mapping[str, Any]:
    return state.signoff_inputs if state.signoff_inputs is not None else state.screened_inputs


def _gone(state: ScreeningState, current: Mapping[str, Any], rs: RuleSet) -> list[str]:
    if rs.treatment != state.treatment:
        return [f"rule set {rs.ref} is for {rs.treatment}, not {state.treatment}"]
    return basis_gone(state.screened_inputs, current, rs)


def _regraded(state: ScreeningState, current: Mapping[str, Any], rs: RuleSet,
              today: date) -> tuple[list[str], list[str]]:
    """What is new since the screening (or its last sign-off), graded under ``rs``, the rule
    set a new screening would use: (what a new screening would call ineligible: only a new
    screening clears it; what it would send to review: a sign-off clears it). Call it once
    :func:`_gone` is empty (both documents read, ``rs`` of the screening's treatment)."""
    then, now = _read(_baseline(state)), _read(current)
    if isinstance(then, str) or isinstance(now, str):  # unknown is not negative
        return [f"the facts cannot be read ({then if isinstance(then, str) else now})"], []
    return (graded_ineligible(then, now, rs, today),
            new_since_screening(_baseline(state), current) + thresholds_crossed(then, now, rs))


def check_screening(state: ScreeningState | None, treatment: str,
                    current_inputs: Mapping[str, Any] | None, today: date,
                    ruleset: RuleSet) -> Finding:
    """May this patient be treated (ordered, checked in, dosed) with ``treatment`` today?

    OK only for an unexpired screening of this treatment that is *eligible*, or *review* with
    a recorded prescriber sign-off, that no contraindication or interacting medicine
    recorded since (the screening or the sign-off; a benzodiazepine dose raised past the rule
    set's threshold counts) has re-opened, whose basis (:func:`basis_gone`) still holds and in
    whose facts a new screening would find nothing that makes the patient ineligible (an
    absolute contraindication recorded since), both judged under ``ruleset``, the rule set a
    new screening would use. Anything else is HARD; a lost basis or an ineligible grade needs
    a new screening, not a sign-off.
    """
    seen: dict[str, Any] = {"treatment": treatment}
    if state is None:
        return _f("screening", Level.HARD, f"no screening for {treatment} on record: screen the "
                  "patient before treatment", **seen)
    seen |= {"screening_id": state.screening_id, "decision": state.decision,
             "expires_on": state.expires_on.isoformat()}
    if state.treatment != treatment:
        return _f("screening", Level.HARD, f"the screening is for {state.treatment}, not "
                  f"{treatment}", **seen)
    if today > state.expires_on:
        return _f("screening", Level.HARD, f"the screening expired on "
                  f"{state.expires_on.isoformat()}: screen again", **seen)
    if state.decision == "ineligible":
        return _f("screening", Level.HARD, "the screening found the patient ineligible: no "
                  "treatment", **seen)
    if current_inputs is None:
        return _f("screening", Level.HARD, "the patient's current facts could not be read: "
                  "screen again", **seen)
    gone = _gone(state, current_inputs, ruleset)
    if gone:
        return _f("screening_reopened", Level.HARD, "the screening no longer stands, what it "
                  "rested on has changed: " + "; ".join(gone) + ": screen again",
                  **seen, basis_gone=gone)
    ineligible, new = _regraded(state, current_inputs, ruleset, today)
    if ineligible:
        return _f("screening_reopened", Level.HARD, "a new screening would find the patient "
                  "ineligible: " + "; ".join(ineligible) + ": screen again (a sign-off cannot "
                  "clear it)", **seen, ineligible=ineligible)
    if new:
        return _f("screening_reopened", Level.HARD, "recorded after the screening: "
                  + ", ".join(new) + ": screen again or have a prescriber sign off again",
                  **seen, new=new)
    if state.decision == "eligible":
        return _f("screening", Level.OK, f"screening eligible, valid until "
                  f"{state.expires_on.isoformat()}", **seen)
    if state.decision == "review" and state.signoff_at is not None and state.signoff_by:
        return _f("screening", Level.OK, f"screening needed review; signed off by "
                  f"{state.signoff_by}: {state.signoff_reason}", **seen,
                  signoff_by=state.signoff_by, signoff_at=state.signoff_at.isoformat())
    if state.decision == "review":
        return _f("screening_signoff", Level.HARD, "the screening needs review: a prescriber "
                  "must record a sign-off (reason) before the order is signed", **seen)
    return _f("screening", Level.HARD, f"unknown screening decision {state.decision!r}",
              **seen)


def check_signoff(state: ScreeningState | None, current_inputs: Mapping[str, Any],
                  today: date, reason: str, ruleset: RuleSet) -> Finding:
    """May a prescriber sign this screening off? Only an unexpired *review* screening, or one
    re-opened by new facts a new screening would send to review, with a reason. Never an
    ineligible or expired one, one whose basis is gone, or one in whose facts a new screening
    under ``ruleset`` would find the patient ineligible (an absolute contraindication recorded
    since, such as a ketamine allergy): those need a new screening."""
    if state is None:
        return _f("signoff", Level.HARD, "no screening to sign off")
    if today > state.expires_on or state.decision not in ("review", "eligible"):
        return _f("signoff", Level.HARD, f"a {state.decision} screening (valid until "
                  f"{state.expires_on.isoformat()}) cannot be signed off: screen again",
                  decision=state.decision)
    gone = _gone(state, current_inputs, ruleset)
    if gone:
        return _f("signoff", Level.HARD, "what the screening rested on has changed: "
                  + "; ".join(gone) + ": screen again (a sign-off cannot restore it)",
                  basis_gone=gone)
    ineligible, reopened = _regraded(state, current_inputs, ruleset, today)
    if ineligible:
        return _f("signoff", Level.HARD, "a new screening would find the patient ineligible: "
                  + "; ".join(ineligible) + ": screen again (a sign-off cannot clear it)",
                  ineligible=ineligible)
    if state.decision == "eligible" and not reopened:
        return _f("signoff", Level.HARD, "this screening is eligible and needs no sign-off")
    if not reason.strip():
        return _f("signoff", Level.HARD, "a sign-off needs a reason")
    return _f("signoff", Level.OK, "sign-off recorded", reopened=reopened)


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True)
class OrderFacts:
    """A stored dose order, as the chair sees it."""

    order_id: int
    patient_id: int
    course_id: int | None
    treatment: str  # screening treatment: ketamine-iv | esketamine
    dose_mg: Decimal
    status: str  # signed | verbal | countersigned
    ordered_at: datetime
    rate_ml_per_h: Decimal | None = None
    concentration_mg_per_ml: Decimal | None = None
    devices: int | None = None


@dataclass(frozen=True)
class SessionFacts:
    session_id: int
    patient_id: int
    course_id: int | None
    treatment: str  # chair treatment: iv_ketamine | esketamine


@dataclass(frozen=True)
class GivenDose:
    """What the nurse administered (or programmed)."""

    dose_mg: Decimal
    rate_ml_per_h: Decimal | None = None
    concentration_mg_per_ml: Decimal | None = None
    order_confirmed: bool = False  # the nurse confirmed the order shown at the chair


def verbal_order_due(ordered_at: datetime, rules: ChainRules) -> datetime:
    """When a verbal order must be countersigned by the prescriber who gave it."""
    return ordered_at + timedelta(hours=float(rules.verbal_order_countersign_h.value))


def order_state(order: OrderFacts, now: datetime, rules: ChainRules) -> str:
    """signed | countersigned | verbal (read back, within its hours) | overdue | unsigned."""
    if order.status in SIGNED_STATES:
        return order.status
    if order.status == "verbal":
        return "verbal" if now <= verbal_order_due(order.ordered_at, rules) else "overdue"
    return "unsigned"


def _pct_off(given: Decimal, ordered: Decimal) -> float:
    return abs(float(given) - float(ordered)) / float(ordered) * 100.0 if ordered else 100.0


def _check_order_identity(order: OrderFacts, session: SessionFacts, now: datetime,
                          rules: ChainRules) -> list[Finding]:
    seen: dict[str, Any] = {"order_id": order.order_id, "session_id": session.session_id}
    out = []
    if order.patient_id != session.patient_id:
        out.append(_f("order_patient", Level.HARD, f"dose order {order.order_id} is for another "
                      "patient: no dose", **seen))
    if order.course_id != session.course_id:
        out.append(_f("order_course", Level.HARD, f"dose order {order.order_id} is not for this "
                      "course: no dose", **seen))
    if order.treatment != SCREENING_TREATMENT.get(session.treatment):
        out.append(_f("order_treatment", Level.HARD, f"dose order {order.order_id} is for "
                      f"{order.treatment}, not this {session.treatment} session", **seen))
    state = order_state(order, now, rules)
    if state == "overdue":
        out.append(_f("order_signed", Level.HARD, f"verbal order {order.order_id} was not "
                      "countersigned in time: no dose until the prescriber countersigns",
                      rules.verbal_order_countersign_h.source, **seen))
    elif state == "unsigned":
        out.append(_f("order_signed", Level.HARD, f"dose order {order.order_id} is not signed: "
                      "no dose", **seen, status=order.status))
    return out


def _check_match(order: OrderFacts, session: SessionFacts, given: GivenDose,
                 rules: ChainRules) -> list[Finding]:
    tol = rules.dose_match_tolerance_pct.get(session.treatment)
    if tol is None:
        return [_f("dose_matches_order", Level.HARD, f"no dose tolerance for "
                   f"{session.treatment}")]
    off = _pct_off(given.dose_mg, order.dose_mg)
    seen = {"given_mg": str(given.dose_mg), "ordered_mg": str(order.dose_mg),
            "off_pct": round(off, 2), "tolerance_pct": tol.value}
    if off > float(tol.value):
        return [_f("dose_matches_order", Level.HARD, f"{given.dose_mg:f} mg given does not match "
                   f"the order ({order.dose_mg:f} mg, tolerance {tol.value} %): no dose",
                   tol.source, **seen)]
    out = [_f("dose_matches_order", Level.OK, f"{given.dose_mg:f} mg matches the order",
              tol.source, **seen)]
    if session.treatment == "iv_ketamine":
        out += _check_pump(order, given, rules)
    return out


def _check_pump(order: OrderFacts, given: GivenDose, rules: ChainRules) -> list[Finding]:
    out = []
    if given.concentration_mg_per_ml is None or given.rate_ml_per_h is None:
        return [_f("pump_programmed", Level.HARD, "record the concentration and the mL/h "
                   "programmed on the pump")]
    if order.concentration_mg_per_ml is not None and \
            given.concentration_mg_per_ml != order.concentration_mg_per_ml:
        out.append(_f("concentration_matches_order", Level.HARD,
                      f"{given.concentration_mg_per_ml:f} mg/mL is not the ordered "
                      f"{order.concentration_mg_per_ml:f} mg/mL: no dose",
                      given=str(given.concentration_mg_per_ml),
                      ordered=str(order.concentration_mg_per_ml)))
    tol = rules.rate_match_tolerance_pct
    if order.rate_ml_per_h is not None:
        off = _pct_off(given.rate_ml_per_h, order.rate_ml_per_h)
        if off > float(tol.value):
            out.append(_f("rate_matches_order", Level.HARD,
                          f"{given.rate_ml_per_h:f} mL/h programmed does not match the ordered "
                          f"{order.rate_ml_per_h:f} mL/h (tolerance {tol.value} %): no dose",
                          tol.source, given=str(given.rate_ml_per_h),
                          ordered=str(order.rate_ml_per_h), off_pct=round(off, 2)))
    return out


def check_administration(order: OrderFacts | None, session: SessionFacts, given: GivenDose,
                         now: datetime, rules: ChainRules) -> list[Finding]:
    """Is this administration tied to a signed order of this patient and course, and does it
    match that order? Any HARD finding means no dose."""
    if order is None:
        return [_f("order_missing", Level.HARD, "no signed dose order for this session: no "
                   "dose", session_id=session.session_id)]
    identity = _check_order_identity(order, session, now, rules)
    if not identity and not given.order_confirmed:
        identity = [_f("order_confirmed", Level.HARD, f"confirm dose order {order.order_id} "
                       "as shown before recording the dose", order_id=order.order_id)]
    return identity or _check_match(order, session, given, rules)


# --------------------------------------------------------------------------- events in order


@dataclass(frozen=True)
class SessionTimeline:
    """What has happened in a session so far (None = not yet)."""

    checked_in_at: datetime | None
    checkin_outcome: str  # ok | overridden | soft | hard | "" (none)
    predose_at: datetime | None = None
    predose_gate: str = ""  # ok | warn | stop | "" (none)
    dosed_at: datetime | None = None
    discharged_at: datetime | None = None


def _minute(at: datetime) -> datetime:
    """Times typed at the chair have minute resolution: compare on the minute."""
    return at.replace(second=0, microsecond=0)


def _future(at: datetime, now: datetime, rules: ChainRules) -> bool:
    return at > now + timedelta(minutes=float(rules.future_tolerance_min.value))


def check_ready_to_dose(tl: SessionTimeline, started_at: datetime, ended_at: datetime | None,
                        now: datetime, rules: ChainRules,
                        device_times: Sequence[datetime] = ()) -> list[Finding]:
    """Device or infusion start only after a recorded check-in and after a passing pre-dose
    BP gate (not before the BP was taken), never in the future, never ending before it
    starts."""
    out = []
    if tl.checked_in_at is None or tl.checkin_outcome not in ("ok", "overridden"):
        out.append(_f("order_of_events", Level.HARD, "complete the check-in pre-checks first"))
    elif tl.predose_at is None or tl.predose_gate == "":
        out.append(_f("predose_bp", Level.HARD, "record the pre-dose vital signs first"))
    elif tl.predose_gate not in ("ok", "warn"):
        out.append(_f("predose_bp", Level.HARD, "the pre-dose BP gate said stop: recheck the "
                      "BP before dosing", gate=tl.predose_gate))
    elif started_at < _minute(tl.predose_at):
        out.append(_f("order_of_events", Level.HARD, "the dose cannot start before the "
                      "pre-dose BP was taken", started_at=started_at.isoformat(),
                      predose_at=tl.predose_at.isoformat()))
    if any(_future(at, now, rules) for at in (started_at, *device_times)):
        out.append(_f("not_in_future", Level.HARD, "the dose start is in the future",
                      rules.future_tolerance_min.source))
    if ended_at is not None and (ended_at < started_at or _future(ended_at, now, rules)):
        out.append(_f("order_of_events", Level.HARD, "the dose cannot end before it started "
                      "or in the future"))
    return out


def check_not_future(what: str, at: datetime, now: datetime, rules: ChainRules) -> list[Finding]:
    """Nothing at the chair happens after the server's clock."""
    if _future(at, now, rules):
        return [_f("not_in_future", Level.HARD, f"{what}: the time is in the future",
                   rules.future_tolerance_min.source, at=at.isoformat())]
    return []


def check_event_time(what: str, at: datetime, tl: SessionTimeline, now: datetime,
                     rules: ChainRules) -> list[Finding]:
    """Vitals and ratings lie within the session: not before its first event (the check-in
    or the pre-dose BP, which a nurse may enter late), not after discharge, not in the
    future."""
    future = check_not_future(what, at, now, rules)
    if future:
        return future
    known = [x for x in (tl.checked_in_at, tl.predose_at) if x is not None]
    if not known:
        return [_f("order_of_events", Level.HARD, f"{what}: the session has not started "
                   "(no check-in)")]
    if at < _minute(min(known)):
        return [_f("order_of_events", Level.HARD, f"{what}: the time is before the session "
                   "(check-in or pre-dose BP)", at=at.isoformat())]
    if tl.discharged_at is not None and at > tl.discharged_at:
        return [_f("order_of_events", Level.HARD, f"{what}: the time is after the discharge")]
    return []


def predose_vitals_acceptable(tl: SessionTimeline) -> bool | None:
    """The REMS form's "vitals acceptable before dosing": None (unknown) without a pre-dose
    BP, True only when the gate passed (ok or warn with a reason)."""
    if tl.predose_at is None or not tl.predose_gate:
        return None
    return tl.predose_gate in ("ok", "warn")


# --------------------------------------------------------------------------- verbal orders


def check_verbal_order(prescriber_may_prescribe: bool, read_back_confirmed: bool,
                       soft_rules: Sequence[str]) -> list[Finding]:
    """A verbal or telephone order taken at the chair: a named prescriber who may prescribe,
    read back and confirmed, and no soft finding (an override needs the prescriber's own
    coded reason, so such an order must be entered by the prescriber)."""
    out = []
    if not prescriber_may_prescribe:
        out.append(_f("verbal_prescriber", Level.HARD, "name the prescriber who gave the "
                      "order (a user who may prescribe)"))
    if not read_back_confirmed:
        out.append(_f("verbal_read_back", Level.HARD, "read the order back to the prescriber "
                      "and record that it was confirmed"))
    if soft_rules:
        out.append(_f("verbal_soft_limit", Level.HARD, "this order needs an override ("
                      + ", ".join(soft_rules) + "): the prescriber must enter it",
                      rules=list(soft_rules)))
    return out


def check_countersign(status: str, by_the_prescriber_named: bool) -> Finding:
    """Only a verbal order is countersigned, and only by the prescriber who gave it."""
    if status != "verbal":
        return _f("countersign", Level.HARD, f"a {status} order needs no countersignature")
    if not by_the_prescriber_named:
        return _f("countersign", Level.HARD, "only the prescriber who gave the verbal order "
                  "may countersign it")
    return _f("countersign", Level.OK, "verbal order countersigned")
