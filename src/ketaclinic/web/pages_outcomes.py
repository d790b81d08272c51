"""Outcome pages: the clinic dashboard, research exports and the patient progress report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import ServicesDep, ViewerDep
from ketaclinic.renderers.charts import svg_km_chart
from ketaclinic.services.accounts.permissions import Perm, allowed
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.outcomes.dashboard import Dashboard, DashboardFilters
from ketaclinic.web.render import render

router = APIRouter()


def km_svg(dash: Dashboard) -> str | None:
    """The KM chart as inline SVG (built by renderers/charts.py, which escapes all text)."""
    km = dash.km
    if not km.estimable or not km.timeline:
        return None
    return svg_km_chart(list(km.timeline), list(km.survival), list(km.lo), list(km.hi),
                        at_risk={t: n for t, n in km.at_risk.items()
                                 if t <= max(km.timeline)} or None,
                        median=km.median,
                        title=f"Time to relapse after response ({dash.km_instrument})")


@router.get("/dashboard")
def dashboard_page(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    params = dict(request.query_params)
    try:
        filters = DashboardFilters.parse(params)
    except InvalidInput as exc:
        dash = svc.outcomes.dashboard(viewer.actor, DashboardFilters())
        return render(request, "dashboard.html", status_code=422, dash=dash, km_svg=km_svg(dash),
                      form=params, error=str(exc))
    dash = svc.outcomes.dashboard(viewer.actor, filters)
    return render(request, "dashboard.html", dash=dash, km_svg=km_svg(dash),
                  form=filters.as_query())


@router.get("/exports")
def exports_page(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    svc.ctx.require(viewer.actor, Perm.DEID_EXPORT, "export.page")
    return render(request, "exports.html",
                  clinical=allowed(viewer.actor, Perm.PATIENT_READ))


@router.get("/exports/deidentified")
def exports_download(request: Request, svc: ServicesDep, viewer: ViewerDep,
                     format: str = "csv") -> Response:
    name, data = svc.outcomes.deidentified_export(viewer.actor, format[:10])
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/patients/{patient_id}/report.pdf")
def patient_report(patient_id: int, svc: ServicesDep, viewer: ViewerDep) -> Response:
    pdf = svc.outcomes.progress_report_pdf(viewer.actor, patient_id)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="progress-report-{patient_id}.pdf"'})
