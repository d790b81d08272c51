"""Webhooks and the SMS channel on every backend, against a real HTTP server in a thread.

The receiver is ``http.server`` on 127.0.0.1 (``KETACLINIC_OUTBOUND_ALLOW_HTTP`` lets the
server call it); it records every request and answers with the statuses a test scripts.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kctest import TEST_SECRET
from sqlalchemy import select

from ketaclinic.bootstrap import Services
from ketaclinic.cli import main
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import InvalidInput, PermissionDenied
from ketaclinic.services.interop.outbound import UnsafeUrl, check_resolved, check_url
from ketaclinic.services.interop.webhooks import (
    EVENT_ID_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    retry_delay,
    secret_context,
    verify,
)
from ketaclinic.services.secretbox import SecretBox
from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_chair import RemsFormRow
from ketaclinic.store.tables_mbc import ClinicalAlert, OutboxMessage, WebhookEndpoint
from ketaclinic.store.tables_treatment import Course, TreatmentSession

PHQ9_ITEM9 = [1, 1, 1, 1, 1, 1, 1, 1, 1]  # item 9 >= 1: an urgent alert
NAME, GIVEN, MRN, PHONE = "Quillfeather", "Ormsby", "WH-7731", "+1 (555) 010-2030"
SMS_TOKEN = "sms-token-for-tests"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server: answers with the scripted statuses (then 204) and records all."""

    url: str
    script: deque[int] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0
    reply: bytes = b"ok"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.seen.append(Seen(self.path, dict(self.headers.items()), body))
            if state.delay:
                time.sleep(state.delay)
            status = state.script.popleft() if state.script else 204
            self.send_response(status)
            self.send_header("Content-Length", str(len(state.reply)))
            self.end_headers()
            self.wfile.write(state.reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the loop's next poll: at the default 0.5 s that was most of a
    # webhook test's time; 20 ms keeps it short at a negligible CPU cost while idle.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def hooks(services: Services, users, receiver: Receiver, services_for) -> Services:
    """The services on the same (wiped) database, allowed to call the local receiver."""
    return services_for(  # type: ignore[no-any-return]
        outbound_allow_http=True, outbound_timeout_seconds=1, sms_url=f"{receiver.url}/sms",
        sms_token=SMS_TOKEN, sms_sender="Clinic", clinic_name="Riverside Clinic")


def patient(svc: Services, phone: str = PHONE) -> int:
    p, _ = svc.patients.create(SYSTEM, PatientCreate(
        mrn=MRN, family_name=NAME, given_name=GIVEN, birth_date=dt.date(1979, 4, 5),
        sex="other", phone=phone, email="quill@example.invalid"))
    return p.id


def outbox(svc: Services) -> list[OutboxMessage]:
    with svc.db.transaction() as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def stamp(at: dt.datetime) -> int:
    return int(at.replace(tzinfo=dt.UTC).timestamp())


def test_an_urgent_alert_is_posted_signed_with_ids_only_and_the_signature_verifies(
        hooks, users, receiver, clock):
    info, secret = hooks.webhooks.add(users["admin"].actor, f"{receiver.url}/hook",
                                      ["alert.urgent"], "pager")
    pid = patient(hooks)
    hooks.mbc.assessments.record(users["nurse"].actor, pid, "phq9", PHQ9_ITEM9)
    report = hooks.mbc.outbox.send_due()
    assert (report.sent, report.failed) == (1, 0)
    [got] = receiver.seen
    assert got.path == "/hook" and got.headers["Content-Type"] == "application/json"
    assert verify(secret, got.headers[SIGNATURE_HEADER], got.body, stamp(clock()))
    assert not verify(secret, got.headers[SIGNATURE_HEADER], got.body + b" ", stamp(clock()))
    assert not verify("whsec_other", got.headers[SIGNATURE_HEADER], got.body, stamp(clock()))
    # outside the 5-minute tolerance a replayed request is refused
    assert not verify(secret, got.headers[SIGNATURE_HEADER], got.body, stamp(clock()) + 301)
    event = json.loads(got.body)
    with hooks.db.transaction() as s:
        alert_id = s.execute(select(ClinicalAlert.id)).scalar_one()
    assert event == {"id": got.headers[EVENT_ID_HEADER], "type": "alert.urgent",
                     "created": "2026-11-02T09:00:00Z",
                     "data": {"alert_id": alert_id, "patient_id": pid,
                              "link": f"/patients/{pid}"}}
    assert got.headers["X-Ketaclinic-Event"] == "alert.urgent"
    for private in (NAME, GIVEN, MRN, "1979", "555", "quill@", "phq9", "item"):
        assert private not in got.body.decode()
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts, msg.endpoint_id) == ("sent", 1, info.id)
    assert hooks.mbc.outbox.send_due().sent == 0  # sent once


def test_a_500_is_retried_after_the_back_off_with_the_same_event_and_then_succeeds(
        hooks, users, receiver, clock):
    _info, secret = hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent"])
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    receiver.script.extend([500])
    assert hooks.mbc.outbox.send_due().failed == 1
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts, msg.last_error) == ("pending", 1, "DeliveryError: HTTP 500")
    assert msg.due_at == clock() + retry_delay(1) == clock() + dt.timedelta(minutes=2)
    assert hooks.mbc.outbox.send_due().sent == 0 and len(receiver.seen) == 1  # not due yet
    clock.advance(minutes=2)
    assert hooks.mbc.outbox.send_due().sent == 1
    first, second = receiver.seen
    assert first.body == second.body
    assert first.headers[EVENT_ID_HEADER] == second.headers[EVENT_ID_HEADER]
    assert verify(secret, second.headers[SIGNATURE_HEADER], second.body, stamp(clock()))
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts, msg.last_error) == ("sent", 2, "")


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_a_client_error_or_redirect_fails_at_once_without_retry(hooks, users, receiver, status):
    hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent"])
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    receiver.script.append(status)
    assert hooks.mbc.outbox.send_due().failed == 1
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts) == ("failed", 1)
    assert msg.last_error.startswith(f"PermanentFailure: HTTP {status}")


@pytest.mark.parametrize("status", [408, 429, 503])
def test_timeouts_and_throttling_answers_are_retried(hooks, users, receiver, status):
    hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent"])
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    receiver.script.append(status)
    hooks.mbc.outbox.send_due()
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts) == ("pending", 1)


def test_a_receiver_that_never_succeeds_fails_after_the_maximum_attempts(
        hooks, users, receiver, clock):
    hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent"])
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    receiver.script.extend([502] * (MAX_ATTEMPTS + 2))
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert hooks.mbc.outbox.send_due().failed == 1
        [msg] = outbox(hooks)
        assert msg.attempts == attempt
        if attempt < MAX_ATTEMPTS:
            waits.append(msg.due_at - clock())
            clock.advance(seconds=(msg.due_at - clock()).total_seconds())
    assert msg.status == "failed" and len(receiver.seen) == MAX_ATTEMPTS
    assert [w // dt.timedelta(minutes=1) for w in waits] == [2, 4, 8, 16, 32, 64, 128]
    clock.advance(days=1)
    assert hooks.mbc.outbox.send_due().failed == 0 and len(receiver.seen) == MAX_ATTEMPTS


def test_a_receiver_that_does_not_answer_in_time_counts_as_a_retryable_failure(
        hooks, users, receiver):
    hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent"])
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    receiver.delay = 1.5  # the timeout is 1 s
    hooks.mbc.outbox.send_due()
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts) == ("pending", 1)
    assert msg.last_error == "DeliveryError: timed out (ReadTimeout)"


def test_no_patient_data_reaches_the_payload_the_errors_the_audit_or_the_logs(
        hooks, users, receiver, clock, capsys, caplog):
    hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent", "rems.deadline"])
    pid = patient(hooks)
    hooks.mbc.assessments.record(users["nurse"].actor, pid, "phq9", PHQ9_ITEM9)
    # A receiver that echoes what it got in its error page: the echo is not kept anywhere.
    receiver.reply = f"error for {NAME} {MRN} whsec_".encode()
    receiver.script.append(500)
    hooks.mbc.outbox.send_due()
    clock.advance(minutes=2)
    hooks.mbc.outbox.send_due()
    with hooks.db.transaction() as s:
        details = [e.detail for e in s.execute(select(AuditEvent)).scalars()]
        stored = [(m.payload, m.last_error) for m in s.execute(select(OutboxMessage)).scalars()]
        secrets_at_rest = list(s.execute(select(WebhookEndpoint.secret)).scalars())
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    texts = [*details, *(p for p, _ in stored), *(e for _, e in stored), logs,
             *(r.body.decode() for r in receiver.seen)]
    for private in (NAME, GIVEN, MRN, "1979-04-05", "010-2030", "quill@example"):
        assert not any(private in t for t in texts), private
    assert any("webhook.send" in d or "alert.urgent" in d for d in details)
    assert all(s.startswith("v1.") and "whsec_" not in s for s in secrets_at_rest)


def test_a_refused_or_rolled_back_alert_write_queues_nothing(hooks, users, receiver):
    hooks.webhooks.add(users["admin"].actor, receiver.url, ["alert.urgent"])
    pid = patient(hooks)
    with pytest.raises(InvalidInput):
        hooks.mbc.assessments.record(users["nurse"].actor, pid, "phq9", [1] * 8 + [7])
    assert outbox(hooks) == []

    class Refused(Exception):
        pass

    with pytest.raises(Refused), hooks.db.transaction() as s:
        hooks.mbc.assessments.store_scored(s, users["nurse"].actor, pid, "phq9", PHQ9_ITEM9,
                                           dt.datetime(2026, 11, 2, 8), course_id=None,
                                           session_id=None, source="clinic")
        assert len(s.execute(select(OutboxMessage)).all()) == 1  # queued with the alert...
        raise Refused  # ...and gone with it when the write is refused
    assert outbox(hooks) == []
    with hooks.db.transaction() as s:
        assert s.execute(select(ClinicalAlert)).first() is None
    assert hooks.mbc.outbox.send_due().sent == 0 and receiver.seen == []


def test_only_subscribed_active_endpoints_get_an_event_and_removal_cancels_pending(
        hooks, users, receiver):
    admin = users["admin"].actor
    rems_only, _ = hooks.webhooks.add(admin, f"{receiver.url}/rems", ["rems.deadline"])
    alerts, _ = hooks.webhooks.add(admin, f"{receiver.url}/alerts", ["alert.urgent"])
    both, _ = hooks.webhooks.add(admin, f"{receiver.url}/both", ["alert.urgent",
                                                                  "rems.deadline"])
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    assert sorted(m.endpoint_id for m in outbox(hooks)) == [alerts.id, both.id]
    assert len({m.payload for m in outbox(hooks)}) == 1  # one event id for every endpoint
    assert hooks.webhooks.remove(admin, both.id) == 1
    assert [i.id for i in hooks.webhooks.list(admin)] == [rems_only.id, alerts.id]
    hooks.mbc.outbox.send_due()
    assert [r.path for r in receiver.seen] == ["/alerts"]
    assert {m.status for m in outbox(hooks)} == {"sent", "cancelled"}


def add_rems_form(svc: Services, pid: int, treatment_date: dt.date) -> int:
    now = dt.datetime(2026, 11, 1, 9)
    with svc.db.transaction() as s:
        course = Course(patient_id=pid, template_id="esketamine_induction",
                        treatment="esketamine", start_date=treatment_date, created_at=now,
                        updated_at=now)
        s.add(course)
        s.flush()
        ts = TreatmentSession(patient_id=pid, course_id=course.id, number=1,
                              treatment="esketamine", status="discharged",
                              planned_date=treatment_date, phase="induction", created_at=now,
                              updated_at=now)
        s.add(ts)
        s.flush()
        form = RemsFormRow(session_id=ts.id, patient_id=pid, treatment_date=treatment_date,
                           due_on=treatment_date + dt.timedelta(days=7), status="due",
                           created_at=now)
        s.add(form)
        s.flush()
        return form.id


def test_a_rems_deadline_is_announced_once_when_approaching_and_once_when_overdue(
        hooks, users, receiver, clock):
    _info, secret = hooks.webhooks.add(users["admin"].actor, receiver.url, ["rems.deadline"])
    pid = patient(hooks)
    # treated on 29 Oct: due 5 Nov; the clock says 2 Nov (3 days left), 3 Nov (2 left), 6 Nov
    form_id = add_rems_form(hooks, pid, dt.date(2026, 10, 29))
    assert hooks.mbc.outbox.send_due().events == 0
    clock.advance(days=1)
    assert hooks.mbc.outbox.send_due().events == 1
    assert hooks.mbc.outbox.send_due().events == 0  # queued once
    clock.advance(days=3)
    report = hooks.mbc.outbox.send_due()
    assert (report.events, report.sent) == (1, 1)
    assert hooks.mbc.outbox.send_due().events == 0
    states = [json.loads(r.body)["data"]["state"] for r in receiver.seen]
    assert states == ["approaching", "overdue"]
    data = json.loads(receiver.seen[1].body)["data"]
    assert data == {"form_id": form_id, "session_id": data["session_id"], "patient_id": pid,
                    "state": "overdue", "link": "/rems"}
    assert verify(secret, receiver.seen[1].headers[SIGNATURE_HEADER], receiver.seen[1].body,
                  stamp(clock()))
    with hooks.db.transaction() as s:  # a submitted form is not announced
        s.get(RemsFormRow, form_id).status = "submitted"
    add_rems_form(hooks, pid, dt.date(2026, 11, 7))  # due 14 Nov: 8 days left on 6 Nov
    assert hooks.mbc.outbox.send_due().events == 0


@pytest.mark.parametrize("url, reason", [
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("https://169.254.10.1/hook", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[::ffff:169.254.169.254]/hook", "link-local"),
    ("https://[fd00:ec2::254]/hook", "metadata"),
    ("https://0.0.0.0/hook", "no receiver"),
    ("https://224.0.0.1/hook", "no receiver"),
    ("https://user:pw@example.org/hook", "user name"),
    ("ftp://example.org/hook", "https://"),
    ("https:///hook", "no host"),
])
def test_unsafe_webhook_addresses_are_refused_and_nothing_is_stored(hooks, users, url, reason):
    with pytest.raises(InvalidInput, match=reason):
        hooks.webhooks.add(users["admin"].actor, url, ["alert.urgent"])
    with hooks.db.transaction() as s:
        assert s.execute(select(WebhookEndpoint)).first() is None


def test_http_and_this_host_are_refused_unless_the_setting_allows_them(services):
    strict = services.settings
    assert not strict.outbound_allow_http
    for url in ("http://example.org/hook", "https://127.0.0.1/hook", "https://[::1]/hook"):
        with pytest.raises(UnsafeUrl):
            check_url(url, strict)
    assert check_url(" https://hooks.example.org/k?x=1 ", strict) == (
        "https://hooks.example.org/k?x=1")
    with pytest.raises(UnsafeUrl, match="this host"):  # the name resolves to loopback
        check_resolved("https://localhost/hook", strict)


def test_only_an_administrator_manages_webhooks_and_the_secret_is_shown_once(
        hooks, users, login, receiver):
    with pytest.raises(PermissionDenied):
        hooks.webhooks.add(users["prescriber"].actor, "https://example.org/h", ["alert.urgent"])
    admin, csrf = login("admin")
    r = admin.post("/api/admin/webhooks", headers={"X-CSRF-Token": csrf}, json={
        "url": "https://hooks.example.org/ketaclinic", "events": ["rems.deadline"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["rems.deadline"]
    listed = admin.get("/api/admin/webhooks").json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    assert [w["id"] for w in listed["items"]] == [created["id"]]
    with hooks.db.transaction() as s:
        stored = s.get(WebhookEndpoint, created["id"]).secret
    assert created["secret"] not in stored
    assert hooks.webhooks.box.decrypt(stored, secret_context(created["id"])) == (
        created["secret"])
    r = admin.post(f"/api/admin/webhooks/{created['id']}/test", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202 and outbox(hooks)[0].kind == "webhook.test"
    nurse, ncsrf = login("nurse")
    assert nurse.get("/api/admin/webhooks").status_code == 403
    assert nurse.delete(f"/api/admin/webhooks/{created['id']}",
                        headers={"X-CSRF-Token": ncsrf}).status_code == 403
    r = admin.post("/api/admin/webhooks", headers={"X-CSRF-Token": csrf}, json={
        "url": "http://169.254.169.254/", "events": ["alert.urgent"]})
    assert r.status_code == 422
    r = admin.delete(f"/api/admin/webhooks/{created['id']}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json() == {"cancelled": 1}
    assert admin.get("/api/admin/webhooks").json()["items"] == []


def test_the_cli_adds_tests_lists_and_removes_an_endpoint(hooks, receiver, capsys):
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATABASE_URL": hooks.settings.database_url,
           "KETACLINIC_OUTBOUND_ALLOW_HTTP": "true"}
    assert main(["webhooks", "add", f"{receiver.url}/cli", "--event", "alert.urgent",
                 "--event", "rems.deadline"], environ=env) == 0
    out = capsys.readouterr().out
    secret = out.split("secret store): ")[1].strip()
    assert main(["webhooks", "test", "1"], environ=env) == 0
    assert "delivered" in capsys.readouterr().out
    [got] = receiver.seen
    assert json.loads(got.body)["type"] == "webhook.test"
    assert verify(secret, got.headers[SIGNATURE_HEADER], got.body, int(time.time()))
    assert main(["webhooks", "list", "--json"], environ=env) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["events"] == ["alert.urgent", "rems.deadline"] and secret not in json.dumps(row)
    receiver.script.append(410)
    assert main(["webhooks", "test", "1"], environ=env) == 1
    assert "HTTP 410" in capsys.readouterr().err
    receiver.script.append(503)
    assert main(["webhooks", "test", "1", "--json"], environ=env) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["delivered"], doc["status"], doc["error"]["exit_code"]) == (False, "pending", 1)
    assert main(["webhooks", "remove", "1"], environ=env) == 0
    assert main(["webhooks", "remove", "1"], environ=env) == 4  # not found
    assert main(["webhooks", "add", "http://169.254.169.254/", "--event", "alert.urgent"],
                environ=env) == 2


def test_encrypt_secrets_seals_and_re_seals_webhook_secrets_after_the_secret_key_changed(
        hooks, users, receiver, capsys):
    """After a change of KETACLINIC_SECRET_KEY the signing secrets sealed under the old one no
    longer decrypt and every delivery fails; `ketaclinic user encrypt-secrets` with the old key
    in KETACLINIC_PREVIOUS_SECRET_KEY seals them under the new one, as it does two-factor keys.
    """
    admin = users["admin"].actor
    rotated, secret = hooks.webhooks.add(admin, f"{receiver.url}/rotated", ["alert.urgent"])
    plain, plain_secret = hooks.webhooks.add(admin, f"{receiver.url}/plain", ["alert.urgent"])
    old = "the-previous-instance-secret-" + "w" * 30
    with hooks.db.transaction() as s:
        s.get(WebhookEndpoint, rotated.id).secret = SecretBox.for_secrets(old).encrypt(
            secret, secret_context(rotated.id))
        s.get(WebhookEndpoint, plain.id).secret = plain_secret  # as an early version kept it
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATABASE_URL": hooks.settings.database_url}
    assert main(["user", "encrypt-secrets", "--json"], environ=env) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["webhooks"] == {"encrypted": 1, "reencrypted": 0, "current": 0,
                               "unreadable": [rotated.id]}
    assert "webhook secrets" in doc["error"]["message"]
    assert main(["user", "encrypt-secrets"], environ={
        **env, "KETACLINIC_PREVIOUS_SECRET_KEY": old}) == 0
    assert ("webhook secrets: 0 encrypted, 1 re-encrypted, 1 already current"
            in capsys.readouterr().out)
    with hooks.db.transaction() as s:
        stored = {e.id: e.secret for e in s.execute(select(WebhookEndpoint)).scalars()}
    assert all(v.startswith("v1.") and secret not in v and plain_secret not in v
               for v in stored.values())
    hooks.mbc.assessments.record(users["nurse"].actor, patient(hooks), "phq9", PHQ9_ITEM9)
    assert (hooks.mbc.outbox.send_due().sent, len(receiver.seen)) == (2, 2)
    for got in receiver.seen:  # each receiver's secret is the one it was given
        key = secret if got.path == "/rotated" else plain_secret
        assert verify(key, got.headers[SIGNATURE_HEADER], got.body, stamp(hooks.ctx.clock()))
    with hooks.db.transaction() as s:
        assert s.execute(select(AuditEvent.detail).where(
            AuditEvent.action == "webhook.secrets.encrypt").order_by(AuditEvent.id)
            ).scalars().all() == ["1 encrypted, 0 re-encrypted, 0 already current, 1 unreadable",
                                  "0 encrypted, 1 re-encrypted, 1 already current, 0 unreadable"]


def test_a_self_report_link_is_texted_to_the_patients_mobile_with_the_clinic_and_link_only(
        hooks, users, receiver):
    pid = patient(hooks)
    link, token = hooks.mbc.self_report.create_link(users["nurse"].actor, pid, "phq9",
                                                    delivery="sms")
    assert token is None
    report = hooks.mbc.outbox.send_due()
    assert (report.sent, report.failed) == (1, 0)
    [got] = receiver.seen
    assert got.path == "/sms" and got.headers["Authorization"] == f"Bearer {SMS_TOKEN}"
    sms = json.loads(got.body)
    assert set(sms) == {"from", "to", "body"}
    assert (sms["from"], sms["to"]) == ("Clinic", "+15550102030")
    assert sms["body"].startswith("Riverside Clinic: a short questionnaire from your care team: ")
    assert "/r/" in sms["body"]
    for private in (NAME, GIVEN, MRN, "PHQ", "phq9", "depress", "ketamine"):
        assert private not in sms["body"]
    with hooks.db.transaction() as s:
        [msg] = s.execute(select(OutboxMessage)).scalars().all()
        assert (msg.status, msg.channel, msg.link_id) == ("sent", "sms", link.id)


def test_a_failed_text_is_retried_by_the_outbox_and_a_refused_number_is_not_queued(
        hooks, users, receiver):
    pid = patient(hooks)
    hooks.mbc.self_report.create_link(users["nurse"].actor, pid, "phq9", delivery="sms")
    receiver.script.append(503)
    assert hooks.mbc.outbox.send_due().failed == 1
    [msg] = outbox(hooks)
    assert (msg.status, msg.attempts, msg.last_error) == ("pending", 1, "DeliveryError: HTTP 503")
    assert hooks.mbc.outbox.send_due().sent == 1  # the outbox retries on its next run
    other, _ = hooks.patients.create(SYSTEM, PatientCreate(
        mrn="WH-2", family_name="Local", given_name="Number", birth_date=dt.date(1990, 1, 1),
        sex="male", phone="555 0102"))
    with pytest.raises(InvalidInput, match="international form"):
        hooks.mbc.self_report.create_link(users["nurse"].actor, other.id, "phq9",
                                          delivery="sms")
    assert len(outbox(hooks)) == 1


def test_sms_is_refused_when_no_gateway_is_configured(services, users):
    pid = patient(services)
    with pytest.raises(InvalidInput, match="KETACLINIC_SMS_URL"):
        services.mbc.self_report.create_link(users["nurse"].actor, pid, "phq9", delivery="sms")


def test_a_reminder_by_sms_is_queued_after_the_dose_and_texted(hooks, users, receiver, clock):
    pid = patient(hooks)
    now = clock()
    with hooks.db.transaction() as s:
        course = Course(patient_id=pid, template_id="iv_ketamine_induction",
                        treatment="ketamine-iv", start_date=now.date(), created_at=now,
                        updated_at=now)
        s.add(course)
        s.flush()
        s.add(TreatmentSession(patient_id=pid, course_id=course.id, number=1,
                               treatment="ketamine-iv", status="discharged",
                               planned_date=now.date(), phase="induction",
                               dose_started_at=now - dt.timedelta(days=1, minutes=5),
                               created_at=now, updated_at=now))
        course_id = course.id
    hooks.mbc.self_report.set_schedule(users["nurse"].actor, pid, course_id, "phq9", "1",
                                       channel="sms")
    report = hooks.mbc.outbox.send_due()
    assert (report.queued, report.sent) == (1, 1)
    [got] = receiver.seen
    assert json.loads(got.body)["to"] == "+15550102030"
    assert [(m.kind, m.channel, m.status) for m in outbox(hooks)] == [("reminder", "sms", "sent")]
