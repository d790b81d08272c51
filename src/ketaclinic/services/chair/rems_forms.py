"""Spravato REMS Patient Monitoring Forms: filled from the session record, tracked to submission."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.monitoring import check_vitals
from ketaclinic.clinical.rems import (
    CONCOMITANT,
    BpReading,
    RemsMonitoringForm,
    RemsSessionRecord,
    build_rems_form,
    check_rems_form,
    missing_fields,
    observed_dissociation,
    observed_respiratory_depression,
    observed_sedation,
)
from ketaclinic.clinical.rules import Finding
from ketaclinic.clinical.treatment_chain import predose_vitals_acceptable
from ketaclinic.schemas_chair import RemsDetails, RemsSubmit
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.common import (
    clinical,
    findings_from_json,
    load_session,
    session_rules,
    session_unit,
    unit_for_patient_of,
    vital_signs,
)
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.treatment_chain import rems_order, timeline
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.unit_of_work import PatientRepository
from ketaclinic.store.tables import Patient, PatientMedication, User
from ketaclinic.store.tables_chair import (
    AdverseEventRow,
    DischargeRecord,
    RemsFormRow,
    SessionPrecheck,
    VitalSignRow,
)
from ketaclinic.store.tables_treatment import Assessment, TreatmentSession

#: words in a medicine's class or name -> REMS concomitant group
CLASS_WORDS = {
    "benzodiazepines": ("benzodiazepine", "lorazepam", "diazepam", "alprazolam", "clonazepam"),
    "non_benzo_sedative_hypnotics": ("hypnotic", "zolpidem", "zopiclone", "eszopiclone"),
    "psychostimulants": ("stimulant", "methylphenidate", "amphetamine", "modafinil"),
    "maois": ("maoi", "phenelzine", "tranylcypromine", "selegiline", "isocarboxazid"),
    "opioids": ("opioid", "oxycodone", "morphine", "tramadol", "hydrocodone", "codeine"),
}


def concomitant_groups(meds: list[tuple[str, str]]) -> dict[str, bool]:
    text = [f"{name} {cls}".lower() for name, cls in meds]
    return {g: any(w in t for t in text for w in CLASS_WORDS[g]) for g in CONCOMITANT}


class RemsService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _form_row(self, s: Session, session_id: int) -> RemsFormRow:
        row = s.execute(select(RemsFormRow).where(RemsFormRow.session_id == session_id)
                        ).scalar_one_or_none()
        if row is None:
            raise NotFound("no REMS form for this session (esketamine sessions get one at "
                           "discharge)")
        return row

    def build(self, actor: Actor, session_id: int, *, action: str = "rems.view"
              ) -> tuple[RemsMonitoringForm, list[str], list[Finding], RemsFormRow]:
        work, patient_id = session_unit(self.ctx, actor, session_id, action, Perm.PATIENT_READ)
        with work:
            s = work.session
            form_row = self._form_row(s, session_id)
            record = self._record(s, load_session(s, session_id), form_row, work.now)
            form = clinical(lambda: build_rems_form(record))
            work.audit(patient_id=patient_id, detail=f"session {session_id}")
            return form, missing_fields(form), check_rems_form(form), form_row

    def _record(self, s: Session, row: TreatmentSession, form_row: RemsFormRow,
                now: dt.datetime) -> RemsSessionRecord:
        p = PatientRepository(s).get(row.patient_id)
        details = json.loads(form_row.details_json or "{}")
        discharge = s.execute(select(DischargeRecord).where(
            DischargeRecord.session_id == row.id)).scalar_one_or_none()
        provider = s.get(User, discharge.recorded_by) if discharge and discharge.recorded_by \
            else None
        vitals = s.execute(select(VitalSignRow).where(VitalSignRow.session_id == row.id)
                           .order_by(VitalSignRow.taken_at)).scalars().all()
        ratings = s.execute(select(Assessment).where(Assessment.session_id == row.id)
                            ).scalars().all()
        aes = {a.code for a in s.execute(select(AdverseEventRow).where(
            AdverseEventRow.session_id == row.id)).scalars()}
        pre = s.execute(select(SessionPrecheck).where(SessionPrecheck.session_id == row.id)
                        .order_by(SessionPrecheck.id.desc()).limit(1)).scalar_one_or_none()
        earlier = s.execute(select(TreatmentSession.id).where(
            TreatmentSession.patient_id == row.patient_id,
            TreatmentSession.treatment == "esketamine",
            TreatmentSession.status.in_(("discharged", "left-against-advice")),
            TreatmentSession.first_device_at < row.first_device_at).limit(1)).first()
        meds = [(m.name, m.drug_class) for m in s.execute(select(PatientMedication).where(
            PatientMedication.patient_id == row.patient_id,
            PatientMedication.active.is_(True))).scalars()]
        final = findings_from_json(discharge.findings_json) if discharge else []
        scores = [(a.instrument_id, None if a.total is None else float(a.total)) for a in ratings]
        return RemsSessionRecord(
            patient_name=f"{p.given_name} {p.family_name}", patient_dob=p.birth_date,
            patient_sex=p.sex, first_treatment=earlier is None,
            rems_enrolled=bool(json.loads(pre.answers_json).get("rems_enrolled")) if pre
            else None,
            concomitant=concomitant_groups(meds),
            provider_name=provider.full_name if provider else None,
            provider_phone=details.get("provider_phone") or None,
            provider_email=details.get("provider_email") or None,
            setting_name=self.ctx.settings.clinic_name,
            setting_address=details.get("setting_address") or None,
            dose_mg=int(row.dose_mg) if row.dose_mg is not None else None,
            lot_numbers=tuple(x.strip() for x in row.lot_numbers.split(",") if x.strip()),
            first_device_at=row.first_device_at, monitoring_end_at=row.discharged_at,
            treatment_date=form_row.treatment_date,
            ready_without_2h_rule_at=(discharge.ready_at or discharge.discharged_at)
            if discharge else None,
            bp_readings=tuple(BpReading(v.taken_at, v.sbp_mmhg, v.dbp_mmhg) for v in vitals
                              if v.sbp_mmhg is not None and v.dbp_mmhg is not None),
            vitals_acceptable_before_dosing=predose_vitals_acceptable(timeline(s, row)),
            vitals_acceptable_before_completion=any(
                f["rule"] == "discharge.vitals" and f["level"] == "ok" for f in final)
            if discharge else None,
            sedation=observed_sedation(
                scores, aes, session_rules().discharge["moaas_required"].value,
                session_rules().discharge["rass_required"].value),
            dissociation=observed_dissociation(scores, aes),
            left_against_advice=(discharge.outcome == "left-against-advice") if discharge
            else None,
            left_against_advice_note=_left_note(discharge, provider),
            respiratory_depression=observed_respiratory_depression(
                [f for v in vitals for f in check_vitals(vital_signs(v), row.treatment,
                                                         session_rules())], aes),
            order=rems_order(s, row.dose_order_id, now),
        )

    def pdf(self, actor: Actor, session_id: int) -> bytes:
        from ketaclinic.renderers.rems_pdf import render_rems_pdf

        form, _missing, _findings, _row = self.build(actor, session_id, action="rems.pdf")
        return render_rems_pdf(form)

    def update_details(self, actor: Actor, session_id: int, data: RemsDetails) -> None:
        work, patient_id = session_unit(self.ctx, actor, session_id, "rems.details")
        with work:
            row = self._form_row(work.session, session_id)
            if row.status == "submitted":
                raise Conflict("this form was already submitted")
            row.details_json = json.dumps(data.model_dump())
            work.audit(patient_id=patient_id, detail=f"session {session_id}")

    def mark_submitted(self, actor: Actor, form_id: int, data: RemsSubmit) -> None:
        work, patient_id = unit_for_patient_of(
            self.ctx, actor, "rems.submitted", Perm.CLINICAL_WRITE,
            lambda s: _form(s, form_id).patient_id)
        with work:
            row = work.session.get(RemsFormRow, form_id, with_for_update=True)
            assert row is not None
            if row.status == "submitted":
                raise Conflict("this form is already marked submitted")
            today = work.today
            if today < row.treatment_date:
                raise InvalidInput("a form cannot be submitted before the treatment")
            row.status, row.submitted_on, row.submitted_by = "submitted", today, actor.user_id
            row.confirmation = data.confirmation
            work.audit(patient_id=patient_id, detail=f"form {form_id}")

    def due(self, actor: Actor, within_days: int = 7, limit: int | None = None,
            offset: int = 0) -> Paged[dict[str, Any]]:
        """Unsubmitted forms due within ``within_days`` (overdue ones first)."""
        with self.ctx.unit_of_work(actor, "rems.tracker", perm=Perm.PATIENT_READ) as uow:
            today = uow.today
            page = page_rows(uow.session, select(RemsFormRow, Patient).join(
                Patient, Patient.id == RemsFormRow.patient_id).where(
                RemsFormRow.status == "due",
                RemsFormRow.due_on <= today + dt.timedelta(days=within_days)).order_by(
                RemsFormRow.due_on, RemsFormRow.id), limit, offset, scalars=False)
            uow.audit_list([p.id for _f, p in page], detail=f"{page.total} forms due")
            return page.map(lambda row: _due_dict(row[0], row[1], today))


def _form(s: Session, form_id: int) -> RemsFormRow:
    row = s.get(RemsFormRow, form_id)
    if row is None:
        raise NotFound("no such REMS form")
    return row


def _due_dict(f: RemsFormRow, p: Patient, today: dt.date) -> dict[str, Any]:
    return {"id": f.id, "session_id": f.session_id, "patient_id": p.id,
            "patient_name": f"{p.family_name}, {p.given_name}",
            "treatment_date": f.treatment_date, "due_on": f.due_on,
            "days_left": (f.due_on - today).days, "overdue": f.due_on < today}


def _left_note(discharge: DischargeRecord | None, provider: User | None) -> str | None:
    """Who recorded the patient leaving against advice, when (UTC) and what was said."""
    if discharge is None or discharge.outcome != "left-against-advice":
        return None
    who = provider.full_name if provider else "unknown"
    return (f"{who}, {discharge.discharged_at:%Y-%m-%d %H:%M} UTC: "
            f"{discharge.statement}")[:1000]
