"""Load a set of patients' rows for the FHIR export (one query per table, chunked, no N+1) and
turn them into resources with :mod:`ketaclinic.renderers.fhir_map`.

:func:`export_resources` yields ``(patient_id, resource)`` in patient order; the Practitioners
(the users who recorded, ordered or gave something for these patients) come last.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ketaclinic.renderers import fhir_map as fm
from ketaclinic.store.tables import (
    Patient,
    PatientAllergy,
    PatientDiagnosis,
    PatientMedication,
    PatientWeight,
    User,
)
from ketaclinic.store.tables_chair import AdverseEventRow, DoseRecord, VitalSignRow
from ketaclinic.store.tables_dosing import DoseOrder
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

CHUNK = 900
USER_COLUMNS = ("recorded_by", "entered_by", "ordered_by")


def _t(model: Any) -> Table:
    return model.__table__


def _by_patient(s: Session, model: Any, ids: list[int], *order: str) -> dict[int, list[Any]]:
    t = _t(model)
    out: dict[int, list[Any]] = {}
    for i in range(0, len(ids), CHUNK):
        stmt = (select(t).where(t.c.patient_id.in_(ids[i:i + CHUNK]))
                .order_by(t.c.patient_id, *(t.c[o] for o in order), t.c.id))
        for pid, group in itertools.groupby(s.execute(stmt), key=lambda r: r.patient_id):
            out[pid] = list(group)
    return out


def _by_session(s: Session, model: Any, ids: list[int], order: str) -> dict[int, list[Any]]:
    """Rows of a chair table (keyed by session), grouped by the session's patient."""
    t, ts = _t(model), _t(TreatmentSession)
    out: dict[int, list[Any]] = {}
    for i in range(0, len(ids), CHUNK):
        stmt = (select(ts.c.patient_id.label("pid"), t).join(ts, ts.c.id == t.c.session_id)
                .where(ts.c.patient_id.in_(ids[i:i + CHUNK]))
                .order_by(ts.c.patient_id, t.c[order], t.c.id))
        for pid, group in itertools.groupby(s.execute(stmt), key=lambda r: r.pid):
            out[pid] = list(group)
    return out


def load(s: Session, ids: list[int]) -> dict[str, Any]:
    """Every table the export reads, for these patients."""
    pt = _t(Patient)
    patients: dict[int, Any] = {}
    for i in range(0, len(ids), CHUNK):
        for r in s.execute(select(pt).where(pt.c.id.in_(ids[i:i + CHUNK]))):
            patients[r.id] = r
    return {
        "patients": patients,
        "diagnoses": _by_patient(s, PatientDiagnosis, ids),
        "allergies": _by_patient(s, PatientAllergy, ids),
        "medications": _by_patient(s, PatientMedication, ids),
        "weights": _by_patient(s, PatientWeight, ids, "measured_on"),
        "courses": _by_patient(s, Course, ids, "start_date"),
        "sessions": _by_patient(s, TreatmentSession, ids, "planned_date"),
        "orders": _by_patient(s, DoseOrder, ids, "created_at"),
        "assessments": _by_patient(s, Assessment, ids, "administered_at"),
        "doses": _by_session(s, DoseRecord, ids, "started_at"),
        "vitals": _by_session(s, VitalSignRow, ids, "taken_at"),
        "events": _by_session(s, AdverseEventRow, ids, "onset_at"),
    }


def patient_resources(data: dict[str, Any], pid: int, opt: fm.MapOptions) -> Iterator[fm.Res]:
    """All resources of one patient, referencing each other by ``Type/id``."""
    pref = fm.ref("Patient", f"p-{pid}")
    yield fm.patient(data["patients"][pid], opt)
    for d in data["diagnoses"].get(pid, ()):
        yield fm.condition(d, pref)
    for a in data["allergies"].get(pid, ()):
        yield fm.allergy(a, pref)
    for m in data["medications"].get(pid, ()):
        yield fm.medication_statement(m, pref)
    for w in data["weights"].get(pid, ()):
        yield fm.weight(w, pref)
    for c in data["courses"].get(pid, ()):
        yield fm.careplan(c, pref)
    sessions = {t.id: t for t in data["sessions"].get(pid, ())}
    for t in sessions.values():
        yield fm.encounter(t, pref)
    for o in data["orders"].get(pid, ()):
        yield fm.medication_request(o, pref)
    first_dose: dict[int, int | str] = {}
    for d in data["doses"].get(pid, ()):
        first_dose.setdefault(d.session_id, d.id)
        yield fm.administration(d, sessions[d.session_id], pref)
    for t in sessions.values():  # a dose recorded on the session only (no chair dose row)
        if t.id not in first_dose and t.dose_mg is not None and t.dose_started_at is not None \
                and t.status not in ("cancelled", "missed"):
            first_dose[t.id] = f"s{t.id}"
            yield fm.administration(_session_dose(t), t, pref)
    for e in data["events"].get(pid, ()):
        yield fm.adverse_event(e, sessions[e.session_id], pref, first_dose.get(e.session_id))
    for v in data["vitals"].get(pid, ()):
        yield from fm.vitals(v, pref, fm.ref("Encounter", f"enc-{v.session_id}"))
    for a in data["assessments"].get(pid, ()):
        if a.total is not None:
            yield from fm.assessment(a, pref)


def _session_dose(t: Any) -> SimpleNamespace:
    return SimpleNamespace(id=f"s{t.id}", route=t.route, dose_mg=t.dose_mg,
                           started_at=t.dose_started_at, ended_at=t.dose_ended_at, lot="",
                           recorded_by=None, dose_order_id=t.dose_order_id)


def acting_users(data: dict[str, Any], pid: int | None = None) -> set[int]:
    """Users who recorded, entered or ordered something for these patients (or one)."""
    out: set[int] = set()
    for key, rows_by_patient in data.items():
        if key == "patients":
            continue
        groups = rows_by_patient.values() if pid is None else [rows_by_patient.get(pid, ())]
        for rows in groups:
            for r in rows:
                for col in USER_COLUMNS:
                    uid = getattr(r, col, None)
                    if uid is not None:
                        out.add(uid)
    return out


def practitioners(s: Session, user_ids: set[int]) -> list[fm.Res]:
    ut = _t(User)
    ids = sorted(user_ids)
    rows = []
    for i in range(0, len(ids), CHUNK):
        rows += list(s.execute(select(ut.c.id, ut.c.full_name, ut.c.active)
                               .where(ut.c.id.in_(ids[i:i + CHUNK])).order_by(ut.c.id)))
    return [fm.practitioner(u) for u in rows]


def patient_bundles(s: Session, ids: list[int], opt: fm.MapOptions
                    ) -> Iterator[tuple[int, list[fm.Res]]]:
    """(patient id, resources incl. the Practitioners they reference) per patient."""
    data = load(s, ids)
    users = {int(u["id"][2:]): u for u in practitioners(s, acting_users(data))}

    def gen() -> Iterator[tuple[int, list[fm.Res]]]:
        for pid in ids:
            res = list(patient_resources(data, pid, opt))
            res += [users[u] for u in sorted(acting_users(data, pid)) if u in users]
            yield pid, res

    return gen()


def export_resources(s: Session, ids: list[int], opt: fm.MapOptions
                     ) -> Iterator[tuple[int | None, fm.Res]]:
    """(patient id, resource) for every resource of these patients, then the Practitioners
    (patient id None). Loads everything first (inside the caller's transaction)."""
    data = load(s, ids)
    users = practitioners(s, acting_users(data))

    def gen() -> Iterator[tuple[int | None, fm.Res]]:
        for pid in ids:
            for r in patient_resources(data, pid, opt):
                yield pid, r
        for u in users:
            yield None, u

    return gen()


def counts_by_type(resources: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in resources:
        out[r["resourceType"]] += 1
    return dict(out)
