"""Outcomes area facade: dashboard, research exports, FHIR bundles, progress reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.interop.exports import ExportService
from ketaclinic.services.interop.fhir_jobs import FhirExportJobs
from ketaclinic.services.outcomes import summary as outcome_summary
from ketaclinic.services.outcomes.dashboard import Dashboard, DashboardFilters, DashboardService
from ketaclinic.services.outcomes.progress_report import ProgressReportService


class OutcomesService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._dashboard = DashboardService(ctx)
        self._exports = ExportService(ctx)
        self.fhir_jobs = FhirExportJobs(ctx, self._exports)
        self._reports = ProgressReportService(ctx)

    def dashboard(self, actor: Actor, filters: DashboardFilters | None = None) -> Dashboard:
        """Aggregates only; requires dashboard.read; one audit row ``dashboard.view``."""
        return self._dashboard.compute(actor, filters or DashboardFilters())

    def rebuild_summary(self, actor: Actor) -> dict[str, int]:
        """Recompute the outcome summary from scratch (rules.manage; audited); row counts.

        For after bulk loads that bypassed the services, or when a release changed an outcome
        rule (the dashboard refuses a stale summary until then). One transaction.
        """
        with self.ctx.unit_of_work(actor, "outcome_summary.rebuild",
                                   perm=Perm.RULES_MANAGE) as uow:
            counts = outcome_summary.rebuild(uow.session, uow.now)
            uow.audit(detail=", ".join(f"{k} {v}" for k, v in counts.items()))
        return counts

    def deidentified_export(self, actor: Actor, fmt: str) -> tuple[str, bytes]:
        """(file name, zip bytes) of the de-identified research export (csv or parquet)."""
        return self._exports.deidentified_zip(actor, fmt)

    def fhir_bundle(self, actor: Actor, patient_id: int,
                    kind: str = "collection") -> dict[str, Any]:
        """One validated FHIR R4 Bundle for a patient (clinical roles; audited)."""
        return self._exports.fhir_bundle(actor, patient_id, kind)

    def fhir_bundles(self, actor: Actor, patient_ids: list[int] | None = None,
                     progress: Callable[[int], None] | None = None, kind: str = "collection",
                     ) -> tuple[int, Iterator[tuple[int, dict[str, Any]]]]:
        """(count, iterator of (patient id, bundle)) for many patients; bulk-loaded."""
        return self._exports.fhir_bundles(actor, patient_ids, progress, kind)

    def fhir_resources(self, actor: Actor, patient_ids: list[int] | None = None,
                       detail: str = "format=ndjson") -> list[dict[str, Any]]:
        """Every resource of these patients then the Practitioners (identified export)."""
        return self._exports.fhir_resources(actor, patient_ids, detail)

    def progress_report_pdf(self, actor: Actor, patient_id: int) -> bytes:
        """The patient progress report as PDF bytes (clinical roles; audited)."""
        return self._reports.render(actor, patient_id)
