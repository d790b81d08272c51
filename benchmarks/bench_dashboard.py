"""Dashboard benchmark (issue 7): a synthetic clinic network, SQL dashboard vs a naive loop.

Data set: 50,000 patients (one course each), 300,000 sessions (6 doses per course) and
1,000,000 assessments (PHQ-9 and MADRS: baselines, post-dose scores and follow-up up to about
8 months), plus comorbid-anxiety diagnoses, hospitalisations and screening events. Built with
bulk inserts (sqlite3 executemany; COPY on PostgreSQL) behind a rich progress bar and cached in
``bench-data/`` (SQLite file / PostgreSQL database named after DATA_VERSION) between runs.

The bulk load bypasses the services, so the outcome summary the dashboard reads
(services/outcomes/summary.py) is rebuilt when it is not current (timed and printed).

Timed in the same run:
* the dashboard (``OutcomesService.dashboard``, unfiltered and with filters), best of 3;
* a naive per-course reference that issues queries per course (its sessions, the patient's
  scores, events and courses) and evaluates each course with the pure core
  (``evaluate_course``, ``select_assessment_in_window``) — run on a random sample of SAMPLE
  courses and scaled linearly to the whole cohort (stated in the output).

Prints the ratio, the load average and the absolute dashboard time against the 2 s target
(printed, never asserted). Agreement: the sampled courses' timepoint outcomes and relapse
subjects from the naive reference must equal those in the summary the dashboard aggregates
(printed; the run exits non-zero otherwise).

PostgreSQL runs when reachable at KETACLINIC_BENCH_POSTGRES_URL (default the local ``test``
server); the benchmark creates and keeps a dedicated database there
(KETACLINIC_BENCH_PG_DATABASE overrides its name, e.g. for a copy made with
``CREATE DATABASE x TEMPLATE ketaclinic_bench_v1`` when a branch adds migrations).

Run: PYTHONPATH=src python benchmarks/bench_dashboard.py [--sqlite-only] [--rebuild]
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.engine import make_url

from ketaclinic.bootstrap import build_services
from ketaclinic.clinical.cohort import (
    load_timepoints,
    recall_hours,
    select_assessment_in_window,
)
from ketaclinic.clinical.outcomes import (
    DEFAULT_CRITERIA,
    Assessment,
    default_criteria,
    evaluate_course,
)
from ketaclinic.clinical.outcomes import ClinicalEvent as CoreEvent
from ketaclinic.config import load_settings
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes import summary as outcome_summary
from ketaclinic.services.outcomes.dashboard import DashboardFilters, event_kind, relapse_subjects
from ketaclinic.services.outcomes.dashboard_sql import Dialect
from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine
from ketaclinic.store.tables_treatment import Assessment as ARow
from ketaclinic.store.tables_treatment import ClinicalEvent as ERow
from ketaclinic.store.tables_treatment import Course, TreatmentSession

DATA_VERSION = "v1"
PATIENTS, SESSIONS_PER, TARGET_ASSESSMENTS = 50_000, 6, 1_000_000
SAMPLE = 400
TARGET_S = 2.0
ROOT = Path(__file__).resolve().parent.parent / "bench-data"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
T_BASE = dt.datetime(2025, 1, 6, 9, 0)
SECRET = "bench-secret-" + "x" * 40
console = Console()


# ---------------------------------------------------------------------------------------------
# Synthetic data (deterministic)
# ---------------------------------------------------------------------------------------------


def generate(rng: random.Random):  # type: ignore[no-untyped-def]
    """Yield (table, row tuple) in insertion order; ids are assigned here."""
    now = T_BASE
    for uid in range(1, 6):
        yield "users", (uid, f"clin{uid}", f"Clinician {uid} (synthetic)", "prescriber",
                        "x", True, None, now)
    sid = aid = 0
    per_patient = TARGET_ASSESSMENTS // PATIENTS  # 20
    for pid in range(1, PATIENTS + 1):
        born = dt.date(1940 + rng.randrange(65), 1 + rng.randrange(12), 1 + rng.randrange(28))
        yield "patients", (pid, f"B{pid:06d}", "Synthetic", "Bench", "bench synthetic", born,
                           rng.choice(("female", "male", "other")), "", "", "", "", 1, now, now,
                           None)
        if rng.random() < 0.25:
            yield "patient_diagnoses", (pid, pid, "icd10", "F41.1", "Generalized anxiety "
                                        "disorder", None, True, now)
        start = T_BASE + dt.timedelta(days=rng.randrange(540))
        treatment = "esketamine" if rng.random() < 0.4 else "ketamine-iv"
        yield "courses", (pid, pid, "bench", treatment, rng.choice(("active", "completed")),
                          start.date(), None, "", None, rng.random() < 0.4, rng.random() < 0.8,
                          "", "", 1, 1 + rng.randrange(5), now, now)
        doses = [start + dt.timedelta(days=d, minutes=rng.randrange(120))
                 for d in (0, 2, 4, 7, 9, 11)[:SESSIONS_PER]]
        for n, when in enumerate(doses, 1):
            sid += 1
            mg = 56.0 if treatment == "esketamine" else round(rng.uniform(25, 60), 1)
            yield "treatment_sessions", (
                sid, pid, pid, n, "induction", treatment, "discharged", when.date(), None, None,
                None, None, mg, "nasal" if treatment == "esketamine" else "iv", "", when,
                when + dt.timedelta(minutes=40), None, None, "", "", 1, None, now, now)
        instrument = "madrs" if rng.random() < 0.3 else "phq9"
        top = 60 if instrument == "madrs" else 27
        base = rng.uniform(0.55, 0.9) * top
        responder = rng.random() < 0.55
        relapse_day = rng.uniform(20, 200) if responder and rng.random() < 0.5 else None
        times = [start - dt.timedelta(days=1)]
        times += [d + dt.timedelta(hours=rng.uniform(20, 30)) for d in doses]
        k = per_patient - len(times)
        times += [start + dt.timedelta(days=14 + i * (230 / k) + rng.uniform(0, 5))
                  for i in range(k)]
        for i, when in enumerate(times):
            day = (when - start).total_seconds() / 86400
            if i == 0:
                score = base
            elif responder and (relapse_day is None or day < relapse_day):
                score = base * max(0.1, 0.8 - 0.1 * i) + rng.uniform(-2, 2)
            elif responder:
                score = base * 0.8 + rng.uniform(-2, 2)
            else:
                score = base * 0.85 + rng.uniform(-3, 3)
            aid += 1
            yield "assessments", (aid, pid, pid, None, instrument, "", when, "clinic",
                                  round(max(0.0, min(top, score))), "", True, False, "[]", "{}",
                                  None, when)
        if relapse_day is not None and rng.random() < 0.1:
            yield "clinical_events", (pid, pid, pid, "hospitalisation",
                                      (start + dt.timedelta(days=relapse_day)).date(), "", None,
                                      now)


COLUMNS = {
    "users": "id, username, full_name, role, password_hash, active, totp_secret, created_at",
    "patients": "id, mrn, family_name, given_name, search_name, birth_date, sex, phone, email, "
                "address, notes, version, created_at, updated_at, created_by",
    "patient_diagnoses": "id, patient_id, system, code, display, onset_on, active, recorded_at",
    "courses": "id, patient_id, template_id, treatment, status, start_date, end_date, "
               "ruleset_ref, screening_id, psychotherapy, concurrent_antidepressant, "
               "stop_reason, notes, version, created_by, created_at, updated_at",
    "treatment_sessions": "id, patient_id, course_id, number, phase, treatment, status, "
                          "planned_date, scheduled_start, scheduled_minutes, chair_id, "
                          "dose_order_id, dose_mg, route, lot_numbers, dose_started_at, "
                          "dose_ended_at, first_device_at, discharged_at, "
                          "discharge_override_reason, cancel_reason, version, created_by, "
                          "created_at, updated_at",
    "assessments": "id, patient_id, course_id, session_id, instrument_id, instrument_version, "
                   "administered_at, source, total, severity, complete, prorated, answers_json, "
                   "result_json, entered_by, created_at",
    "clinical_events": "id, patient_id, course_id, kind, occurred_on, note, recorded_by, "
                       "recorded_at",
}
ORDER = list(COLUMNS)


def _sqlite_value(v):  # type: ignore[no-untyped-def]
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def build(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    total = PATIENTS
    buffers: dict[str, list[tuple]] = {t: [] for t in ORDER}
    raw = engine.raw_connection()
    pg = engine.dialect.name == "postgresql"
    try:
        cur = raw.cursor()
        if not pg:
            cur.execute("PRAGMA synchronous=OFF")

        def flush(table: str) -> None:
            rows = buffers[table]
            if not rows:
                return
            if pg:
                with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row(r)
            else:
                marks = ", ".join("?" * len(rows[0]))
                cur.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})",
                                [tuple(_sqlite_value(v) for v in r) for r in rows])
            rows.clear()

        with Progress(TextColumn("building {task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"{engine.dialect.name} data set", total=total)
            for table, row in generate(random.Random(7)):
                buffers[table].append(row)
                if table == "patients" and row[0] % 2000 == 0:
                    for t in ORDER:
                        flush(t)
                    raw.commit()
                    bar.update(task, completed=row[0])
            for t in ORDER:
                flush(t)
            raw.commit()
            bar.update(task, completed=total)
        if pg:
            for t in ORDER:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT MAX(id) FROM {t}))")
            cur.execute("ANALYZE")
        else:
            cur.execute("ANALYZE")
        cur.execute("CREATE TABLE bench_marker (version VARCHAR(20))")
        cur.execute(f"INSERT INTO bench_marker VALUES ('{DATA_VERSION}')")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def is_built(url: str) -> bool:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(text("SELECT version FROM bench_marker")).scalar() == DATA_VERSION
    except Exception:  # noqa: BLE001 - missing table or database: not built
        return False
    finally:
        engine.dispose()


def reset(url: str) -> None:
    """Start from an empty database (a half-built cache from an interrupted run is dropped)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(u.database + suffix).unlink(missing_ok=True)
        return
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


# ---------------------------------------------------------------------------------------------
# Naive reference: queries per course (N+1), outcomes from the pure core in Python
# ---------------------------------------------------------------------------------------------

Record = tuple[int, str, str, int | None, int]  # course, instrument, timepoint, responded, remitted


def naive_dashboard(svc, course_ids: list[int]):  # type: ignore[no-untyped-def]
    """Per course: its doses, its scores and its events, one query each, then
    ``evaluate_course`` and ``select_assessment_in_window`` per instrument and timepoint.

    Returns (outcome records, {(course, instrument): (duration days, relapsed)}) for the
    agreement check against the summary the dashboard aggregates.
    """
    timepoints = load_timepoints()
    records: list[Record] = []
    relapse: dict[tuple[int, str], tuple[int, bool]] = {}
    with svc.db.transaction() as s:
        for cid in course_ids:
            course = s.get(Course, cid)
            sessions = s.execute(select(TreatmentSession).where(
                TreatmentSession.course_id == cid)).scalars().all()
            doses = sorted(r.dose_started_at for r in sessions if r.dose_started_at is not None
                           and r.status not in ("cancelled", "missed"))
            if not doses:
                continue
            pending = any(r.phase == "induction" and r.dose_started_at is None
                          and r.status not in ("cancelled", "missed") for r in sessions)
            induction = [r.dose_started_at for r in sessions if r.phase == "induction"
                         and r.dose_started_at is not None
                         and r.status not in ("cancelled", "missed")]
            eoi = max(induction) if induction and not pending else None
            later = [(c.start_date, c.id) for c in s.execute(select(Course).where(
                Course.patient_id == course.patient_id)).scalars()
                if (c.start_date, c.id) > (course.start_date, cid)]
            next_start = min(later)[0] if later else None
            lookback = dt.datetime.combine(course.start_date - dt.timedelta(days=30), dt.time())
            scores = [a for a in s.execute(select(ARow).where(
                ARow.patient_id == course.patient_id).order_by(
                    ARow.administered_at, ARow.id)).scalars()
                if a.total is not None and (a.course_id == cid or (
                    a.course_id is None and a.administered_at >= lookback and (
                        next_start is None or a.administered_at.date() < next_start)))]
            events = [CoreEvent(e.occurred_on, event_kind(e.kind)) for e in s.execute(
                select(ERow).where(ERow.patient_id == course.patient_id)).scalars()
                if e.course_id == cid or (e.course_id is None
                                          and e.occurred_on >= course.start_date
                                          and (next_start is None or e.occurred_on < next_start))]
            for instrument in DEFAULT_CRITERIA:
                crit = default_criteria(instrument, course.treatment)
                mine = [Assessment(a.administered_at, instrument, float(a.total))
                        for a in scores if a.instrument_id == instrument]
                out = evaluate_course(mine, doses, crit, events, end_of_induction=eoi)
                if out.baseline is None:
                    continue
                b = out.baseline.total
                after = [a for a in mine if a.at > doses[0]]
                for tp in timepoints:
                    anchor = doses[0] if tp.anchor == "first_dose" else eoi
                    if anchor is None or not tp.accepts_recall(recall_hours(instrument)):
                        continue
                    i = select_assessment_in_window(
                        [(a.at - anchor).total_seconds() / 3600 for a in after], tp)
                    if i is None:
                        continue
                    t = after[i].total
                    resp = None if b <= 0 else int((b - t) >= crit.response_fraction.value * b)
                    records.append((cid, instrument, tp.label, resp,
                                    int(t <= crit.remission_max.value)))
                if out.relapse_origin is not None:
                    end = out.relapse_at if out.relapse_at is not None else out.latest.at
                    relapse[(cid, instrument)] = (
                        (_day(end) - _day(out.relapse_origin.at)).days,
                        out.relapse_at is not None)
    return records, relapse


def _day(v):  # type: ignore[no-untyped-def]
    return v.date() if isinstance(v, dt.datetime) else v


def summary_for(svc, course_ids: list[int]):  # type: ignore[no-untyped-def]
    """The same values as the dashboard aggregates them: the summary's timepoint rows and
    ``relapse_subjects`` (the dashboard's relapse statement) for ``course_ids``."""
    wanted = set(course_ids)
    records: list[Record] = []
    relapse: dict[tuple[int, str], tuple[int, bool]] = {}
    with svc.db.engine.connect() as conn:
        for start in range(0, len(course_ids), 500):
            for r in conn.execute(text(
                    "SELECT course_id, instrument_id, timepoint, responded, remitted FROM "
                    "course_outcome_timepoints WHERE course_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)), {"ids": course_ids[start:start + 500]}):
                records.append((int(r[0]), r[1], r[2], None if r[3] is None else int(r[3]),
                                int(r[4])))
        d = Dialect(svc.db.dialect)
        for instrument, crit in DEFAULT_CRITERIA.items():
            for cid, sub in relapse_subjects(conn, d, DashboardFilters(), crit):
                if cid in wanted:
                    relapse[(cid, instrument)] = (int(sub.duration_days), sub.relapsed)
    return records, relapse


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


CPU: dict[str, float] = {}


def best_of(fn, repeat: int = 3, label: str = "") -> float:  # type: ignore[no-untyped-def]
    """Best wall time; the client-process CPU time of that run is kept in CPU[label] (on SQLite
    that is all the work, which makes figures on a loaded machine interpretable)."""
    best = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, CPU[label] = wall, time.process_time() - c
    return best


def run(label: str, url: str, rebuild: bool) -> None:
    console.rule(f"[bold]{label}")
    if rebuild or not is_built(url):
        reset(url)
        t = time.perf_counter()
        build(url)
        console.print(f"built in {time.perf_counter() - t:.0f} s")
    else:
        console.print(f"using the cached data set ({DATA_VERSION})")
        engine = make_engine(url)
        migrate.upgrade(engine)  # indexes added by later migrations
        engine.dispose()
    settings = load_settings({"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": url,
                              "KETACLINIC_SECRET_KEY": SECRET})
    svc = build_services(settings)
    try:
        t = time.perf_counter()
        rebuilt = outcome_summary.ensure_current(svc.db, T_BASE)
        if rebuilt:
            console.print(f"outcome summary rebuilt in {time.perf_counter() - t:.1f} s ("
                          + ", ".join(f"{k}: {v:,}" for k, v in rebuilt.items()) + ")")
        with svc.db.transaction() as s:
            counts = {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()
                      for t in ("patients", "treatment_sessions", "assessments")}
        console.print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))
        dash = svc.outcomes.dashboard(SYSTEM, DashboardFilters())  # warm the cache
        full = best_of(lambda: svc.outcomes.dashboard(SYSTEM, DashboardFilters()), label="full")
        filt = DashboardFilters(treatment="esketamine", instrument="phq9",
                                date_from=dt.date(2025, 3, 1))
        filtered = best_of(lambda: svc.outcomes.dashboard(SYSTEM, filt), label="filtered")
        with svc.db.transaction() as s:
            all_ids = list(s.execute(select(Course.id).order_by(Course.id)).scalars())
        sample = sorted(random.Random(1).sample(all_ids, min(SAMPLE, len(all_ids))))
        t = time.perf_counter()
        naive = naive_dashboard(svc, sample)
        naive_sample = time.perf_counter() - t
        naive_full = naive_sample * len(all_ids) / len(sample)
        ours = summary_for(svc, sample)
        agree = sorted(naive[0]) == sorted(ours[0]) and naive[1] == ours[1]
        console.print(f"responders followed for relapse: {dash.km.n:,}; relapses "
                      f"{dash.km.events:,}; outcome rows {len(dash.outcomes)}")
        console.print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on "
                      f"{os.cpu_count()} CPUs")
        console.print(f"dashboard (no filters):   {full:6.2f} s wall, {CPU['full']:.2f} s client "
                      f"CPU   target {TARGET_S:.0f} s: {'met' if full <= TARGET_S else 'NOT met'}")
        console.print(f"dashboard (3 filters):    {filtered:6.2f} s wall, {CPU['filtered']:.2f} s "
                      f"client CPU   target {TARGET_S:.0f} s: "
                      f"{'met' if filtered <= TARGET_S else 'NOT met'}")
        console.print(f"naive per-course loop:    {naive_full:6.1f} s   (measured on a random "
                      f"sample of {len(sample)} courses: {naive_sample:.2f} s, scaled linearly "
                      f"to {len(all_ids):,})")
        console.print(f"agreement on the sample: {len(naive[0]):,} timepoint outcomes and "
                      f"{len(naive[1]):,} relapse subjects from the pure core vs the summary the "
                      f"dashboard aggregates: {'[green]identical' if agree else '[red]DIFFERENT'}")
        console.print(f"[bold]ratio naive / dashboard: {naive_full / full:,.0f}x")
        if not agree:
            raise SystemExit("the dashboard's per-course values disagree with the reference")
    finally:
        svc.close()


def pg_url() -> str | None:
    base = os.environ.get("KETACLINIC_BENCH_POSTGRES_URL", PG_DEFAULT)
    name = os.environ.get("KETACLINIC_BENCH_PG_DATABASE") or f"ketaclinic_bench_{DATA_VERSION}"
    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as c:
            exists = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                               {"n": name}).scalar()
            if not exists:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001
        console.print(f"PostgreSQL not reachable ({type(exc).__name__}); skipping it")
        return None
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def main(argv: list[str]) -> int:
    rebuild = "--rebuild" in argv
    ROOT.mkdir(exist_ok=True)
    run("SQLite", f"sqlite:///{(ROOT / f'dashboard-{DATA_VERSION}.sqlite3').as_posix()}", rebuild)
    if "--sqlite-only" not in argv:
        url = pg_url()
        if url:
            run("PostgreSQL", url, rebuild)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
