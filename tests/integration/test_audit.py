"""The audit trail is hash-chained; any edit, deletion, insertion or reordering is found."""

from __future__ import annotations

from kctest import make_settings
from sqlalchemy import text

from ketaclinic.cli import main
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit import SYSTEM


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
