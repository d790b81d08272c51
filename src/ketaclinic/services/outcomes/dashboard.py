"""The clinic dashboard: activity cards, outcome table, time to relapse, safety and exposure.

Where the work happens (see docs/outcomes.md, "Dashboard: what runs where"):

* **On write** (``outcome_summary.py``, SQL in ``outcome_summary_sql.py``): every commit that
  adds or changes an assessment, a treatment session or a course recomputes the summary rows of
  the courses it affects, in the same transaction: dose anchors and totals, baseline (last score
  at or before the first dose, ROW_NUMBER), the score picked at every timepoint (closest to
  target inside the window, ROW_NUMBER) with its response/remission flags, first response (MIN)
  and relapse by scores (LAG). ``ketaclinic outcomes rebuild-summary`` recomputes it all.
* **SQL per request** (``dashboard_sql.py``; a fixed number of statements whatever the cohort
  size): GROUP BY over the summary rows of the filtered courses — response/remission counts
  per treatment × instrument × timepoint, each responder's time to relapse or censoring
  (event or score relapse, whichever came first) and Cox covariates, cumulative dose per
  patient with its screening flags (the rule of
  :func:`ketaclinic.clinical.exposure.assess_screen`, checked against ``summarise_exposure``
  by tests/integration/test_outcomes_exposure_sql.py), cards.
* **Python, on aggregated rows**: Wilson intervals, age bands, the core's Kaplan–Meier
  (:func:`ketaclinic.clinical.km.kaplan_meier`) and lifelines' Cox model, the exposure median
  and buckets.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Date, Float, Integer, String, bindparam, text

from ketaclinic.clinical.cohort import (
    OutcomeRow,
    Rate,
    load_timepoints,
    proportion_ci,
    rate_per_100_sessions,
)
from ketaclinic.clinical.exposure import load_screening_rules
from ketaclinic.clinical.outcomes import (
    DEFAULT_CRITERIA,
    OutcomeCriteria,
)
from ketaclinic.clinical.survival import SurvivalSubject, survival_subject
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import InvalidInput, Unavailable
from ketaclinic.services.numbers import is_whole
from ketaclinic.services.outcomes import dashboard_sql as q
from ketaclinic.services.outcomes import summary as outcome_summary
from ketaclinic.services.outcomes.survival import (
    CoxResult,
    KMSummary,
    fit_cox_relapse,
    fit_kaplan_meier,
)

INSTRUMENTS = tuple(DEFAULT_CRITERIA)  # instruments with response/remission criteria
KM_AT_DAYS = (0, 30, 60, 90, 180, 365)
SCREEN_EVENT_KIND = {"urinary": "screen-urinary", "cognition": "screen-cognition"}
EVENT_KIND_MAP = {"hospitalisation": "hospitalisation_for_depression"}
NOT_AVAILABLE = "not available"
COX_MIN_EVENTS = 10  # grade S rule of thumb: ~10 events per variable (Peduzzi 1996)


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardFilters:
    """Date range (course start), treatment, instrument and clinician (course.created_by)."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    treatment: str | None = None
    instrument: str | None = None
    clinician_id: int | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> DashboardFilters:
        """From query parameters; a bad value raises InvalidInput naming the field."""

        def day(name: str) -> dt.date | None:
            raw = (params.get(name) or "").strip()
            if not raw:
                return None
            try:
                return dt.date.fromisoformat(raw)
            except ValueError:
                raise InvalidInput(f"{name}: must be a date like 2026-01-31") from None

        date_from, date_to = day("date_from"), day("date_to")
        if date_from and date_to and date_from > date_to:
            raise InvalidInput("date_from: must not be after date_to")
        treatment = (params.get("treatment") or "").strip() or None
        if treatment and len(treatment) > 20:
            raise InvalidInput("treatment: unknown treatment")
        instrument = (params.get("instrument") or "").strip() or None
        if instrument and instrument not in INSTRUMENTS:
            raise InvalidInput(f"instrument: must be one of {', '.join(INSTRUMENTS)}")
        raw_clin = (params.get("clinician") or "").strip()
        clinician = None
        if raw_clin:
            if not is_whole(raw_clin) or len(raw_clin) > 9:
                raise InvalidInput("clinician: must be a clinician from the list")
            clinician = int(raw_clin)
        return cls(date_from, date_to, treatment, instrument, clinician)

    def where(self) -> str:
        return q.course_filter_sql(self.date_from is not None, self.date_to is not None,
                                   self.treatment is not None, self.clinician_id is not None)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if self.date_from:
            p["date_from"] = self.date_from
        if self.date_to:
            p["date_to"] = self.date_to
        if self.treatment:
            p["treatment"] = self.treatment
        if self.clinician_id is not None:
            p["clinician"] = self.clinician_id
        return p

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in {
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "treatment": self.treatment or "",
            "instrument": self.instrument or "",
            "clinician": "" if self.clinician_id is None else str(self.clinician_id),
        }.items()}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A safety or activity figure that may depend on a table another area provides."""

    key: str
    label: str
    available: bool
    value: str = NOT_AVAILABLE
    rate: Rate | None = None
    note: str = ""


@dataclass(frozen=True)
class ExposureSummary:
    patients: int
    median_mg: float | None
    max_mg: float | None
    buckets: tuple[tuple[str, int], ...]
    due: dict[str, int]
    rule_titles: dict[str, str]
    needs_confirmation: bool


@dataclass
class Dashboard:
    filters: DashboardFilters
    as_of: dt.date
    cards: list[Metric]
    outcomes: list[OutcomeRow]
    timepoint_titles: dict[str, str]
    km_instrument: str | None
    km: KMSummary
    cox: CoxResult
    relapse_subjects: int
    exposure: ExposureSummary
    safety: list[Metric]
    treatments: list[str] = field(default_factory=list)
    clinicians: list[tuple[int, str]] = field(default_factory=list)
    # dosed courses without a qualifying baseline, per treatment (not in the outcome table)
    no_baseline: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Helpers
_PARAM_TYPES = {"date_from": Date(), "date_to": Date(), "treatment": String(),
                "clinician": Integer(), "week_start": Date(), "week_end": Date(),
                "as_of": Date(), "rems_until": Date()}


def _stmt(sql: str, params: Mapping[str, Any], types: Mapping[str, Any] | None = None,
          **columns: Any):
    known = {**_PARAM_TYPES, **(types or {})}
    t = text(sql).bindparams(*[bindparam(k, type_=known[k]) for k in params])
    return t.columns(**columns) if columns else t


def _f(x: Any) -> float | None:
    return None if x is None else float(x) if not isinstance(x, Decimal) else float(x)


def _day(v: dt.date | dt.datetime) -> dt.date:
    return v.date() if isinstance(v, dt.datetime) else v


# ---------------------------------------------------------------------------------------------
# Safety metrics (tables of the chair, dosing and MBC areas)
# ---------------------------------------------------------------------------------------------

SafetyFn = Callable[[Connection, "DashboardFilters", int, dt.date], Metric]
BP_ALERT_RULES = ("vitals.sbp_mmhg_%", "vitals.dbp_mmhg_%")  # chair check_vitals rule names


def card_open_alerts(mbc: int, chair: int) -> Metric:
    """Open alerts: unacknowledged ``clinical_alerts`` (MBC scoring) plus ``chair_alerts``
    without an action taken (vital-sign alerts). Clinic-wide: not filtered by course."""
    return Metric("open_alerts", "Open alerts", True, str(mbc + chair),
                  note=f"{mbc} score alert(s), {chair} vital-sign alert(s)")


def card_rems_due(n: int) -> Metric:
    """REMS patient monitoring forms not submitted and due within 7 days or overdue
    (``chair_rems_forms``: status <> 'submitted', due_on ≤ today + 7). Clinic-wide."""
    return Metric("rems_due", "REMS forms due (7 days)", True, str(n))


def _per_100(key: str, label: str, events: int, doses: int) -> Metric:
    r = rate_per_100_sessions(events, doses)
    value = "no sessions" if r.per_100 is None else (
        f"{r.per_100:.1f} per 100 sessions ({r.lo:.1f}–{r.hi:.1f}); {events} in {doses}")
    return Metric(key, label, True, value, r)


def _count_by_session(conn: Connection, f: DashboardFilters, table: str,
                      extra: str = "") -> int:
    # Driven from the (smaller) event table: one session lookup per event.
    sql = (f"SELECT COUNT(*) FROM {table} x WHERE EXISTS (SELECT 1 FROM treatment_sessions s "
           f"JOIN courses c ON c.id = s.course_id WHERE s.id = x.session_id AND "
           f"{f.where()}){extra}")
    return int(conn.execute(_stmt(sql, f.params()), f.params()).scalar() or 0)


def metric_adverse_events(conn: Connection, f: DashboardFilters, doses: int,
                          today: dt.date) -> Metric:
    """Adverse events per 100 sessions: ``chair_adverse_events`` of the filtered courses'
    sessions over the doses given in those courses."""
    n = _count_by_session(conn, f, "chair_adverse_events")
    return _per_100("adverse_events", "Adverse events per 100 sessions", n, doses)


def metric_bp_alerts(conn: Connection, f: DashboardFilters, doses: int,
                     today: dt.date) -> Metric:
    """Blood-pressure alerts per 100 sessions: ``chair_alerts`` whose rule is a systolic or
    diastolic threshold (``vitals.sbp_mmhg_high|low``, ``vitals.dbp_mmhg_high|low``)."""
    bp = " OR ".join(f"x.rule LIKE '{r}'" for r in BP_ALERT_RULES)
    n = _count_by_session(conn, f, "chair_alerts", f" AND ({bp})")
    return _per_100("bp_alerts", "Blood-pressure alerts per 100 sessions", n, doses)


def metric_soft_overrides(conn: Connection, f: DashboardFilters, doses: int,
                          today: dt.date) -> Metric:
    """Soft-limit override rate: of the ``dose_orders`` used by a session of the filtered
    courses (``treatment_sessions.dose_order_id``), those saved with at least one
    ``dose_overrides`` row (only soft findings can be overridden; hard findings block)."""
    sql = ("SELECT COUNT(*) AS n, SUM(CASE WHEN EXISTS (SELECT 1 FROM dose_overrides o WHERE "
           "o.dose_order_id = d.id) THEN 1 ELSE 0 END) AS k FROM dose_orders d WHERE EXISTS "
           "(SELECT 1 FROM treatment_sessions s JOIN courses c ON c.id = s.course_id "
           "WHERE s.dose_order_id = d.id AND " + f.where() + ")")
    row = conn.execute(_stmt(sql, f.params()), f.params()).one()
    p = proportion_ci(int(row.k or 0), int(row.n or 0))
    return Metric("soft_overrides", "Soft-limit overrides", True,
                  p.label(1) + " of dose orders")


SAFETY_METRICS: list[SafetyFn] = [metric_adverse_events, metric_bp_alerts, metric_soft_overrides]


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------


class DashboardService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def compute(self, actor: Actor, filters: DashboardFilters) -> Dashboard:
        """Everything on the dashboard; aggregates only (no names, MRNs or patient ids)."""
        work = self.ctx.unit_of_work(actor, "dashboard.view", perm=Perm.DASHBOARD)
        dialect = q.Dialect(self.ctx.db.read_engine.dialect.name)
        # The analytic read goes to the read replica when one is configured; the audit row
        # below is a write, so it goes to the primary.
        with work.analytics() as conn:
            if not outcome_summary.is_current(conn):
                raise Unavailable("the outcome summary was built with other outcome rules; "
                                  "run `ketaclinic outcomes rebuild-summary` (or `ketaclinic "
                                  "migrate`)")
            if dialect.name == "postgresql":
                # Aggregates over ~10^5 summary rows: JIT compilation costs more than it
                # saves, and the default work_mem makes the hash aggregates spill to disk.
                # Both are local to this read-only transaction (SET LOCAL, in one statement).
                conn.execute(text("SELECT set_config('jit', 'off', true), "
                                  "set_config('work_mem', '64MB', true)"))
            dash = self._compute(conn, dialect, filters, work.today)
        with work as uow:
            uow.audit(detail=_filter_detail(filters))
        return dash

    def _compute(self, conn: Connection, d: q.Dialect, f: DashboardFilters,
                 today: dt.date) -> Dashboard:
        where, params = f.where(), f.params()
        week_start = today - dt.timedelta(days=today.weekday())
        cp = {**params, "week_start": week_start, "week_end": week_start + dt.timedelta(days=6),
              "rems_until": today + dt.timedelta(days=7)}
        c = conn.execute(_stmt(q.cards_sql(where), cp), cp).one()
        doses = int(c.doses_given or 0)
        cards = [
            Metric("active_courses", "Active courses", True, str(int(c.active_courses or 0))),
            Metric("sessions_week", "Sessions this week", True, str(int(c.sessions_week or 0))),
            card_open_alerts(int(c.open_mbc_alerts or 0), int(c.open_chair_alerts or 0)),
            card_rems_due(int(c.rems_due or 0)),
        ]

        criteria = [DEFAULT_CRITERIA[i] for i in ([f.instrument] if f.instrument else INSTRUMENTS)]
        timepoints = load_timepoints()
        rows, no_baseline = self._outcome_rows(conn, d, f, criteria, timepoints)
        km_instrument = f.instrument or _busiest_instrument(rows)
        if km_instrument:
            km, cox, n_subjects = self._relapse(conn, d, f, DEFAULT_CRITERIA[km_instrument])
        else:
            km, cox, n_subjects = (KMSummary(False, 0, 0, reason="no responders"),
                                   fit_cox_relapse([]), 0)
        exposure = self._exposure(conn, d, f, today)
        safety = [fn(conn, f, doses, today) for fn in SAFETY_METRICS]
        treatments = [r[0] for r in conn.execute(
            text("SELECT DISTINCT treatment FROM courses ORDER BY treatment"))]
        clinicians = [(int(r[0]), str(r[1])) for r in conn.execute(text(
            "SELECT id, full_name FROM users WHERE role IN ('prescriber', 'admin') "
            "ORDER BY full_name"))]
        return Dashboard(
            filters=f, as_of=today, cards=cards, outcomes=rows,
            timepoint_titles={t.label: t.title for t in timepoints},
            km_instrument=km_instrument, km=km, cox=cox, relapse_subjects=n_subjects,
            exposure=exposure, safety=safety, treatments=treatments, clinicians=clinicians,
            no_baseline=no_baseline,
        )

    # --- outcome table (SQL over the summary) ---------------------------------------------
    def _outcome_rows(self, conn, d, f, criteria,
                      timepoints) -> tuple[list[OutcomeRow], dict[str, int]]:
        """The outcome table's rows and, per treatment, the dosed courses without a qualifying
        baseline (reported as "no baseline", not counted)."""
        sql = q.outcome_table_sql(f.where(), [c.instrument for c in criteria])
        courses: dict[tuple[str, str], int] = {}
        counts: dict[tuple[str, str, str], tuple[int, int, int, int]] = {}
        no_baseline: dict[str, int] = {}
        for r in conn.execute(_stmt(sql, f.params()), f.params()):
            if r.instrument is None:
                no_baseline[str(r.treatment)] = int(r.courses)
            elif r.timepoint is None:
                courses[(r.treatment, r.instrument)] = int(r.courses)
            else:
                counts[(r.treatment, r.instrument, r.timepoint)] = (
                    int(r.resp_k or 0), int(r.resp_n or 0), int(r.rem_k or 0), int(r.rem_n or 0))
        out = []
        for (treatment, instrument), n in sorted(courses.items()):
            for tp in timepoints:
                rk, rn, mk, mn = counts.get((treatment, instrument, tp.label), (0, 0, 0, 0))
                out.append(OutcomeRow(treatment, instrument, tp.label, n, proportion_ci(rk, rn),
                                      proportion_ci(mk, mn)))
        return out, dict(sorted(no_baseline.items()))

    # --- time to relapse (SQL rows, one linear pass through the pure core) ------------------
    def _relapse(self, conn: Connection, d: q.Dialect, f: DashboardFilters,
                 crit: OutcomeCriteria) -> tuple[KMSummary, CoxResult, int]:
        subjects = [s for _cid, s in relapse_subjects(conn, d, f, crit)]
        km = fit_kaplan_meier([s.duration_days for s in subjects],
                              [s.relapsed for s in subjects], at_times=KM_AT_DAYS)
        events = sum(1 for s in subjects if s.relapsed)
        if events < COX_MIN_EVENTS:
            cox = CoxResult(False, len(subjects), events, reason=(
                f"not estimated: {events} relapse(s); the dashboard fits the model from "
                f"{COX_MIN_EVENTS} relapses on (about 10 events per covariate, Peduzzi et al., "
                "J Clin Epidemiol 1996)"))
        else:
            cox = fit_cox_relapse(subjects)
        return km, cox, len(subjects)

    # --- exposure (SQL aggregates and flags) -----------------------------------------------
    def _exposure(self, conn: Connection, d: q.Dialect, f: DashboardFilters,
                  today: dt.date) -> ExposureSummary:
        rules = load_screening_rules()
        kinds = [(r.kind, SCREEN_EVENT_KIND.get(r.kind, f"screen-{r.kind}")) for r in rules]
        params: dict[str, Any] = {**f.params(), "as_of": today}
        types: dict[str, Any] = {}
        for r in rules:  # assess_screen's "due": days since ≥ interval, or mg since ≥ trigger
            params[f"cutoff_{r.kind}"] = today - dt.timedelta(
                days=math.ceil(float(r.interval_days.value)))
            params[f"mg_{r.kind}"] = float(r.exposure_mg_since_last.value)
            types.update({f"cutoff_{r.kind}": Date(), f"mg_{r.kind}": Float()})
        stmt = _stmt(q.exposure_sql(d, f.where(), kinds), params, types)
        due = {r.kind: 0 for r in rules}
        # columns: total_mg, patients with that total, then per rule how many are due
        counts: list[tuple[float, int]] = []
        for row in conn.execute(stmt, params).all():
            counts.append((float(row[0] or 0), int(row[1])))
            for i, rule in enumerate(rules, 2):
                due[rule.kind] += int(row[i] or 0)
        counts.sort()
        edges = ((0, 500), (500, 1000), (1000, 2000), (2000, float("inf")))
        buckets = tuple(
            (f"{lo:g}–{hi:g} mg" if hi != float("inf") else f"≥ {lo:g} mg",
             sum(n for t, n in counts if lo <= t < hi))
            for lo, hi in edges
        )
        patients = sum(n for _t, n in counts)
        return ExposureSummary(
            patients=patients,
            median_mg=median_of_counts(counts) if counts else None,
            max_mg=counts[-1][0] if counts else None,
            buckets=buckets, due=due, rule_titles={r.kind: r.title for r in rules},
            needs_confirmation=any(r.interval_days.needs_confirmation for r in rules),
        )


def median_of_counts(counts: list[tuple[float, int]]) -> float:
    """``statistics.median`` of the values ``counts`` lists as sorted (value, how many) pairs."""
    n = sum(k for _v, k in counts)

    def at(i: int) -> float:  # the i-th value (0-based) of the expanded, sorted list
        for v, k in counts:
            if i < k:
                return v
            i -= k
        raise IndexError(i)

    return at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2


def relapse_subjects(conn: Connection, d: q.Dialect, f: DashboardFilters,
                     crit: OutcomeCriteria) -> list[tuple[int, SurvivalSubject]]:
    """(course id, survival subject) for every responder course: one SQL statement."""
    kinds = sorted(set(crit.relapse_events) | {k for k, v in EVENT_KIND_MAP.items()
                                               if v in crit.relapse_events})
    stmt = _stmt(q.relapse_sql(d, f.where(), crit.instrument, kinds), f.params(),
                 first_dose_day=Date, birth_date=Date, treatment=String)
    return [(int(course_id), survival_subject(
        duration, bool(relapsed), psychotherapy=bool(psychotherapy),
        antidepressant=bool(antidepressant), comorbid_anxiety=bool(comorbid_anxiety),
        baseline_severity=float(baseline), birth_date=birth_date,
        first_dose_day=first_dose_day, treatment=treatment,
    )) for (course_id, duration, relapsed, baseline, first_dose_day, birth_date, treatment,
            psychotherapy, antidepressant, comorbid_anxiety
            ) in conn.execute(stmt, f.params()).all()]


def event_kind(kind: str) -> str:
    """clinical_events.kind → the relapse-event vocabulary of clinical/outcomes.py."""
    k = str(kind).replace("-", "_")
    return EVENT_KIND_MAP.get(k, k)


def _busiest_instrument(rows: list[OutcomeRow]) -> str | None:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.instrument] = counts.get(r.instrument, 0) + r.response.k
    best = sorted(counts.items(), key=lambda kv: (-kv[1], INSTRUMENTS.index(kv[0])))
    return best[0][0] if best else None


def _filter_detail(f: DashboardFilters) -> str:
    parts = [f"{k}={v}" for k, v in f.as_query().items() if v]
    return ("filters: " + ", ".join(parts))[:500] if parts else "no filters"
