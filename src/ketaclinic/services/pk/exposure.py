"""Predicted exposure for a registered patient: one dose or the patient's course.

Covariates come from the registry: the latest weight (kg), age from the birth date on the
clinic's today, sex (``other``/``unknown`` → the model's reference, male; none of the models
here applies a sex effect to IV/nasal/oral parameters), and height, which the registry does not
hold, defaults to DEFAULT_HEIGHT_CM (no model here uses it). Every view is a patient read,
audited as ``pk.view``. Curves explain exposure; they never compute, suggest or gate a dose.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.pk import (
    Covariates,
    Infusion,
    NasalDose,
    OralDose,
    Regimen,
    get_model,
    simulate_population,
    simulate_regimen,
)
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.pk.chart import CAPTION, PkChart, svg_pk_chart
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_treatment import Course, TreatmentSession

DEFAULT_MODEL = {"iv": "kamp2020", "nasal": "perez-ruixo2021", "oral": "fanta2015"}
DEFAULT_HEIGHT_CM = 170.0
POPULATION_N = 500
POPULATION_SEED = 20240601
ONE_DOSE_WINDOW_MIN = 360.0
PLANNED_HOUR = 10
TYPICAL_DOSE = {"iv": ("mg/kg", 0.5), "nasal": ("mg", 56.0), "oral": ("mg", 50.0)}
MAX_POINTS = 1500


@dataclass(frozen=True)
class PkResult:
    """A computed view: the CLI JSON shape plus what the chart needs."""

    data: dict
    chart: PkChart
    doses: list[dict]

    def svg(self, chart_id: str = "pk") -> str:
        return svg_pk_chart(self.chart, chart_id)


def _number(name: str, text: str | float | None, *, low: float, high: float) -> float:
    if text is None:
        raise InvalidInput(f"{name} must be a number, got {text!r}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}, got {text}")
    return value


def one_dose_regimen(route: str, dose_mg: float, minutes: float) -> Regimen:
    """The regimen of a single administration at time zero."""
    if route == "iv":
        return Regimen(infusions=(Infusion(dose_mg, minutes, 0.0),))
    if route == "nasal":
        return Regimen(nasal=(NasalDose(dose_mg, 0.0),))
    return Regimen(oral=(OralDose(dose_mg, 0.0),))


class PkService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def covariates(self, actor: Actor, patient_id: int) -> Covariates:
        """The patient's covariates (weight required); a permission-checked, audited read."""
        return self._read(self._work(actor, patient_id), patient_id, lambda s, p: None)[0]

    def _work(self, actor: Actor, patient_id: int) -> UnitOfWork:
        """Every view is a patient read audited as ``pk.view``."""
        return self.ctx.unit_of_work(actor, "pk.view", perm=Perm.PATIENT_READ,
                                     patient_id=patient_id)

    def _read(self, work: UnitOfWork, patient_id: int, extra):
        with work as uow:
            patient = uow.patients.get(patient_id)
            latest = uow.patients.latest_weight(patient_id)
            weight = None if latest is None else latest[0]
            more = extra(uow.session, patient)
            uow.audit(patient_id=patient_id)
        if weight is None:
            raise InvalidInput("no weight is recorded for this patient; record a weight first")
        age = age_on(patient.birth_date, work.today)
        try:
            cov = Covariates(
                weight_kg=float(weight),
                age_years=float(max(age, 0)),
                sex="female" if patient.sex == "female" else "male",
                height_cm=DEFAULT_HEIGHT_CM,
            )
        except ClinicalInputError as exc:
            raise InvalidInput(str(exc)) from None
        return cov, more

    def one_dose(
        self,
        actor: Actor,
        patient_id: int,
        *,
        route: str,
        dose_mg: str | float | None,
        minutes: str | float | None = None,
        model: str | None = None,
        hours: str | float | None = None,
    ) -> PkResult:
        """Typical curve and 5–95 % band for one administration of this patient."""
        work = self._work(actor, patient_id)
        if route not in DEFAULT_MODEL:
            raise InvalidInput(f"route must be iv, nasal or oral, got {route!r}")
        dose = _number("dose_mg", dose_mg, low=0.0, high=1000.0)
        infusion_min = _number("minutes", 40 if minutes in (None, "") else minutes, low=1, high=600)
        window_h = _number("hours", 6 if hours in (None, "") else hours, low=0.5, high=72)
        model_id = model or DEFAULT_MODEL[route]
        cov, _ = self._read(work, patient_id, lambda s, p: None)
        try:
            regimen = one_dose_regimen(route, dose, infusion_min)
            times = np.linspace(0.0, window_h * 60.0, 241)
            return self._compute(model_id, cov, regimen, times, f"{route} {dose:g} mg")
        except ClinicalInputError as exc:
            raise InvalidInput(str(exc)) from None

    def course(self, actor: Actor, patient_id: int, model: str | None = None) -> PkResult | None:
        """The curve for the patient's treatment sessions (given and planned), or None if none."""
        cov, sessions = self._read(self._work(actor, patient_id), patient_id, _sessions)
        doses = course_doses(sessions, cov.weight_kg, self.ctx.clinic_time)
        if not doses:
            return None
        route = doses[0]["route"]
        doses = [d for d in doses if d["route"] == route]  # one model: the first route's
        t0 = doses[0]["at"]
        regimen, end = _regimen(doses, t0)
        step = max(1.0, math.ceil((end + 24 * 60) / MAX_POINTS))
        times = np.arange(0.0, end + 24 * 60 + step, step)
        try:
            result = self._compute(
                model or DEFAULT_MODEL[route], cov, regimen, times,
                f"course, {len(doses)} dose{'s' if len(doses) != 1 else ''}",
            )
        except ClinicalInputError as exc:
            raise InvalidInput(str(exc)) from None
        return PkResult(result.data | {"t0": t0.isoformat()}, result.chart, doses)

    def panel(self, actor: Actor, patient_id: int) -> dict:
        """What the patient-page card needs: whether a weight exists and the latest dose."""
        try:
            cov, sessions = self._read(self._work(actor, patient_id), patient_id, _sessions)
        except InvalidInput:
            return {"has_weight": False, "latest": None}
        doses = course_doses(sessions, cov.weight_kg, self.ctx.clinic_time)
        given = [d for d in doses if not d["planned"]]
        latest = (given or doses)[-1] if doses else None
        return {"has_weight": True, "latest": latest, "weight_kg": cov.weight_kg}

    def _compute(self, model_id, cov, regimen, times, label) -> PkResult:
        model = get_model(model_id)
        sim = simulate_regimen(model_id, cov, regimen, times)
        assumed = self.ctx.settings.pk_assumed_cv if not model.omegas else 0.0
        pop = simulate_population(model_id, cov, regimen, times, n=POPULATION_N,
                                  seed=POPULATION_SEED, variability=assumed or None)
        pct = pop.percentiles()
        data = sim.as_dict() | {
            "percentiles": {a: {k: v.tolist() for k, v in d.items()} for a, d in pct.items()},
            "warnings": sorted(set(sim.warnings) | set(pop.warnings)),
            "caution": CAPTION,
            "band_variability": "published" if model.omegas else (
                f"assumed CV {assumed:g} on every parameter (KETACLINIC_PK_ASSUMED_CV; "
                "the model publishes none)" if assumed else "none"),
            "covariates": {"weight_kg": cov.weight_kg, "age_years": cov.age_years,
                           "sex": cov.sex, "height_cm": cov.height_cm},
        }
        analyte = model.analytes[0]
        band = f"5–95 % of {POPULATION_N} virtual patients" if model.omegas else (
            f"5–95 %, ASSUMED {assumed:.0%} variability (none published)" if assumed
            else "no published variability: band = typical")
        chart = PkChart(
            title=f"Predicted {analyte}: {label} ({cov.weight_kg:g} kg)",
            analyte=analyte,
            model_id=model.model_id,
            citation=model.reference,
            sampling_site=sim.sampling_site,
            hours=(times / 60.0).tolist(),
            typical_ng_per_ml=sim.concentration_ng_per_ml[analyte].tolist(),
            p5_ng_per_ml=pct[analyte]["p5"].tolist(),
            p95_ng_per_ml=pct[analyte]["p95"].tolist(),
            band_label=band,
            notes=tuple(data["warnings"])[:2],
        )
        return PkResult(data, chart, [])


def _sessions(s, patient: Patient) -> list[dict]:
    rows = s.execute(
        select(TreatmentSession, Course.treatment)
        .outerjoin(Course, Course.id == TreatmentSession.course_id)
        .where(TreatmentSession.patient_id == patient.id)
        .order_by(TreatmentSession.planned_date, TreatmentSession.id)
    ).all()
    return [
        {
            "status": r.status, "route": r.route, "treatment": r.treatment,
            "dose_mg": None if r.dose_mg is None else float(r.dose_mg),
            "started": r.dose_started_at, "ended": r.dose_ended_at,
            "first_device": r.first_device_at, "planned_date": r.planned_date,
        }
        for r, _ in rows
    ]


def _route_of(row: dict) -> str | None:
    if row["route"] in DEFAULT_MODEL:
        return row["route"]
    if row["treatment"] == "esketamine":
        return "nasal"
    if row["treatment"] == "ketamine-iv":
        return "iv"
    return None


def course_doses(sessions: list[dict], weight_kg: float,
                 clinic: ClinicTime | None = None) -> list[dict]:
    """Given doses at their recorded times; planned ones at PLANNED_HOUR on the clinic's clock
    (UTC without ``clinic``) with a typical dose. Times are naive UTC."""
    clinic = clinic or ClinicTime()
    out = []
    for row in sessions:
        route = _route_of(row)
        if route is None or row["status"] in ("cancelled", "canceled", "no-show", "missed"):
            continue
        at = row["started"] or row["first_device"]
        minutes = 40.0
        if at is not None and row["ended"] is not None and route == "iv":
            minutes = max(1.0, (row["ended"] - at).total_seconds() / 60.0)
        planned = at is None
        if planned:
            at = clinic.at(row["planned_date"], dt.time(PLANNED_HOUR))
        dose = row["dose_mg"]
        if dose is None or planned and dose <= 0:
            unit, value = TYPICAL_DOSE[route]
            dose = value * weight_kg if unit == "mg/kg" else value
        out.append({"route": route, "at": at, "dose_mg": round(dose, 3), "minutes": minutes,
                    "planned": planned})
    out.sort(key=lambda d: d["at"])
    return out


def _regimen(doses: list[dict], t0: dt.datetime) -> tuple[Regimen, float]:
    infusions: list[Infusion] = []
    nasal: list[NasalDose] = []
    oral: list[OralDose] = []
    end = 0.0
    for d in doses:
        start = (d["at"] - t0).total_seconds() / 60.0
        if d["route"] == "iv":
            if infusions and start < infusions[-1].end_min:
                start = infusions[-1].end_min  # recorded overlap: run them back to back
            infusions.append(Infusion(d["dose_mg"], d["minutes"], start))
            end = max(end, start + d["minutes"])
        elif d["route"] == "nasal":
            nasal.append(NasalDose(28.0 * max(1, round(d["dose_mg"] / 28.0)), start))
            end = max(end, start)
        else:
            oral.append(OralDose(d["dose_mg"], start))
            end = max(end, start)
    return Regimen(infusions=tuple(infusions), nasal=tuple(nasal), oral=tuple(oral)), end
