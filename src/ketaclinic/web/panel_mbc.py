"""The measurement-based-care panel of the patient page (loader registered in ``web.panels``)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup


def mbc_panel(svc, viewer, patient_id: int) -> dict[str, Any] | None:
    """Outcomes, chart, alerts, recent scores and the forms, in one audited read."""
    if viewer.role == "analyst":
        return None
    data = svc.mbc.panel(viewer.actor, patient_id)
    for course in data["courses"]:
        # svg_trajectory_chart escapes every text it writes (xml.sax.saxutils.escape) and holds
        # numbers and dates only, so it is safe to inline.
        course["chart"] = Markup(course["chart"]) if course["chart"] else None
    return data
