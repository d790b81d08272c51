"""The outcome summary stays equal to a from-scratch recomputation, whatever the writes.

The dashboard reads per-course values from the summary tables (services/outcomes/summary.py),
which every unit of work maintains in its own transaction. These tests write in random
sequences — assessments recorded, amended, moved, unlinked and voided; doses given and
cancelled; courses created, moved and added for the same patient; rollbacks — and after each
commit compare the maintained rows with a rebuild of the same database (in a transaction
that is rolled back). Both backends.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal

import pytest
from kcoutcomes import build_hand_cohort
from kctest import counting_statements
from sqlalchemy import delete, select, text, update

from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import Unavailable
from ketaclinic.services.outcomes import summary as outcome_summary
from ketaclinic.services.outcomes.dashboard import DashboardFilters
from ketaclinic.services.outcomes.summary_sql import SUMMARY_TABLES
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

T0 = dt.datetime(2026, 1, 5, 9, 0)
COLUMNS = {
    "course_dose_summary": "course_id, patient_id, first_dose_at, eoi_at, next_start, "
                           "doses_given, dose_mg_total, mg_first_day, mg_last_day",
    "course_outcome_summary": "course_id, instrument_id, baseline, first_response_at, "
                              "relapse_origin_at, score_relapse_at, last_after_response_at",
    "course_outcome_timepoints": "course_id, instrument_id, timepoint, total, responded, "
                                 "remitted",
}


def _snapshot(conn) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    out = {}
    for table in SUMMARY_TABLES:
        rows = conn.execute(text(f"SELECT {COLUMNS[table]} FROM {table}")).all()
        out[table] = sorted(tuple(None if v is None else str(Decimal(str(v)).normalize())
                                  if isinstance(v, Decimal | float) else str(v) for v in r)
                            for r in rows)
    return out


def maintained_and_rebuilt(services) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    with services.db.engine.connect() as conn:
        maintained = _snapshot(conn)
        trans = conn.begin() if not conn.in_transaction() else conn.get_transaction()
        try:
            outcome_summary.rebuild(conn)
            rebuilt = _snapshot(conn)
        finally:
            trans.rollback()
    return maintained, rebuilt


# ---------------------------------------------------------------------------------------------
# Random writes
# ---------------------------------------------------------------------------------------------


class World:
    """Random writes through units of work, as the services and the demo make them."""

    def __init__(self, services, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
        self.db = services.db
        self.rng = rng

    def _ids(self, s, model) -> list[int]:  # type: ignore[no-untyped-def]
        return list(s.execute(select(model.id).order_by(model.id)).scalars())

    def new_patient_course(self, s) -> None:  # type: ignore[no-untyped-def]
        p = Patient(mrn=f"S-{uuid.uuid4().hex[:8]}", family_name="Sum", given_name="Mary",
                    search_name="mary sum", birth_date=dt.date(1975, 5, 5), sex="female",
                    created_at=T0, updated_at=T0)
        s.add(p)
        s.flush()
        self._course_for(s, p.id)

    def second_course(self, s) -> None:  # type: ignore[no-untyped-def]
        pids = self._ids(s, Patient)
        if pids:
            self._course_for(s, self.rng.choice(pids))

    def _course_for(self, s, pid: int) -> None:  # type: ignore[no-untyped-def]
        rng = self.rng
        start = T0 + dt.timedelta(days=rng.randrange(0, 200))
        treatment = rng.choice(["ketamine-iv", "esketamine"])
        c = Course(patient_id=pid, template_id="t", treatment=treatment, status="active",
                   start_date=start.date(), created_at=T0, updated_at=T0)
        s.add(c)
        s.flush()
        for n in range(rng.randint(0, 5)):
            given = rng.random() < 0.8
            when = start + dt.timedelta(days=2 * n, minutes=rng.randrange(300))
            s.add(TreatmentSession(
                patient_id=pid, course_id=c.id, number=n + 1,
                phase=rng.choice(["induction", "induction", "maintenance"]),
                treatment=treatment, status="discharged" if given else "planned",
                planned_date=when.date(), dose_started_at=when if given else None,
                dose_mg=Decimal(rng.choice([35, 56, 40])) if rng.random() < 0.9 else None,
                route="iv", created_at=T0, updated_at=T0))

    def score(self, s) -> None:  # type: ignore[no-untyped-def]
        rng = self.rng
        cids = self._ids(s, Course)
        if not cids:
            return
        c = s.get(Course, rng.choice(cids))
        # baselines need a syndromal score in the 14 days before the first dose (issue 13):
        # some scores fall there, some in the first weeks of the course, the rest anywhere
        r = rng.random()
        hours = (rng.randrange(-24 * 12, 12) if r < 0.3 else
                 rng.randrange(24, 24 * 40) if r < 0.55 else
                 rng.randrange(-24 * 35, 24 * 200))
        when = dt.datetime.combine(c.start_date, dt.time(9)) + dt.timedelta(hours=hours)
        instrument = rng.choice(["phq9", "phq9", "madrs", "gad7"])
        total = rng.randint(20, 34) if r < 0.3 else rng.randint(0, 27)
        s.add(Assessment(patient_id=c.patient_id, course_id=c.id if rng.random() < 0.7 else None,
                         instrument_id=instrument, administered_at=when,
                         total=Decimal(total) if rng.random() < 0.95 else None,
                         created_at=T0))

    def followed_course(self, s) -> None:  # type: ignore[no-untyped-def]
        """A syndromal score shortly before the course starts and a few after it, on one
        instrument: the shape that gives a baseline and timepoint rows (issue 13 rules)."""
        rng = self.rng
        cids = self._ids(s, Course)
        if not cids:
            return
        c = s.get(Course, rng.choice(cids))
        start = dt.datetime.combine(c.start_date, dt.time(9))
        instrument = rng.choice(["phq9", "madrs"])
        points = [(-rng.randrange(1, 24 * 13), rng.randint(20, 34))] + [
            (rng.randrange(24, 24 * 100), rng.randint(0, 27)) for _ in range(rng.randint(1, 4))]
        for hours, total in points:
            s.add(Assessment(patient_id=c.patient_id, course_id=c.id, instrument_id=instrument,
                             administered_at=start + dt.timedelta(hours=hours),
                             total=Decimal(total), created_at=T0))

    def amend_score(self, s) -> None:  # type: ignore[no-untyped-def]
        aids = self._ids(s, Assessment)
        if aids:
            a = s.get(Assessment, self.rng.choice(aids))
            choice = self.rng.randrange(3)
            if choice == 0:
                a.total = Decimal(self.rng.randint(0, 27))
            elif choice == 1:
                a.administered_at = a.administered_at + dt.timedelta(days=self.rng.randint(-9, 9))
            else:
                a.course_id = None if a.course_id is not None else self._any_course_of(
                    s, a.patient_id)

    def _any_course_of(self, s, pid: int) -> int | None:  # type: ignore[no-untyped-def]
        ids = list(s.execute(select(Course.id).where(Course.patient_id == pid)).scalars())
        return self.rng.choice(ids) if ids else None

    def void_score(self, s) -> None:  # type: ignore[no-untyped-def]
        aids = self._ids(s, Assessment)
        if aids:
            s.delete(s.get(Assessment, self.rng.choice(aids)))

    def bulk_amend(self, s) -> None:  # type: ignore[no-untyped-def]
        """An ORM bulk UPDATE through the session (no objects loaded)."""
        aids = self._ids(s, Assessment)
        if aids:
            picked = self.rng.sample(aids, min(3, len(aids)))
            s.execute(update(Assessment).where(Assessment.id.in_(picked)).values(
                total=Decimal(self.rng.randint(0, 27)),
                course_id=None if self.rng.random() < 0.3 else Assessment.course_id))

    def bulk_void(self, s) -> None:  # type: ignore[no-untyped-def]
        """An ORM bulk DELETE through the session."""
        aids = self._ids(s, Assessment)
        if aids:
            s.execute(delete(Assessment).where(Assessment.id == self.rng.choice(aids)))

    def dose_change(self, s) -> None:  # type: ignore[no-untyped-def]
        sids = self._ids(s, TreatmentSession)
        if not sids:
            return
        row = s.get(TreatmentSession, self.rng.choice(sids))
        if row.dose_started_at is None:
            row.dose_started_at = dt.datetime.combine(row.planned_date, dt.time(10))
            row.status = "discharged"
        else:
            row.status = self.rng.choice(["cancelled", "missed", "discharged"])

    def move_course(self, s) -> None:  # type: ignore[no-untyped-def]
        cids = self._ids(s, Course)
        if cids:
            c = s.get(Course, self.rng.choice(cids))
            c.start_date = c.start_date + dt.timedelta(days=self.rng.randint(-40, 40))
            c.treatment = self.rng.choice(["ketamine-iv", "esketamine"])

    def step(self) -> str:
        actions = [self.new_patient_course, self.second_course, self.score, self.score,
                   self.score, self.followed_course, self.amend_score, self.void_score,
                   self.bulk_amend, self.bulk_void, self.dose_change, self.move_course]
        n = self.rng.randint(1, 4)
        picked = [self.rng.choice(actions) for _ in range(n)]
        rollback = self.rng.random() < 0.1
        try:
            with self.db.transaction() as s:
                for action in picked:
                    action(s)
                    if self.rng.random() < 0.5:
                        s.flush()
                if rollback:
                    raise RuntimeError("rolled back on purpose")
        except RuntimeError:
            pass
        return ", ".join(a.__name__ for a in picked) + (" (rolled back)" if rollback else "")


@pytest.mark.parametrize("seed", [3, 17])
def test_the_maintained_summary_equals_a_rebuild_after_random_writes(services, seed):
    world = World(services, random.Random(seed))
    for _ in range(8):
        with services.db.transaction() as s:
            world.new_patient_course(s)
    history = []
    seen = {table: 0 for table in SUMMARY_TABLES}
    for _ in range(60):
        history.append(world.step())
        maintained, rebuilt = maintained_and_rebuilt(services)
        assert maintained == rebuilt, f"after: {history[-3:]}"
        seen = {t: max(n, len(maintained[t])) for t, n in seen.items()}
    assert all(seen.values()), f"the writes never produced rows in some table: {seen}"


def test_the_demo_written_through_the_services_keeps_the_summary_in_step(demo_cohort):
    """The shared 40-patient demo (tests/conftest.py), seeded through the services once."""
    maintained, rebuilt = maintained_and_rebuilt(demo_cohort)
    assert maintained == rebuilt
    dash = demo_cohort.outcomes.dashboard(SYSTEM, DashboardFilters())
    assert dash.outcomes and sum(r.courses for r in dash.outcomes) > 0


def test_a_rolled_back_write_leaves_the_summary_unchanged(services):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    before, _ = maintained_and_rebuilt(services)
    with pytest.raises(RuntimeError), services.db.transaction() as s:
        a = s.execute(select(Assessment).order_by(Assessment.id)).scalars().first()
        a.total = Decimal(0)
        s.flush()
        raise RuntimeError("abandon")
    after, rebuilt = maintained_and_rebuilt(services)
    assert after == before == rebuilt


def test_a_stale_summary_is_refused_until_it_is_rebuilt(services):
    with services.db.transaction() as s:
        build_hand_cohort(s)
        s.execute(text("INSERT INTO outcome_summary_state (id, fingerprint) "
                       "VALUES (1, 'pending')"))
    with pytest.raises(Unavailable, match="rebuild-summary"):
        services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="phq9"))
    counts = outcome_summary.ensure_current(services.db, T0)
    assert counts is not None and counts["course_outcome_timepoints"] > 0
    assert outcome_summary.ensure_current(services.db, T0) is None
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters(instrument="phq9"))
    assert dash.relapse_subjects == 2  # A and B (C's induction has not ended)


def test_raw_sql_through_the_session_marks_the_summary_stale(services):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    with services.db.transaction() as s:
        s.execute(text("UPDATE assessments SET total = 0"))
    with pytest.raises(Unavailable):
        services.outcomes.dashboard(SYSTEM, DashboardFilters())
    services.outcomes.rebuild_summary(SYSTEM)
    maintained, rebuilt = maintained_and_rebuilt(services)
    assert maintained == rebuilt
    assert services.outcomes.dashboard(SYSTEM, DashboardFilters()).relapse_subjects == 0


def test_a_commit_refreshes_the_summary_with_a_fixed_number_of_statements(services):
    def statements_for(n_courses: int) -> int:
        with services.db.transaction() as s:
            ids = [build_hand_cohort(s, family_prefix=f"W{n_courses}x{i}")
                   for i in range(n_courses)]
        with counting_statements(services.db.engine) as sent, services.db.transaction() as s:
            for group in ids:
                for pid in group.values():
                    s.add(Assessment(patient_id=pid, instrument_id="phq9", total=Decimal(3),
                                     administered_at=T0 + dt.timedelta(days=29), created_at=T0))
        return sent.n

    one, many = statements_for(1), statements_for(8)
    inserts = 4 * 8 - 4 * 1  # the assessments themselves may be sent one by one
    assert many - one <= inserts


def test_the_rebuild_command_repairs_a_summary_that_a_bulk_load_bypassed(services, capsys):
    from kctest import TEST_SECRET

    from ketaclinic.cli import main
    from ketaclinic.store.tables import AuditEvent

    with services.db.transaction() as s:
        build_hand_cohort(s)
    with services.db.engine.begin() as conn:  # a raw bulk write: no unit of work, no refresh
        conn.execute(text("DELETE FROM course_outcome_timepoints"))
    maintained, rebuilt = maintained_and_rebuilt(services)
    assert maintained != rebuilt
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATABASE_URL": services.db.engine.url.render_as_string(
               hide_password=False)}
    assert main(["outcomes", "rebuild-summary", "--json"], environ=env) == 0
    # A: eoi, 1m, 3m; B: eoi, 1m; C: 1m (PHQ-9 never feeds the 24-hour timepoint)
    assert '"course_outcome_timepoints": 6' in capsys.readouterr().out
    maintained, rebuilt = maintained_and_rebuilt(services)
    assert maintained == rebuilt
    with services.db.transaction() as s:
        actions = list(s.execute(select(AuditEvent.action)).scalars())
    assert "outcome_summary.rebuild" in actions


def test_two_writers_to_one_course_at_once_leave_a_consistent_summary(services):
    """The first writer's refresh holds the course; the second waits and then recomputes with
    the first writer's score committed (PostgreSQL locks the course rows; SQLite serialises
    writers)."""
    import threading

    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
    with services.db.transaction() as s:
        course_id = s.execute(select(Course.id).where(Course.patient_id == ids["A"])).scalar()

    def score(s, day: int, total: int) -> None:  # type: ignore[no-untyped-def]
        s.add(Assessment(patient_id=ids["A"], course_id=course_id, instrument_id="phq9",
                         total=Decimal(total), administered_at=T0 + dt.timedelta(days=day),
                         created_at=T0))

    first = services.db.session_factory()
    score(first, 60, 19)
    first.flush()
    outcome_summary.refresh_courses(first, [course_id])  # holds the course until commit
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with services.db.transaction() as s:
                score(s, 67, 20)  # with day 60: two relapse-level scores 7 days apart
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join(timeout=1.0)  # it cannot finish while the first writer holds the course
    first.commit()
    first.close()
    thread.join(timeout=60)
    assert not thread.is_alive() and errors == []
    maintained, rebuilt = maintained_and_rebuilt(services)
    assert maintained == rebuilt


def test_scores_recorded_at_the_same_instant_are_ordered_by_recording(services):
    """Baseline: the last recorded of two simultaneous pre-dose scores; a timepoint: the first
    recorded of two equally close ones — as the pure core picks them from scores in recording
    order — whether the course is refreshed alone or rebuilt with all others."""
    with services.db.transaction() as s:
        ids = build_hand_cohort(s)
    with services.db.transaction() as s:
        course_id = s.execute(select(Course.id).where(Course.patient_id == ids["C"])).scalar()
        for total in (11, 17):  # C's baseline was 18 at day -1, 09:00: now 17 wins
            s.add(Assessment(patient_id=ids["C"], course_id=course_id, instrument_id="phq9",
                             total=Decimal(total), administered_at=T0 - dt.timedelta(hours=2),
                             created_at=T0))
        for total in (2, 9):  # 3 months after the first dose: 2 was recorded first
            s.add(Assessment(patient_id=ids["C"], course_id=course_id, instrument_id="phq9",
                             total=Decimal(total), administered_at=T0 + dt.timedelta(days=91),
                             created_at=T0))
    maintained, rebuilt = maintained_and_rebuilt(services)
    assert maintained == rebuilt
    with services.db.engine.connect() as conn:
        baseline = conn.execute(text("SELECT baseline FROM course_outcome_summary WHERE "
                                     "course_id = :c"), {"c": course_id}).scalar()
        at_3m = conn.execute(text("SELECT total FROM course_outcome_timepoints WHERE "
                                  "course_id = :c AND timepoint = '3m'"),
                             {"c": course_id}).scalar()
    assert (float(baseline), float(at_3m)) == (17.0, 2.0)
