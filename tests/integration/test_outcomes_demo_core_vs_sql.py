"""On the demo cohort, the dashboard's summary equals the pure core, course by course.

The benchmark's naive reference (benchmarks/bench_dashboard.py: per course, ``evaluate_course``
with the course's treatment and end of induction, ``select_assessment_in_window`` for every
timepoint whose recall limit the instrument meets) is run on the demo written through the
services, and its timepoint flags and relapse subjects must equal the summary rows and the
dashboard's relapse statement (issue 13 definitions: baseline window and minimum, relapse
origin, per-treatment remission, 24-hour recall). The demo must also still give a meaningful
dashboard: responders at several timepoints and courses followed for relapse.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy import select

from ketaclinic.services.audit import SYSTEM
from ketaclinic.services.dashboard import DashboardFilters
from ketaclinic.store.tables_care import Course

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dashboard.py"


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("kc_bench_dashboard", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_summary_equals_the_pure_core_on_the_demo_and_the_dashboard_is_meaningful(
        demo_cohort):
    services = demo_cohort  # the shared 40-patient demo (tests/conftest.py), seeded once
    bench = _bench()
    with services.db.transaction() as s:
        ids = sorted(s.execute(select(Course.id)).scalars())
    core_records, core_relapse = bench.naive_dashboard(services, ids)
    sql_records, sql_relapse = bench.summary_for(services, ids)
    assert sorted(core_records) == sorted(sql_records)
    assert core_relapse == sql_relapse
    # the comparison has teeth: many timepoint rows, relapse subjects, relapses and MADRS
    assert len(sql_records) > 50 and len(sql_relapse) > 10
    assert sum(r for _d, r in sql_relapse.values()) > 0
    assert {i for _c, i, _t, _r, _m in sql_records} >= {"phq9", "madrs"}
    assert not [r for r in sql_records if r[2] == "24h"]  # no 24-hour-recall instrument
    dash = services.outcomes.dashboard(SYSTEM, DashboardFilters())
    responders = {r.timepoint for r in dash.outcomes if r.response.k > 0}
    assert {"end_of_induction", "1m"} <= responders
    assert dash.relapse_subjects > 0 and dash.km.n > 0
