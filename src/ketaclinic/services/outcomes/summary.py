"""The outcome summary: per-course values that the dashboard reads, kept in step with the data.

The summary tables (store/tables_outcomes.py) hold, per course, the dose anchors and dose totals,
and per course × instrument the baseline, first response, relapse by scores, last score after
the response and the score picked at every timepoint with its response/remission flags — what
the dashboard used to recompute from every assessment on every request
(SQL in :mod:`ketaclinic.services.outcomes.summary_sql`).

**Maintained on write, in the same transaction.** :func:`install` registers session events
on the database's session factory: ``after_flush`` notes which courses a flushed row can affect
(an assessment on an instrument with outcome criteria: its course, or without ``course_id``
every course of its patient; a treatment session: its course; a course: every course of its
patient, since the next course's start links unlinked scores), and ``before_commit``
recomputes exactly those courses (delete + three ``INSERT … SELECT``, a fixed number of
statements per commit). Every write that goes through a unit of work — the services, the demo
seeders, the tests' direct inserts — is covered; so are ORM bulk statements run through the
session (``do_orm_execute``: the rows an UPDATE or DELETE touches are read first). Raw SQL run
through the session that writes ``assessments``, ``treatment_sessions`` or ``courses`` cannot
be attributed and marks the summary stale instead. Writes that bypass the session altogether
(bulk loads on a bare connection, a restore from elsewhere) must be followed by
:func:`rebuild` (``ketaclinic outcomes rebuild-summary``).

**Rules fingerprint.** The stored values depend on the outcome criteria, the timepoint windows
and the baseline look-back. :func:`fingerprint` hashes them; :func:`rebuild` stores it in
``outcome_summary_state``. The dashboard refuses to read a summary whose stored fingerprint
differs (a release changed a rule, or migration 0005 just created the tables: "pending");
``ketaclinic migrate`` and ``init`` rebuild a stale summary. No state row means the summary
was never declared stale (an empty database) and is trusted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    Connection,
    Delete,
    TextClause,
    Update,
    bindparam,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import ORMExecuteState, Session

from ketaclinic.clinical.cohort import load_timepoints, timepoint_instruments
from ketaclinic.clinical.outcomes import DEFAULT_CRITERIA, remission_overrides
from ketaclinic.services.outcomes import summary_sql as sq
from ketaclinic.services.outcomes.dashboard_sql import BASELINE_LOOKBACK_DAYS, Dialect
from ketaclinic.store.db import Database
from ketaclinic.store.tables import Base
from ketaclinic.store.tables_outcomes import OutcomeSummaryState
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

SUMMARY_VERSION = 2  # bump when the summary SQL changes meaning (2: revised baseline and relapse)
CHUNK = 400  # course ids per scoped statement (well under SQLite's bound-parameter limit)
_INFO_KEY = "outcome_summary_pending"
INSTRUMENTS = frozenset(DEFAULT_CRITERIA)


def fingerprint() -> str:
    """SHA-256 of everything the stored values depend on besides the data."""
    rules: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "lookback_days": BASELINE_LOOKBACK_DAYS,
        "timepoints": [[t.label, t.anchor, t.target_h.value, t.window_lo_h.value,
                        t.window_hi_h.value] for t in load_timepoints()],
        "criteria": {k: [c.remission_max.value, c.response_fraction.value,
                         None if c.relapse_score_min is None else c.relapse_score_min.value,
                         c.relapse_gap_min_days.value, c.relapse_gap_max_days.value,
                         c.baseline_window_days.value,
                         None if c.baseline_min is None else c.baseline_min.value,
                         c.relapse_origin_window_days.value]
                     for k, c in sorted(DEFAULT_CRITERIA.items())},
        "remission_by_treatment": sorted([*k, v] for k, v in remission_overrides().items()),
        "timepoint_instruments": sorted(_recall_pairs()),
    }
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


def stored_fingerprint(conn: Connection | Session) -> str | None:
    """The fingerprint of the last rebuild ("pending" after migration 0005; None: no row)."""
    return conn.execute(select(OutcomeSummaryState.fingerprint)
                        .where(OutcomeSummaryState.id == 1)).scalar_one_or_none()


def is_current(conn: Connection | Session) -> bool:
    stored = stored_fingerprint(conn)
    return stored is None or stored == fingerprint()


# ---------------------------------------------------------------------------------------------
# Recompute
# ---------------------------------------------------------------------------------------------


def _recall_pairs() -> list[tuple[str, str]]:
    return timepoint_instruments(load_timepoints(), sorted(DEFAULT_CRITERIA))


def _statements(dialect: str, scoped: bool) -> list[str]:
    d = Dialect(dialect)
    criteria = list(DEFAULT_CRITERIA.values())
    return [sq.dose_summary_sql(d, criteria, scoped),
            sq.outcome_summary_sql(d, criteria, scoped),
            sq.timepoint_summary_sql(d, criteria, load_timepoints(), scoped,
                                     remission_overrides(), _recall_pairs())]


def refresh_courses(session: Session, course_ids: Iterable[int]) -> int:
    """Recompute the summary rows of ``course_ids`` inside the session's transaction."""
    ids = sorted(set(course_ids))
    dialect = session.get_bind().dialect.name
    statements = _statements(dialect, scoped=True)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        if dialect == "postgresql":
            # Serialise concurrent refreshes of the same course (READ COMMITTED): the second
            # waits here and then recomputes from the committed rows of the first. NO KEY
            # UPDATE: writers that only reference the course (foreign keys) are not blocked.
            session.execute(text("SELECT id FROM courses WHERE id IN :ids ORDER BY id "
                                 "FOR NO KEY UPDATE").bindparams(
                bindparam("ids", expanding=True)), {"ids": chunk})
        for table in sq.SUMMARY_TABLES:
            session.execute(text(f"DELETE FROM {table} WHERE course_id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"ids": chunk})
        params = {f"ids{n}": chunk for n in (1, 2, 3)}
        for sql in statements:
            stmt = text(sql).bindparams(*[bindparam(k, expanding=True) for k in params])
            session.execute(stmt, params)
    return len(ids)


def rebuild(conn: Connection | Session, at: dt.datetime | None = None) -> dict[str, int]:
    """Recompute the whole summary from the source rows and record the rules' fingerprint.

    Runs in the caller's transaction; returns the row count of each summary table.
    """
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    for table in sq.SUMMARY_TABLES:
        conn.execute(text(f"DELETE FROM {table}"))
    for sql in _statements(dialect, scoped=False):
        conn.execute(text(sql))
    conn.execute(text("DELETE FROM outcome_summary_state"))
    conn.execute(text("INSERT INTO outcome_summary_state (id, fingerprint, rebuilt_at) "
                      "VALUES (1, :fp, :at)"), {"fp": fingerprint(), "at": at})
    for table in sq.SUMMARY_TABLES:
        conn.execute(text(f"ANALYZE {table}"))
    return {t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() or 0)
            for t in reversed(sq.SUMMARY_TABLES)}


def ensure_current(db: Database, at: dt.datetime | None = None) -> dict[str, int] | None:
    """Rebuild when the stored fingerprint is stale (after ``migrate``); None when current."""
    with db.transaction() as s:
        if is_current(s):
            return None
        return rebuild(s, at)


# ---------------------------------------------------------------------------------------------
# Maintenance on write (session events)
# ---------------------------------------------------------------------------------------------


MODELS = (Assessment, TreatmentSession, Course)
# raw SQL through the unit of work that writes a source table: it cannot be attributed to
# courses, so it marks the summary stale (the dashboard then asks for a rebuild)
_RAW_WRITE = re.compile(r"\b(insert\s+into|update|delete\s+from)\s+(assessments|"
                        r"treatment_sessions|courses)\b", re.IGNORECASE)


def _pending(session: Session) -> dict[str, Any]:
    return session.info.setdefault(_INFO_KEY, {"courses": set(), "patients": set(),
                                               "rows": {m: set() for m in MODELS},
                                               "stale": False})


def _old(obj: Any, attr: str) -> list[Any]:
    """The attribute's current value and, when it changed in this flush, its previous one."""
    hist = inspect(obj).attrs[attr].history
    return [v for v in [getattr(obj, attr), *hist.deleted] if v is not None]


def _note_values(pending: dict[str, Any], model: type, values: dict[str, Any]) -> None:
    """Courses a row with these column values can affect (see the module docstring)."""
    if model is Assessment:
        if values.get("instrument_id") not in INSTRUMENTS:
            return
        if values.get("course_id") is not None:
            pending["courses"].add(values["course_id"])
        else:
            pending["patients"].add(values.get("patient_id"))
    elif model is TreatmentSession:
        if values.get("course_id") is not None:
            pending["courses"].add(values["course_id"])
    elif model is Course:
        pending["patients"].add(values.get("patient_id"))


def _note(pending: dict[str, Any], obj: Any) -> None:
    if isinstance(obj, Assessment):
        if not INSTRUMENTS.intersection(_old(obj, "instrument_id")):
            return
        linked = [obj.course_id, *inspect(obj).attrs["course_id"].history.deleted]
        pending["courses"].update(v for v in linked if v is not None)
        if any(v is None for v in linked):  # unlinked (now or before): the patient's courses
            pending["patients"].update(_old(obj, "patient_id"))
    elif isinstance(obj, TreatmentSession):
        pending["courses"].update(_old(obj, "course_id"))
    elif isinstance(obj, Course):
        pending["patients"].update(_old(obj, "patient_id"))


_COLUMNS = {Assessment: ("course_id", "patient_id", "instrument_id"),
            TreatmentSession: ("course_id", "patient_id"), Course: ("patient_id",)}


def _rows(session: Session, model: type[Base], where: Any) -> list[dict[str, Any]]:
    cols = [getattr(model, c) for c in ("id", *_COLUMNS[model])]
    stmt = select(*cols) if where is None else select(*cols).where(where)
    return [dict(r._mapping) for r in session.execute(stmt)]


def _on_execute(state: ORMExecuteState) -> None:
    """Statements run through the session rather than object changes: ORM bulk inserts,
    updates and deletes are attributed to courses; raw SQL writing a source table marks the
    summary stale."""
    if state.is_select:
        return
    stmt = state.statement
    if isinstance(stmt, TextClause):
        if _RAW_WRITE.search(stmt.text):
            _pending(state.session)["stale"] = True
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.class_ not in MODELS or not (
            state.is_insert or state.is_update or state.is_delete):
        return
    model: type[Base] = mapper.class_
    pending = _pending(state.session)
    if state.is_insert:
        params = state.parameters
        rows = [params or {}] if params is None or isinstance(params, Mapping) else params
        if not rows or not all("patient_id" in r for r in rows):
            pending["stale"] = True  # values inline in the statement: not attributable
        for r in rows:
            _note_values(pending, model, dict(r))
        return
    if not isinstance(stmt, Update | Delete):  # not expected: fail safe, rebuild
        pending["stale"] = True
        return
    for r in _rows(state.session, model, stmt.whereclause):  # before: the rows' old values
        _note_values(pending, model, r)
        pending["rows"][model].add(r["id"])  # after the update: their new values (at commit)


def _after_flush(session: Session, _flush_context: Any) -> None:
    pending = _pending(session)
    for obj in [*session.new, *session.deleted]:
        _note(pending, obj)
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            _note(pending, obj)


def _before_commit(session: Session) -> None:
    session.flush()
    pending = session.info.pop(_INFO_KEY, None)
    if not pending:
        return
    for model, ids in pending["rows"].items():
        ordered = sorted(ids)
        for start in range(0, len(ordered), CHUNK):
            for r in _rows(session, model, model.id.in_(ordered[start:start + CHUNK])):
                _note_values(pending, model, r)
    if pending["stale"]:
        mark_stale(session)
    courses = set(pending["courses"])
    patients = sorted(p for p in pending["patients"] if p is not None)
    for start in range(0, len(patients), CHUNK):
        courses.update(session.execute(
            select(Course.id).where(Course.patient_id.in_(patients[start:start + CHUNK]))
        ).scalars())
    if courses:
        refresh_courses(session, courses)


def mark_stale(conn: Connection | Session) -> None:
    """Record that the summary no longer follows the data (until the next rebuild)."""
    conn.execute(text("DELETE FROM outcome_summary_state"))
    conn.execute(text("INSERT INTO outcome_summary_state (id, fingerprint) "
                      "VALUES (1, 'stale')"))


def _forget(session: Session, *_args: Any) -> None:
    session.info.pop(_INFO_KEY, None)


def install(db: Database) -> None:
    """Maintain the summary in every unit of work of ``db`` (idempotent)."""
    factory = db.session_factory
    if event.contains(factory, "before_commit", _before_commit):
        return
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "do_orm_execute", _on_execute)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_rollback", _forget)
