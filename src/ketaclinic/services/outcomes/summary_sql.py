"""SQL that computes the outcome summary tables from the source rows (SQLite and PostgreSQL).

Three ``INSERT … SELECT`` statements, each over the same chain of CTEs, fill
``course_dose_summary``, ``course_outcome_summary`` and ``course_outcome_timepoints``
(store/tables_outcomes.py). With ``scoped=True`` every CTE is restricted to the courses bound to
``:ids`` (an expanding parameter; ``allc`` to those courses' patients, since the next course's
start links unlinked scores) — the maintenance after a write. Unscoped, they recompute every
course — the rebuild.

Semantics (unchanged from the dashboard's former per-request SQL; checked against the pure core
``clinical/outcomes.evaluate_course`` by tests/integration/test_outcomes_relapse_sql.py and the
hand cohort in tests/spec/test_outcomes_dashboard_cohort.py):

* doses count when ``dose_started_at`` is set and the status is not cancelled/missed; the end of
  induction is the last given induction dose once no induction session is still pending;
* an assessment belongs to a course when its ``course_id`` says so, or, without ``course_id``,
  when it is the same patient's and lies between ``start_date − BASELINE_LOOKBACK_DAYS`` and the
  start of the patient's next course;
* baseline = the last score at or before the first dose (ROW_NUMBER);
* the score at a timepoint = the one closest to the target inside the window after the anchor
  (ties: the earlier), only after the first dose; response = fall ≥ fraction × baseline
  (baseline > 0), remission = total ≤ remission_max;
* first response = the first post-dose score meeting the response criterion; relapse by scores =
  the later of the first pair of consecutive relapse-level scores after it that lie
  ``relapse_gap_min_days``–``relapse_gap_max_days`` calendar days apart (LAG).

Scores recorded at the same instant are ordered by assessment id (the order they were
recorded in), so that every ordering above is total: the pure core, given the scores in that
order, picks the same ones, and a scoped refresh always agrees with a rebuild.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ketaclinic.clinical.cohort import Timepoint
from ketaclinic.clinical.outcomes import OutcomeCriteria
from ketaclinic.services.outcomes.dashboard_sql import (
    BASELINE_LOOKBACK_DAYS,
    DONE_SESSION,
    Dialect,
    _lit,
    _num,
    timepoint_cte,
)

SUMMARY_TABLES = ("course_outcome_timepoints", "course_outcome_summary", "course_dose_summary")
# every summary row carries its course's filter columns (services/outcomes/dashboard_sql.py
# filters on them under the alias ``c``, as it does on ``courses``)
FILTER_COLUMNS = "course_id, treatment, start_date, created_by"


def _criteria_cte(criteria: Sequence[OutcomeCriteria]) -> str:
    """``cr``: one row per instrument with its response, remission and relapse parameters."""

    def relapse_min(c: OutcomeCriteria) -> str:
        v = c.relapse_score_min
        return "CAST(NULL AS NUMERIC)" if v is None else f"CAST({_num(v.value)} AS NUMERIC)"

    def base_min(c: OutcomeCriteria) -> str:
        v = c.baseline_min
        return "CAST(NULL AS NUMERIC)" if v is None else f"CAST({_num(v.value)} AS NUMERIC)"

    rows = " UNION ALL ".join(
        f"SELECT {_lit(c.instrument)} AS instrument_id, {_num(c.remission_max.value)} AS "
        f"remission_max, {_num(c.response_fraction.value)} AS response_fraction, "
        f"{relapse_min(c)} AS relapse_min, {_num(c.relapse_gap_min_days.value)} AS gap_lo, "
        f"{_num(c.relapse_gap_max_days.value)} AS gap_hi, {base_min(c)} AS base_min, "
        f"{_num(24 * float(c.baseline_window_days.value))} AS base_window_h, "
        f"{_num(24 * float(c.relapse_origin_window_days.value))} AS origin_window_h"
        for c in criteria
    )
    return f"cr AS ({rows})"


def remission_cte(overrides: Mapping[tuple[str, str], float]) -> str:
    """``crt``: the remission threshold of a treatment where it differs from the instrument's
    default (treatment, instrument_id, remission_max); a row that matches nothing when none."""
    rows = " UNION ALL ".join(
        f"SELECT {_lit(t)} AS treatment, {_lit(i)} AS instrument_id, {_num(v)} AS remission_max"
        for (t, i), v in sorted(overrides.items())
    ) or ("SELECT CAST(NULL AS VARCHAR(20)) AS treatment, CAST(NULL AS VARCHAR(40)) AS "
          "instrument_id, 0.0 AS remission_max")
    return f"crt AS ({rows})"


def timepoint_instruments_cte(pairs: Sequence[tuple[str, str]]) -> str:
    """``tpi``: the (timepoint label, instrument) pairs whose recall window fits the timepoint
    (a 24-hour outcome only from a 24-hour-recall instrument)."""
    rows = " UNION ALL ".join(
        f"SELECT {_lit(label)} AS label, {_lit(i)} AS instrument_id" for label, i in pairs
    ) or "SELECT CAST(NULL AS VARCHAR(40)) AS label, CAST(NULL AS VARCHAR(40)) AS instrument_id"
    return f"tpi AS ({rows})"


def _chain(d: Dialect, criteria: Sequence[OutcomeCriteria], scoped: bool,
           with_hours: bool) -> str:
    """CTEs ``allc``, ``sd``, ``fc`` (courses with a given dose and their anchors), ``ca``
    (their scores on the criteria's instruments) and ``base`` (baselines)."""
    in_scope = (lambda col, n: f" AND {col} IN :ids{n}") if scoped else (lambda col, n: "")
    patients = (" WHERE c.patient_id IN (SELECT c2.patient_id FROM courses c2 "
                "WHERE c2.id IN :ids1)") if scoped else ""
    hours = (f",\n         {d.hours_between('a.administered_at', 'fc.first_dose_at')} AS h_first"
             f",\n         {d.hours_between('a.administered_at', 'fc.eoi_at')} AS h_eoi"
             if with_hours else "")
    inst = ", ".join(_lit(c.instrument) for c in criteria) or "''"
    # Scoped, the unlinked scores are reached through the few patients' index entries; the unary
    # plus keeps SQLite from scanning every unlinked assessment through the course_id index.
    unlinked = "+a.course_id IS NULL" if scoped else "a.course_id IS NULL"
    lookback = d.date_minus_days("fc.start_date", BASELINE_LOOKBACK_DAYS)
    mg_day = d.day_of("s.dose_started_at")
    base_age_h = d.hours_between("ca.first_dose_at", "ca.administered_at")
    return f"""
{_criteria_cte(criteria)},
allc AS (
  SELECT c.id, c.patient_id, c.start_date, c.treatment, c.created_by,
         LEAD(c.start_date) OVER (PARTITION BY c.patient_id ORDER BY c.start_date, c.id)
           AS next_start
  FROM courses c{patients}
),
sd AS (
  SELECT s.course_id,
         MIN(CASE WHEN {DONE_SESSION} THEN s.dose_started_at END) AS first_dose_at,
         MAX(CASE WHEN {DONE_SESSION} AND s.phase = 'induction' THEN s.dose_started_at END)
           AS last_induction_at,
         SUM(CASE WHEN s.phase = 'induction' AND s.dose_started_at IS NULL
                   AND s.status NOT IN ('cancelled', 'missed') THEN 1 ELSE 0 END)
           AS induction_pending,
         SUM(CASE WHEN {DONE_SESSION} THEN 1 ELSE 0 END) AS doses_given,
         SUM(CASE WHEN {DONE_SESSION} THEN s.dose_mg END) AS dose_mg_total,
         MIN(CASE WHEN {DONE_SESSION} AND s.dose_mg IS NOT NULL THEN {mg_day} END)
           AS mg_first_day,
         MAX(CASE WHEN {DONE_SESSION} AND s.dose_mg IS NOT NULL THEN {mg_day} END)
           AS mg_last_day
  FROM treatment_sessions s
  WHERE s.course_id IS NOT NULL{in_scope("s.course_id", 2)}
  GROUP BY s.course_id
),
fc AS (
  SELECT c.id AS course_id, c.patient_id, c.treatment, c.start_date, c.created_by,
         c.next_start, sd.first_dose_at,
         CASE WHEN sd.induction_pending = 0 THEN sd.last_induction_at END AS eoi_at,
         sd.doses_given, sd.dose_mg_total, sd.mg_first_day, sd.mg_last_day
  FROM allc c JOIN sd ON sd.course_id = c.id
  WHERE sd.first_dose_at IS NOT NULL{in_scope("c.id", 3)}
),
ca AS (
  SELECT fc.course_id, fc.treatment, fc.start_date, fc.created_by, a.instrument_id,
         a.id AS aid, a.administered_at, a.total, fc.first_dose_at, fc.eoi_at{hours}
  FROM fc JOIN assessments a ON a.course_id = fc.course_id
  WHERE a.total IS NOT NULL AND a.instrument_id IN ({inst})
  UNION ALL
  SELECT fc.course_id, fc.treatment, fc.start_date, fc.created_by, a.instrument_id,
         a.id AS aid, a.administered_at, a.total, fc.first_dose_at, fc.eoi_at{hours}
  FROM fc JOIN assessments a ON a.patient_id = fc.patient_id
  WHERE {unlinked} AND a.total IS NOT NULL AND a.instrument_id IN ({inst})
    AND a.administered_at >= {lookback}
    AND (fc.next_start IS NULL OR a.administered_at < fc.next_start)
),
base AS (
  SELECT b0.course_id, b0.treatment, b0.start_date, b0.created_by, b0.instrument_id,
         b0.total AS baseline FROM (
    SELECT ca.course_id, ca.treatment, ca.start_date, ca.created_by, ca.instrument_id,
           ca.total,
           ROW_NUMBER() OVER (PARTITION BY ca.course_id, ca.instrument_id
                              ORDER BY ca.administered_at DESC, ca.aid DESC) AS rn
    FROM ca JOIN cr ON cr.instrument_id = ca.instrument_id
    WHERE ca.administered_at <= ca.first_dose_at
      AND {base_age_h} <= cr.base_window_h
  ) b0 JOIN cr ON cr.instrument_id = b0.instrument_id
  WHERE b0.rn = 1 AND (cr.base_min IS NULL OR b0.total >= cr.base_min)
)"""


def dose_summary_sql(d: Dialect, criteria: Sequence[OutcomeCriteria], scoped: bool) -> str:
    """Fill ``course_dose_summary``: one row per course with a given dose."""
    return f"""
INSERT INTO course_dose_summary ({FILTER_COLUMNS}, patient_id, first_dose_at, eoi_at,
                                 next_start, doses_given, dose_mg_total, mg_first_day,
                                 mg_last_day)
WITH {_chain(d, criteria, scoped, with_hours=False)}
SELECT fc.course_id, fc.treatment, fc.start_date, fc.created_by, fc.patient_id,
       fc.first_dose_at, fc.eoi_at, fc.next_start,
       fc.doses_given, fc.dose_mg_total, fc.mg_first_day, fc.mg_last_day
FROM fc
"""


def outcome_summary_sql(d: Dialect, criteria: Sequence[OutcomeCriteria], scoped: bool) -> str:
    """Fill ``course_outcome_summary``: baseline, first response, relapse by scores and the last
    score after the first response, per course × instrument with a baseline."""
    level = ("CASE WHEN (cr.relapse_min IS NOT NULL AND ca.total >= cr.relapse_min) "
             "OR (cr.relapse_min IS NULL AND (r.baseline - ca.total) < "
             "cr.response_fraction * r.baseline) THEN 1 ELSE 0 END")
    gap = d.days_between("pr.administered_at", "pr.prev_at")
    after_eoi_h = d.hours_between("ca.administered_at", "ca.eoi_at")
    return f"""
INSERT INTO course_outcome_summary ({FILTER_COLUMNS}, instrument_id, baseline,
                                    first_response_at, relapse_origin_at, score_relapse_at,
                                    last_after_response_at)
WITH {_chain(d, criteria, scoped, with_hours=False)},
org AS (
  SELECT course_id, instrument_id, administered_at AS origin_at, total FROM (
    SELECT ca.course_id, ca.instrument_id, ca.administered_at, ca.total,
           ROW_NUMBER() OVER (PARTITION BY ca.course_id, ca.instrument_id
                              ORDER BY ca.administered_at, ca.aid) AS rn
    FROM ca JOIN cr ON cr.instrument_id = ca.instrument_id
    WHERE ca.eoi_at IS NOT NULL AND ca.administered_at > ca.eoi_at
      AND {after_eoi_h} <= cr.origin_window_h
  ) o0 WHERE rn = 1
),
rorg AS (
  SELECT org.course_id, org.instrument_id, org.origin_at, b.baseline
  FROM org JOIN base b ON b.course_id = org.course_id AND b.instrument_id = org.instrument_id
  JOIN cr ON cr.instrument_id = org.instrument_id
  WHERE b.baseline > 0 AND (b.baseline - org.total) >= cr.response_fraction * b.baseline
),
resp AS (
  SELECT ca.course_id, ca.instrument_id, MIN(ca.administered_at) AS first_resp_at,
         MIN(b.baseline) AS baseline
  FROM ca JOIN base b ON b.course_id = ca.course_id AND b.instrument_id = ca.instrument_id
  JOIN cr ON cr.instrument_id = ca.instrument_id
  WHERE ca.administered_at > ca.first_dose_at AND b.baseline > 0
    AND (b.baseline - ca.total) >= cr.response_fraction * b.baseline
  GROUP BY ca.course_id, ca.instrument_id
),
later AS (
  SELECT ca.course_id, ca.instrument_id, ca.aid, ca.administered_at, {level} AS lvl
  FROM ca JOIN rorg r ON r.course_id = ca.course_id AND r.instrument_id = ca.instrument_id
  JOIN cr ON cr.instrument_id = ca.instrument_id
  WHERE ca.administered_at > r.origin_at
),
pr AS (
  SELECT course_id, instrument_id, administered_at, lvl,
         LAG(lvl) OVER (PARTITION BY course_id, instrument_id ORDER BY administered_at, aid)
           AS prev_lvl,
         LAG(administered_at) OVER (PARTITION BY course_id, instrument_id
                                    ORDER BY administered_at, aid) AS prev_at
  FROM later
),
srel AS (
  SELECT pr.course_id, pr.instrument_id, MIN(pr.administered_at) AS score_relapse_at
  FROM pr JOIN cr ON cr.instrument_id = pr.instrument_id
  WHERE pr.lvl = 1 AND pr.prev_lvl = 1 AND {gap} BETWEEN cr.gap_lo AND cr.gap_hi
  GROUP BY pr.course_id, pr.instrument_id
),
lastsc AS (
  SELECT course_id, instrument_id, MAX(administered_at) AS last_at
  FROM later GROUP BY course_id, instrument_id
)
SELECT b.course_id, b.treatment, b.start_date, b.created_by, b.instrument_id, b.baseline,
       r.first_resp_at, ro.origin_at, srel.score_relapse_at, lastsc.last_at
FROM base b
LEFT JOIN resp r ON r.course_id = b.course_id AND r.instrument_id = b.instrument_id
LEFT JOIN rorg ro ON ro.course_id = b.course_id AND ro.instrument_id = b.instrument_id
LEFT JOIN srel ON srel.course_id = b.course_id AND srel.instrument_id = b.instrument_id
LEFT JOIN lastsc ON lastsc.course_id = b.course_id AND lastsc.instrument_id = b.instrument_id
"""


def timepoint_summary_sql(d: Dialect, criteria: Sequence[OutcomeCriteria],
                          timepoints: Sequence[Timepoint], scoped: bool,
                          remission_overrides: Mapping[tuple[str, str], float] | None = None,
                          recall_pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """Fill ``course_outcome_timepoints``: per course × instrument with a baseline, the score
    picked at each timepoint that has one, with its response and remission flags.

    Only the (timepoint, instrument) pairs of ``recall_pairs`` are filled (default: all);
    remission uses the treatment's threshold from ``remission_overrides`` where it has one."""
    hours = "CASE WHEN tp.anchor = 'first_dose' THEN ca.h_first ELSE ca.h_eoi END"
    pairs = recall_pairs if recall_pairs is not None else [
        (t.label, c.instrument) for t in timepoints for c in criteria]
    return f"""
INSERT INTO course_outcome_timepoints ({FILTER_COLUMNS}, instrument_id, timepoint, total,
                                       responded, remitted)
WITH {_chain(d, criteria, scoped, with_hours=True)},
{timepoint_cte(timepoints)},
{timepoint_instruments_cte(pairs)},
{remission_cte(remission_overrides or {})},
tpa AS (
  SELECT course_id, instrument_id, label, total FROM (
    SELECT ca.course_id, ca.instrument_id, tp.label, ca.total,
           ROW_NUMBER() OVER (PARTITION BY ca.course_id, ca.instrument_id, tp.label
                              ORDER BY ABS({hours} - tp.target_h), ca.administered_at,
                                       ca.aid) AS rn
    FROM ca JOIN tp ON ({hours}) BETWEEN tp.lo_h AND tp.hi_h
    JOIN tpi ON tpi.label = tp.label AND tpi.instrument_id = ca.instrument_id
    WHERE ca.administered_at > ca.first_dose_at
  ) t0 WHERE rn = 1
)
SELECT t.course_id, b.treatment, b.start_date, b.created_by, t.instrument_id, t.label, t.total,
       CASE WHEN b.baseline > 0 THEN
         CASE WHEN (b.baseline - t.total) >= cr.response_fraction * b.baseline THEN 1 ELSE 0 END
       END,
       CASE WHEN t.total <= COALESCE(crt.remission_max, cr.remission_max) THEN 1 ELSE 0 END
FROM tpa t
JOIN base b ON b.course_id = t.course_id AND b.instrument_id = t.instrument_id
JOIN cr ON cr.instrument_id = t.instrument_id
LEFT JOIN crt ON crt.treatment = b.treatment AND crt.instrument_id = t.instrument_id
"""
