"""Predicted exposure over the web and the API, on every backend."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal

from sqlalchemy import select

from ketaclinic.store.tables import AuditEvent
from ketaclinic.store.tables_treatment import TreatmentSession

SVG_NS = "{http://www.w3.org/2000/svg}"
JO = {"mrn": "PK-100", "family_name": "Kinetic", "given_name": "Jo", "birth_date": "1980-04-30",
      "sex": "female", "weight": "70 kg"}


def _patient(c, csrf, **extra) -> int:
    r = c.post("/api/patients", json=JO | extra, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _audit(services, pid):
    with services.db.transaction() as s:
        rows = s.execute(select(AuditEvent.action, AuditEvent.outcome)
                         .where(AuditEvent.patient_id == pid).order_by(AuditEvent.id)).all()
    return [(a, o) for a, o in rows]


def test_the_one_dose_svg_is_xml_with_band_caption_model_and_site(login, services):
    c, csrf = login("nurse")
    pid = _patient(c, csrf)
    r = c.get(f"/patients/{pid}/pk.svg?route=nasal&dose_mg=56")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.text)
    assert root.tag == SVG_NS + "svg"
    assert root.find(f".//{SVG_NS}path[@id='pk-band']") is not None
    assert root.find(f".//{SVG_NS}path[@id='pk-typical']") is not None
    text = " ".join(root.itertext())
    assert "explains exposure; does not set doses" in text
    assert "perez-ruixo2021" in text and "venous" in text and "ng/mL" in text
    assert "<script" not in r.text.lower()
    assert any(a == "pk.view" and o != "denied" for a, o in _audit(services, pid))


def test_iv_and_oral_use_their_default_models_and_a_model_can_be_chosen(login, services):
    c, csrf = login("prescriber")
    pid = _patient(c, csrf)
    iv = c.get(f"/patients/{pid}/pk.svg?route=iv&dose_mg=35&minutes=40")
    assert iv.status_code == 200 and "kamp2020" in iv.text and "arterial" in iv.text
    oral = c.get(f"/patients/{pid}/pk.svg?route=oral&dose_mg=50")
    assert oral.status_code == 200 and "fanta2015" in oral.text
    other = c.get(f"/patients/{pid}/pk.svg?route=iv&dose_mg=35&minutes=40&model=domino")
    assert other.status_code == 200 and "domino" in other.text


def test_bad_parameters_get_a_one_line_422_and_not_an_svg(login, services):
    c, csrf = login("nurse")
    pid = _patient(c, csrf)
    for query in ("route=im&dose_mg=35", "route=iv&dose_mg=-1", "route=iv&dose_mg=abc",
                  "route=nasal&dose_mg=50", "route=iv&dose_mg=35&model=nope",
                  "route=nasal&dose_mg=56&model=kamp2020", "route=iv&dose_mg=35&minutes=0"):
        r = c.get(f"/patients/{pid}/pk.svg?{query}")
        assert r.status_code == 422, query
        assert not r.headers["content-type"].startswith("image/svg")
        assert r.text and "\n" not in r.text.strip()


def test_a_patient_without_a_weight_gets_a_422_reason(login, services):
    c, csrf = login("nurse")
    body = {k: v for k, v in JO.items() if k != "weight"} | {"mrn": "PK-NW"}
    pid = c.post("/api/patients", json=body, headers={"X-CSRF-Token": csrf}).json()["id"]
    r = c.get(f"/patients/{pid}/pk.svg?route=iv&dose_mg=35")
    assert r.status_code == 422 and "weight" in r.text


def test_an_analyst_is_refused_and_the_refusal_is_audited(login, services):
    c, csrf = login("nurse")
    pid = _patient(c, csrf)
    a, _ = login("analyst")
    assert a.get(f"/patients/{pid}/pk.svg?route=iv&dose_mg=35").status_code == 403
    assert a.get(f"/patients/{pid}/pk").status_code == 403
    assert a.get(f"/api/patients/{pid}/pk?route=iv&dose_mg=35").status_code == 403
    assert ("pk.view", "denied") in _audit(services, pid)


def test_the_course_page_uses_given_and_planned_sessions(login, services, clock):
    c, csrf = login("nurse")
    pid = _patient(c, csrf)
    now = clock()
    start = now - dt.timedelta(days=2)
    with services.db.transaction() as s:
        s.add(TreatmentSession(patient_id=pid, number=1, treatment="ketamine-iv", status="done",
                               planned_date=start.date(), dose_mg=Decimal("35"), route="iv",
                               dose_started_at=start,
                               dose_ended_at=start + dt.timedelta(minutes=40),
                               created_at=now, updated_at=now))
        s.add(TreatmentSession(patient_id=pid, number=2, treatment="ketamine-iv",
                               status="planned", planned_date=now.date() + dt.timedelta(days=2),
                               route="iv", created_at=now, updated_at=now))
    page = c.get(f"/patients/{pid}/pk")
    assert page.status_code == 200
    assert "does not set doses" in page.text and f"/patients/{pid}/pk/course.svg" in page.text
    assert "planned (10:00, typical dose)" in page.text
    svg = c.get(f"/patients/{pid}/pk/course.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    ET.fromstring(svg.text)
    data = c.get(f"/api/patients/{pid}/pk?course=true").json()
    assert data["model"] == "kamp2020" and len(data["doses"]) == 2
    assert data["doses"][1]["planned"] and data["doses"][1]["dose_mg"] == 35.0  # 0.5 mg/kg


def test_the_api_returns_the_cli_json_shape(login, services):
    c, csrf = login("prescriber")
    pid = _patient(c, csrf)
    r = c.get(f"/api/patients/{pid}/pk?route=iv&dose_mg=35&minutes=40")
    assert r.status_code == 200
    data = r.json()
    assert {"model", "times_min", "concentration_ng_per_ml", "sampling_site", "warnings",
            "caution", "percentiles"} <= set(data)
    assert data["covariates"]["weight_kg"] == 70.0
    assert len(data["concentration_ng_per_ml"]["ketamine"]) == len(data["times_min"])
    bad = c.get(f"/api/patients/{pid}/pk?route=iv&dose_mg=-5")
    assert bad.status_code == 422 and "dose_mg" in bad.json()["detail"]


def test_the_patient_page_shows_the_pk_panel_with_the_latest_dose(login, services, clock):
    c, csrf = login("nurse")
    pid = _patient(c, csrf)
    now = clock()
    with services.db.transaction() as s:
        s.add(TreatmentSession(patient_id=pid, number=1, treatment="esketamine", status="done",
                               planned_date=now.date(), dose_mg=Decimal("84"), route="nasal",
                               first_device_at=now, created_at=now, updated_at=now))
    r = c.get(f"/patients/{pid}")
    assert r.status_code == 200
    assert "Predicted exposure" in r.text
    assert f"/patients/{pid}/pk.svg?route=nasal&amp;dose_mg=84.0" in r.text


def test_an_iv_model_without_published_variability_gets_a_labelled_assumed_band(login,
                                                                               services):
    """Racemic IV models publish no IIV: the band comes from the configured assumed CV, says
    so on the chart and in the JSON, and is a real spread around the typical curve."""
    c, csrf = login("prescriber")
    pid = _patient(c, csrf)
    data = c.get(f"/api/patients/{pid}/pk?route=iv&dose_mg=35&minutes=40").json()
    assert data["band_variability"].startswith("assumed CV 0.3 on every parameter")
    p5, p95 = data["percentiles"]["ketamine"]["p5"], data["percentiles"]["ketamine"]["p95"]
    typical = data["concentration_ng_per_ml"]["ketamine"]
    at_end = data["times_min"].index(40.0) if 40.0 in data["times_min"] else len(typical) // 4
    assert p5[at_end] < typical[at_end] < p95[at_end]
    assert p95[at_end] / p5[at_end] > 1.5
    svg = c.get(f"/patients/{pid}/pk.svg?route=iv&dose_mg=35&minutes=40").text
    assert "ASSUMED 30% variability (none published)" in svg


def test_the_assumed_band_can_be_switched_off_by_the_clinic(login, services):
    c, csrf = login("prescriber")
    pid = _patient(c, csrf)
    services.ctx.settings.__dict__["pk_assumed_cv"] = 0.0  # the clinic's setting, per instance
    try:
        data = c.get(f"/api/patients/{pid}/pk?route=iv&dose_mg=35&minutes=40").json()
    finally:
        services.ctx.settings.__dict__["pk_assumed_cv"] = 0.30
    assert data["band_variability"] == "none"
    assert data["percentiles"]["ketamine"]["p5"] == data["percentiles"]["ketamine"]["p95"]
    assert "publishes no inter-individual variability" in " ".join(data["warnings"])
