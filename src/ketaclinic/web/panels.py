"""Sections of the patient page and main-menu entries contributed by each part of the clinic.

Each area adds ONE line to ``patient_panels()`` and, if it has a top-level page, one line to
``NAV``. A panel's loader returns the context its template needs (or None to hide the panel);
it must go through a service, so the read is permission-checked and audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ketaclinic.bootstrap import Services
from ketaclinic.http.deps import Viewer
from ketaclinic.web.pages_dosing import panel_loader as dosing_panel
from ketaclinic.web.panel_mbc import mbc_panel

Loader = Callable[[Services, Viewer, int], dict[str, Any] | None]


@dataclass(frozen=True)
class Panel:
    template: str
    load: Loader


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    roles: frozenset[str]


ALL = frozenset({"admin", "prescriber", "nurse", "analyst"})
CLINICAL = frozenset({"admin", "prescriber", "nurse"})

# Main menu, in order (Users and Audit log for admins are added by the base template).
NAV: list[NavItem] = [
    NavItem("Today", "/today", CLINICAL),
    NavItem("Patients", "/patients", CLINICAL),
    NavItem("Schedule", "/schedule", CLINICAL),
    NavItem("Alerts", "/alerts", CLINICAL),
    NavItem("REMS forms", "/rems", CLINICAL),
    NavItem("Ledger", "/ledger", CLINICAL),
    NavItem("Dashboard", "/dashboard", frozenset({"prescriber", "admin", "analyst"})),
    NavItem("Exports", "/exports", frozenset({"prescriber", "admin", "analyst"})),
    NavItem("Rule sets", "/rulesets", frozenset({"admin", "prescriber"})),
    NavItem("My account", "/account", ALL),
]


def nav_for(role: str) -> list[NavItem]:
    return [item for item in NAV if role in item.roles]


#: where "/" (and a login without a target) leads each role
HOME = {"nurse": "/today", "analyst": "/dashboard"}


def home_for(role: str) -> str:
    return HOME.get(role, "/patients")


def patient_panels() -> list[Panel]:
    """The panels shown on the patient page, top to bottom (one line per area)."""
    panels: list[Panel] = []
    panels.append(Panel("mbc_panel.html", mbc_panel))
    from ketaclinic.web.pages_chair import load_panel as chair_panel  # courses and sessions
    panels.append(Panel("chair_panel.html", chair_panel))
    panels.append(Panel("dosing_panel.html", dosing_panel))
    panels.append(Panel("pk_panel.html", lambda svc, viewer, pid: svc.pk.panel(viewer.actor, pid)))
    panels.append(Panel("outcomes_panel.html", lambda svc, viewer, pid: {"patient_id": pid}))
    return panels


def load_panels(svc: Services, viewer: Viewer, patient_id: int) -> list[dict[str, Any]]:
    shown = []
    for panel in patient_panels():
        context = panel.load(svc, viewer, patient_id)
        if context is not None:
            shown.append({"template": panel.template, "context": context})
    return shown
