"""Indexes the outcomes dashboard needs on the shared tables (no new tables).

Declared here, next to the queries that use them (services/dashboard_sql.py), and created by
migration 0003_outcomes.
"""

from __future__ import annotations

from sqlalchemy import Index

from ketaclinic.store.tables import PatientDiagnosis
from ketaclinic.store.tables_care import ClinicalEvent, Course, TreatmentSession

# sd: per-course dose anchors as an index-only scan.
Index("ix_treatment_sessions_course_dose", TreatmentSession.course_id,
      TreatmentSession.dose_started_at, TreatmentSession.phase, TreatmentSession.status)
# allc: LEAD(start_date) over each patient's courses, walked in index order.
Index("ix_courses_patient_start", Course.patient_id, Course.start_date, Course.id)
# clinician filter.
Index("ix_courses_created_by", Course.created_by)
# relapse events and screening events per patient.
Index("ix_clinical_events_patient_kind_on", ClinicalEvent.patient_id, ClinicalEvent.kind,
      ClinicalEvent.occurred_on)
# comorbid anxiety (F41.*) per patient.
Index("ix_patient_diagnoses_patient_code", PatientDiagnosis.patient_id, PatientDiagnosis.code)
