"""Rule-set governance: what may change freely and what needs a second person.

A clinic may **tighten** limits freely. **Loosening or removing a hard limit** of a rule set
that is (or is about to be) in effect needs a second person with the medical-director flag to
co-sign. A rule set **without the hard-limit keys** for its routes and treatment is incomplete:
it can be neither imported nor activated.

Hard limits are:

- every ``dose_limits.<route>.*-hard-max`` (raising it loosens) and ``*-hard-min`` (lowering it
  loosens), plus ``dose_limits.intranasal.device-mg`` (any change);
- the parameters in :data:`HARD_PARAMETERS` with the direction that loosens them;
- the pump library's concentrations (adding one, or dropping the library, loosens).

Pure functions over :class:`RuleSet` values; the service loads the documents and records who
co-signed (``ruleset_approvals``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketaclinic.clinical.rules import Finding, Level
from ketaclinic.clinical.rulesets import RuleSet

SOURCE = ("ketaclinic rule-set governance: tightening is free, loosening a hard limit "
          "needs a medical director's co-signature (modelled on ISMP smart-pump drug-library "
          "change control, 2020)")

#: hard-limit dose keys each route must carry before its rule set may be used
REQUIRED_ROUTE_LIMITS: dict[str, tuple[str, ...]] = {
    "iv": ("mg-per-kg-hard-min", "mg-per-kg-hard-max", "total-mg-hard-max",
           "rate-mg-per-kg-per-h-hard-max", "concentration-mg-per-ml-hard-max",
           "rate-ml-per-h-hard-max", "volume-ml-hard-max", "infusion-min-hard-min",
           "infusion-min-hard-max"),
    "im": ("mg-per-kg-hard-max", "total-mg-hard-max"),
    "oral": ("mg-per-kg-hard-max", "total-mg-hard-max"),
    "sublingual": ("mg-per-kg-hard-max", "total-mg-hard-max"),
    "intranasal": ("total-mg-hard-max", "device-mg"),
}
#: the route each treatment is given by (it must be present)
TREATMENT_ROUTES = {"ketamine-iv": ("iv",), "esketamine": ("intranasal",)}
#: parameters every rule set must carry, per treatment ("*": all)
REQUIRED_PARAMETERS: dict[str, tuple[str, ...]] = {
    "*": ("discharge-vitals-window-min", "discharge-sbp-max-mmhg", "discharge-dbp-max-mmhg",
          "weight-min-kg", "weight-max-kg", "tenfold-factor", "unit-swap-factor"),
    "esketamine": ("observation-min",),
}
#: hard parameters and the direction that loosens them ("up": a larger value is looser)
HARD_PARAMETERS = {
    "age-min-years": "down", "weight-min-kg": "down", "weight-max-kg": "up",
    "weight-stale-days": "up", "weight-change-max-pct": "up", "tenfold-factor": "up",
    "unit-swap-factor": "up", "screening-validity-days": "up", "observation-min": "down",
    "discharge-vitals-window-min": "up", "discharge-sbp-max-mmhg": "up",
    "discharge-dbp-max-mmhg": "up",
}


@dataclass(frozen=True)
class Loosening:
    """One hard limit made looser: ``new`` None means removed."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        if self.new is None:
            return f"{self.path}: removed (was {self.old})"
        return f"{self.path}: {self.old} → {self.new}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


def missing_hard_limits(rs: RuleSet) -> tuple[str, ...]:
    """Paths of the hard-limit keys the rule set lacks for its treatment and routes."""
    out = [f"dose_limits.{route}" for route in TREATMENT_ROUTES.get(rs.treatment, ())
           if route not in rs.dose_limits]
    for route, entries in rs.dose_limits.items():
        out += [f"dose_limits.{route}.{key}" for key in REQUIRED_ROUTE_LIMITS.get(route, ())
                if key not in entries]
    if "iv" in rs.dose_limits and not rs.infusion_concentrations.get("iv"):
        out.append("infusion_concentrations.iv")
    for key in (*REQUIRED_PARAMETERS["*"], *REQUIRED_PARAMETERS.get(rs.treatment, ())):
        if key not in rs.parameters or not _number(rs.parameters[key].value):
            out.append(f"parameters.{key}")
    return tuple(out)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _looser(direction: str, old: Any, new: Any) -> bool:
    if not _number(old):
        return False
    if not _number(new):
        return True
    return new > old if direction == "up" else new < old


def _dose_limit_direction(key: str) -> str | None:
    if key.endswith("-hard-max"):
        return "up"
    if key.endswith("-hard-min"):
        return "down"
    return None


def loosened_hard_limits(old: RuleSet, new: RuleSet) -> tuple[Loosening, ...]:
    """Every hard limit ``new`` loosens or removes compared with ``old``."""
    out: list[Loosening] = []
    for route, entries in old.dose_limits.items():
        for key, rule in entries.items():
            now = new.limit(route, key)
            value = None if now is None else now.value
            direction = _dose_limit_direction(key)
            if direction and _looser(direction, rule.value, value):
                out.append(Loosening(f"dose_limits.{route}.{key}", rule.value, value))
            elif key == "device-mg" and value != rule.value:
                out.append(Loosening(f"dose_limits.{route}.{key}", rule.value, value))
    for key, direction in HARD_PARAMETERS.items():
        if key in old.parameters:
            was = old.parameters[key].value
            now_rule = new.parameters.get(key)
            value = None if now_rule is None else now_rule.value
            if _looser(direction, was, value):
                out.append(Loosening(f"parameters.{key}", was, value))
    for route, concs in old.infusion_concentrations.items():
        before = {c.mg_per_ml for c in concs}
        after = {c.mg_per_ml for c in new.infusion_concentrations.get(route, ())}
        if not after:
            out.append(Loosening(f"infusion_concentrations.{route}", sorted(before), None))
        elif after - before:
            out.append(Loosening(f"infusion_concentrations.{route}", sorted(before),
                                 sorted(after)))
    return tuple(out)


@dataclass(frozen=True)
class GovernanceDecision:
    """May ``candidate`` take effect? ``blocked``: never (incomplete); ``needs_cosign``: only
    with a medical director's co-signature (it loosens a hard limit)."""

    missing: tuple[str, ...]
    loosened: tuple[Loosening, ...]
    findings: tuple[Finding, ...]

    @property
    def blocked(self) -> bool:
        return bool(self.missing)

    @property
    def needs_cosign(self) -> bool:
        return bool(self.loosened)


def check_change(candidate: RuleSet, in_effect: RuleSet | None) -> GovernanceDecision:
    """Govern ``candidate`` replacing ``in_effect`` (None: nothing to compare with)."""
    missing = missing_hard_limits(candidate)
    loosened = loosened_hard_limits(in_effect, candidate) if in_effect is not None else ()
    findings: list[Finding] = []
    if missing:
        findings.append(Finding(
            "ruleset.hard-limits-missing", Level.HARD,
            f"{candidate.ref} lacks hard limits: {', '.join(missing)}; it cannot be used",
            SOURCE, {"missing": list(missing)}))
    if loosened:
        findings.append(Finding(
            "ruleset.loosened", Level.SOFT,
            f"{candidate.ref} loosens hard limits of {in_effect.ref if in_effect else '?'}: "
            + "; ".join(x.describe() for x in loosened)
            + " — a second person with the medical-director flag must co-sign",
            SOURCE, {"loosened": [x.as_dict() for x in loosened]}))
    if not findings:
        findings.append(Finding("ruleset.governance", Level.OK,
                                f"{candidate.ref} keeps every hard limit", SOURCE))
    return GovernanceDecision(missing, loosened, tuple(findings))
