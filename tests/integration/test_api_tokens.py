"""Machine access: service accounts and their API tokens — on every backend.

Scoped, expiring, revocable bearer tokens, hashed at rest, shown once, audited as the service
account (with the token's prefix, never the secret), throttled like logins, declared in OpenAPI.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from kctest import USERS
from sqlalchemy import select, text

from ketaclinic.cli import main
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit import SYSTEM
from ketaclinic.services.errors import Conflict, InvalidInput, NotAuthenticated
from ketaclinic.store.tables import ApiToken, AuditEvent, LoginAttempt

PATIENT = {"mrn": "MRN-7001", "family_name": "Quill", "given_name": "Petra",
           "birth_date": "1980-02-03", "sex": "female"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def service_account(services, role: str = "nurse", username: str = "lab-feed"):  # type: ignore[no-untyped-def]
    return services.tokens.create_service_account(SYSTEM, username, "Lab results feed", role)


def issue(services, user_id: int, scopes: list[str], days: int = 30) -> str:  # type: ignore[no-untyped-def]
    return services.tokens.issue(SYSTEM, user_id, "integration", scopes, days).secret


def audit(services, action: str | None = None) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(s.execute(query).scalars())


@pytest.fixture
def api(app):  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# --- the lifecycle, through the API as an administrator ------------------------------------
def test_an_admin_creates_a_service_account_issues_lists_and_revokes_a_token(login, api,
                                                                              services):
    admin, csrf = login("admin")
    h = {"X-CSRF-Token": csrf}
    r = admin.post("/api/service-accounts", headers=h,
                   json={"username": "lab-feed", "full_name": "Lab feed", "role": "nurse"})
    assert r.status_code == 201 and r.json()["kind"] == "service", r.text
    account = r.json()["id"]
    r = admin.post(f"/api/service-accounts/{account}/tokens", headers=h, json={
        "label": "LIS", "scopes": ["patient.read", "clinical.write"], "expires_in_days": 30})
    assert r.status_code == 201, r.text
    issued = r.json()
    secret = issued["token"]
    assert secret.startswith(issued["prefix"] + "_") and issued["status"] == "active"
    assert api.get("/api/me", headers=bearer(secret)).json()["username"] == "lab-feed"
    listed = admin.get("/api/tokens", params={"user_id": account}).json()["items"]
    assert [t["prefix"] for t in listed] == [issued["prefix"]]
    assert "token" not in listed[0] and secret not in str(listed)
    assert listed[0]["last_used_at"] is not None
    r = admin.post(f"/api/tokens/{issued['id']}/revoke", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = api.get("/api/me", headers=bearer(secret))
    assert r.status_code == 401 and r.json() == {"detail": "the API token was revoked"}
    assert r.headers["www-authenticate"].startswith("Bearer")
    [issue_row] = audit(services, "api_token.issue")
    [revoke_row] = audit(services, "api_token.revoke")
    assert issue_row.username == revoke_row.username == "admin"
    assert issued["prefix"] in issue_row.detail and issued["prefix"] in revoke_row.detail


def test_a_service_account_cannot_log_in_or_get_a_password(services, api, users):
    account = service_account(services, role="admin")
    r = api.post("/api/auth/login", json={"username": "lab-feed", "password": ""})
    assert r.status_code == 422  # the schema wants a password at all; any password fails:
    for password in ("!service-account: authenticates with API tokens only", "x" * 20):
        r = api.post("/api/auth/login", json={"username": "lab-feed", "password": password})
        assert r.status_code == 401 and "set-cookie" not in r.headers
    with pytest.raises(Conflict, match="service account"):
        services.accounts.reset_password(SYSTEM, account.id, "a-fresh-password-1234")
    with pytest.raises(NotAuthenticated):
        services.auth.reauthenticate("lab-feed", "x" * 20)
    person = users["nurse"]
    with pytest.raises(InvalidInput, match="not a service account"):
        services.tokens.issue(SYSTEM, person.id, "x", ["patient.read"], 1)


def test_issuing_refuses_unknown_scopes_scopes_beyond_the_role_and_long_expiries(services):
    analyst = service_account(services, role="analyst", username="stats")
    with pytest.raises(InvalidInput, match="does not grant the scope patient.read"):
        issue(services, analyst.id, ["patient.read"])
    with pytest.raises(InvalidInput, match="unknown scope"):
        issue(services, analyst.id, ["patients:everything"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        issue(services, analyst.id, [])
    with pytest.raises(InvalidInput, match="expires_in_days must be 1–90"):
        issue(services, analyst.id, ["dashboard.read"], days=91)
    with pytest.raises(InvalidInput, match="expires_in_days"):
        issue(services, analyst.id, ["dashboard.read"], days=0)
    with services.db.transaction() as s:
        assert s.execute(select(ApiToken)).first() is None  # nothing was written


# --- hashed at rest ------------------------------------------------------------------------
def test_the_database_never_holds_the_secret(services, api):
    account = service_account(services)
    secret = issue(services, account.id, ["patient.read"])
    api.get("/api/patients", headers=bearer(secret))
    random_part = secret.split("_", 2)[2]
    with services.db.engine.connect() as conn:
        for table in ("api_tokens", "audit_events", "login_attempts", "users"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert random_part not in " ".join(str(v) for v in row), table
        stored = conn.execute(text("SELECT token_hash, prefix FROM api_tokens")).one()
    assert len(stored.token_hash) == 64 and secret.split("_")[1] == stored.prefix


# --- refused tokens: 401 with a clear message, nothing more ----------------------------------
def test_expired_revoked_unknown_and_malformed_tokens_are_refused_with_401(services, api,
                                                                           clock):
    account = service_account(services)
    good = issue(services, account.id, ["patient.read"], days=1)
    assert api.get("/api/patients", headers=bearer(good)).status_code == 200
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    unknown = "kct_00000000_" + good.split("_", 2)[2]
    cases = {forged: "the API token is not valid", unknown: "the API token is not valid",
             "not-a-token": "the API token is not valid"}
    for token, message in cases.items():
        r = api.get("/api/patients", headers=bearer(token))
        assert (r.status_code, r.json()) == (401, {"detail": message}), token
    r = api.get("/api/patients", headers={"Authorization": "Basic bGFiOmZlZWQ="})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    clock.advance(days=1)
    r = api.get("/api/patients", headers=bearer(good))
    assert (r.status_code, r.json()) == (401, {"detail": "the API token has expired"})
    services.auth.set_active(SYSTEM, account.id, False)
    fresh = issue(services, service_account(services, username="other").id, ["patient.read"])
    services.auth.set_active(SYSTEM, services.accounts.user_id_for(SYSTEM, "other"), False)
    r = api.get("/api/patients", headers=bearer(fresh))
    assert (r.status_code, r.json()) == (401, {"detail": "the API token is not valid"})
    failed = [e for e in audit(services, "api_token.use") if e.outcome == "failed"]
    assert len(failed) == 5  # forged, unknown, malformed, expired, deactivated
    assert {e.username for e in failed} >= {"token:?", "token:00000000", "lab-feed"}


def test_failed_bearer_attempts_count_toward_the_login_throttle(services, api):
    account = service_account(services)
    good = issue(services, account.id, ["patient.read"])
    for n in range(20):
        r = api.get("/api/patients", headers=bearer(f"kct_{n:08x}_" + "A" * 43))
        assert r.status_code == 401
    r = api.get("/api/patients", headers=bearer(good))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    with services.db.transaction() as s:
        assert s.execute(select(LoginAttempt).where(LoginAttempt.success.is_(False))
                         ).scalars().all().__len__() == 20


# --- scopes ----------------------------------------------------------------------------------
def test_a_token_without_the_scope_gets_403_naming_it_and_the_denial_is_audited(services, api):
    account = service_account(services, role="prescriber")
    reader = issue(services, account.id, ["patient.read"])
    r = api.post("/api/patients", headers=bearer(reader), json=PATIENT)
    assert r.status_code == 403
    assert r.json() == {"detail": "this API token lacks the scope patient.write"}
    denied = [e for e in audit(services) if e.outcome == "denied"]
    assert denied and denied[-1].username == "lab-feed"
    assert "missing scope patient.write" in denied[-1].detail
    # The role still bounds everything: a prescriber's token never manages users.
    with pytest.raises(InvalidInput):
        issue(services, account.id, ["user.manage"])


# --- CSRF: bearer requests need none, cookie requests still do --------------------------------
def test_bearer_requests_need_no_csrf_token_but_cookie_requests_still_do(services, api, login):
    account = service_account(services)
    writer = issue(services, account.id, ["patient.read", "patient.write"])
    r = api.post("/api/patients", headers=bearer(writer), json=PATIENT)
    assert r.status_code == 201, r.text
    assert "set-cookie" not in r.headers  # a bearer request never gets a session
    nurse, csrf = login("nurse")
    other = dict(PATIENT, mrn="MRN-7002")
    assert nurse.post("/api/patients", json=other).status_code == 403
    assert nurse.post("/api/patients", json=other, headers={"X-CSRF-Token": csrf}
                      ).status_code == 201


def test_a_bearer_header_decides_even_beside_a_session_cookie(services, login):
    nurse, _csrf = login("nurse")
    r = nurse.get("/api/me", headers=bearer("kct_deadbeef_" + "A" * 43))
    assert r.status_code == 401  # the cookie does not rescue a bad token


def test_tokens_do_not_open_html_pages(services, api):
    account = service_account(services)
    token = issue(services, account.id, ["patient.read"])
    r = api.get("/patients", headers=bearer(token), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


# --- audit: the service account, with the token's prefix -----------------------------------
def test_patient_reads_and_changes_are_audited_as_the_service_account_with_the_prefix(
        services, api):
    account = service_account(services)
    issued = services.tokens.issue(SYSTEM, account.id, "LIS", ["patient.read",
                                                                "patient.write"], 10)
    h = bearer(issued.secret)
    created = api.post("/api/patients", headers=h, json=PATIENT).json()
    assert api.get(f"/api/patients/{created['id']}", headers=h).status_code == 200
    rows = [e for e in audit(services) if e.patient_id == created["id"]]
    assert len(rows) >= 2
    for row in rows:
        assert row.username == "lab-feed" and row.user_id == account.id
        assert row.detail.startswith(f"token kct_{issued.token.prefix}")
        assert issued.secret.split("_", 2)[2] not in row.detail
    assert services.audit_log.verify().ok


def test_the_secret_never_appears_in_the_logs(services, api, caplog):
    caplog.set_level(logging.DEBUG)
    account = service_account(services)
    secret = issue(services, account.id, ["patient.read"])
    api.get("/api/patients", headers=bearer(secret))
    api.get("/api/patients", headers=bearer(secret[:-2] + "zz"))
    revoked = services.tokens.list_tokens(SYSTEM)[0]
    services.tokens.revoke(SYSTEM, revoked.id)
    api.get("/api/patients", headers=bearer(secret))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret.split("_", 2)[2] not in logged
    assert secret[-20:] not in logged and secret[:-2] not in logged


# --- command line --------------------------------------------------------------------------
def test_the_command_line_creates_issues_lists_and_revokes(services, database_url, capsys,
                                                          api):
    from kctest import TEST_SECRET
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": database_url,
           "KETACLINIC_SECRET_KEY": TEST_SECRET}
    assert main(["service-account", "create", "pacs", "--role", "nurse",
                 "--full-name", "PACS bridge"], environ=env) == 0
    assert main(["tokens", "issue", "pacs", "--scope", "patient.read", "--days", "7",
                 "--label", "pacs"], environ=env) == 0
    out = capsys.readouterr().out
    secret = next(w for w in out.split() if w.startswith("kct_") and w.count("_") >= 2
                  and len(w) > 40)
    assert api.get("/api/patients", headers=bearer(secret)).status_code == 200
    assert main(["tokens", "list"], environ=env) == 0
    listed = capsys.readouterr().out
    prefix = "_".join(secret.split("_")[:2])
    assert prefix in listed and secret not in listed and "active" in listed
    assert main(["tokens", "revoke", prefix], environ=env) == 0
    assert api.get("/api/patients", headers=bearer(secret)).status_code == 401
    assert main(["tokens", "issue", "pacs", "--scope", "user.manage", "--days", "7",
                 "--label", "x"], environ=env) == 2


# --- OpenAPI ---------------------------------------------------------------------------------
def test_openapi_declares_the_cookie_and_bearer_schemes_per_operation(api):
    schema = api.get("/api/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerToken"]["type"] == "http" and schemes["bearerToken"]["scheme"] == \
        "bearer"
    assert schemes["sessionCookie"] == {**schemes["sessionCookie"], "type": "apiKey",
                                        "in": "cookie", "name": "kc_session"}
    either = [{"sessionCookie": []}, {"bearerToken": []}]
    for path, method in [("/api/patients", "get"), ("/api/patients", "post"),
                         ("/api/tokens", "get")]:
        assert sorted(schema["paths"][path][method]["security"], key=str) == sorted(
            either, key=str), path
    assert "security" not in schema["paths"]["/api/auth/login"]["post"]
    export = [p for p in schema["paths"] if "$export" in p]
    assert export and all(
        op.get("security") for p in export for op in schema["paths"][p].values())


def test_users_list_shows_the_kind(login, services):
    service_account(services)
    admin, _ = login("admin")
    kinds = {u["username"]: u["kind"] for u in admin.get("/api/users").json()["items"]}
    assert kinds["lab-feed"] == "service" and kinds[USERS["nurse"][0]] == "person"


# --- the admin page --------------------------------------------------------------------------
def test_the_admin_page_creates_an_account_issues_a_token_once_and_revokes_it(login, services,
                                                                              api):
    from kctest import csrf_from
    admin, _ = login("admin")
    page = admin.get("/admin/tokens")
    assert page.status_code == 200
    csrf = csrf_from(page.text)
    r = admin.post("/admin/service-accounts", data={"csrf_token": csrf, "username": "ehr-sync",
                                                    "full_name": "EHR sync", "role": "nurse"},
                   follow_redirects=False)
    assert r.status_code == 303
    account = services.accounts.user_id_for(SYSTEM, "ehr-sync")
    r = admin.post(f"/admin/service-accounts/{account}/tokens", content=(
        f"csrf_token={csrf}&label=EHR&expires_in_days=14&scope=patient.read"
        "&scope=clinical.write"), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    secret = r.text.split('aria-label="API token">')[1].split("<")[0]
    assert api.get("/api/me", headers=bearer(secret)).status_code == 200
    [token] = services.tokens.list_tokens(SYSTEM)
    assert token.scopes == ("clinical.write", "patient.read")
    listing = admin.get("/admin/tokens").text
    assert f"kct_{token.prefix}" in listing and secret not in listing
    r = admin.post(f"/admin/tokens/{token.id}/revoke", data={"csrf_token": csrf},
                   follow_redirects=False)
    assert r.status_code == 303
    assert api.get("/api/me", headers=bearer(secret)).status_code == 401
    assert admin.post(f"/admin/tokens/{token.id}/revoke", data={"x": "1"}).status_code == 403
    nurse, _ = login("nurse")
    assert nurse.get("/admin/tokens").status_code == 403


def test_a_bulk_fhir_export_runs_with_a_token_and_needs_export_identified(services, api):
    account = service_account(services, role="prescriber", username="research-etl")
    exporter = issue(services, account.id, ["export.identified", "patient.read"])
    reader = issue(services, account.id, ["patient.read"])
    services.patients.create(SYSTEM, PatientCreate(**PATIENT))
    asynchronous = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    r = api.get("/api/fhir/$export", headers={**asynchronous, **bearer(reader)})
    assert r.status_code == 403 and "export.identified" in r.json()["detail"]
    r = api.get("/api/fhir/$export", headers={**asynchronous, **bearer(exporter)})
    assert r.status_code == 202, r.text
    manifest = api.get(r.headers["Content-Location"], headers=bearer(exporter)).json()
    patients = next(o for o in manifest["output"] if o["type"] == "Patient")
    f = api.get(patients["url"], headers=bearer(exporter))
    assert f.status_code == 200 and "Quill" in f.text
    rows = [e for e in audit(services) if e.action.startswith("export.fhir")]
    assert rows and all(e.username == "research-etl" and "token kct_" in e.detail
                        for e in rows if e.outcome == "ok")
