"""Which instrument definitions the clinic uses: bundled ones plus clinic-supplied, versioned files.

Scoring always uses the bundled definition of a bundled instrument (the clinic's file may only
add licensed item text); a clinic-supplied definition of an instrument that ketaclinic does not
bundle is used for scoring too. The active clinic file, when there is one, supplies the item text
shown on forms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ketaclinic.clinical.instruments import (
    BUNDLED_IDS,
    InstrumentDefinition,
    load_bundled,
    load_definition,
)
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.store.tables_mbc import ClinicInstrument

SELF_REPORT_RESPONDENTS = ("patient", "clinician or patient")


@dataclass(frozen=True)
class StoredDefinition:
    id: int
    instrument_id: str
    version: str
    sha256: str
    active: bool
    loaded_at: dt.datetime


def _stored(row: ClinicInstrument) -> StoredDefinition:
    return StoredDefinition(row.id, row.instrument_id, row.version, row.sha256, row.active,
                            row.loaded_at)


def has_item_text(d: InstrumentDefinition) -> bool:
    return all(item.text for item in d.items if item.scored or item.required)


def _check_compatible(clinic: InstrumentDefinition, bundled: InstrumentDefinition) -> None:
    """A clinic file for a bundled instrument must have the same items and ranges."""
    ours = [(i.number, i.min_score, i.max_score, i.scored) for i in bundled.items]
    theirs = [(i.number, i.min_score, i.max_score, i.scored) for i in clinic.items]
    if ours != theirs:
        raise InvalidInput(
            f"{clinic.id}: the items or answer ranges differ from the bundled definition "
            f"({bundled.rule_version}); scoring stays with the bundled rule, so they must match"
        )


class InstrumentCatalogue:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def store(self, actor: Actor, json_text: str) -> StoredDefinition:
        """Validate and store a clinic-supplied definition; it becomes the active version."""
        work = self.ctx.unit_of_work(actor, "instrument.load", perm=Perm.RULES_MANAGE)
        try:
            definition = load_definition(json_text)
        except ClinicalInputError as exc:
            raise InvalidInput(str(exc)) from exc
        if definition.id in BUNDLED_IDS:
            _check_compatible(definition, load_bundled(definition.id))
        digest = hashlib.sha256(json_text.encode("utf-8")).hexdigest()
        with work as uow:
            s = uow.session
            if s.execute(select(ClinicInstrument.id).where(
                    ClinicInstrument.instrument_id == definition.id,
                    ClinicInstrument.version == definition.version)).first():
                raise Conflict(f"{definition.rule_version} is already stored; bump its version")
            s.execute(update(ClinicInstrument).where(
                ClinicInstrument.instrument_id == definition.id).values(active=False))
            row = ClinicInstrument(instrument_id=definition.id, version=definition.version,
                                   definition_json=json_text, sha256=digest, active=True,
                                   loaded_by=actor.user_id, loaded_at=uow.now)
            s.add(row)
            s.flush()
            uow.audit(detail=f"{definition.rule_version} sha256 {digest[:12]}")
            return _stored(row)

    # --- lookups used by the other services (inside their transaction) ----------------------
    @staticmethod
    def stored(s: Session) -> list[StoredDefinition]:
        """Every clinic-supplied definition, each version, by instrument."""
        rows = s.execute(select(ClinicInstrument).order_by(
            ClinicInstrument.instrument_id, ClinicInstrument.id)).scalars()
        return [_stored(r) for r in rows]

    def active_clinic(self, s: Session, instrument_id: str) -> InstrumentDefinition | None:
        row = s.execute(select(ClinicInstrument).where(
            ClinicInstrument.instrument_id == instrument_id,
            ClinicInstrument.active.is_(True))).scalars().first()
        return load_definition(row.definition_json) if row else None

    def for_scoring(self, s: Session, instrument_id: str) -> InstrumentDefinition:
        if instrument_id in BUNDLED_IDS:
            return load_bundled(instrument_id)
        clinic = self.active_clinic(s, instrument_id)
        if clinic is None:
            raise NotFound(f"unknown instrument {instrument_id!r}; known: "
                           + ", ".join(self.known_ids(s)))
        return clinic

    def for_display(self, s: Session, instrument_id: str) -> InstrumentDefinition:
        return self.active_clinic(s, instrument_id) or self.for_scoring(s, instrument_id)

    def known_ids(self, s: Session) -> list[str]:
        clinic = s.execute(select(ClinicInstrument.instrument_id).where(
            ClinicInstrument.active.is_(True))).scalars().all()
        return list(BUNDLED_IDS) + sorted(set(clinic) - set(BUNDLED_IDS))

    def self_report_ids(self, s: Session) -> list[str]:
        """Instruments a patient can fill in alone: patient-rated and with item text.

        One query for the clinic's active definitions (the patient page calls this on every
        view; a query per instrument was a third of the page's database work)."""
        clinic: dict[str, str] = {}
        for instrument_id, definition_json in s.execute(
                select(ClinicInstrument.instrument_id, ClinicInstrument.definition_json)
                .where(ClinicInstrument.active.is_(True)).order_by(ClinicInstrument.id)):
            clinic.setdefault(instrument_id, definition_json)
        out = []
        for instrument_id in list(BUNDLED_IDS) + sorted(set(clinic) - set(BUNDLED_IDS)):
            text = clinic.get(instrument_id)
            d = load_definition(text) if text is not None else load_bundled(instrument_id)
            if d.respondent in SELF_REPORT_RESPONDENTS and has_item_text(d):
                out.append(instrument_id)
        return out
