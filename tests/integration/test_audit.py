"""The audit trail is hash-chained; any edit, deletion, insertion or reordering is found."""

from __future__ import annotations

import pytest
from kctest import make_settings
from sqlalchemy import text

from ketaclinic.cli import main
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM


def _seed(services, n=5):
    for i in range(n):
        services.patients.create(SYSTEM, PatientCreate(
            mrn=f"A-{i}", family_name="Audit", given_name=f"P{i}", birth_date="1970-01-01",
            sex="male"))
    return services.audit_log.verify()


def _sql(services, statement: str) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(text(statement))


def test_an_untouched_trail_verifies(services):
    result = _seed(services)
    assert result.ok and result.checked == 5


def test_an_edited_row_is_detected_and_named(services):
    _seed(services)
    _sql(services, "UPDATE audit_events SET username = 'mallory' WHERE id = 3")
    result = services.audit_log.verify()
    assert not result.ok and result.first_bad_id == 3


def test_a_deleted_row_is_detected(services):
    _seed(services)
    _sql(services, "DELETE FROM audit_events WHERE id = 2")
    result = services.audit_log.verify()
    assert not result.ok and result.first_bad_id == 3


def test_deleting_the_last_row_is_detected(services):
    _seed(services)
    _sql(services, "DELETE FROM audit_events WHERE id = 5")
    result = services.audit_log.verify()
    assert not result.ok and "removed" in result.reason


def test_an_inserted_row_is_detected(services):
    _seed(services)
    _sql(services, "UPDATE audit_events SET id = id + 100 WHERE id >= 3")
    _sql(services, "UPDATE audit_events SET id = id - 99 WHERE id >= 103")
    _sql(services, "INSERT INTO audit_events (id, occurred_at, user_id, username, action, "
         "patient_id, outcome, detail, prev_hash, row_hash) SELECT 3, occurred_at, user_id, "
         "username, 'patient.view', patient_id, outcome, detail, row_hash, row_hash "
         "FROM audit_events WHERE id = 2")
    result = services.audit_log.verify()
    assert not result.ok and result.first_bad_id == 3


def test_reordered_rows_are_detected(services):
    _seed(services)
    _sql(services, "UPDATE audit_events SET id = 1000 WHERE id = 2")
    _sql(services, "UPDATE audit_events SET id = 2 WHERE id = 3")
    _sql(services, "UPDATE audit_events SET id = 3 WHERE id = 1000")
    result = services.audit_log.verify()
    assert not result.ok and result.first_bad_id == 2


def test_cli_audit_verify_names_the_first_bad_row(services, database_url, capsys):
    _seed(services)
    env = {k.upper(): str(v) for k, v in {
        "KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": database_url,
        "KETACLINIC_SECRET_KEY": make_settings(database_url).secret_key.get_secret_value(),
    }.items()}
    assert main(["audit", "verify"], environ=env) == 0
    _sql(services, "UPDATE audit_events SET detail = 'x' WHERE id = 4")
    assert main(["audit", "verify"], environ=env) == 1
    assert "row 4" in capsys.readouterr().err


def test_an_admin_sees_the_audit_log_and_its_verification(login, services):
    c, _ = login("admin")
    page = c.get("/admin/audit?verify=1")
    assert page.status_code == 200
    assert "audit trail intact" in page.text
    assert c.get("/api/audit/verify").json()["ok"] is True
    assert c.get("/admin/audit?patient_id=abc").status_code == 422


def test_a_nurse_may_not_read_the_audit_log(login):
    c, _ = login("nurse")
    assert c.get("/api/audit").status_code == 403


# --- several chains (stripes): concurrent appends take the first free tip -----------------

def _striped(services, backend):
    """Rows 1, 3 in chain 1 and row 2 in chain 2: a second transaction appends while the first
    holds chain 1's tip (PostgreSQL; SQLite has one writer at a time, so one chain)."""
    assert backend == "postgresql"  # the tests below are marked postgresql_only
    trail, at = services.ctx.audit, services.ctx.clock()
    with services.db.transaction() as first:
        trail.record(first, SYSTEM, "test.first", at=at)
        with services.db.transaction() as second:
            trail.record(second, SYSTEM, "test.second", at=at)
        trail.record(first, SYSTEM, "test.first.again", at=at)
    with services.db.transaction() as third:
        trail.record(third, SYSTEM, "test.third", at=at)
    with services.db.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, chain FROM audit_events")).all())


@pytest.mark.postgresql_only  # SQLite has one writer: one chain
def test_an_appender_takes_a_free_chain_instead_of_waiting_for_a_busy_one(services, backend):
    chains = _striped(services, backend)
    assert chains == {1: 1, 2: 2, 3: 1, 4: 1}
    result = services.audit_log.verify()
    assert result.ok and result.checked == 4


@pytest.mark.postgresql_only  # SQLite has one writer: one chain
def test_deleting_the_only_row_of_the_second_chain_is_detected(services, backend):
    _striped(services, backend)
    _sql(services, "DELETE FROM audit_events WHERE id = 2")
    result = services.audit_log.verify()
    assert not result.ok and "chain 2" in result.reason


@pytest.mark.postgresql_only  # SQLite has one writer: one chain
def test_a_row_moved_to_another_chain_is_detected(services, backend):
    _striped(services, backend)
    _sql(services, "UPDATE audit_events SET chain = 2 WHERE id = 3")
    result = services.audit_log.verify()
    assert not result.ok and result.first_bad_id == 3


def test_a_removed_chain_tip_is_detected_even_for_an_empty_chain(services):
    _seed(services, 2)
    _sql(services, "DELETE FROM audit_head WHERE id = 7")
    result = services.audit_log.verify()
    assert not result.ok and "chain 7" in result.reason


def test_a_row_claiming_a_chain_without_a_tip_is_detected(services):
    _seed(services, 3)
    _sql(services, "UPDATE audit_events SET chain = 999 WHERE id = 2")
    result = services.audit_log.verify()
    assert not result.ok and result.first_bad_id == 2
