"""Measurement-based care services on every backend: scoring stored, alerts, links, outbox."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import Conflict, InvalidInput, PermissionDenied, Throttled
from ketaclinic.services.mbc.outbox import ConsoleAdapter, SmtpAdapter
from ketaclinic.services.mbc.self_report import LinkUnavailable
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_mbc import OutboxMessage, SelfReportLink
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

PHQ9_ITEM9 = [1, 1, 1, 1, 1, 1, 1, 1, 1]
START = dt.datetime(2026, 11, 2, 9, 0, 0)


def make_patient(services, mrn="MBC-1", email="pat@example.invalid") -> int:
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn=mrn, family_name="Testperson", given_name="Sam", birth_date=dt.date(1980, 1, 1),
        sex="other", email=email))
    return p.id


def actor(users, role):
    return users[role].actor


def trail(services, patient_id=None) -> list[tuple[str, str, str]]:
    with services.db.transaction() as s:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if patient_id is not None:
            stmt = stmt.where(AuditEvent.patient_id == patient_id)
        return [(e.action, e.username, e.outcome) for e in s.execute(stmt).scalars()]


def add_course(services, pid, doses: list[dt.datetime], treatment="ketamine-iv") -> int:
    now = START
    with services.db.transaction() as s:
        c = Course(patient_id=pid, template_id="iv_ketamine_induction", treatment=treatment,
                   start_date=doses[0].date(), created_at=now, updated_at=now)
        s.add(c)
        s.flush()
        for n, at in enumerate(doses, 1):
            s.add(TreatmentSession(patient_id=pid, course_id=c.id, number=n, treatment=treatment,
                                   status="discharged", planned_date=at.date(), phase="induction",
                                   dose_started_at=at, created_at=now, updated_at=now))
        return c.id


def test_a_recorded_phq9_is_scored_stored_audited_and_raises_an_item9_alert(services, users):
    pid = make_patient(services)
    rec, created = services.mbc.assessments.record(actor(users, "nurse"), pid, "phq9", PHQ9_ITEM9)
    assert created and rec.total == 9 and rec.severity == "mild" and rec.complete
    with services.db.transaction() as s:
        row = s.get(Assessment, rec.id)
        assert json.loads(row.answers_json) == [str(v) for v in PHQ9_ITEM9]
        assert json.loads(row.result_json)["alerts"][0]["rule"] == "phq9.item9"
    alerts = services.mbc.alerts.worklist(actor(users, "prescriber"))
    assert [(a.rule, a.item, a.value, a.patient_id) for a in alerts] == [("phq9.item9", 9, 1, pid)]
    assert ("assessment.create", "nurse", "ok") in trail(services, pid)


def test_an_invalid_answer_is_refused_naming_the_item_and_nothing_is_stored(services, users):
    pid = make_patient(services)
    with pytest.raises(InvalidInput, match="item 4"):
        services.mbc.assessments.record(actor(users, "nurse"), pid, "phq9",
                                        [0, 0, 0, 7, 0, 0, 0, 0, 0])
    with services.db.transaction() as s:
        assert s.execute(select(Assessment)).first() is None


def test_two_missing_phq9_items_are_prorated_and_the_idempotency_key_replays(services, users):
    pid = make_patient(services)
    nurse = actor(users, "nurse")
    answers = [2, 2, None, 2, 2, None, 2, 2, 0]
    first, created = services.mbc.assessments.record(nurse, pid, "phq9", answers,
                                                     idempotency_key="k-1")
    again, created2 = services.mbc.assessments.record(nurse, pid, "phq9", answers,
                                                      idempotency_key="k-1")
    assert created and not created2 and again.id == first.id
    assert first.prorated and first.total == 15  # 12 / 7 × 9 = 15.4
    assert len(services.mbc.assessments.list_for_patient(nurse, pid)) == 1


def test_an_analyst_may_not_record_or_read_assessments(services, users):
    pid = make_patient(services)
    with pytest.raises(PermissionDenied):
        services.mbc.assessments.record(actor(users, "analyst"), pid, "phq9", [0] * 9)
    with pytest.raises(PermissionDenied):
        services.mbc.assessments.list_for_patient(actor(users, "analyst"), pid)
    assert ("assessment.create", "analyst", "denied") in trail(services, pid)


def test_acknowledging_an_alert_needs_a_note_and_keeps_who_and_when(services, users, clock):
    pid = make_patient(services)
    services.mbc.assessments.record(actor(users, "nurse"), pid, "phq9", PHQ9_ITEM9)
    alert = services.mbc.alerts.worklist(actor(users, "nurse"))[0]
    with pytest.raises(InvalidInput, match="note"):
        services.mbc.alerts.acknowledge(actor(users, "prescriber"), alert.id, "   ")
    clock.advance(minutes=30)
    done = services.mbc.alerts.acknowledge(actor(users, "prescriber"), alert.id,
                                           "Called; safety plan reviewed")
    assert done.acknowledged_by == "prescriber" and done.acknowledged_at == clock.now
    assert done.ack_note == "Called; safety plan reviewed"
    assert services.mbc.alerts.worklist(actor(users, "nurse")) == []
    with pytest.raises(Conflict):
        services.mbc.alerts.acknowledge(actor(users, "nurse"), alert.id, "again")
    assert ("alert.acknowledge", "prescriber", "ok") in trail(services, pid)
    with pytest.raises(PermissionDenied):
        services.mbc.alerts.acknowledge(actor(users, "analyst"), alert.id, "x")


def test_madrs_item10_alerts_at_four_but_not_three(services, users):
    pid = make_patient(services)
    nurse = actor(users, "nurse")
    services.mbc.assessments.record(nurse, pid, "madrs", [3] * 10)
    assert services.mbc.alerts.worklist(nurse) == []
    services.mbc.assessments.record(nurse, pid, "madrs", [3] * 9 + [4])
    assert [a.rule for a in services.mbc.alerts.worklist(nurse)] == ["madrs.item10"]


def test_a_self_report_link_works_once_and_raises_alerts_as_patient_link(services, users):
    pid = make_patient(services)
    svc = services.mbc.self_report
    link, token = svc.create_link(actor(users, "nurse"), pid, "phq9")
    with services.db.transaction() as s:
        stored = s.get(SelfReportLink, link.id)
        assert stored.token_hash != token and len(stored.token_hash) == 64
    form = svc.open_form(token, "10.0.0.1")
    assert form.instrument == "phq9" and len(form.items) == 10
    assert "Sam" not in repr(form) and "Testperson" not in repr(form)
    rec = svc.submit(token, form.form_key, {i: v for i, v in enumerate(PHQ9_ITEM9, 1)},
                     "10.0.0.1")
    assert rec.source == "self-report" and rec.total == 9
    assert [a.rule for a in services.mbc.alerts.worklist(actor(users, "nurse"))] == [
        "phq9.item9"]
    with pytest.raises(LinkUnavailable, match="already been sent"):
        svc.open_form(token, "10.0.0.1")
    with pytest.raises(LinkUnavailable):
        svc.submit(token, form.form_key, PHQ9_ITEM9, "10.0.0.1")
    actions = trail(services, pid)
    assert ("assessment.create", "patient-link", "ok") in actions
    assert ("self_report.open", "patient-link", "ok") in actions


def test_a_self_report_link_expires(services, users, clock):
    pid = make_patient(services)
    svc = services.mbc.self_report
    _, token = svc.create_link(actor(users, "nurse"), pid, "gad7")
    clock.advance(hours=73)
    with pytest.raises(LinkUnavailable, match="expired"):
        svc.open_form(token, "10.0.0.2")


def test_a_wrong_form_key_or_bad_answers_count_against_the_link_until_it_locks(services, users):
    pid = make_patient(services)
    svc = services.mbc.self_report
    _, token = svc.create_link(actor(users, "nurse"), pid, "phq9")
    key = svc.open_form(token, "10.0.0.3").form_key
    with pytest.raises(InvalidInput, match="out of date"):
        svc.submit(token, "forged", PHQ9_ITEM9, "10.0.0.3")
    for _ in range(services.settings.self_report_max_failures - 1):
        with pytest.raises(InvalidInput, match="item 1"):
            svc.submit(token, key, ["9"] + ["0"] * 8, "10.0.0.3")
    with pytest.raises(LinkUnavailable, match="locked"):
        svc.submit(token, key, PHQ9_ITEM9, "10.0.0.3")


def test_requests_from_one_address_are_rate_limited(services, users):
    pid = make_patient(services)
    _, token = services.mbc.self_report.create_link(actor(users, "nurse"), pid, "phq9")
    for _ in range(services.settings.self_report_ip_limit):
        with pytest.raises(LinkUnavailable):
            services.mbc.self_report.open_form("guess-" + token[:8], "10.9.9.9")
    with pytest.raises(Throttled):
        services.mbc.self_report.open_form(token, "10.9.9.9")
    services.mbc.self_report.open_form(token, "10.9.9.8")  # another address still works


def test_licensed_instruments_without_item_text_cannot_be_self_reported(services, users):
    pid = make_patient(services)
    with pytest.raises(InvalidInput, match="cannot be self-reported"):
        services.mbc.self_report.create_link(actor(users, "nurse"), pid, "madrs")


def test_an_outboxed_link_gets_its_token_only_at_delivery_and_console_prints_no_patient_data(
        services, users):
    pid = make_patient(services)
    link, token = services.mbc.self_report.create_link(actor(users, "nurse"), pid, "phq9",
                                                       delivery="console")
    assert token is None
    lines: list[str] = []
    report = services.mbc.outbox.send_due({"console": ConsoleAdapter(lines.append)})
    assert report.sent == 1 and report.failed == 0
    assert lines == [f"outbox: message 1 for self-report link {link.id} "
                     "(console adapter; not sent to anyone)"]
    assert services.mbc.outbox.send_due({"console": ConsoleAdapter(lines.append)}).sent == 0


def test_a_console_message_without_a_patient_fails_alone_and_the_run_goes_on(services, users):
    pid = make_patient(services)
    link, _ = services.mbc.self_report.create_link(actor(users, "nurse"), pid, "phq9",
                                                   delivery="console")
    with services.db.transaction() as s:
        s.add(OutboxMessage(patient_id=None, kind="reminder", channel="console",
                            dedupe_key="orphan", due_at=START - dt.timedelta(days=1),
                            created_at=START - dt.timedelta(days=1)))
    lines: list[str] = []
    report = services.mbc.outbox.send_due({"console": ConsoleAdapter(lines.append)})
    assert (report.sent, report.failed) == (1, 1)
    with services.db.transaction() as s:
        orphan = s.execute(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == "orphan")).scalar_one()
        assert (orphan.attempts, orphan.status) == (1, "pending")
        assert "has no patient" in orphan.last_error


class FakeSmtp:
    sent: list = []

    def __init__(self, host, port, timeout):  # type: ignore[no-untyped-def]
        self.host = host

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *a):  # type: ignore[no-untyped-def]
        return False

    def starttls(self):  # type: ignore[no-untyped-def]
        pass

    def login(self, user, password):  # type: ignore[no-untyped-def]
        pass

    def send_message(self, mail):  # type: ignore[no-untyped-def]
        FakeSmtp.sent.append(mail)


def test_reminders_are_queued_after_each_dose_and_emailed_with_a_working_link(services, users,
                                                                             clock):
    from kctest import make_settings

    pid = make_patient(services)
    cid = add_course(services, pid, [START - dt.timedelta(days=1, hours=1)])
    services.mbc.self_report.set_schedule(actor(users, "nurse"), pid, cid, "phq9", "1,3",
                                          channel="email")
    settings = make_settings(services.settings.database_url, smtp_host="smtp.invalid",
                             smtp_from="clinic@example.invalid")
    FakeSmtp.sent = []
    adapters = {"email": SmtpAdapter(settings, smtp=FakeSmtp)}
    report = services.mbc.outbox.send_due(adapters)
    assert (report.queued, report.sent) == (1, 1)
    mail = FakeSmtp.sent[0]
    assert mail["To"] == "pat@example.invalid"
    token = mail.get_content().split("/r/")[1].split()[0]
    form = services.mbc.self_report.open_form(token, "10.1.1.1")
    rec = services.mbc.self_report.submit(token, form.form_key, [0] * 9, "10.1.1.1")
    assert rec.course_id == cid
    clock.advance(days=2)
    assert services.mbc.outbox.send_due(adapters).queued == 1  # the day-3 reminder
    with services.db.transaction() as s:
        assert [m.day_offset for m in s.execute(select(OutboxMessage)).scalars()] == [1, 3]


def test_outcomes_per_course_show_response_and_days_since_last_dose(services, users, clock):
    pid = make_patient(services)
    nurse = actor(users, "nurse")
    doses = [START - dt.timedelta(days=d) for d in (20, 18, 16, 13, 11, 9)]
    add_course(services, pid, doses)
    for days_ago, total in ((21, 20), (15, 12), (10, 8), (3, 4)):
        answers = [min(3, max(0, total - 3 * i)) for i in range(9)]
        answers[8] = 0
        # make the total exact
        diff = total - sum(answers)
        answers[7] += diff
        services.mbc.assessments.record(nurse, pid, "phq9", answers,
                                        administered_at=START - dt.timedelta(days=days_ago))
    out = services.mbc.outcomes(nurse, pid)[0]
    assert out["instrument"] == "phq9" and out["baseline"] == 20
    assert out["status"] == "remission" and out["time_to_response_days"] == 10
    assert out["days_since_last_dose"] == 9


def test_a_hospitalisation_after_response_counts_as_relapse(services, users):
    pid = make_patient(services)
    nurse = actor(users, "nurse")
    add_course(services, pid, [START - dt.timedelta(days=d) for d in (20, 18)])
    services.mbc.assessments.record(nurse, pid, "phq9", [3, 3, 3, 3, 3, 3, 2, 0, 0],
                                    administered_at=START - dt.timedelta(days=21))
    services.mbc.assessments.record(nurse, pid, "phq9", [1, 1, 1, 1, 1, 0, 0, 0, 0],
                                    administered_at=START - dt.timedelta(days=15))
    services.mbc.assessments.record_event(nurse, pid, "hospitalisation_for_depression",
                                          (START - dt.timedelta(days=5)).date())
    out = services.mbc.outcomes(nurse, pid)[0]
    assert out["status"] == "relapsed" and out["relapse_reason"].startswith("event")
    with pytest.raises(InvalidInput, match="kind"):
        services.mbc.assessments.record_event(nurse, pid, "bad-kind", START.date())
