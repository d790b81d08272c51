"""Load a set of patients' rows for the FHIR export (one query per table, chunked, no N+1) and
turn them into resources with :mod:`ketaclinic.renderers.fhir_map`.

:func:`export_resources` yields ``(patient_id, resource)`` in patient order; the Practitioners
(the users who recorded, ordered or gave something for these patients) come last.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
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
PRACTITIONER_REF = re.compile(r'"Practitioner/u-(\d+)"')
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


def patient_resources(data: dict[str, Any], pid: int, opt: fm.MapOptions,
                      since: dt.datetime | None = None) -> Iterator[fm.Res]:
    """All resources of one patient, referencing each other by ``Type/id``.

    ``since`` (naive UTC): only the resources whose row was written or changed at or after it
    (the row's ``updated_at``, else when it was recorded; a diagnosis, medication or allergy
    that was deactivated has its ``updated_at`` set then; a dose order also when it was
    countersigned). Everything is still loaded, so references between resources (an adverse
    event's dose) are the same as in a full export."""

    def fresh(*times: dt.datetime | None) -> bool:
        return since is None or any(t is not None and t >= since for t in times)

    pref = fm.ref("Patient", f"p-{pid}")
    patient = data["patients"][pid]
    if fresh(patient.updated_at, patient.created_at):
        yield fm.patient(patient, opt)
    for d in data["diagnoses"].get(pid, ()):
        if fresh(d.updated_at, d.recorded_at):
            yield fm.condition(d, pref)
    for a in data["allergies"].get(pid, ()):
        if fresh(a.updated_at, a.recorded_at):
            yield fm.allergy(a, pref)
    for m in data["medications"].get(pid, ()):
        if fresh(m.updated_at, m.recorded_at):
            yield fm.medication_statement(m, pref)
    for w in data["weights"].get(pid, ()):
        if fresh(w.recorded_at):
            yield fm.weight(w, pref)
    for c in data["courses"].get(pid, ()):
        if fresh(c.updated_at, c.created_at):
            yield fm.careplan(c, pref)
    sessions = {t.id: t for t in data["sessions"].get(pid, ())}
    for t in sessions.values():
        if fresh(t.updated_at, t.created_at):
            yield fm.encounter(t, pref)
    for o in data["orders"].get(pid, ()):
        if fresh(o.created_at, o.countersigned_at):
            yield fm.medication_request(o, pref)
    first_dose: dict[int, int | str] = {}
    for d in data["doses"].get(pid, ()):
        first_dose.setdefault(d.session_id, d.id)
        if fresh(d.recorded_at):
            yield fm.administration(d, sessions[d.session_id], pref)
    for t in sessions.values():  # a dose recorded on the session only (no chair dose row)
        if t.id not in first_dose and t.dose_mg is not None and t.dose_started_at is not None \
                and t.status not in ("cancelled", "missed"):
            first_dose[t.id] = f"s{t.id}"
            if fresh(t.updated_at, t.created_at):
                yield fm.administration(_session_dose(t), t, pref)
    for e in data["events"].get(pid, ()):
        if fresh(e.created_at):
            yield fm.adverse_event(e, sessions[e.session_id], pref,
                                   first_dose.get(e.session_id))
    for v in data["vitals"].get(pid, ()):
        if fresh(v.created_at):
            yield from fm.vitals(v, pref, fm.ref("Encounter", f"enc-{v.session_id}"))
    for a in data["assessments"].get(pid, ()):
        if a.total is not None and fresh(a.created_at):
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


def export_resources(s: Session, ids: list[int], opt: fm.MapOptions,
                     since: dt.datetime | None = None) -> Iterator[tuple[int | None, fm.Res]]:
    """(patient id, resource) for every resource of these patients, then the Practitioners
    (patient id None). Loads everything first (inside the caller's transaction).

    With ``since`` (naive UTC), only resources changed since (see :func:`patient_resources`),
    and the Practitioners those reference."""
    data = load(s, ids)
    if since is None:
        users = practitioners(s, acting_users(data))

        def gen() -> Iterator[tuple[int | None, fm.Res]]:
            for pid in ids:
                for r in patient_resources(data, pid, opt):
                    yield pid, r
            for u in users:
                yield None, u

        return gen()
    changed = [(pid, r) for pid in ids for r in patient_resources(data, pid, opt, since)]
    cited = {int(m) for _pid, r in changed
             for m in PRACTITIONER_REF.findall(json.dumps(r, separators=(",", ":")))}
    return iter([*changed, *((None, u) for u in practitioners(s, cited))])


def counts_by_type(resources: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in resources:
        out[r["resourceType"]] += 1
    return dict(out)
