"""Input shapes of the chair area (courses, bookings, the session, REMS, ledger): web and API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ketaclinic.schemas import Instant, Line, Notes, Version, Whole, _filled, _line, _Strict

Reason = Annotated[str, _filled(300), AfterValidator(_line)]
Short = Annotated[str, Field(max_length=120), AfterValidator(_line)]
Lot = Annotated[str, _filled(60), AfterValidator(_line)]
Mg = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3)]
MgOrZero = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3)]
Vital = Annotated[int, Field(ge=0, le=400)]
Instrument = Literal["moaas", "rass", "cadss", "cadss6"]


class CourseCreate(_Strict):
    template_id: Annotated[str, Field(min_length=1, max_length=60)]
    start_date: dt.date
    weekdays: Annotated[str, Field(max_length=20)] = ""
    psychotherapy: bool = False
    concurrent_antidepressant: bool = True
    notes: Notes = ""


class CourseEnd(_Strict):
    version: Version
    status: Literal["stopped", "completed"]
    reason: Reason


class CourseNotes(_Strict):
    version: Version
    notes: Notes
    reason: Reason


class ChairCreate(_Strict):
    name: Annotated[str, _filled(60), AfterValidator(_line)]
    opening_hours: Annotated[str, Field(max_length=300)] = "0-4 08:00-18:00"


class BookingCreate(_Strict):
    version: Version
    chair_id: int
    start: Instant
    minutes: Annotated[int, Field(ge=15, le=600)] | None = None
    override_reason: Line = ""


class BookingChange(_Strict):
    version: Version
    chair_id: int | None = None
    start: Instant
    reason_code: Annotated[str, Field(max_length=40)]
    reason: Reason
    override_reason: Line = ""


class SessionCancel(_Strict):
    version: Version
    reason_code: Annotated[str, Field(max_length=40)]
    reason: Reason


class PrecheckCreate(_Strict):
    version: Version
    consent_on_file: bool = False
    rems_enrolled: bool = False
    last_food_at: Instant | None = None
    last_liquid_at: Instant | None = None
    uses_nasal_steroid_or_decongestant: bool = False
    nasal_steroid_or_decongestant_at: Instant | None = None
    ride_home_arranged: bool = False
    pregnancy_test_relevant: bool = False
    pregnancy_test_negative_on: dt.date | None = None
    override_reason: Line = ""


class VitalsCreate(_Strict):
    taken_at: Instant | None = None
    sbp_mmhg: Vital | None = None
    dbp_mmhg: Vital | None = None
    hr_bpm: Vital | None = None
    spo2_pct: Vital | None = None
    rr_per_min: Vital | None = None


class PredoseVitals(VitalsCreate):
    version: Version
    sbp_mmhg: Vital
    dbp_mmhg: Vital
    proceed_reason: Line = ""
    stop_reason: Line = ""


class DoseCreate(_Strict):
    version: Version
    dose_mg: Mg
    lot: Lot
    started_at: Instant
    ended_at: Instant | None = None
    device_times: list[Instant] = Field(default_factory=list, max_length=6)
    dose_order_id: int | None = None
    #: the nurse confirms the signed order shown at the chair
    order_confirmed: bool = False
    #: IV: the concentration in the bag and the rate programmed on the pump
    concentration_mg_per_ml: Decimal | None = Field(default=None, gt=0, le=1000,
                                                    max_digits=8, decimal_places=3)
    rate_ml_per_h: Decimal | None = Field(default=None, gt=0, le=10000, max_digits=10,
                                          decimal_places=3)
    override_reason: Line = ""


class AlertAction(_Strict):
    action_taken: Reason


class RatingCreate(_Strict):
    instrument: Instrument
    answers: list[Whole | None] = Field(min_length=1, max_length=40)
    administered_at: Instant | None = None


class AdverseEventCreate(_Strict):
    code: Annotated[str, Field(min_length=1, max_length=40)]
    severity: Annotated[str, Field(min_length=1, max_length=20)]
    onset_at: Instant | None = None
    action_taken: Line = ""
    description: Line = ""


class DischargeCreate(_Strict):
    """The discharge checklist. There is no override: a patient who leaves before it
    passes is recorded with :class:`LeftAgainstAdviceCreate`."""

    version: Version
    dissociation_resolved: bool = False
    respiratory_depression_resolved: bool = False
    responsible_adult_present: bool = False
    ready_at: Instant | None = None


class LeftAgainstAdviceCreate(_Strict):
    """A patient leaving before the discharge criteria are met: what they were told and said."""

    version: Version
    statement: Annotated[str, _filled(1000), AfterValidator(_line)]
    dissociation_resolved: bool = False
    respiratory_depression_resolved: bool = False
    responsible_adult_present: bool = False


class RemsDetails(_Strict):
    provider_phone: Short = ""
    provider_email: Short = ""
    setting_address: Line = ""


class RemsSubmit(_Strict):
    confirmation: Short = ""


class ReceiptCreate(_Strict):
    drug: Annotated[str, _filled(120), AfterValidator(_line)]
    lot: Lot
    supplier_name: Reason
    supplier_address: Reason
    supplier_dea_number: Annotated[str, Field(min_length=1, max_length=20)]
    expiry: dt.date
    containers: Annotated[int, Field(gt=0, le=100_000)]
    volume_ml_per_container: Mg
    concentration_mg_per_ml: Mg
    note: Line = ""


class WasteCreate(_Strict):
    lot: Lot
    waste_mg: Mg
    witness_username: Annotated[str, Field(min_length=1, max_length=64)]
    witness_password: Annotated[str, Field(min_length=1, max_length=200)]
    session_id: int | None = None
    note: Line = ""


class TransferCreate(_Strict):
    lot: Lot
    transfer_mg: Mg
    recipient: Reason
    note: Line = ""


class LossCreate(_Strict):
    lot: Lot
    lost_mg: Mg
    kind: Literal["theft", "significant_loss"]
    discovered_on: dt.date
    note: Line = ""


class CountCreate(_Strict):
    lot: Lot
    counted_mg: MgOrZero
    kind: Literal["initial", "biennial", "annual", "other"]
    method: Literal["exact", "estimated"] = "exact"
    note: Line = ""


class CorrectionCreate(_Strict):
    refers_to_id: int
    corrected_mg: MgOrZero
    reason: Reason
