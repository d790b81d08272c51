"""Research and interoperability exports built from the database, each one audited.

* De-identified research export (HIPAA Safe Harbor via :mod:`ketaclinic.services.deid`): CSV or
  Parquet files plus the data dictionary, zipped. Identifying columns are never even selected;
  deid's allow-list is the second line of defence.
* FHIR R4 bundles (:mod:`ketaclinic.services.fhir_export`) for one patient or for all patients;
  the bulk path loads each table once, ordered by patient, and groups in one pass (no N+1).
* Patient progress report PDF (:mod:`ketaclinic.services.report_pdf`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.services import fhir_export as fx
from ketaclinic.services.audit import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.deid import deidentify, write_deid_export
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.services.permissions import Perm
from ketaclinic.store.tables import Patient, PatientDiagnosis
from ketaclinic.store.tables_care import Assessment, ClinicalEvent, Course, TreatmentSession
from ketaclinic.store.tables_chair import VitalSignRow

FORMATS = ("csv", "parquet")
DEID_COLUMN_KINDS = {"source": "category", "code_system": "category", "phase": "category"}
MDD_ICD10_PREFIXES = ("F32", "F33")
DRUG_BY_TREATMENT = {"esketamine": "esketamine"}  # everything else is racemic ketamine
FHIR_ROUTES = {"iv": "iv", "nasal": "nasal", "oral": "oral", "im": "im"}
CAREPLAN_STATUS = {"planned": "draft", "active": "active", "completed": "completed",
                   "stopped": "revoked"}


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def deid_secret(ctx: Context) -> bytes:
    """The clinic's de-identification key, derived from the instance secret (never exported)."""
    return hmac.new(ctx.settings.secret_key.get_secret_value().encode(), b"ketaclinic-deid",
                    hashlib.sha256).digest()


class ExportService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- de-identified research export ------------------------------------------------------
    def deidentified_zip(self, actor: Actor, fmt: str) -> tuple[str, bytes]:
        """(file name, zip bytes); one audit row ``export.deidentified``."""
        self.ctx.require(actor, Perm.DEID_EXPORT, "export.deidentified")
        if fmt not in FORMATS:
            raise InvalidInput(f"format: must be one of {', '.join(FORMATS)}")
        today = self.ctx.today()
        with self.ctx.db.transaction() as s:
            tables = _research_tables(s, today)
        result = deidentify(tables, deid_secret(self.ctx), today, DEID_COLUMN_KINDS)
        buf = io.BytesIO()
        with tempfile.TemporaryDirectory() as tmp:
            written = write_deid_export(result, tmp)
            keep = [p for p in written if p.suffix == f".{fmt}" or p.stem == "data_dictionary"]
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(keep):
                    z.write(p, arcname=p.name)
        with self.ctx.db.transaction() as s:
            self.ctx.audit.record(s, actor, "export.deidentified", at=self.ctx.clock(),
                                  detail=f"format={fmt}; patients={len(tables['patients'])}")
        return f"ketaclinic-deidentified-{today.isoformat()}-{fmt}.zip", buf.getvalue()

    # --- FHIR --------------------------------------------------------------------------------
    def fhir_bundle(self, actor: Actor, patient_id: int) -> dict[str, Any]:
        """One validated FHIR R4 Bundle; clinical roles only; audited as ``export.fhir``."""
        self.ctx.require(actor, Perm.PATIENT_READ, "export.fhir", patient_id=patient_id)
        with self.ctx.db.transaction() as s:
            if s.get(Patient, patient_id) is None:
                raise NotFound("no such patient")
            exports = list(_patient_exports(s, [patient_id]))
            bundle = _build(exports[0])
            self.ctx.audit.record(s, actor, "export.fhir", at=self.ctx.clock(),
                                  patient_id=patient_id)
        return bundle

    def fhir_bundles(self, actor: Actor, patient_ids: list[int] | None = None,
                     progress: Callable[[int], None] | None = None,
                     ) -> tuple[int, Iterator[tuple[int, dict[str, Any]]]]:
        """(count, bundles) for many patients, loading each table once; one audit row.

        The permission check, the loading and the audit happen before this returns; the
        bundles are built (and validated) lazily as the iterator is consumed.
        """
        self.ctx.require(actor, Perm.IDENTIFIED_EXPORT, "export.fhir_bulk")
        with self.ctx.db.transaction() as s:
            ids = patient_ids if patient_ids is not None else list(
                s.execute(select(Patient.id).order_by(Patient.id)).scalars())
            if patient_ids is not None:
                found = set(s.execute(select(Patient.id).where(Patient.id.in_(ids))).scalars())
                if set(ids) - found:
                    raise NotFound("no such patient")
            exports = list(_patient_exports(s, ids))
            self.ctx.audit.record(s, actor, "export.fhir_bulk", at=self.ctx.clock(),
                                  detail=f"patients={len(ids)}")

        def build() -> Iterator[tuple[int, dict[str, Any]]]:
            for e in exports:
                yield int(e.patient.id), _build(e)
                if progress:
                    progress(1)

        return len(exports), build()


def _build(e: fx.PatientExport) -> dict[str, Any]:
    try:
        return fx.build_patient_bundle(e)
    except fx.FhirExportError as exc:
        raise InvalidInput(f"the FHIR bundle is not valid: {str(exc)[:300]}") from exc


# ---------------------------------------------------------------------------------------------
# Research tables (safe columns only)
# ---------------------------------------------------------------------------------------------


def _research_tables(s: Session, today: dt.date) -> dict[str, list[dict[str, Any]]]:
    def rows(stmt) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        return [{k: _num(v) for k, v in r._mapping.items()} for r in s.execute(stmt)]

    patients = rows(select(Patient.id.label("patient_id"), Patient.birth_date, Patient.sex)
                    .order_by(Patient.id))
    for p in patients:
        b = p["birth_date"]
        p["age"] = today.year - b.year - ((today.month, today.day) < (b.month, b.day))
    return {
        "patients": patients,
        "diagnoses": rows(select(PatientDiagnosis.patient_id,
                                 PatientDiagnosis.system.label("code_system"),
                                 PatientDiagnosis.code.label("diagnosis_code"),
                                 PatientDiagnosis.onset_on, PatientDiagnosis.active)
                          .order_by(PatientDiagnosis.patient_id, PatientDiagnosis.id)),
        "courses": rows(select(Course.id.label("course_id"), Course.patient_id,
                               Course.treatment, Course.status, Course.start_date,
                               Course.end_date, Course.psychotherapy,
                               Course.concurrent_antidepressant)
                        .order_by(Course.patient_id, Course.id)),
        "sessions": rows(select(TreatmentSession.id.label("session_id"),
                                TreatmentSession.patient_id, TreatmentSession.course_id,
                                TreatmentSession.number, TreatmentSession.phase,
                                TreatmentSession.treatment, TreatmentSession.status,
                                TreatmentSession.planned_date, TreatmentSession.dose_mg,
                                TreatmentSession.route, TreatmentSession.dose_started_at,
                                TreatmentSession.dose_ended_at)
                         .order_by(TreatmentSession.patient_id, TreatmentSession.id)),
        "assessments": rows(select(Assessment.id.label("assessment_id"), Assessment.patient_id,
                                   Assessment.course_id, Assessment.session_id,
                                   Assessment.instrument_id.label("instrument"),
                                   Assessment.administered_at, Assessment.source,
                                   Assessment.total, Assessment.complete, Assessment.prorated)
                            .order_by(Assessment.patient_id, Assessment.administered_at)),
        "clinical_events": rows(select(ClinicalEvent.id.label("event_id"),
                                       ClinicalEvent.patient_id, ClinicalEvent.course_id,
                                       ClinicalEvent.kind, ClinicalEvent.occurred_on)
                                .order_by(ClinicalEvent.patient_id, ClinicalEvent.id)),
    }


# ---------------------------------------------------------------------------------------------
# FHIR input records from the database (one query per table, grouped in one pass)
# ---------------------------------------------------------------------------------------------


def _utc(v: dt.datetime | None) -> dt.datetime | None:
    return None if v is None else v.replace(tzinfo=dt.UTC)


def _grouped(s: Session, model: Any, ids: list[int], *order: Any) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for chunk_start in range(0, len(ids), 900):
        chunk = ids[chunk_start:chunk_start + 900]
        stmt = select(model).where(model.patient_id.in_(chunk)).order_by(model.patient_id,
                                                                          *order)
        for pid, group in itertools.groupby(s.execute(stmt).scalars(), key=lambda r: r.patient_id):
            out[pid] = list(group)
    return out


def _vitals_by_patient(s: Session, ids: list[int]) -> dict[int, list[fx.VitalRecord]]:
    """Every patient's ``chair_vitals`` (through their sessions), chunked, one pass."""
    out: dict[int, list[fx.VitalRecord]] = {}
    for chunk_start in range(0, len(ids), 900):
        chunk = ids[chunk_start:chunk_start + 900]
        stmt = (select(TreatmentSession.patient_id, VitalSignRow)
                .join(VitalSignRow, VitalSignRow.session_id == TreatmentSession.id)
                .where(TreatmentSession.patient_id.in_(chunk))
                .order_by(TreatmentSession.patient_id, VitalSignRow.taken_at, VitalSignRow.id))
        for pid, v in s.execute(stmt):
            if all(x is None for x in (v.sbp_mmhg, v.dbp_mmhg, v.hr_bpm, v.rr_per_min,
                                       v.spo2_pct)):
                continue
            out.setdefault(pid, []).append(fx.VitalRecord(
                id=f"v{v.id}", taken_at=_utc(v.taken_at), sbp_mmhg=v.sbp_mmhg,
                dbp_mmhg=v.dbp_mmhg, hr_per_min=v.hr_bpm, rr_per_min=v.rr_per_min,
                spo2_pct=v.spo2_pct))
    return out


def _items(answers_json: str, instrument: str) -> tuple[int | None, ...] | None:
    spec = fx.INSTRUMENT_CODES.get(instrument)
    if spec is None:
        return None
    try:
        data = json.loads(answers_json or "[]")
    except ValueError:
        return None
    if (isinstance(data, list) and len(data) == len(spec["items"])
            and all(v is None or (isinstance(v, int) and 0 <= v <= 3) for v in data)):
        return tuple(data)
    return None


def _patient_exports(s: Session, ids: list[int]) -> Iterable[fx.PatientExport]:
    patients = {}
    for chunk_start in range(0, len(ids), 900):
        chunk = ids[chunk_start:chunk_start + 900]
        for p in s.execute(select(Patient).where(Patient.id.in_(chunk))).scalars():
            patients[p.id] = p
    dxs = _grouped(s, PatientDiagnosis, ids, PatientDiagnosis.id)
    courses = _grouped(s, Course, ids, Course.start_date, Course.id)
    sessions = _grouped(s, TreatmentSession, ids, TreatmentSession.id)
    scores = _grouped(s, Assessment, ids, Assessment.administered_at, Assessment.id)
    vitals = _vitals_by_patient(s, ids)
    for pid in ids:
        p = patients[pid]
        conditions = [_condition(d) for d in dxs.get(pid, [])]
        mdd = next((c.id for c in conditions if c.snomed), None)
        plans = [fx.CarePlanRecord(
            id=f"course-{c.id}",
            treatment="esketamine" if c.treatment == "esketamine" else "iv_ketamine",
            title=f"{c.treatment} course ({c.template_id})",
            status=CAREPLAN_STATUS.get(c.status, "unknown"), start=c.start_date,
            end=c.end_date, condition_id=mdd) for c in courses.get(pid, [])]
        procedures, doses = _sessions(sessions.get(pid, []))
        yield fx.PatientExport(
            patient=fx.PatientRecord(
                id=str(p.id), mrn=p.mrn, family=p.family_name, given=(p.given_name,),
                birth_date=p.birth_date,
                sex=p.sex if p.sex in fx.ALLOWED_GENDER else "unknown"),
            conditions=conditions,
            scores=[fx.ScoreRecord(id=f"a{a.id}", instrument=a.instrument_id.replace("-", "_"),
                                   total=float(a.total), taken_at=_utc(a.administered_at),
                                   items=_items(a.answers_json, a.instrument_id))
                    for a in scores.get(pid, []) if a.total is not None],
            doses=doses, procedures=procedures, careplans=plans,
            vitals=vitals.get(pid, []),
        )


def _condition(d: PatientDiagnosis) -> fx.ConditionRecord:
    is_mdd = d.system.lower().startswith("icd") and d.code.upper().startswith(MDD_ICD10_PREFIXES)
    return fx.ConditionRecord(
        id=f"dx-{d.id}", snomed="370143000" if is_mdd else None,
        icd10=d.code if d.system.lower().startswith("icd") else None,
        display=d.display or d.code, onset=d.onset_on,
        clinical_status="active" if d.active else "inactive",
    )


def _sessions(rows: list[TreatmentSession]) -> tuple[list[fx.ProcedureRecord],
                                                     list[fx.DoseRecord]]:
    procedures, doses = [], []
    for t in rows:
        if t.dose_started_at is None or t.status in ("cancelled", "missed"):
            continue
        drug = DRUG_BY_TREATMENT.get(t.treatment, "ketamine")
        kind = "esketamine_nasal" if drug == "esketamine" else (
            "iv_infusion" if t.route == "iv" else None)
        start, end = _utc(t.dose_started_at), _utc(t.dose_ended_at)
        if kind:
            procedures.append(fx.ProcedureRecord(
                id=f"s{t.id}", kind=kind, start=start, end=end,
                status="completed" if t.status in ("discharged", "left-against-advice")
                else "in-progress",
                course_id=f"course-{t.course_id}" if t.course_id else None))
        if t.dose_mg is None or t.route not in FHIR_ROUTES:
            continue
        rate = None
        if t.route == "iv" and end and start and end > start:
            rate = round(float(t.dose_mg) / ((end - start).total_seconds() / 3600), 3)
        doses.append(fx.DoseRecord(id=f"d{t.id}", drug=drug, dose_mg=float(t.dose_mg),
                                   route=FHIR_ROUTES[t.route], start=start, end=end,
                                   rate_mg_per_h=rate,
                                   session_id=f"s{t.id}" if kind else None))
    return procedures, doses


def write_bundles(bundles: Iterable[tuple[int, dict[str, Any]]], out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for pid, bundle in bundles:
        (out_dir / f"patient-{pid}.json").write_text(json.dumps(bundle, indent=1),
                                                     encoding="utf-8")
        n += 1
    return n
