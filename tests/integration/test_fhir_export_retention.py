"""Expired `$export` jobs are deleted on a schedule (`ketaclinic export expire`), not only
when someone starts or reads a job: their files hold identified data, and a clinic that stops
exporting must not keep them on disk."""

from __future__ import annotations

import json
from pathlib import Path

from kcoutcomes import build_hand_cohort
from kctest import TEST_SECRET
from sqlalchemy import select

from ketaclinic.cli import main
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables import AuditEvent


def _job(services) -> Path:
    jobs = services.outcomes.fhir_jobs
    job = jobs.start(SYSTEM, None, "https://clinic.test/api/fhir/$export")
    jobs.run(SYSTEM, job, "https://clinic.test/api/fhir/$export-files")
    folder = jobs.root / job
    assert list(folder.glob("*.ndjson.enc")), "the job wrote its files"
    return folder


def _expiries(services) -> list[tuple[str, str]]:
    with services.db.transaction() as s:
        return [(a.username, a.detail) for a in s.execute(select(AuditEvent).where(
            AuditEvent.action == "export.fhir_expire").order_by(AuditEvent.id)).scalars()]


def test_the_sweep_deletes_a_job_past_retention_without_any_job_being_started_or_read(
        services, clock):
    with services.db.transaction() as s:
        build_hand_cohort(s)
    old = _job(services)
    clock.advance(hours=2)
    young = _job(services)
    jobs = services.outcomes.fhir_jobs
    assert jobs.expire(SYSTEM) == [] and _expiries(services) == []  # nothing is old yet
    clock.advance(hours=23)  # old: 25 h, young: 23 h (retention 24 h)
    assert jobs.expire(SYSTEM) == [old.name]
    assert not old.exists() and young.is_dir()
    [(who, detail)] = _expiries(services)
    assert who == SYSTEM.username and detail == f"jobs=1: {old.name}"


def test_ketaclinic_export_expire_deletes_expired_jobs_and_says_how_many(
        services, clock, capsys):
    """The command reads the wall clock: a job written at the tests' fixed start (2026) is long
    expired, one written in 2100 is not."""
    with services.db.transaction() as s:
        build_hand_cohort(s)
    start = clock()
    clock.now = start.replace(year=2100)
    kept = _job(services)
    clock.now = start
    old = _job(services)
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATABASE_URL": services.db.engine.url.render_as_string(
               hide_password=False)}
    capsys.readouterr()
    assert main(["export", "expire", "--json"], environ=env) == 0
    assert json.loads(capsys.readouterr().out) == {"deleted": 1, "jobs": [old.name]}
    assert not old.exists() and kept.is_dir()
    assert main(["export", "expire"], environ=env) == 0
    assert "deleted 0 expired $export job(s)" in capsys.readouterr().out
    assert len(_expiries(services)) == 1
