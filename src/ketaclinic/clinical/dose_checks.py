"""Dose error reduction: soft and hard limits per route, ten-fold and mg/mcg errors, weight checks.

Like a smart-pump drug library: every check returns a :class:`Finding` (rule, level ok/soft/hard,
message, source). Hard findings can never be saved, by any role. Soft findings need an
:class:`Override` with a coded reason from the rule set plus free text. A checker that raises
blocks the dose (:func:`check_dose_safely`). Weight, ten-fold and unit-swap findings force a
stop and re-entry (``values["action"] == "re-entry-required"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ketaclinic.clinical import pump_library
from ketaclinic.clinical.dose_limits import (  # re-exported: callers import them here
    FAIL_CLOSED_SOURCE as FAIL_CLOSED_SOURCE,
)
from ketaclinic.clinical.dose_limits import _finding
from ketaclinic.clinical.dose_limits import against_limits as _against_limits
from ketaclinic.clinical.dose_limits import format_dose as format_dose
from ketaclinic.clinical.dose_limits import format_unit as format_unit
from ketaclinic.clinical.dosing import select_phase
from ketaclinic.clinical.inputs import require_finite, require_positive
from ketaclinic.clinical.rules import ClinicalInputError, Finding, Level
from ketaclinic.clinical.rulesets import RuleSet

REENTRY_RULES = frozenset(
    {"weight-implausible", "weight-stale", "weight-changed", "tenfold-error", "unit-swap-mg-mcg"}
)
REENTRY = {"action": "re-entry-required"}


@dataclass(frozen=True)
class DoseOrder:
    """A planned dose, in plain values, as the prescriber entered it."""

    route: str  # iv | im | oral | sublingual | intranasal
    dose_mg: float
    dose_weight_kg: float | None = None  # weight the mg/kg is judged on (default: weight_kg)
    weight_kg: float | None = None
    infusion_min: float | None = None
    previous_dose_mg: float | None = None
    previous_weight_kg: float | None = None
    weight_age_days: float | None = None  # None: weighed for this dose
    phase: str | None = None
    session_number: int | None = None
    age_years: float | None = None
    concentration_mg_per_ml: float | None = None  # the bag or syringe on the pump
    rate_ml_per_h: float | None = None  # as programmed on the pump (None: dose/conc/minutes)
    volume_ml: float | None = None  # volume to be infused as programmed (None: dose/conc)


@dataclass(frozen=True)
class DoseCheckResult:
    checks: tuple[Finding, ...]
    rule_set: str
    override_reason_codes: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return any(f.level is Level.HARD for f in self.checks)

    @property
    def reentry_required(self) -> bool:
        return any(f.level is Level.HARD and f.rule in REENTRY_RULES for f in self.checks)

    @property
    def soft_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.checks if f.level is Level.SOFT)

    def as_dicts(self) -> list[dict[str, str]]:
        """The CLI/API shape: ``{"rule", "level", "message", "source"}`` per check."""
        return [
            {"rule": f.rule, "level": f.level.value, "message": f.message, "source": f.source}
            for f in self.checks
        ]


@dataclass(frozen=True)
class Override:
    """A prescriber's justification for passing one soft finding (stored with user and time)."""

    rule: str
    reason_code: str
    free_text: str
    user: str = ""
    at: str = ""


# --------------------------------------------------------------------------- display


def _check_weight(order: DoseOrder, rs: RuleSet) -> list[Finding]:
    if order.weight_kg is None:
        return []
    w = order.weight_kg
    lo, hi = rs.param("weight-min-kg"), rs.param("weight-max-kg")
    if not lo.value <= w <= hi.value:
        return [
            _finding(
                "weight-implausible",
                Level.HARD,
                f"Stop: weight {format_dose(w, 'kg')} is "
                f"outside {lo.value}-{hi.value} kg (pounds entered as kg?); re-enter the weight",
                lo.source,
                weight_kg=w,
                **REENTRY,
            )
        ]
    out = []
    stale = rs.param("weight-stale-days")
    if order.weight_age_days is not None and order.weight_age_days > stale.value:
        out.append(
            _finding(
                "weight-stale",
                Level.HARD,
                f"Stop: weight is {order.weight_age_days:g} days "
                f"old (limit {stale.value}); weigh the patient and re-enter",
                stale.source,
                weight_age_days=order.weight_age_days,
                limit_days=stale.value,
                **REENTRY,
            )
        )
    change = rs.param("weight-change-max-pct")
    if order.previous_weight_kg:
        pct = abs(w - order.previous_weight_kg) / order.previous_weight_kg * 100.0
        if pct > change.value:
            out.append(
                _finding(
                    "weight-changed",
                    Level.HARD,
                    f"Stop: weight changed {pct:.1f} % since the "
                    f"last visit (limit {change.value} %); confirm and re-enter",
                    change.source,
                    weight_kg=w,
                    previous_weight_kg=order.previous_weight_kg,
                    change_pct=round(pct, 1),
                    **REENTRY,
                )
            )
    return out or [
        _finding(
            "weight",
            Level.OK,
            f"Weight {format_dose(w, 'kg')} is current",
            stale.source,
            weight_kg=w,
        )
    ]


def _typical_dose_mg(order: DoseOrder, rs: RuleSet) -> float | None:
    typical = rs.limit(order.route, "typical-dose-mg")
    if typical is not None:
        return typical.value
    per_kg = rs.limit(order.route, "typical-mg-per-kg")
    weight = order.dose_weight_kg or order.weight_kg
    return per_kg.value * weight if per_kg is not None and weight else None


def _ratio(r: float) -> str:
    return f"{r:,.0f} times" if r >= 1 else f"1/{1 / r:,.0f} of"


def _check_magnitude(order: DoseOrder, rs: RuleSet) -> list[Finding]:
    candidates = (("previous", order.previous_dose_mg), ("typical", _typical_dose_mg(order, rs)))
    refs = {k: v for k, v in candidates if v}
    ratios = {k: order.dose_mg / v for k, v in refs.items()}
    swap, tenfold = rs.param("unit-swap-factor"), rs.param("tenfold-factor")
    for rule, factor, what in (
        ("unit-swap-mg-mcg", swap, "mg/mcg swap"),
        ("tenfold-error", tenfold, "ten-fold error"),
    ):
        hits = {k: r for k, r in ratios.items() if r >= factor.value or r <= 1.0 / factor.value}
        if hits:
            k, r = next(iter(hits.items()))
            return [
                _finding(
                    rule,
                    Level.HARD,
                    f"Stop: {format_dose(order.dose_mg, 'mg')} is {_ratio(r)} the "
                    f"{k} dose ({format_dose(refs[k], 'mg')}): suspected {what}; re-enter the dose",
                    factor.source,
                    dose_mg=order.dose_mg,
                    ratios=hits,
                    **REENTRY,
                )
            ]
    return [
        _finding(
            "tenfold-error",
            Level.OK,
            "No ten-fold or mg/mcg pattern against the previous or typical dose",
            tenfold.source,
            ratios=ratios,
        )
    ]


def _check_limits(order: DoseOrder, rs: RuleSet) -> list[Finding]:
    out = _against_limits("total-mg", order.dose_mg, "mg", order.route, "total-mg", rs)
    weight = order.dose_weight_kg or order.weight_kg
    if weight:
        mg_per_kg = order.dose_mg / weight
        out += _against_limits("mg-per-kg", mg_per_kg, "mg/kg", order.route, "mg-per-kg", rs)
        out += _check_rate(order, rs, mg_per_kg)
    elif rs.limit(order.route, "mg-per-kg-hard-max") is not None:
        out.append(
            _finding(
                "mg-per-kg",
                Level.HARD,
                "Weight missing: mg/kg limits cannot be checked",
                FAIL_CLOSED_SOURCE,
            )
        )
    if order.previous_dose_mg:
        pct = abs(order.dose_mg - order.previous_dose_mg) / order.previous_dose_mg * 100.0
        out += _against_limits("change-from-previous", pct, "%", order.route, "change-pct", rs)
    return out


def _check_rate(order: DoseOrder, rs: RuleSet, mg_per_kg: float) -> list[Finding]:
    if rs.limit(order.route, "rate-mg-per-kg-per-h-hard-max") is None:
        return []
    if not order.infusion_min:
        return [
            _finding(
                "rate",
                Level.HARD,
                "Infusion minutes missing: the rate cannot be checked",
                FAIL_CLOSED_SOURCE,
            )
        ]
    rate = mg_per_kg * 60.0 / order.infusion_min
    return _against_limits("rate", rate, "mg/kg/h", order.route, "rate-mg-per-kg-per-h", rs)


def _check_label(order: DoseOrder, rs: RuleSet) -> list[Finding]:
    if order.route != "intranasal":
        return []
    device = rs.require_limit("intranasal", "device-mg")
    if order.dose_mg % device.value:
        return [
            _finding(
                "device-multiple",
                Level.HARD,
                f"{format_dose(order.dose_mg, 'mg')} is not a "
                f"whole number of {format_dose(device.value, 'mg')} devices",
                device.source,
            )
        ]
    if order.phase is None or order.age_years is None:
        return [
            _finding(
                "label-phase-dose",
                Level.SOFT,
                "Phase or age missing: the label schedule cannot be checked",
                FAIL_CLOSED_SOURCE,
            )
        ]
    return _check_phase(order, rs, order.phase, order.age_years)


def _check_phase(order: DoseOrder, rs: RuleSet, phase: str, age_years: float) -> list[Finding]:
    entry = select_phase(rs, phase, age_years)
    dose, out = order.dose_mg, []
    first = entry.first_session_dose_mg
    if order.session_number == 1 and first and dose != first:
        out.append(
            _finding(
                "label-first-dose",
                Level.SOFT,
                f"Label {order.phase} session 1 dose is "
                f"{format_dose(first, 'mg')}, not {format_dose(dose, 'mg')}",
                entry.source,
            )
        )
    elif dose not in entry.allowed_doses_mg:
        allowed = ", ".join(str(x) for x in entry.allowed_doses_mg)
        out.append(
            _finding(
                "label-phase-dose",
                Level.SOFT,
                f"{format_dose(dose, 'mg')} is not a label {order.phase} dose ({allowed} mg)",
                entry.source,
            )
        )
    if entry.max_sessions and order.session_number and order.session_number > entry.max_sessions:
        out.append(
            _finding(
                "phase-session-count",
                Level.SOFT,
                f"Session {order.session_number} is beyond "
                f"the {entry.max_sessions} sessions of {order.phase}: {entry.frequency}",
                entry.source,
            )
        )
    step = rs.parameters.get("older-adult-step-mg")
    if (
        step
        and entry.population == "65-plus"
        and order.previous_dose_mg
        and dose - order.previous_dose_mg > step.value
    ):
        out.append(
            _finding(
                "older-adult-step",
                Level.SOFT,
                f"Patients 65 and over step up by {format_dose(step.value, 'mg')} at a time",
                step.source,
            )
        )
    return out or [
        _finding(
            "label-phase-dose",
            Level.OK,
            f"{format_dose(dose, 'mg')} fits the label {order.phase} schedule",
            entry.source,
        )
    ]


def _validate(order: DoseOrder, rs: RuleSet) -> None:
    if order.route not in rs.dose_limits:
        raise ClinicalInputError(f"route {order.route!r} has no dose limits in {rs.ref}")
    require_positive("dose_mg", order.dose_mg)
    for name in (
        "dose_weight_kg",
        "weight_kg",
        "infusion_min",
        "previous_dose_mg",
        "previous_weight_kg",
        "concentration_mg_per_ml",
        "rate_ml_per_h",
        "volume_ml",
    ):
        if getattr(order, name) is not None:
            require_positive(name, getattr(order, name))
    if (
        order.weight_age_days is not None
        and require_finite("weight_age_days", order.weight_age_days) < 0
    ):
        raise ClinicalInputError("weight_age_days must not be negative")


def check_dose(order: DoseOrder, ruleset: RuleSet) -> DoseCheckResult:
    """Run every dose check for ``order`` under ``ruleset`` (may raise; see check_dose_safely)."""
    _validate(order, ruleset)
    checks = (
        _check_weight(order, ruleset)
        + _check_magnitude(order, ruleset)
        + _check_limits(order, ruleset)
        + _check_label(order, ruleset)
        + pump_library.check_infusion(order, ruleset)
    )
    return DoseCheckResult(tuple(checks), ruleset.ref, ruleset.override_reason_codes)


Checker = Callable[[DoseOrder, RuleSet], DoseCheckResult]


def check_dose_safely(
    order: DoseOrder, ruleset: RuleSet, checker: Checker = check_dose
) -> DoseCheckResult:
    """Fail closed: any exception, or a checker that returns no checks, gives a blocking finding."""
    try:
        result = checker(order, ruleset)
        if not isinstance(result, DoseCheckResult) or not result.checks:
            raise TypeError("the dose checker returned no checks")
        return result
    except Exception as exc:  # noqa: BLE001 - fail closed on anything
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finding = Finding(
            "checker-error",
            Level.HARD,
            f"Dose blocked: the dose check failed ({reason})",
            FAIL_CLOSED_SOURCE,
            {"error": type(exc).__name__},
        )
        return DoseCheckResult((finding,), getattr(ruleset, "ref", "unknown"), ())


def _valid_override(o: Override, codes: tuple[str, ...]) -> bool:
    return isinstance(o, Override) and o.reason_code in codes and bool(str(o.free_text).strip())


def missing_overrides(result: DoseCheckResult, overrides: Iterable[Override]) -> tuple[str, ...]:
    """Rule ids of soft findings that still lack a valid override."""
    done = {o.rule for o in overrides if _valid_override(o, result.override_reason_codes)}
    return tuple(f.rule for f in result.soft_findings if f.rule not in done)


def can_save(result: DoseCheckResult, overrides: Iterable[Override] = ()) -> bool:
    """May this dose be saved? Never with a hard finding (no role can override one); with soft
    findings only when each has an override with a coded reason and non-empty free text."""
    if not isinstance(result, DoseCheckResult) or not result.checks or result.blocked:
        return False
    return not missing_overrides(result, tuple(overrides))


def override_records(
    result: DoseCheckResult, overrides: Iterable[Override]
) -> list[dict[str, Any]]:
    """Rows for the audit trail: one per overridden soft finding, with user, time, value, limit."""
    by_rule = {o.rule: o for o in overrides if _valid_override(o, result.override_reason_codes)}
    return [
        {
            "rule": f.rule,
            "reason_code": by_rule[f.rule].reason_code,
            "free_text": by_rule[f.rule].free_text,
            "user": by_rule[f.rule].user,
            "at": by_rule[f.rule].at,
            "value": f.values.get("value"),
            "limit": f.values.get("limit"),
            "message": f.message,
            "rule_set": result.rule_set,
        }
        for f in result.soft_findings
        if f.rule in by_rule
    ]


def blocking_findings(result: DoseCheckResult, overrides: Iterable[Override] = ()) -> list[Finding]:
    """What keeps :func:`can_save` from saying yes, each as a HARD finding: the hard findings,
    and every soft finding that lacks a valid override (no one at the chair may add one)."""
    if not isinstance(result, DoseCheckResult) or not result.checks:
        return [Finding("checker-error", Level.HARD, "Dose blocked: the dose check returned "
                        "nothing", FAIL_CLOSED_SOURCE)]
    missing = set(missing_overrides(result, tuple(overrides)))
    return [f if f.level is Level.HARD else Finding(
        f.rule, Level.HARD, f"{f.message} (not overridden on the signed order)", f.source,
        dict(f.values)) for f in result.checks
        if f.level is Level.HARD or (f.level is Level.SOFT and f.rule in missing)]
