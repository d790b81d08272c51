"""The patient banner: who this page is about, in one audited read of a fixed handful of
queries (never one per row), shown at the top of every page about one patient."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.eligibility import allergy_counts
from ketaclinic.clinical.rules import Level
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.courses import _template_name
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.treatment_chain import screening_finding
from ketaclinic.store.tables import PatientAllergy
from ketaclinic.store.tables_dosing import DoseOrder, Screening
from ketaclinic.store.tables_mbc import ClinicalAlert
from ketaclinic.store.tables_treatment import Course, TreatmentSession


@dataclass(frozen=True)
class BannerScreening:
    """The latest screening of one treatment and what the core's screening gate says of it
    today (``clears``: order, check-in and dose may go ahead on it; ``gate``: why not)."""

    treatment: str
    decision: str
    screened_on: dt.date
    expires_on: dt.date
    expired: bool
    clears: bool = False
    gate: str = ""
    reopened: bool = False


@dataclass(frozen=True)
class PatientBanner:
    id: int
    name: str
    mrn: str
    birth_date: dt.date
    age: int
    sex: str
    weight_kg: Decimal | None
    weight_on: dt.date | None
    allergies: list[str]
    course_id: int | None = None
    course_name: str = ""
    course_progress: str = ""
    order_mg: Decimal | None = None
    order_route: str = ""
    order_on: dt.datetime | None = None
    screenings: list[BannerScreening] = field(default_factory=list)
    open_alerts: int = 0
    urgent_alerts: int = 0
    # allergies recorded and later withdrawn (entered in error or refuted): somebody asked
    allergies_withdrawn: int = 0

    @property
    def allergies_text(self) -> str:
        """The recorded allergies; never a phrase that reads like "no known allergies" when
        nobody asked (unknown is not negative), nor "not yet asked" when the only allergies
        recorded were withdrawn (they were asked about; none stands now)."""
        if self.allergies:
            return "; ".join(self.allergies)
        if self.allergies_withdrawn:
            return (f"none current on record ({self.allergies_withdrawn} withdrawn: entered "
                    "in error or refuted)")
        return "allergies not yet asked"

    @property
    def allergies_state(self) -> str:
        """"recorded", "withdrawn" (only withdrawn ones on record) or "not-asked"."""
        return ("recorded" if self.allergies else "withdrawn" if self.allergies_withdrawn
                else "not-asked")




class PatientBannerService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def banner(self, actor: Actor, patient_id: int) -> PatientBanner:
        with self.ctx.unit_of_work(actor, "patient.banner", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s, today = uow.session, uow.today
            p = uow.patients.get(patient_id)
            weight = uow.patients.latest_weight(patient_id)
            allergies, withdrawn = [], 0
            for a in s.execute(select(PatientAllergy).where(
                    PatientAllergy.patient_id == patient_id).order_by(PatientAllergy.id)
                    ).scalars():
                if allergy_counts(a.active, a.inactive_reason):
                    allergies.append(a.substance + (f" ({a.reaction})" if a.reaction else ""))
                else:
                    withdrawn += 1
            course = s.execute(select(Course).where(
                Course.patient_id == patient_id, Course.status == "active").order_by(
                Course.start_date.desc(), Course.id.desc()).limit(1)).scalar_one_or_none()
            progress = ""
            if course is not None:
                done, total = s.execute(select(
                    func.count().filter(TreatmentSession.status == "discharged"),
                    func.count().filter(TreatmentSession.status != "cancelled")).where(
                    TreatmentSession.course_id == course.id)).one()
                progress = f"{done} of {total} sessions done"
            order = s.execute(select(DoseOrder.dose_mg, DoseOrder.route, DoseOrder.created_at)
                              .where(DoseOrder.patient_id == patient_id).order_by(
                              DoseOrder.created_at.desc(), DoseOrder.id.desc()).limit(1)).first()
            screenings: dict[str, BannerScreening] = {}
            for sc in s.execute(select(Screening).where(Screening.patient_id == patient_id)
                                .order_by(Screening.id.desc()).limit(20)).scalars():
                if sc.treatment not in screenings:
                    gate = screening_finding(s, p, sc.treatment, today)
                    screenings[sc.treatment] = BannerScreening(
                        sc.treatment, sc.decision, sc.screened_on, sc.expires_on,
                        sc.expires_on < today, gate.level is Level.OK, gate.message,
                        gate.rule == "chain.screening_reopened")
            open_alerts, urgent = s.execute(select(
                func.count(), func.count().filter(ClinicalAlert.priority == "urgent")).where(
                ClinicalAlert.patient_id == patient_id,
                ClinicalAlert.acknowledged_at.is_(None))).one()
            uow.audit(patient_id=patient_id)
            return PatientBanner(
                p.id, f"{p.family_name}, {p.given_name}", p.mrn, p.birth_date,
                age_on(p.birth_date, today), p.sex, weight[0] if weight else None,
                weight[1] if weight else None, allergies,
                course.id if course else None,
                _template_name(course.template_id) if course else "", progress,
                order[0] if order else None, order[1] if order else "",
                order[2] if order else None, list(screenings.values()),
                int(open_alerts), int(urgent), withdrawn)
