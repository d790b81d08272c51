"""Progress report PDF: renders, carries the decision-support footer and the course content."""

from __future__ import annotations

from datetime import date, timedelta

from kcpdf import pdf_text

from ketaclinic.renderers.charts import Band
from ketaclinic.renderers.report_pdf import (
    AdverseEventLine,
    DoseLine,
    ProgressReport,
    ScorePoint,
    render_progress_report,
    trajectory_png,
)

D0 = date(2025, 3, 3)


def _report(**kw) -> ProgressReport:
    base = dict(
        patient_label="Synth Testperson (synthetic), born 1980",
        clinic="Demo Ketamine Clinic", recipient="Dr Referrer (synthetic)",
        generated_on=D0 + timedelta(days=21), treatment="IV ketamine", course_status="active",
        course_start=D0, sessions_done=5, sessions_planned=6, instrument="MADRS", max_score=60,
        scores=[ScorePoint(D0, 32), ScorePoint(D0 + timedelta(days=1), 20),
                ScorePoint(D0 + timedelta(days=14), 11)],
        doses=[DoseLine(D0 + timedelta(days=i), "ketamine", 35, "iv") for i in (0, 3, 7, 10, 14)],
        adverse_events=[AdverseEventLine(D0 + timedelta(days=3), "Transient BP rise ≥ 180/100",
                                         "mild", "paused infusion 10 min")],
        baseline=32, response_line=16, remission_line=12,
        bands=[Band(0, 6, "normal"), Band(7, 19, "mild"), Band(20, 34, "moderate"),
               Band(35, 60, "severe")],
        current_status="Responder at day 14 (MADRS 11 ≤ 12: remission).",
    )
    base.update(kw)
    return ProgressReport(**base)


def _text(pdf: bytes) -> str:
    return pdf_text(pdf)  # the font is embedded: read the text as a reader would


def test_progress_report_renders_a_pdf_with_footer_and_sections():
    pdf = render_progress_report(_report())
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    for s in ("Decision support, not medical advice", "Course summary", "Score trajectory",
              "Doses", "Adverse events", "Current status", "paused infusion 10 min",
              "≥ 180/100"):
        assert s in text, s
    assert b"/Subtype /Image" in pdf


def test_trajectory_png_is_a_png():
    assert trajectory_png(_report()).startswith(b"\x89PNG")


def test_empty_course_still_renders():
    pdf = render_progress_report(_report(scores=[], doses=[], adverse_events=[],
                                         current_status=""))
    text = _text(pdf)
    assert "No doses recorded." in text and "No adverse events recorded." in text
