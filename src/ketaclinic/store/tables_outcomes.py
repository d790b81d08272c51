"""The outcomes dashboard's indexes on the shared tables and its summary tables.

Indexes are declared here, next to the queries that use them (services/outcomes/dashboard_sql.py),
and created by migration 0003_outcomes; the summary tables and their indexes by
0005_outcome_summary.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from ketaclinic.store.tables import Base, PatientDiagnosis, UtcDateTime
from ketaclinic.store.tables_treatment import ClinicalEvent, Course, TreatmentSession

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


# ---------------------------------------------------------------------------------------------
# The outcome summary (migration 0005_outcome_summary): per-course values the dashboard reads
# instead of scanning every assessment. Derived data only: maintained in the transaction of
# every write that affects it and rebuilt from scratch by `ketaclinic outcomes rebuild-summary`
# (services/outcomes/summary.py). Never edited by hand.
# ---------------------------------------------------------------------------------------------


class CourseDoseSummary(Base):
    """One row per course with at least one given dose: dose anchors and dose totals."""

    __tablename__ = "course_dose_summary"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    patient_id: Mapped[int] = mapped_column(Integer, index=True)
    # the dashboard's filter columns, copied from the course (kept in step: a course write
    # refreshes its rows), so that its GROUP BY needs no join
    treatment: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[dt.date] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_dose_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # the last induction dose once no induction session is pending (None before that)
    eoi_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # start of the same patient's next course (links unlinked scores and events to courses)
    next_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    doses_given: Mapped[int] = mapped_column(Integer)
    # doses with a recorded dose_mg: total mg and the first and last such dose day
    dose_mg_total: Mapped[Decimal | None] = mapped_column(Numeric(14, 3), nullable=True)
    mg_first_day: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    mg_last_day: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class CourseOutcomeSummary(Base):
    """One row per course × instrument (with outcome criteria) that has a baseline score."""

    __tablename__ = "course_outcome_summary"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    instrument_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # filter columns copied from the course (as in course_dose_summary)
    treatment: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[dt.date] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    baseline: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # the response assessment at the end of induction (first score 0-14 days after the last
    # induction dose, a response): relapse and the time to relapse are counted from it
    # (migration 0010_outcome_relapse); None when the course did not respond at that point
    relapse_origin_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # relapse by scores (the later of the first qualifying pair), and the last score after the
    # first response (censoring); relapse events are joined when the dashboard reads
    score_relapse_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_after_response_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime,
                                                                        nullable=True)

    __table_args__ = (
        Index("ix_course_outcome_summary_instrument_response", "instrument_id",
              "first_response_at"),
        # the outcome table's course counts: a covering scan in GROUP BY order
        Index("ix_course_outcome_summary_group", "treatment", "instrument_id", "start_date",
              "created_by"),
    )


class CourseOutcomeTimepoint(Base):
    """The score picked at one timepoint (closest to target inside the window) and its flags."""

    __tablename__ = "course_outcome_timepoints"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    instrument_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    timepoint: Mapped[str] = mapped_column(String(40), primary_key=True)
    # filter columns copied from the course (as in course_dose_summary)
    treatment: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[dt.date] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    # 1/0 (integers, summed by the dashboard); responded is None when the baseline is 0
    responded: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remitted: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # the outcome table's counts: a covering scan in GROUP BY order (no sort, no table)
        Index("ix_course_outcome_timepoints_group", "treatment", "instrument_id", "timepoint",
              "responded", "remitted", "start_date", "created_by"),
    )


class OutcomeSummaryState(Base):
    """One row: the fingerprint of the rules the summary was last rebuilt with."""

    __tablename__ = "outcome_summary_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rebuilt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


# soft-limit override rate: the sessions that used a dose order.
Index("ix_treatment_sessions_dose_order", TreatmentSession.dose_order_id)
