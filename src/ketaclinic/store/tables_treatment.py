"""Tables shared by several parts of the clinic's work: courses, sessions, assessments, events.

Owned jointly: courses and treatment sessions (the chair workflow), assessments (measurement-
based care) and clinical events (relapse evidence) are read by outcomes, exports and reports.
Add a column only through a migration; never rename one that another module queries.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketaclinic.store.tables import Base, UtcDateTime


class Course(Base):
    """A planned series of sessions for one patient, made from a course template."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    template_id: Mapped[str] = mapped_column(String(60))
    treatment: Mapped[str] = mapped_column(String(20))  # ketamine-iv | esketamine | ketamine-im…
    # planned | active | completed | stopped
    status: Mapped[str] = mapped_column(String(20), default="active")
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    ruleset_ref: Mapped[str] = mapped_column(String(80), default="")
    screening_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Concurrent treatments that outcome models adjust for (Cox covariates).
    psychotherapy: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrent_antidepressant: Mapped[bool] = mapped_column(Boolean, default=True)
    stop_reason: Mapped[str] = mapped_column(String(300), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __mapper_args__ = {"version_id_col": version}


class Chair(Base):
    __tablename__ = "chairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    opening_hours_json: Mapped[str] = mapped_column(Text, default="{}")


class TreatmentSession(Base):
    """One treatment visit at the chair: planned, booked, given, discharged (or cancelled)."""

    __tablename__ = "treatment_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), nullable=True,
                                                  index=True)
    number: Mapped[int] = mapped_column(Integer, default=1)
    phase: Mapped[str] = mapped_column(String(40), default="")
    treatment: Mapped[str] = mapped_column(String(20))
    # planned | booked | checked-in | dosing | monitoring | discharged | cancelled | missed
    status: Mapped[str] = mapped_column(String(20), default="planned")
    planned_date: Mapped[dt.date] = mapped_column(Date)
    scheduled_start: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    scheduled_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chair_id: Mapped[int | None] = mapped_column(ForeignKey("chairs.id"), nullable=True)
    dose_order_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dose_mg: Mapped[Decimal | None] = mapped_column(Numeric(10, 3), nullable=True)
    route: Mapped[str] = mapped_column(String(20), default="")  # iv | nasal | oral | im | sl
    lot_numbers: Mapped[str] = mapped_column(String(200), default="")
    dose_started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dose_ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    first_device_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    discharged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    discharge_override_reason: Mapped[str] = mapped_column(Text, default="")
    cancel_reason: Mapped[str] = mapped_column(String(300), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_treatment_sessions_patient_planned", "patient_id", "planned_date"),
        Index("ix_treatment_sessions_status_planned", "status", "planned_date"),
        Index("ix_treatment_sessions_dose_started_at", "dose_started_at"),
    )


class Assessment(Base):
    """One administered rating scale, scored by the clinical core; answers kept as JSON."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), nullable=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_sessions.id"),
                                                   nullable=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    instrument_version: Mapped[str] = mapped_column(String(40), default="")
    administered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(20), default="clinic")  # clinic | self-report
    total: Mapped[Decimal | None] = mapped_column(Numeric(8, 2), nullable=True)
    severity: Mapped[str] = mapped_column(String(60), default="")
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    prorated: Mapped[bool] = mapped_column(Boolean, default=False)
    answers_json: Mapped[str] = mapped_column(Text, default="[]")
    result_json: Mapped[str] = mapped_column(Text, default="{}")
    entered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_assessments_patient_instrument_at", "patient_id", "instrument_id",
              "administered_at"),
        Index("ix_assessments_instrument_at", "instrument_id", "administered_at"),
        Index("ix_assessments_course", "course_id"),
    )


class ClinicalEvent(Base):
    """A hospitalisation, suicide attempt or other event that counts as relapse evidence."""

    __tablename__ = "clinical_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))  # hospitalisation | suicide-attempt | …
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
