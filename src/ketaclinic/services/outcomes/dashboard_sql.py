"""SQL for the clinic dashboard (SQLite and PostgreSQL).

Every statement here is a fixed number of round trips whatever the cohort size. The per-course
work (anchors, baselines, the score at each timepoint, first response, relapse by scores) is
not redone per request: the statements below read the outcome summary tables, which
:mod:`ketaclinic.services.outcomes.summary` keeps in step with every write (its SQL, with the
window functions, is in :mod:`ketaclinic.services.outcomes.summary_sql`). What is left here is
GROUP BY over one row per course, joins to the filters' columns and the small event tables.
The few dialect differences (hours between two timestamps, a date minus N days) are isolated in
:class:`Dialect`.

Course ↔ assessment linkage: an assessment belongs to a course when its ``course_id`` says so,
or, when it has no ``course_id``, when it is the same patient's and lies between
``start_date − BASELINE_LOOKBACK_DAYS`` and the start of that patient's next course.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ketaclinic.clinical.cohort import Timepoint

# grade U project default: how far before a course's start an unlinked score is still linked to
# it; the baseline itself must lie in the criteria's baseline window (14 days before the first
# dose, clinical/outcomes.py and data/outcomes/outcome_config.json)
BASELINE_LOOKBACK_DAYS = 30
DONE_SESSION = "s.dose_started_at IS NOT NULL AND s.status NOT IN ('cancelled', 'missed')"


@dataclass(frozen=True)
class Dialect:
    name: str

    def hours_between(self, later: str, earlier: str) -> str:
        if self.name == "postgresql":
            return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 3600.0)"
        return f"((julianday({later}) - julianday({earlier})) * 24.0)"

    def date_minus_days(self, date_expr: str, days: int) -> str:
        if self.name == "postgresql":
            return f"({date_expr} - {int(days)})"
        return f"date({date_expr}, '-{int(days)} days')"

    def days_between(self, later_ts: str, earlier_ts: str) -> str:
        """Calendar days between the dates of two timestamps."""
        if self.name == "postgresql":
            return f"(CAST({later_ts} AS DATE) - CAST({earlier_ts} AS DATE))"
        return f"(julianday(date({later_ts})) - julianday(date({earlier_ts})))"

    def day_of(self, ts_expr: str) -> str:
        if self.name == "postgresql":
            return f"CAST({ts_expr} AS DATE)"
        return f"date({ts_expr})"


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _num(value: float) -> str:
    return repr(float(value))


def course_filter_sql(has_from: bool, has_to: bool, has_treatment: bool,
                      has_clinician: bool) -> str:
    """WHERE clause over ``courses c`` for the dashboard filters (bound parameters)."""
    parts = ["1 = 1"]
    if has_from:
        parts.append("c.start_date >= :date_from")
    if has_to:
        parts.append("c.start_date <= :date_to")
    if has_treatment:
        parts.append("c.treatment = :treatment")
    if has_clinician:
        parts.append("c.created_by = :clinician")
    return " AND ".join(parts)


def timepoint_cte(timepoints: Sequence[Timepoint]) -> str:
    rows = " UNION ALL ".join(
        f"SELECT {_lit(t.label)} AS label, {i} AS ord, {_lit(t.anchor)} AS anchor, "
        f"{_num(t.target_h.value)} AS target_h, {_num(t.window_lo_h.value)} AS lo_h, "
        f"{_num(t.window_hi_h.value)} AS hi_h"
        for i, t in enumerate(timepoints)
    )
    return f"tp AS ({rows})"


def outcome_table_sql(where: str, instruments: Sequence[str]) -> str:
    """Response/remission counts by treatment × instrument × timepoint, from the summary.

    Two GROUP BYs in one statement: rows with ``timepoint`` set count the picked scores and
    their flags (``course_outcome_timepoints``); rows with ``timepoint`` NULL count the courses
    with a baseline per treatment × instrument (``course_outcome_summary``), which the caller
    repeats for every timepoint (a course without a score in a window is not assessable); rows
    with ``instrument`` NULL count, per treatment, the dosed courses without a qualifying
    baseline on any outcome instrument ("no baseline": reported, never counted). The
    summary rows carry their course's filter columns, so the filters apply to them as ``c``.
    """
    inst = ", ".join(_lit(i) for i in instruments) or "''"
    return f"""
SELECT c.treatment AS treatment, c.instrument_id AS instrument, c.timepoint AS timepoint,
       0 AS courses,
       SUM(CASE WHEN c.responded IS NOT NULL THEN 1 ELSE 0 END) AS resp_n,
       SUM(COALESCE(c.responded, 0)) AS resp_k,
       COUNT(*) AS rem_n,
       SUM(c.remitted) AS rem_k
FROM course_outcome_timepoints c
WHERE c.instrument_id IN ({inst}) AND {where}
GROUP BY c.treatment, c.instrument_id, c.timepoint
UNION ALL
SELECT c.treatment, c.instrument_id, NULL, COUNT(*), 0, 0, 0, 0
FROM course_outcome_summary c
WHERE c.instrument_id IN ({inst}) AND {where}
GROUP BY c.treatment, c.instrument_id
UNION ALL
SELECT c.treatment, NULL, NULL, COUNT(*), 0, 0, 0, 0
FROM course_dose_summary c
WHERE {where} AND NOT EXISTS (SELECT 1 FROM course_outcome_summary o
                              WHERE o.course_id = c.course_id)
GROUP BY c.treatment
"""


def relapse_sql(d: Dialect, where: str, instrument: str, event_kinds: Sequence[str]) -> str:
    """One row per course that responded at the end of induction on ``instrument``: time from
    that response assessment (the relapse origin) to relapse or censoring (calendar
    days), relapsed or not, baseline and the Cox covariates.

    The relapse origin, relapse by scores and the last score after the origin come from the
    summary. Relapse events link to a course like unlinked scores do (``course_id``, or the
    patient's event between the course start and the next course's start) and count from the
    day after the origin's day. Whichever relapse comes first is taken, an event on the day of the
    score relapse included (an event is dated midnight, as in
    :func:`ketaclinic.clinical.outcomes.evaluate_course`); without one the course is censored
    at its last score. The caller unpacks the columns in this order.
    """
    kinds = ", ".join(_lit(k) for k in event_kinds) or "''"
    resp_day = d.day_of("b.relapse_origin_at")
    inst = _lit(instrument)
    return f"""
WITH erel AS (
  SELECT b.course_id, MIN(e.occurred_on) AS event_on
  FROM course_outcome_summary b
  JOIN course_dose_summary ds ON ds.course_id = b.course_id
  JOIN courses c ON c.id = b.course_id
  JOIN clinical_events e ON e.patient_id = ds.patient_id
  WHERE b.instrument_id = {inst} AND b.relapse_origin_at IS NOT NULL AND {where}
    AND REPLACE(e.kind, '-', '_') IN ({kinds}) AND e.occurred_on > {resp_day}
    AND (e.course_id = b.course_id
         OR (e.course_id IS NULL AND e.occurred_on >= c.start_date
             AND (ds.next_start IS NULL OR e.occurred_on < ds.next_start)))
  GROUP BY b.course_id
),
r AS (
  SELECT b.course_id, b.baseline, {resp_day} AS resp_day,
         {d.day_of("COALESCE(b.last_after_response_at, b.relapse_origin_at)")} AS last_day,
         CASE WHEN erel.event_on IS NOT NULL AND (b.score_relapse_at IS NULL
                   OR erel.event_on <= {d.day_of("b.score_relapse_at")}) THEN erel.event_on
              WHEN b.score_relapse_at IS NOT NULL THEN {d.day_of("b.score_relapse_at")}
         END AS relapse_day,
         {d.day_of("ds.first_dose_at")} AS first_dose_day, ds.patient_id,
         c.treatment, c.psychotherapy, c.concurrent_antidepressant
  FROM course_outcome_summary b
  JOIN course_dose_summary ds ON ds.course_id = b.course_id
  JOIN courses c ON c.id = b.course_id
  LEFT JOIN erel ON erel.course_id = b.course_id
  WHERE b.instrument_id = {inst} AND b.relapse_origin_at IS NOT NULL AND {where}
)
SELECT r.course_id AS course_id,
       {d.days_between("COALESCE(r.relapse_day, r.last_day)", "r.resp_day")} AS duration_days,
       CASE WHEN r.relapse_day IS NULL THEN 0 ELSE 1 END AS relapsed,
       r.baseline AS baseline, r.first_dose_day AS first_dose_day, p.birth_date AS birth_date,
       r.treatment AS treatment, r.psychotherapy AS psychotherapy,
       r.concurrent_antidepressant AS antidepressant,
       CASE WHEN EXISTS (SELECT 1 FROM patient_diagnoses dx
                         WHERE dx.patient_id = r.patient_id AND dx.active = {d_true(d)}
                           AND dx.code LIKE 'F41%') THEN 1 ELSE 0 END AS comorbid_anxiety
FROM r JOIN patients p ON p.id = r.patient_id
ORDER BY r.course_id
"""


def d_true(d: Dialect) -> str:
    return "TRUE" if d.name == "postgresql" else "1"


def cards_sql(where: str) -> str:
    """Active courses, sessions this week, doses given in range (filtered); open alerts
    (unacknowledged ``clinical_alerts`` + ``chair_alerts`` without an action) and REMS forms
    not submitted and due by ``:rems_until`` (clinic-wide). One statement."""
    return f"""
SELECT
  (SELECT COUNT(*) FROM courses c WHERE c.status = 'active' AND {where}) AS active_courses,
  (SELECT COUNT(*) FROM treatment_sessions s JOIN courses c ON c.id = s.course_id
    WHERE s.planned_date >= :week_start AND s.planned_date <= :week_end
      AND s.status NOT IN ('cancelled', 'missed') AND {where}) AS sessions_week,
  (SELECT COALESCE(SUM(c.doses_given), 0) FROM course_dose_summary c
    WHERE {where}) AS doses_given,
  (SELECT COUNT(*) FROM clinical_alerts WHERE acknowledged_at IS NULL) AS open_mbc_alerts,
  (SELECT COUNT(*) FROM chair_alerts WHERE action_at IS NULL) AS open_chair_alerts,
  (SELECT COUNT(*) FROM chair_rems_forms WHERE status <> 'submitted'
    AND due_on <= :rems_until) AS rems_due
"""


def exposure_sql(d: Dialect, where: str, screen_kinds: Sequence[tuple[str, str]]) -> str:
    """Patients by cumulative mg (as float): per distinct total, how many patients and, per
    screening rule, how many of them are due (doses are standard amounts, so there are far
    fewer distinct totals than patients).

    ``screen_kinds`` are (rule kind, clinical_events.kind) pairs, e.g. ("urinary",
    "screen-urinary"). Doses of the filtered courses up to ``:as_of`` are summed. A screen is
    due, as in :func:`ketaclinic.clinical.exposure.assess_screen`, when the last screen (or,
    without one, the first dose) lies on or before ``:cutoff_<kind>`` (``:as_of`` minus the
    interval) or the mg given after it reach ``:mg_<kind>``.

    Most patients are answered from the per-course dose totals (``course_dose_summary``): when
    every dose lies on or before ``:as_of`` and each last screen is before the first dose (all
    mg count) or on/after the last dose (none do). The others — a screen between two doses, or
    a dose after ``:as_of`` — are summed dose by dose from ``treatment_sessions``.
    """
    day = d.day_of("s.dose_started_at")
    last_cols = ",\n    ".join(
        f"MAX(CASE WHEN e.kind = {_lit(ev)} THEN e.occurred_on END) AS last_{k}"
        for k, ev in screen_kinds
    ) or "NULL AS none_"
    straddles = "".join(
        f" OR (scr.last_{k} >= pe.first_dose AND scr.last_{k} < pe.last_dose)"
        for k, _ev in screen_kinds
    )
    agg_cols = "".join(
        f", scr.last_{k} AS last_{k}, CASE WHEN scr.last_{k} IS NULL OR scr.last_{k} < "
        f"pe.first_dose THEN pe.total_mg ELSE 0 END AS mg_since_{k}"
        for k, _ev in screen_kinds
    )
    dose_cols = "".join(
        f", scr.last_{k}, SUM(CASE WHEN scr.last_{k} IS NULL OR dose.d > scr.last_{k} "
        f"THEN dose.dose_mg ELSE 0 END)"
        for k, _ev in screen_kinds
    )
    out_cols = "".join(f", last_{k}, mg_since_{k}" for k, _ev in screen_kinds)
    group_cols = "".join(f", scr.last_{k}" for k, _ev in screen_kinds)
    due_cols = "".join(
        f",\n         CASE WHEN COALESCE(last_{k}, first_dose) <= :cutoff_{k} "
        f"OR mg_since_{k} >= :mg_{k} THEN 1 ELSE 0 END AS due_{k}"
        for k, _ev in screen_kinds
    )
    due_sums = "".join(f", SUM(due_{k}) AS due_{k}" for k, _ev in screen_kinds)
    return f"""
WITH scr AS (
  SELECT e.patient_id,
    {last_cols}
  FROM clinical_events e WHERE e.occurred_on <= :as_of GROUP BY e.patient_id
),
pe AS (
  SELECT c.patient_id, SUM(c.dose_mg_total) AS total_mg, MIN(c.mg_first_day) AS first_dose,
         MAX(c.mg_last_day) AS last_dose
  FROM course_dose_summary c
  WHERE c.mg_first_day IS NOT NULL AND {where}
  GROUP BY c.patient_id
),
pes AS (
  SELECT pe.patient_id, pe.total_mg, pe.first_dose{agg_cols},
         CASE WHEN pe.last_dose > :as_of{straddles} THEN 1 ELSE 0 END AS by_dose
  FROM pe LEFT JOIN scr ON scr.patient_id = pe.patient_id
),
dose AS (
  SELECT s.patient_id, s.dose_mg, {day} AS d
  FROM treatment_sessions s JOIN courses c ON c.id = s.course_id
  WHERE s.patient_id IN (SELECT pes.patient_id FROM pes WHERE pes.by_dose = 1)
    AND {DONE_SESSION} AND s.dose_mg IS NOT NULL AND {day} <= :as_of AND {where}
),
per AS (
  SELECT patient_id, total_mg, first_dose{out_cols}
  FROM pes WHERE by_dose = 0
  UNION ALL
  SELECT dose.patient_id, SUM(dose.dose_mg), MIN(dose.d){dose_cols}
  FROM dose LEFT JOIN scr ON scr.patient_id = dose.patient_id
  GROUP BY dose.patient_id{group_cols}
),
flags AS (
  SELECT total_mg{due_cols}
  FROM per
)
SELECT CAST(total_mg AS DOUBLE PRECISION) AS total_mg, COUNT(*) AS patients{due_sums}
FROM flags GROUP BY total_mg
"""
