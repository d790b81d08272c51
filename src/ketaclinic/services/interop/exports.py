"""Research and interoperability exports built from the database, each one audited.

* De-identified research export (HIPAA Safe Harbor via :mod:`ketaclinic.renderers.deid`): CSV or
  Parquet files plus the data dictionary, zipped. Identifying columns are never even selected;
  deid's allow-list is the second line of defence.
* FHIR R4 (the one mapper :mod:`ketaclinic.renderers.fhir_map`) for one patient or for all patients;
  the bulk path loads each table once, ordered by patient, and groups in one pass (no N+1).
* Patient progress report PDF (:mod:`ketaclinic.renderers.report_pdf`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.age import age_on
from ketaclinic.renderers import fhir_map as fm
from ketaclinic.renderers.deid import deidentify, write_deid_export
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.services.interop import fhir_bulk as fb
from ketaclinic.services.interop import fhir_records as fr
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import Patient, PatientDiagnosis
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, Course, TreatmentSession

FORMATS = ("csv", "parquet")
DEID_COLUMN_KINDS = {"source": "category", "code_system": "category", "phase": "category"}


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
        work = self.ctx.unit_of_work(actor, "export.deidentified", perm=Perm.DEID_EXPORT)
        if fmt not in FORMATS:
            raise InvalidInput(f"format: must be one of {', '.join(FORMATS)}")
        today = work.today
        with work as uow:
            tables = _research_tables(uow.session, today)
        result = deidentify(tables, deid_secret(self.ctx), today, DEID_COLUMN_KINDS)
        buf = io.BytesIO()
        with tempfile.TemporaryDirectory() as tmp:
            written = write_deid_export(result, tmp)
            keep = [p for p in written if p.suffix == f".{fmt}" or p.stem == "data_dictionary"]
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(keep):
                    z.write(p, arcname=p.name)
        with work as uow:  # audited once the zip is built (a failure writes no row)
            uow.audit(detail=f"format={fmt}; patients={len(tables['patients'])}")
        return f"ketaclinic-deidentified-{today.isoformat()}-{fmt}.zip", buf.getvalue()

    # --- FHIR (one mapper: renderers/fhir_map.py) ----------------------------------------------
    def fhir_options(self) -> fm.MapOptions:
        cfg = self.ctx.settings
        return fm.MapOptions(mrn_system=cfg.fhir_mrn_system or fm.DEFAULT_MRN_SYSTEM,
                             clinic_name=cfg.clinic_name)

    def fhir_base_url(self) -> str:
        cfg = self.ctx.settings
        return (cfg.public_base_url or f"http://{cfg.host}:{cfg.port}").rstrip("/") + "/fhir"

    def fhir_bundle(self, actor: Actor, patient_id: int,
                    kind: str = "collection") -> dict[str, Any]:
        """One patient's record as a Bundle; clinical roles; audited as ``export.fhir``."""
        work = self.ctx.unit_of_work(actor, "export.fhir", perm=Perm.PATIENT_READ,
                                     patient_id=patient_id)
        if kind not in fb.BUNDLE_TYPES:
            raise InvalidInput(f"type: must be one of {', '.join(fb.BUNDLE_TYPES)}")
        with work as uow:
            uow.patients.get(patient_id)
            _pid, resources = next(fr.patient_bundles(uow.session, [patient_id],
                                                      self.fhir_options()))
            uow.audit(patient_id=patient_id, detail=f"type={kind}")
        _check(resources, every=1)
        return fb.bundle(resources, kind, self.fhir_base_url())

    @staticmethod
    def _bulk_ids(uow: UnitOfWork, patient_ids: list[int] | None, detail: str) -> list[int]:
        s = uow.session
        ids = patient_ids if patient_ids is not None else list(
            s.execute(select(Patient.id).order_by(Patient.id)).scalars())
        if patient_ids is not None:
            found = set(s.execute(select(Patient.id).where(Patient.id.in_(ids))).scalars())
            if set(ids) - found:
                raise NotFound("no such patient")
        uow.audit(detail=f"patients={len(ids)}; {detail}")
        return ids

    def _bulk_work(self, actor: Actor) -> UnitOfWork:
        """An identified export of many patients: one ``export.fhir_bulk`` row per export."""
        return self.ctx.unit_of_work(actor, "export.fhir_bulk", perm=Perm.IDENTIFIED_EXPORT)

    def fhir_bundles(self, actor: Actor, patient_ids: list[int] | None = None,
                     progress: Callable[[int], None] | None = None, kind: str = "collection",
                     ) -> tuple[int, Iterator[tuple[int, dict[str, Any]]]]:
        """(count, one Bundle per patient), loading each table once; one audit row.

        The permission check, the loading and the audit happen before this returns; the
        bundles are built lazily as the iterator is consumed.
        """
        work = self._bulk_work(actor)
        if kind not in fb.BUNDLE_TYPES:
            raise InvalidInput(f"format: must be one of {', '.join(fb.FORMATS)}")
        with work as uow:
            ids = self._bulk_ids(uow, patient_ids, f"format={kind}")
            per_patient = list(fr.patient_bundles(uow.session, ids, self.fhir_options()))
        base = self.fhir_base_url()

        def build() -> Iterator[tuple[int, dict[str, Any]]]:
            for n, (pid, resources) in enumerate(per_patient):
                _check(resources, every=1 if n == 0 else SAMPLE_EVERY)
                yield pid, fb.bundle(resources, kind, base)
                if progress:
                    progress(1)

        return len(ids), build()

    def fhir_resources(self, actor: Actor, patient_ids: list[int] | None = None,
                       detail: str = "format=ndjson", since: dt.datetime | None = None,
                       ) -> list[dict[str, Any]]:
        """Every resource of these patients (all by default) then the Practitioners; needs the
        identified-export permission; one audit row ``export.fhir_bulk``. ``since`` (naive
        UTC): only the resources changed since (FHIR Bulk Data ``_since``)."""
        with self._bulk_work(actor) as uow:
            ids = self._bulk_ids(uow, patient_ids, detail)
            resources = [r for _pid, r in fr.export_resources(uow.session, ids,
                                                              self.fhir_options(), since)]
        _check(resources, every=SAMPLE_EVERY)
        return resources


SAMPLE_EVERY = 97  # run-time shape check of a sample; the tests check every resource


def _check(resources: list[dict[str, Any]], every: int) -> None:
    problems = fb.r4b_problems(resources, every=every)
    if problems:
        raise InvalidInput(f"the FHIR export is not valid: {'; '.join(problems)[:300]}")


# ---------------------------------------------------------------------------------------------
# Research tables (safe columns only)
# ---------------------------------------------------------------------------------------------


def _research_tables(s: Session, today: dt.date) -> dict[str, list[dict[str, Any]]]:
    def rows(stmt) -> list[dict[str, Any]]:
        return [{k: _num(v) for k, v in r._mapping.items()} for r in s.execute(stmt)]

    patients = rows(select(Patient.id.label("patient_id"), Patient.birth_date, Patient.sex)
                    .order_by(Patient.id))
    for p in patients:
        p["age"] = age_on(p["birth_date"], today)
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
