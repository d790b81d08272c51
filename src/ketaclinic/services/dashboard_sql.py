"""SQL for the clinic dashboard (SQLite and PostgreSQL).

Every statement here is a fixed number of round trips whatever the cohort size: CTEs, window
functions and GROUP BY do the per-course work where the data lives. The few dialect differences
(hours between two timestamps, a date minus N days) are isolated in :class:`Dialect`.

Course ↔ assessment linkage: an assessment belongs to a course when its ``course_id`` says so,
or, when it has no ``course_id``, when it is the same patient's and lies between
``start_date − BASELINE_LOOKBACK_DAYS`` and the start of that patient's next course.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ketaclinic.clinical.cohort import Timepoint
from ketaclinic.clinical.outcomes import OutcomeCriteria

BASELINE_LOOKBACK_DAYS = 30  # grade U project default: a baseline older than this is not used
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


def course_ctes(d: Dialect, where: str, instruments: Sequence[str],
                with_hours: bool = False) -> str:
    """CTEs ``fc`` (filtered courses with dose anchors) and ``ca`` (their assessments).

    ``fc``: one row per filtered course that has at least one given dose, with its first dose,
    the end-of-induction anchor (the last induction dose once no induction session is still
    pending) and the start of the patient's next course (window function LEAD).
    ``ca``: the course's scores on ``instruments``, with the anchors repeated (and, with
    ``with_hours``, hours since the first dose ``h_first`` and since the end of induction
    ``h_eoi``, computed once per row).
    """
    hours = (f",\n         {d.hours_between('a.administered_at', 'fc.first_dose_at')} AS h_first"
             f",\n         {d.hours_between('a.administered_at', 'fc.eoi_at')} AS h_eoi"
             if with_hours else "")
    inst = ", ".join(_lit(i) for i in instruments) or "''"
    lookback = d.date_minus_days("fc.start_date", BASELINE_LOOKBACK_DAYS)
    return f"""
allc AS (
  SELECT c.id, c.patient_id, c.treatment, c.status, c.start_date, c.created_by,
         c.psychotherapy, c.concurrent_antidepressant,
         LEAD(c.start_date) OVER (PARTITION BY c.patient_id ORDER BY c.start_date, c.id)
           AS next_start
  FROM courses c
),
sd AS (
  SELECT s.course_id,
         MIN(CASE WHEN {DONE_SESSION} THEN s.dose_started_at END) AS first_dose_at,
         MAX(CASE WHEN {DONE_SESSION} AND s.phase = 'induction' THEN s.dose_started_at END)
           AS last_induction_at,
         SUM(CASE WHEN s.phase = 'induction' AND s.dose_started_at IS NULL
                   AND s.status NOT IN ('cancelled', 'missed') THEN 1 ELSE 0 END)
           AS induction_pending
  FROM treatment_sessions s
  WHERE s.course_id IS NOT NULL
  GROUP BY s.course_id
),
fc AS (
  SELECT c.id AS course_id, c.patient_id, c.treatment, c.start_date, c.next_start,
         c.psychotherapy, c.concurrent_antidepressant, sd.first_dose_at,
         CASE WHEN sd.induction_pending = 0 THEN sd.last_induction_at END AS eoi_at
  FROM allc c JOIN sd ON sd.course_id = c.id
  WHERE sd.first_dose_at IS NOT NULL AND {where}
),
ca AS (
  SELECT fc.course_id, fc.treatment, a.instrument_id, a.administered_at, a.total,
         fc.first_dose_at, fc.eoi_at{hours}
  FROM fc JOIN assessments a ON a.course_id = fc.course_id
  WHERE a.total IS NOT NULL AND a.instrument_id IN ({inst})
  UNION ALL
  SELECT fc.course_id, fc.treatment, a.instrument_id, a.administered_at, a.total,
         fc.first_dose_at, fc.eoi_at{hours}
  FROM fc JOIN assessments a ON a.patient_id = fc.patient_id
  WHERE a.course_id IS NULL AND a.total IS NOT NULL AND a.instrument_id IN ({inst})
    AND a.administered_at >= {lookback}
    AND (fc.next_start IS NULL OR a.administered_at < fc.next_start)
),
base AS (
  SELECT course_id, instrument_id, total AS baseline FROM (
    SELECT course_id, instrument_id, total,
           ROW_NUMBER() OVER (PARTITION BY course_id, instrument_id
                              ORDER BY administered_at DESC) AS rn
    FROM ca WHERE administered_at <= first_dose_at
  ) b0 WHERE rn = 1
)"""


def criteria_cte(criteria: Sequence[OutcomeCriteria]) -> str:
    rows = " UNION ALL ".join(
        f"SELECT {_lit(c.instrument)} AS instrument_id, {_num(c.remission_max.value)} AS "
        f"remission_max, {_num(c.response_fraction.value)} AS response_fraction"
        for c in criteria
    )
    return f"cr AS ({rows})"


def timepoint_cte(timepoints: Sequence[Timepoint]) -> str:
    rows = " UNION ALL ".join(
        f"SELECT {_lit(t.label)} AS label, {i} AS ord, {_lit(t.anchor)} AS anchor, "
        f"{_num(t.target_h.value)} AS target_h, {_num(t.window_lo_h.value)} AS lo_h, "
        f"{_num(t.window_hi_h.value)} AS hi_h"
        for i, t in enumerate(timepoints)
    )
    return f"tp AS ({rows})"


def outcome_table_sql(d: Dialect, where: str, criteria: Sequence[OutcomeCriteria],
                      timepoints: Sequence[Timepoint]) -> str:
    """Response/remission counts by treatment × instrument × timepoint (one statement).

    For each course with a baseline, the score closest to each timepoint's target inside its
    window (ties: the earlier) is picked by ROW_NUMBER; response = fall ≥ fraction × baseline
    (baseline > 0), remission = total ≤ remission_max.
    """
    hours = "CASE WHEN tp.anchor = 'first_dose' THEN ca.h_first ELSE ca.h_eoi END"
    return f"""
WITH {course_ctes(d, where, [c.instrument for c in criteria], with_hours=True)},
{criteria_cte(criteria)},
{timepoint_cte(timepoints)},
tpa AS (
  SELECT course_id, instrument_id, label, total FROM (
    SELECT ca.course_id, ca.instrument_id, tp.label, ca.total,
           ROW_NUMBER() OVER (PARTITION BY ca.course_id, ca.instrument_id, tp.label
                              ORDER BY ABS({hours} - tp.target_h), ca.administered_at) AS rn
    FROM ca JOIN tp ON ({hours}) BETWEEN tp.lo_h AND tp.hi_h
    WHERE ca.administered_at > ca.first_dose_at
  ) t0 WHERE rn = 1
)
SELECT fc.treatment AS treatment, b.instrument_id AS instrument, tp.label AS timepoint,
       MIN(tp.ord) AS ord,
       COUNT(*) AS courses,
       SUM(CASE WHEN t.total IS NOT NULL AND b.baseline > 0 THEN 1 ELSE 0 END) AS resp_n,
       SUM(CASE WHEN t.total IS NOT NULL AND b.baseline > 0
                 AND (b.baseline - t.total) >= cr.response_fraction * b.baseline
                THEN 1 ELSE 0 END) AS resp_k,
       SUM(CASE WHEN t.total IS NOT NULL THEN 1 ELSE 0 END) AS rem_n,
       SUM(CASE WHEN t.total IS NOT NULL AND t.total <= cr.remission_max
                THEN 1 ELSE 0 END) AS rem_k
FROM base b
JOIN fc ON fc.course_id = b.course_id
JOIN cr ON cr.instrument_id = b.instrument_id
CROSS JOIN tp
LEFT JOIN tpa t ON t.course_id = b.course_id AND t.instrument_id = b.instrument_id
                AND t.label = tp.label
GROUP BY fc.treatment, b.instrument_id, tp.label
ORDER BY fc.treatment, b.instrument_id, MIN(tp.ord)
"""


def relapse_sql(d: Dialect, where: str, criteria: OutcomeCriteria,
                event_kinds: Sequence[str]) -> str:
    """One row per responder course: first response, first relapse by scores, first relapse
    event, last score, baseline and the Cox covariates.

    Mirrors :func:`ketaclinic.clinical.outcomes.evaluate_course` (checked against it on random
    cohorts by tests/integration/test_outcomes_relapse_sql.py):

    * first response: the first post-dose score whose fall from baseline ≥ fraction × baseline;
    * relapse by scores: among the scores strictly after the first response, the later of the
      first pair of consecutive scores (LAG) that are both relapse-level and lie
      ``relapse_gap_min_days``–``relapse_gap_max_days`` calendar days apart;
    * relapse by event: the first relapse event on a day after the first response's day;
    * the caller takes whichever came first (an event on the same instant wins).
    """
    if criteria.relapse_score_min is not None:
        level = f"ca.total >= {_num(criteria.relapse_score_min.value)}"
    else:
        level = (f"(r.baseline - ca.total) < {_num(criteria.response_fraction.value)} "
                 "* r.baseline")
    lo, hi = _num(criteria.relapse_gap_min_days.value), _num(criteria.relapse_gap_max_days.value)
    gap = d.days_between("pr.administered_at", "pr.prev_at")
    kinds = ", ".join(_lit(k) for k in event_kinds) or "''"
    resp_day = d.day_of("r.first_resp_at")
    return f"""
WITH {course_ctes(d, where, [criteria.instrument])},
{criteria_cte([criteria])},
resp AS (
  SELECT ca.course_id, MIN(ca.administered_at) AS first_resp_at,
         MIN(b.baseline) AS baseline
  FROM ca JOIN base b ON b.course_id = ca.course_id AND b.instrument_id = ca.instrument_id
  JOIN cr ON cr.instrument_id = ca.instrument_id
  WHERE ca.administered_at > ca.first_dose_at AND b.baseline > 0
    AND (b.baseline - ca.total) >= cr.response_fraction * b.baseline
  GROUP BY ca.course_id
),
later AS (
  SELECT ca.course_id, ca.administered_at,
         CASE WHEN {level} THEN 1 ELSE 0 END AS lvl
  FROM ca JOIN resp r ON r.course_id = ca.course_id
  WHERE ca.administered_at > r.first_resp_at
),
pr AS (
  SELECT course_id, administered_at, lvl,
         LAG(lvl) OVER (PARTITION BY course_id ORDER BY administered_at) AS prev_lvl,
         LAG(administered_at) OVER (PARTITION BY course_id ORDER BY administered_at)
           AS prev_at
  FROM later
),
srel AS (
  SELECT pr.course_id, MIN(pr.administered_at) AS score_relapse_at
  FROM pr WHERE pr.lvl = 1 AND pr.prev_lvl = 1 AND {gap} BETWEEN {lo} AND {hi}
  GROUP BY pr.course_id
),
lastsc AS (
  SELECT course_id, MAX(administered_at) AS last_at FROM later GROUP BY course_id
),
erel AS (
  SELECT r.course_id, MIN(e.occurred_on) AS event_on
  FROM resp r JOIN fc ON fc.course_id = r.course_id
  JOIN clinical_events e ON e.patient_id = fc.patient_id
  WHERE REPLACE(e.kind, '-', '_') IN ({kinds}) AND e.occurred_on > {resp_day}
    AND (e.course_id = fc.course_id
         OR (e.course_id IS NULL AND e.occurred_on >= fc.start_date
             AND (fc.next_start IS NULL OR e.occurred_on < fc.next_start)))
  GROUP BY r.course_id
)
SELECT r.course_id AS course_id, r.first_resp_at AS first_resp_at, r.baseline AS baseline,
       srel.score_relapse_at AS score_relapse_at, erel.event_on AS event_on,
       COALESCE(lastsc.last_at, r.first_resp_at) AS last_at,
       fc.first_dose_at AS first_dose_at, fc.treatment AS treatment,
       fc.psychotherapy AS psychotherapy, fc.concurrent_antidepressant AS antidepressant,
       p.birth_date AS birth_date,
       CASE WHEN EXISTS (SELECT 1 FROM patient_diagnoses dx
                         WHERE dx.patient_id = fc.patient_id AND dx.active = {d_true(d)}
                           AND dx.code LIKE 'F41%') THEN 1 ELSE 0 END AS comorbid_anxiety
FROM resp r
JOIN fc ON fc.course_id = r.course_id
JOIN patients p ON p.id = fc.patient_id
LEFT JOIN srel ON srel.course_id = r.course_id
LEFT JOIN erel ON erel.course_id = r.course_id
LEFT JOIN lastsc ON lastsc.course_id = r.course_id
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
  (SELECT COUNT(*) FROM treatment_sessions s JOIN courses c ON c.id = s.course_id
    WHERE {DONE_SESSION} AND {where}) AS doses_given,
  (SELECT COUNT(*) FROM clinical_alerts WHERE acknowledged_at IS NULL) AS open_mbc_alerts,
  (SELECT COUNT(*) FROM chair_alerts WHERE action_at IS NULL) AS open_chair_alerts,
  (SELECT COUNT(*) FROM chair_rems_forms WHERE status <> 'submitted'
    AND due_on <= :rems_until) AS rems_due
"""


def exposure_sql(d: Dialect, where: str, screen_kinds: Sequence[tuple[str, str]]) -> str:
    """Cumulative mg per patient and, per screening rule, last screen and mg since it.

    ``screen_kinds`` are (rule kind, clinical_events.kind) pairs, e.g. ("urinary",
    "screen-urinary"). Doses of the filtered courses up to ``:as_of`` are summed.
    """
    day = d.day_of("s.dose_started_at")
    last_cols = ",\n    ".join(
        f"MAX(CASE WHEN e.kind = {_lit(ev)} THEN e.occurred_on END) AS last_{k}"
        for k, ev in screen_kinds
    ) or "NULL AS none_"
    select_cols = ",\n  ".join(
        f"scr.last_{k} AS last_{k}, SUM(CASE WHEN scr.last_{k} IS NULL OR dose.d > scr.last_{k} "
        f"THEN dose.dose_mg ELSE 0 END) AS mg_since_{k}"
        for k, _ in screen_kinds
    )
    group_cols = ", ".join(f"scr.last_{k}" for k, _ in screen_kinds)
    return f"""
WITH dose AS (
  SELECT s.patient_id, s.treatment, s.dose_mg, {day} AS d
  FROM treatment_sessions s JOIN courses c ON c.id = s.course_id
  WHERE {DONE_SESSION} AND s.dose_mg IS NOT NULL AND {day} <= :as_of AND {where}
),
scr AS (
  SELECT e.patient_id,
    {last_cols}
  FROM clinical_events e WHERE e.occurred_on <= :as_of GROUP BY e.patient_id
)
SELECT dose.patient_id AS patient_id, COUNT(*) AS sessions, SUM(dose.dose_mg) AS total_mg,
  SUM(CASE WHEN dose.treatment = 'esketamine' THEN dose.dose_mg ELSE 0 END) AS esketamine_mg,
  MIN(dose.d) AS first_dose, MAX(dose.d) AS last_dose{"," if select_cols else ""}
  {select_cols}
FROM dose LEFT JOIN scr ON scr.patient_id = dose.patient_id
GROUP BY dose.patient_id{", " + group_cols if group_cols else ""}
"""
