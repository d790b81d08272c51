"""SVG charts parse as XML, are labelled for screen readers and contain the expected marks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

from ketaclinic.renderers.charts import Band, svg_km_chart, svg_trajectory_chart
from ketaclinic.services.outcomes.survival import fit_kaplan_meier

NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img"
    ids = root.get("aria-labelledby").split()
    found = {el.get("id") for el in root.iter() if el.get("id")}
    assert set(ids) <= found
    assert root.find("s:title", NS).text and root.find("s:desc", NS).text
    return root


def test_trajectory_chart_marks_doses_bands_and_reference_lines():
    d0 = date(2025, 3, 3)
    svg = svg_trajectory_chart(
        [d0, d0 + timedelta(days=1), d0 + timedelta(days=14)], [31, 18, 9],
        instrument="MADRS", max_score=60,
        infusions=[d0 + timedelta(days=i) for i in (0, 3, 7, 10)],
        bands=[Band(0, 6, "normal"), Band(7, 19, "mild"), Band(20, 34, "moderate"),
               Band(35, 60, "severe")],
        baseline=31, response_line=15.5, remission_line=12,
    )
    root = _parse(svg)
    classes = [el.get("class") for el in root.iter() if el.get("class")]
    assert classes.count("dose") == 4 and classes.count("band") == 4
    for c in ("baseline", "response", "remission", "trajectory", "x-label", "y-label"):
        assert c in classes
    assert len(root.findall(".//s:circle", NS)) == 3
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "remission 12" in text and "MADRS score" in text and "2025-03-03" in text


def test_km_chart_has_band_curve_and_numbers_at_risk():
    km = fit_kaplan_meier([10, 18, 18, 25, 30, 40, 60, 90], [1, 1, 0, 1, 0, 1, 0, 0],
                          at_times=[0, 30, 60, 90])
    svg = svg_km_chart(km.timeline, km.survival, km.lo, km.hi, at_risk=km.at_risk,
                       median=km.median)
    root = _parse(svg)
    classes = [el.get("class") for el in root.iter() if el.get("class")]
    assert {"ci-band", "km-curve", "at-risk", "median-line"} <= set(classes)
    at_risk = root.find(".//s:g[@class='at-risk']", NS)
    assert [t.text for t in at_risk][1:] == ["8", "4", "2", "1"]
    assert "median time to relapse 40 days" in root.find("s:desc", NS).text


def test_titles_are_escaped_and_empty_charts_still_parse():
    _parse(svg_trajectory_chart([], [], instrument="PHQ-9 <&>", max_score=27))
    _parse(svg_km_chart([], [], [], [], title="A & B"))
