"""Patient progress report (PDF) for the referring psychiatrist.

fpdf2 lays out the pages; matplotlib (Agg backend, no display) draws the trajectory chart as a
PNG. Input is plain dataclasses; the result is the PDF as bytes. Core PDF fonts are Latin-1, so
text is transliterated (≥ → >=, – → -) rather than dropped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from ketaclinic.renderers.charts import Band
from ketaclinic.renderers.pdf_fonts import FAMILY, printable, use_unicode_font

if TYPE_CHECKING:  # fpdf is imported where a PDF is rendered
    from fpdf import FPDF

FOOTER = (
    "Decision support, not medical advice. "
    "Clinical decisions remain with the treating clinicians."
)

@dataclass(frozen=True)
class ScorePoint:
    taken_on: date
    score: float


@dataclass(frozen=True)
class DoseLine:
    given_on: date
    drug: str
    dose_mg: float
    route: str
    note: str = ""  # coded/short, e.g. "BP alert, paused 10 min"


@dataclass(frozen=True)
class AdverseEventLine:
    occurred_on: date
    event: str
    severity: str
    action: str = ""


@dataclass(frozen=True)
class ProgressReport:
    patient_label: str  # e.g. "Synth Testperson, born 1980" — chosen by the caller
    clinic: str
    recipient: str
    generated_on: date
    treatment: str
    course_status: str
    course_start: date
    sessions_done: int
    sessions_planned: int | None
    instrument: str
    max_score: float
    scores: Sequence[ScorePoint]
    doses: Sequence[DoseLine] = ()
    adverse_events: Sequence[AdverseEventLine] = ()
    baseline: float | None = None
    response_line: float | None = None
    remission_line: float | None = None
    bands: Sequence[Band] = ()
    current_status: str = ""
    summary_lines: Sequence[str] = field(default_factory=tuple)


def _t(text: object) -> str:
    """Text the embedded Unicode font prints (services.pdf_fonts): never a "?"."""
    return printable(text)


def trajectory_png(report: ProgressReport, dpi: int = 150) -> bytes:
    """Trajectory chart as PNG bytes (matplotlib Agg, deterministic metadata)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.2), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    greys = ("#f3f7fb", "#e3ebf4")
    for i, b in enumerate(report.bands):
        ax.axhspan(b.lo, b.hi, color=greys[i % 2], zorder=0)
        ax.text(1.0, (b.lo + b.hi) / 2, f" {b.label}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=7, color="#567")
    for d in report.doses:
        # matplotlib's stubs say float; its units registry converts datetimes (a date axis).
        ax.axvline(datetime(d.given_on.year, d.given_on.month, d.given_on.day),  # type: ignore[arg-type]
                   color="#b07aa1", lw=0.8, ls=":", zorder=1)
    for value, label, colour in ((report.baseline, "baseline", "#555"),
                                 (report.response_line, "response", "#1f77b4"),
                                 (report.remission_line, "remission", "#2ca02c")):
        if value is not None:
            ax.axhline(value, color=colour, ls="--", lw=1, label=f"{label} {value:g}")
    if report.scores:
        xs = [datetime(p.taken_on.year, p.taken_on.month, p.taken_on.day) for p in report.scores]
        # matplotlib's stubs want numbers; its units registry converts datetimes.
        ax.plot(xs, [p.score for p in report.scores], "o-", color="#d62728", lw=2,  # type: ignore[arg-type]
                label=report.instrument)
    ax.set_ylim(0, report.max_score)
    ax.set_ylabel(f"{report.instrument} score")
    ax.set_xlabel("Date (dotted lines: doses)")
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def render_progress_report(report: ProgressReport) -> bytes:
    """Render the progress report; returns PDF bytes."""
    from fpdf import FPDF

    class _PDF(FPDF):
        def footer(self) -> None:
            self.set_y(-14)
            self.set_font(FAMILY, "I", 8)
            self.cell(0, 5, _t(FOOTER), align="C")
            self.ln(4)
            self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="C")

    pdf = _PDF(format="A4")
    use_unicode_font(pdf)
    pdf.set_title(_t(f"Progress report - {report.treatment}"))
    pdf.set_creator("ketaclinic")
    pdf.set_creation_date(datetime(report.generated_on.year, report.generated_on.month,
                                   report.generated_on.day))
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    pdf.set_font(FAMILY, "B", 15)
    pdf.cell(0, 9, _t("Patient progress report"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 10)
    for line in (f"Patient: {report.patient_label}", f"For: {report.recipient}",
                 f"From: {report.clinic}", f"Date: {report.generated_on.isoformat()}"):
        pdf.cell(0, 5.5, _t(line), new_x="LMARGIN", new_y="NEXT")

    _heading(pdf, "Course summary")
    planned = f" of {report.sessions_planned}" if report.sessions_planned else ""
    lines = [f"Treatment: {report.treatment} ({report.course_status}), started "
             f"{report.course_start.isoformat()}; sessions {report.sessions_done}{planned}."]
    if report.scores:
        first, last = report.scores[0], report.scores[-1]
        lines.append(f"{report.instrument}: {first.score:g} on {first.taken_on.isoformat()} -> "
                     f"{last.score:g} on {last.taken_on.isoformat()}.")
    lines += list(report.summary_lines)
    for line in lines:
        pdf.multi_cell(0, 5.5, _t(line), new_x="LMARGIN", new_y="NEXT")

    _heading(pdf, "Score trajectory")
    pdf.image(io.BytesIO(trajectory_png(report)), w=180,
              alt_text=_t(f"{report.instrument} scores over time with doses marked"))

    _heading(pdf, "Doses")
    _table(pdf, ["Date", "Drug", "Dose (mg)", "Route", "Note"],
           [[d.given_on.isoformat(), d.drug, f"{d.dose_mg:g}", d.route, d.note]
            for d in report.doses], (26, 30, 24, 20, 80), "No doses recorded.")

    _heading(pdf, "Adverse events")
    _table(pdf, ["Date", "Event", "Severity", "Action"],
           [[a.occurred_on.isoformat(), a.event, a.severity, a.action]
            for a in report.adverse_events], (26, 60, 28, 66), "No adverse events recorded.")

    _heading(pdf, "Current status")
    pdf.multi_cell(0, 5.5, _t(report.current_status or "Not stated."), new_x="LMARGIN",
                   new_y="NEXT")
    return bytes(pdf.output())


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font(FAMILY, "B", 12)
    pdf.cell(0, 7, _t(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 10)


def _table(pdf: FPDF, header: list[str], rows: list[list[str]],
           widths: tuple[int, ...], empty: str) -> None:
    if not rows:
        pdf.cell(0, 5.5, _t(empty), new_x="LMARGIN", new_y="NEXT")
        return
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=5.5,
                   first_row_as_headings=True) as table:
        for r in [header, *rows]:
            row = table.row()
            for cell in r:
                row.cell(_t(cell))
