"""0011_unasked_facts on every backend: legacy false / "none" answers become "not asked"."""

from __future__ import annotations

import datetime as dt
import json

from alembic import command
from sqlalchemy import text

from ketaclinic.store import migrate

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
LEGACY = {"antidepressant_trials": [], "conditions": [], "ect_used": False,
          "episode_duration_months": None, "symptom_severity": None, "bp": None}


def _insert(conn, pid: int, facts: dict) -> None:  # type: ignore[no-untyped-def]
    conn.execute(text(
        "INSERT INTO patients (id, mrn, family_name, given_name, search_name, birth_date, sex, "
        "phone, email, address, notes, version, created_at, updated_at) VALUES (:i, :m, 'F', "
        "'G', 'f g', :b, 'female', '', '', '', '', 1, :t, :t)"),
        {"i": pid, "m": f"MIG-{pid}", "b": dt.date(1980, 1, 1), "t": NOW})
    conn.execute(text(
        "INSERT INTO patient_clinical_facts (patient_id, facts_json, version, updated_at) "
        "VALUES (:p, :f, 3, :t)"), {"p": pid, "f": json.dumps(facts, sort_keys=True), "t": NOW})


def _facts(conn) -> dict[int, tuple[dict, int]]:  # type: ignore[no-untyped-def]
    rows = conn.execute(text(
        "SELECT patient_id, facts_json, version FROM patient_clinical_facts")).all()
    return {pid: (json.loads(f), v) for pid, f, v in rows}


def test_legacy_unasked_answers_become_null_and_real_answers_stay(scratch_engine):
    engine = scratch_engine
    migrate.upgrade(engine, "0010_outcome_relapse")
    with engine.begin() as conn:
        _insert(conn, 1, LEGACY | {"pregnant": False, "breastfeeding": False,
                                   "substance_use_disorder": "none"})
        _insert(conn, 2, LEGACY | {"pregnant": True, "breastfeeding": False,
                                   "substance_use_disorder": "history"})
    migrate.upgrade(engine)
    with engine.connect() as conn:
        after = _facts(conn)
    assert after[1][0]["pregnant"] is None and after[1][0]["breastfeeding"] is None
    assert after[1][0]["substance_use_disorder"] is None and after[1][1] == 4
    assert after[2][0]["pregnant"] is True and after[2][0]["breastfeeding"] is None
    assert after[2][0]["substance_use_disorder"] == "history"
    command.downgrade(migrate.alembic_config(engine), "0010_outcome_relapse")
    with engine.connect() as conn:
        back = _facts(conn)
    assert back[1][0]["pregnant"] is False and back[1][0]["substance_use_disorder"] == "none"
    assert back[2][0]["pregnant"] is True
    migrate.upgrade(engine)
    assert migrate.is_up_to_date(engine)
