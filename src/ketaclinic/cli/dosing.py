"""CLI for dose calculation and checks, eligibility screening and rule sets.

Commands are thin: parse (numbers as text, validated here so that "82kg" or "nan" give one clear
line and exit 2), call the clinical core, print (Rich) or ``--json``. A hard dose finding exits 3
(with --json the result document carries an ``"error"`` of code ``hard_stop``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ketaclinic.cli import app
from ketaclinic.cli.output import (
    EXIT_HARD_STOP,
    EXIT_INVALID,
    JSON_HELP,
    CliError,
    emit,
    is_stdio,
    read_text,
)
from ketaclinic.clinical.dose_checks import (
    DoseCheckResult,
    DoseOrder,
    check_dose_safely,
    format_dose,
)
from ketaclinic.clinical.dosing import (
    calculate_esketamine_dose,
    calculate_iv_dose,
    calculate_route_dose,
)
from ketaclinic.clinical.eligibility import patient_from_dict, screen_patient
from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.rulesets import (
    BUNDLED_IDS,
    RuleSet,
    copy_ruleset,
    list_unconfirmed,
    load_bundled_ruleset,
    load_ruleset,
)

EXIT_HARD_LIMIT = EXIT_HARD_STOP
DEFAULT_RULESET = {"ketamine-iv": "ketamine-iv", "esketamine": "esketamine-us"}

dose_app = typer.Typer(help="Calculate a dose and run the dose-error checks.", no_args_is_help=True)
rulesets_app = typer.Typer(help="List, show and validate rule sets.", no_args_is_help=True)
app.add_typer(dose_app, name="dose")
app.add_typer(rulesets_app, name="rulesets")

JsonOpt = typer.Option(False, "--json", help=JSON_HELP)


def refuses_invalid_input(command: Callable[..., Any]) -> Callable[..., Any]:
    """Map ClinicalInputError (and unreadable files) to exit 2 with a one-line reason."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ClinicalInputError as exc:
            raise CliError(str(exc), EXIT_INVALID) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"cannot read input: {exc}", EXIT_INVALID) from None

    return wrapper


def _required(name: str, text: str | None) -> float:
    if text is None:
        raise ClinicalInputError(f"{name} is required")
    return parse_number(name, text)


def _optional(name: str, text: str | None) -> float | None:
    return None if text is None else parse_number(name, text)


def _ruleset(ref: str) -> RuleSet:
    if ref in BUNDLED_IDS:
        return load_bundled_ruleset(ref)
    if is_stdio(ref):
        return load_ruleset(read_text(ref))
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        return load_ruleset(path.read_text(encoding="utf-8"))
    raise ClinicalInputError(
        f"unknown rule set {ref!r}: use {', '.join(BUNDLED_IDS)}, a .json file or - (stdin)"
    )


def _print_checks(result: DoseCheckResult, console: Console) -> None:
    table = Table("level", "rule", "message", "source", title=f"Dose checks ({result.rule_set})")
    for check in result.as_dicts():
        table.add_row(check["level"], check["rule"], check["message"], check["source"])
    console.print(table)
    if result.blocked:
        what = "re-enter and check again" if result.reentry_required else "cannot be saved"
        console.print(f"[bold red]Blocked by a hard limit: {what}.[/]")


def _emit(
    payload: dict[str, Any], result: DoseCheckResult, as_json: bool, lines: list[str]
) -> None:
    def human() -> None:
        console = Console()
        for line in lines:
            console.print(line)
        _print_checks(result, console)

    stop = None
    if result.blocked:
        what = "re-enter and check again" if result.reentry_required else "cannot be saved"
        stop = CliError(f"blocked by a hard limit: {what}", EXIT_HARD_LIMIT, "hard_stop")
    emit(payload, as_json, human, error=stop)


@dose_app.command("ketamine-iv")
@refuses_invalid_input
def dose_ketamine_iv(
    weight_kg: str = typer.Option(None, "--weight-kg", help="Actual weight in kg (number only)."),
    mg_per_kg: str = typer.Option(None, "--mg-per-kg", help="Dose in mg/kg of dose weight."),
    minutes: str = typer.Option(None, "--minutes", help="Infusion time in minutes."),
    concentration: str = typer.Option(None, "--concentration-mg-per-ml", help="Bag mg/mL."),
    rate_ml_per_h: str = typer.Option(
        None, "--rate-ml-per-h", help="mL/h as programmed on the pump (checked; default: derived)."
    ),
    previous_dose_mg: str = typer.Option(None, "--previous-dose-mg"),
    previous_weight_kg: str = typer.Option(None, "--previous-weight-kg"),
    weight_age_days: str = typer.Option(None, "--weight-age-days", help="Days since weighed."),
    basis: str = typer.Option(None, "--weight-basis", help="actual | ideal | adjusted"),
    height_cm: str = typer.Option(None, "--height-cm"),
    sex: str = typer.Option(None, "--sex", help="male | female (ideal/adjusted basis)"),
    ruleset: str = typer.Option(
        "ketamine-iv", "--ruleset", help="Rule set id, .json file or - for stdin."),
    as_json: bool = JsonOpt,
) -> None:
    """IV racemic ketamine: dose, pump rate (mg/h, mL/h) and dose-error checks."""
    rs = _ruleset(ruleset)
    weight = _required("--weight-kg", weight_kg)
    dose = calculate_iv_dose(
        weight,
        _required("--mg-per-kg", mg_per_kg),
        _required("--minutes", minutes),
        _required("--concentration-mg-per-ml", concentration),
        rs,
        basis,
        _optional("--height-cm", height_cm),
        sex,
    )
    order = DoseOrder(
        "iv",
        dose.dose_mg,
        dose.dose_weight.dose_weight_kg,
        weight,
        dose.infusion_min,
        _optional("--previous-dose-mg", previous_dose_mg),
        _optional("--previous-weight-kg", previous_weight_kg),
        _optional("--weight-age-days", weight_age_days),
        concentration_mg_per_ml=dose.concentration_mg_per_ml,
        rate_ml_per_h=_optional("--rate-ml-per-h", rate_ml_per_h),
    )
    result = check_dose_safely(order, rs)
    payload = {
        "dose_mg": dose.dose_mg,
        "rate_mg_per_h": dose.rate_mg_per_h,
        "rate_ml_per_h": dose.rate_ml_per_h,
        "volume_ml": dose.volume_ml,
        "dose_weight_kg": round(dose.dose_weight.dose_weight_kg, 2),
        "weight_basis": dose.dose_weight.basis,
        "mg_per_kg_actual": dose.dose_weight.mg_per_kg_actual(dose.dose_mg),
        "rule_set": rs.ref,
        "checks": result.as_dicts(),
    }
    actual = dose.dose_weight.mg_per_kg_actual(dose.dose_mg)
    lines = [
        f"Dose {format_dose(dose.dose_mg, 'mg')} ({format_dose(dose.mg_per_kg, 'mg/kg')} x "
        f"{format_dose(round(dose.dose_weight.dose_weight_kg, 2), 'kg')} {dose.dose_weight.basis}"
        + ("" if dose.dose_weight.basis == "actual"
           else f"; {format_dose(actual, 'mg/kg')} of actual weight") + ")",
        f"Over {format_dose(dose.infusion_min, 'min')}: {format_dose(dose.rate_mg_per_h, 'mg/h')}"
        f" = {format_dose(dose.rate_ml_per_h, 'mL/h')}"
        f" at {format_dose(dose.concentration_mg_per_ml, 'mg/mL')}",
    ]
    _emit(payload, result, as_json, lines)


@dose_app.command("esketamine")
@refuses_invalid_input
def dose_esketamine(
    phase: str = typer.Option(
        None, "--phase", help="induction|maintenance|continuation|suicidal-ideation"
    ),
    session_number: str = typer.Option(None, "--session-number"),
    age: str = typer.Option(None, "--age", help="Age in years."),
    dose_mg: str = typer.Option(None, "--dose-mg", help="Requested dose (default: label dose)."),
    previous_dose_mg: str = typer.Option(None, "--previous-dose-mg"),
    ruleset: str = typer.Option("esketamine-us", "--ruleset", help="esketamine-us | esketamine-eu"),
    as_json: bool = JsonOpt,
) -> None:
    """Esketamine nasal spray: label dose by phase and population, devices 5 minutes apart."""
    rs = _ruleset(ruleset)
    if phase is None:
        raise ClinicalInputError("--phase is required")
    session = _required("--session-number", session_number)
    if not session.is_integer():
        raise ClinicalInputError(f"--session-number must be a whole number, got {session_number!r}")
    age_years = _required("--age", age)
    requested = _optional("--dose-mg", dose_mg)
    previous = _optional("--previous-dose-mg", previous_dose_mg)
    dose = calculate_esketamine_dose(rs, phase, int(session), age_years, requested, previous)
    order = DoseOrder(
        "intranasal",
        dose.dose_mg,
        previous_dose_mg=_optional("--previous-dose-mg", previous_dose_mg),
        phase=phase,
        session_number=int(session),
        age_years=age_years,
    )
    result = check_dose_safely(order, rs)
    payload = {
        "dose_mg": dose.dose_mg,
        "devices": dose.devices,
        "device_times_min": list(dose.device_times_min),
        "phase": phase,
        "population": dose.population,
        "allowed_doses_mg": list(dose.allowed_doses_mg),
        "frequency": dose.frequency,
        "source": dose.source,
        "rule_set": rs.ref,
        "checks": result.as_dicts(),
    }
    times = ", ".join(f"{t} min" for t in dose.device_times_min)
    lines = [
        f"Dose {format_dose(dose.dose_mg, 'mg')}: {dose.devices} device(s) at {times}",
        f"{phase} ({dose.population}): {dose.frequency} ({dose.source})",
    ]
    _emit(payload, result, as_json, lines)


@dose_app.command("ketamine")
@refuses_invalid_input
def dose_ketamine_route(
    route: str = typer.Option(None, "--route", help="im | oral | sublingual"),
    weight_kg: str = typer.Option(None, "--weight-kg"),
    mg_per_kg: str = typer.Option(None, "--mg-per-kg"),
    previous_dose_mg: str = typer.Option(None, "--previous-dose-mg"),
    ruleset: str = typer.Option("ketamine-iv", "--ruleset"),
    as_json: bool = JsonOpt,
) -> None:
    """Racemic ketamine by IM, oral or sublingual route, with the cited bioavailability."""
    rs = _ruleset(ruleset)
    weight = _required("--weight-kg", weight_kg)
    dose = calculate_route_dose(route or "", weight, _required("--mg-per-kg", mg_per_kg), rs)
    order = DoseOrder(
        route,
        dose.dose_mg,
        dose.dose_weight.dose_weight_kg,
        weight,
        previous_dose_mg=_optional("--previous-dose-mg", previous_dose_mg),
    )
    result = check_dose_safely(order, rs)
    f = dose.bioavailability
    payload = {
        "route": route,
        "dose_mg": dose.dose_mg,
        "bioavailability": f.value,
        "bioavailability_source": f.source,
        "systemic_mg": dose.systemic_mg,
        "rule_set": rs.ref,
        "checks": result.as_dicts(),
    }
    lines = [
        f"Dose {format_dose(dose.dose_mg, 'mg')} {route}; bioavailability "
        f"{format_dose(f.value * 100, '%')} ({f.source}, grade {f.grade.value})"
    ]
    _emit(payload, result, as_json, lines)


@app.command("screen")
@refuses_invalid_input
def screen(
    file: str = typer.Option(
        None, "--file", help="Patient JSON (schema in docs/dosing.md), or - for stdin."),
    treatment: str = typer.Option(None, "--treatment", help="ketamine-iv | esketamine"),
    ruleset: str = typer.Option(None, "--ruleset", help="Rule set id, .json file or - for stdin."),
    screened_on: str = typer.Option(None, "--screened-on", help="YYYY-MM-DD (default today)."),
    as_json: bool = JsonOpt,
) -> None:
    """Screen a patient for IV ketamine or esketamine: eligible, review or ineligible."""
    if file is None or treatment is None:
        raise ClinicalInputError("--file and --treatment are required")
    if treatment not in DEFAULT_RULESET:
        raise ClinicalInputError(
            f"--treatment must be ketamine-iv or esketamine, got {treatment!r}"
        )
    rs = _ruleset(ruleset or DEFAULT_RULESET[treatment])
    try:
        on = date.fromisoformat(screened_on) if screened_on else date.today()
    except ValueError:
        raise ClinicalInputError(f"--screened-on must be YYYY-MM-DD, got {screened_on!r}") from None
    patient = patient_from_dict(json.loads(read_text(file)))
    result = screen_patient(patient, treatment, rs, on)
    if as_json:
        emit(result.as_dict(), as_json)
        return
    console = Console()
    console.print(
        f"[bold]{result.decision.upper()}[/] for {treatment} ({result.rule_set}); "
        f"{result.adequate_failed_trials} adequate failed trial(s); "
        f"Maudsley {result.maudsley.total if result.maudsley else 'n/a'}; "
        f"valid until {result.expires_on.isoformat()}"
    )
    table = Table("level", "rule", "message", "source")
    for f in result.findings:
        table.add_row(f.level.value, f.rule, f.message, f.source)
    console.print(table)


@rulesets_app.command("list")
def rulesets_list(as_json: bool = JsonOpt) -> None:
    """List the bundled rule sets."""
    rows = [load_bundled_ruleset(i) for i in BUNDLED_IDS]
    data = [
        {
            "id": r.id,
            "version": r.version,
            "treatment": r.treatment,
            "jurisdiction": r.jurisdiction,
            "title": r.title,
            "unconfirmed": len(list_unconfirmed(r)),
        }
        for r in rows
    ]
    if as_json:
        emit(data, as_json)
        return
    table = Table("id", "version", "treatment", "jurisdiction", "unconfirmed", "title")
    for r in rows:
        table.add_row(r.id, r.version, r.treatment, r.jurisdiction,
                      str(len(list_unconfirmed(r))), r.title)
    Console().print(table)


@rulesets_app.command("show")
@refuses_invalid_input
def rulesets_show(
    ruleset: str = typer.Argument(..., help="Rule set id, .json file or - for stdin."),
    as_json: bool = JsonOpt,
) -> None:
    """Print a rule set as JSON (indented; one line with --json)."""
    data = _ruleset(ruleset).to_dict()
    emit(data, as_json, lambda: typer.echo(json.dumps(data, indent=2, ensure_ascii=False)))


@rulesets_app.command("validate")
@refuses_invalid_input
def rulesets_validate(
    file: str = typer.Argument(..., help="Rule set JSON file, or - for stdin."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate a rule set file; exit 2 with every problem (path: reason) on one line."""
    rs = load_ruleset(read_text(file))
    unconfirmed = len(list_unconfirmed(rs))
    emit({"valid": True, "rule_set": rs.ref, "unconfirmed": unconfirmed}, as_json,
         f"ok: {rs.ref} ({unconfirmed} unconfirmed rules)")


@rulesets_app.command("unconfirmed")
@refuses_invalid_input
def rulesets_unconfirmed(
    ruleset: str = typer.Argument(..., help="Rule set id, .json file or - for stdin."),
    as_json: bool = JsonOpt,
) -> None:
    """List grade-U rules awaiting medical-director confirmation."""
    items = list_unconfirmed(_ruleset(ruleset))
    if as_json:
        emit([{"path": u.path, "value": u.value, "unit": u.unit, "source": u.source}
              for u in items], as_json)
        return
    table = Table("path", "value", "unit", "source", title="Requires medical-director confirmation")
    for u in items:
        table.add_row(u.path, str(u.value), u.unit, u.source)
    Console().print(table)


@rulesets_app.command("copy")
@refuses_invalid_input
def rulesets_copy(
    ruleset: str = typer.Argument(..., help="Rule set id, .json file or - for stdin."),
    new_id: str = typer.Option(..., "--new-id"),
    new_version: str = typer.Option(..., "--new-version"),
    as_json: bool = JsonOpt,
) -> None:
    """Print a copy of a rule set under a new id and version, ready to edit and validate
    (indented; one line with --json)."""
    data = copy_ruleset(_ruleset(ruleset), new_id, new_version).to_dict()
    emit(data, as_json, lambda: typer.echo(json.dumps(data, indent=2, ensure_ascii=False)))
