"""Outcomes area facade: dashboard, research exports, FHIR bundles, progress reports."""

from __future__ import annotations

from ketaclinic.services.audit import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.dashboard import Dashboard, DashboardFilters, DashboardService


class OutcomesService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._dashboard = DashboardService(ctx)

    def dashboard(self, actor: Actor, filters: DashboardFilters | None = None) -> Dashboard:
        """Aggregates only; requires dashboard.read; one audit row ``dashboard.view``."""
        return self._dashboard.compute(actor, filters or DashboardFilters())
