"""`ketaclinic instruments load` stores a clinic definition; `ketaclinic outbox send` delivers."""

from __future__ import annotations

import datetime as dt
import json

from kctest import TEST_SECRET

from ketaclinic.cli import main
from ketaclinic.clinical.instruments import load_bundled
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM


def env(services) -> dict[str, str]:
    return {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
            "KETACLINIC_DATABASE_URL": services.settings.database_url}


def qids_with_text(version: str = "1.1.0") -> dict:
    raw = json.loads(json.dumps(load_bundled("qids-sr16").raw))
    raw["version"] = version
    for item in raw["items"]:
        item["text"] = f"Clinic-licensed wording of item {item['number']}"
    raw["licence"]["supplied_by"] = "Demo clinic licence 2026"
    return raw


def test_a_clinic_definition_is_stored_versioned_and_shows_its_item_text(services, users,
                                                                         tmp_path, capsys):
    path = tmp_path / "qids.json"
    path.write_text(json.dumps(qids_with_text()), encoding="utf-8")
    assert main(["instruments", "load", str(path)], environ=env(services)) == 0
    assert "stored: qids-sr16@1.1.0" in capsys.readouterr().out
    assert main(["instruments", "load", str(path)], environ=env(services)) == 1  # a conflict
    assert "already stored" in capsys.readouterr().err
    with services.db.transaction() as s:
        stored = services.mbc.instruments.stored(s)
    assert [(d.instrument_id, d.version, d.active) for d in stored] == [
        ("qids-sr16", "1.1.0", True)]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="CLI-1", family_name="Cli", given_name="Al", birth_date=dt.date(1970, 1, 1),
        sex="male"))
    _, token = services.mbc.self_report.create_link(users["nurse"].actor, p.id, "qids-sr16")
    form = services.mbc.self_report.open_form(token, "127.0.0.1")
    assert form.items[0].text == "Clinic-licensed wording of item 1"
    rec = services.mbc.self_report.submit(token, form.form_key, [1] * 16, "127.0.0.1")
    assert rec.instrument_version == load_bundled("qids-sr16").version  # scoring unchanged


def test_a_clinic_definition_that_changes_item_ranges_is_refused(services, tmp_path, capsys):
    raw = qids_with_text()
    raw["items"][0]["max"] = 4
    path = tmp_path / "qids.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert main(["instruments", "load", str(path)], environ=env(services)) == 2
    assert "error:" in capsys.readouterr().err
    with services.db.transaction() as s:
        assert services.mbc.instruments.stored(s) == []


def test_outbox_send_delivers_a_queued_link_through_the_console(services, users, capsys):
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="CLI-2", family_name="Secretname", given_name="Bo", birth_date=dt.date(1970, 1, 1),
        sex="male"))
    services.mbc.self_report.create_link(users["nurse"].actor, p.id, "phq9", delivery="console")
    assert main(["outbox", "send"], environ=env(services)) == 0
    out = capsys.readouterr().out
    assert "for self-report link 1" in out and "1 sent" in out
    assert "Secretname" not in out and "/r/" not in out
