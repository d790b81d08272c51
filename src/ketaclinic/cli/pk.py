"""`ketaclinic pk`: simulate published ketamine/esketamine PK models (exposure, never doses)."""

from __future__ import annotations

import typer

from ketaclinic.cli import app, fail
from ketaclinic.cli.output import JSON_HELP, emit
from ketaclinic.clinical.pk import (
    Covariates,
    list_models,
    parse_regimen_args,
    parse_times,
    simulate_population,
    simulate_regimen,
)
from ketaclinic.clinical.rules import ClinicalInputError

pk_app = typer.Typer(
    help="Pharmacokinetic curves: explain exposure; they never set doses.", no_args_is_help=True
)
app.add_typer(pk_app, name="pk")


@pk_app.command("models")
def models_command(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the PK models, their analytes, routes and sampling site."""
    rows = [
        {
            "model": m.model_id,
            "title": m.title,
            "analytes": list(m.analytes),
            "routes": list(m.routes),
            "sampling_site": m.sampling_site.value,
            "reference": m.reference,
        }
        for m in list_models()
    ]
    if as_json:
        emit(rows, as_json)
        return
    for r in rows:
        routes, analytes = ",".join(r["routes"]), ",".join(r["analytes"])
        print(f"{r['model']:<16} {r['sampling_site']:<9} {routes:<34} {analytes}")


@pk_app.command("simulate")
def simulate_command(
    model: str = typer.Option(..., "--model", help="Model id (see `ketaclinic pk models`)."),
    weight_kg: float = typer.Option(70.0, "--weight-kg"),
    age: float = typer.Option(40.0, "--age", help="Age in years."),
    sex: str = typer.Option("male", "--sex"),
    height_cm: float = typer.Option(170.0, "--height-cm"),
    population: str = typer.Option(
        "general", "--population-group", help="general, asian or japanese."
    ),
    infusion: list[str] = typer.Option([], "--infusion", help="IV infusion, e.g. 35mg/40min@0."),
    bolus: list[str] = typer.Option([], "--bolus", help="IV bolus, e.g. 10mg@0."),
    nasal: list[str] = typer.Option(
        [], "--nasal", help="Nasal dose in 28 mg devices 5 min apart, e.g. 56mg@0."
    ),
    oral: list[str] = typer.Option([], "--oral", help="Oral dose, e.g. 50mg@0."),
    oral_drug: str = typer.Option(
        "racemic", "--oral-drug", help="What the oral doses are: racemic (default) or esketamine."
    ),
    times: str = typer.Option(..., "--times", help="Minutes: 10,20,40 or a grid A:B:S."),
    n_population: int = typer.Option(
        0, "--population", help="Add 5/50/95 percentiles of N virtual patients."
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Predict plasma concentrations (ng/mL) for a regimen at the requested minutes."""
    try:
        cov = Covariates(
            weight_kg=weight_kg, age_years=age, sex=sex, height_cm=height_cm, population=population
        )
        regimen = parse_regimen_args(infusion, bolus, nasal, oral, oral_drug)
        t = parse_times(times)
        sim = simulate_regimen(model, cov, regimen, t)
        out = sim.as_dict()
        if n_population:
            pop = simulate_population(model, cov, regimen, t, n=n_population, seed=seed)
            out["percentiles"] = {
                a: {k: v.tolist() for k, v in d.items()} for a, d in pop.percentiles().items()
            }
            out["warnings"] = sorted(set(out["warnings"]) | set(pop.warnings))
    except ClinicalInputError as exc:
        raise fail(str(exc)) from None
    out["caution"] = "Explains exposure; never sets a dose."
    if as_json:
        emit(out, as_json)
        return
    print(
        f"{sim.model_id} ({sim.sampling_site} plasma, ng/mL) — explains exposure; never sets a dose"
    )
    analytes = list(out["concentration_ng_per_ml"])
    print("t_min    " + "  ".join(f"{a:>20}" for a in analytes))
    for i, tm in enumerate(out["times_min"][:200]):
        print(
            f"{tm:<8g} "
            + "  ".join(f"{out['concentration_ng_per_ml'][a][i]:>20.3f}" for a in analytes)
        )
    for w in out["warnings"]:
        print(f"warning: {w}")
