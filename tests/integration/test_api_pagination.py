"""Every list the JSON API returns is one page: ``?limit=&offset=`` in, ``{items, total, limit,
offset}`` out, windowed in SQL with a stable order; bad windows are refused with 422.

The schema walk covers routes added later: a new GET route that returns a bare array, or a page
without the ``limit``/``offset`` parameters, fails it.
"""

from __future__ import annotations

from typing import Any

import pytest

from ketaclinic.schemas import PatientCreate, PatientUpdate
from ketaclinic.services.audit import SYSTEM
from ketaclinic.services.paging import DEFAULT_LIMIT, MAX_LIMIT

PAGE_KEYS = {"items", "total", "limit", "offset"}
ROLES = ["admin", "prescriber", "nurse", "analyst"]


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _ok_schema(op: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    for status in ("200", "201", "202"):
        content = op.get("responses", {}).get(status, {}).get("content", {})
        js = content.get("application/json", {}).get("schema")
        if js is not None:
            return _resolve(js, spec)
    return None


def _is_list(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        return True
    for alt in schema.get("anyOf", []) + schema.get("oneOf", []):
        if _resolve(alt, spec).get("type") == "array":
            return True
    return "items" in schema.get("properties", {})


def list_routes(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every GET route under /api whose response is a list or a page of one."""
    out = {}
    for path, ops in spec["paths"].items():
        op = ops.get("get")
        if op is None or not path.startswith("/api/"):
            continue
        schema = _ok_schema(op, spec)
        if schema is not None and _is_list(schema, spec):
            out[path] = {"op": op, "schema": schema}
    return out


def _problems(path: str, route: dict[str, Any]) -> list[str]:
    schema, op = route["schema"], route["op"]
    out = []
    props = set(schema.get("properties", {}))
    if schema.get("type") == "array" or not PAGE_KEYS <= props:
        out.append(f"{path}: returns a bare list, not a Page (items, total, limit, offset)")
    elif _resolve(schema["properties"]["items"], {}).get("type") != "array":
        out.append(f"{path}: 'items' is not an array")
    params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
    for name in ("limit", "offset"):
        if name not in params:
            out.append(f"{path}: no ?{name}= parameter")
    limit = params.get("limit", {}).get("schema", {})
    if limit and (limit.get("maximum") != MAX_LIMIT or limit.get("default") != DEFAULT_LIMIT):
        out.append(f"{path}: limit is not the shared one (default {DEFAULT_LIMIT}, max "
                   f"{MAX_LIMIT})")
    return out


def test_every_get_route_that_returns_a_list_is_paginated(app):
    spec = app.openapi()
    routes = list_routes(spec)
    # The walk finds the lists (so an empty walk cannot pass this test).
    assert {"/api/patients", "/api/users", "/api/audit", "/api/alerts", "/api/rulesets",
            "/api/ledger/lots", "/api/ledger/entries", "/api/rems/due",
            "/api/patients/{patient_id}/courses", "/api/patients/{patient_id}/sessions",
            "/api/patients/{patient_id}/screenings", "/api/patients/{patient_id}/doses",
            "/api/patients/{patient_id}/assessments", "/api/patients/{patient_id}/outcomes",
            "/api/patients/{patient_id}/history", "/api/rulesets/unconfirmed"} <= set(routes)
    problems = [p for path, route in sorted(routes.items()) for p in _problems(path, route)]
    assert problems == []


def test_the_schema_walk_fails_a_bare_list_route():
    spec = {"paths": {"/api/things": {"get": {"responses": {"200": {"content": {
        "application/json": {"schema": {"type": "array", "items": {}}}}}}}}},
        "components": {"schemas": {}}}
    routes = list_routes(spec)
    assert list(routes) == ["/api/things"]
    assert any("bare list" in p for p in _problems("/api/things", routes["/api/things"]))


@pytest.fixture
def patient(services):
    p = services.patients.create(SYSTEM, PatientCreate(
        mrn="PG-1", family_name="Pager", given_name="Pat", birth_date="1980-01-01",
        sex="female"))[0]
    return p.id


def test_every_list_route_answers_with_a_page_of_its_window(login, app, patient):
    """Each paginated route (the patient's id in its path) answers limit=1 with one page."""
    clients = {role: login(role)[0] for role in ROLES}
    routes = list_routes(app.openapi())
    answered = []
    for path in sorted(routes):
        url = path.replace("{patient_id}", str(patient))
        if "{" in url:
            continue
        for role in ROLES:
            r = clients[role].get(url, params={"limit": 1, "offset": 0})
            if r.status_code == 200:
                body = r.json()
                assert set(body) >= PAGE_KEYS, (url, body)
                assert body["limit"] == 1 and body["offset"] == 0, url
                assert len(body["items"]) <= 1 and body["total"] >= len(body["items"]), url
                answered.append(path)
                break
            assert r.status_code == 403, (url, role, r.status_code, r.text)
    assert set(answered) == {p for p in routes if "{" not in p.replace("{patient_id}", "")}


@pytest.mark.parametrize(("query", "named"), [
    ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": MAX_LIMIT + 1}, "limit"),
    ({"limit": "ten"}, "limit"), ({"limit": "1.5"}, "limit"), ({"offset": -1}, "offset"),
    ({"offset": "x"}, "offset"), ({"offset": 10**12}, "offset"), ({"limit": 10**30}, "limit"),
])
def test_a_bad_window_is_refused_with_422_naming_the_parameter(login, query, named):
    c, _ = login("admin")
    for url in ("/api/users", "/api/audit", "/api/rulesets"):
        r = c.get(url, params=query)
        assert r.status_code == 422, (url, query, r.text)
        assert named in r.text, r.text


def test_pages_walk_the_whole_list_once_in_a_stable_order(login, services):
    """Users with the same sort key apart from the id tiebreaker: every page is disjoint and
    together they are the whole list, in the order of the unpaginated list."""
    for i in range(7):
        services.auth.create_user(SYSTEM, f"user{i:02d}", f"User {i}", "nurse",
                                  f"user-password-{i}-long")
    c, _ = login("admin")
    everything = c.get("/api/users", params={"limit": MAX_LIMIT}).json()
    total = everything["total"]
    assert total == len(everything["items"]) == 11  # the four role users and seven more
    seen = []
    for offset in range(0, total + 3, 3):
        page = c.get("/api/users", params={"limit": 3, "offset": offset}).json()
        assert page["total"] == total and page["limit"] == 3 and page["offset"] == offset
        seen += [u["id"] for u in page["items"]]
    assert seen == [u["id"] for u in everything["items"]]
    assert c.get("/api/users").json()["limit"] == DEFAULT_LIMIT


def test_a_patients_history_is_paged_newest_first_in_sql(login, services, patient):
    for v in range(1, 6):
        services.patients.update(SYSTEM, patient, PatientUpdate(
            version=v, mrn="PG-1", family_name="Pager", given_name=f"Pat{v}",
            birth_date="1980-01-01", sex="female", phone="", email="", address="", notes=""))
    c, _ = login("nurse")
    whole = c.get(f"/api/patients/{patient}/history").json()
    assert whole["total"] == len(whole["items"]) >= 5
    first = c.get(f"/api/patients/{patient}/history", params={"limit": 2}).json()
    second = c.get(f"/api/patients/{patient}/history", params={"limit": 2, "offset": 2}).json()
    assert first["items"] + second["items"] == whole["items"][:4]
    assert first["items"][0]["version"] >= first["items"][1]["version"]
    past = c.get(f"/api/patients/{patient}/history", params={"offset": 1000}).json()
    assert past["items"] == [] and past["total"] == whole["total"]
