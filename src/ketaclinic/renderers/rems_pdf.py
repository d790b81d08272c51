"""Printable worksheet of the Spravato REMS Patient Monitoring Form (fpdf2).

The official form is submitted online or by fax; this PDF is the clinic's copy and the
transcription sheet. It marks missing fields so that nobody submits an incomplete form.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date

from fpdf import FPDF

from ketaclinic.clinical.rems import FIELD_LABELS, RemsMonitoringForm, form_due_date
from ketaclinic.renderers.pdf_fonts import FAMILY, printable, use_unicode_font

GROUPS = (
    ("Patient", ("patient_name", "patient_dob", "patient_sex", "first_treatment", "rems_enrolled")),
    ("Concomitant medicines", ("benzodiazepines", "non_benzo_sedative_hypnotics",
                               "psychostimulants", "maois", "opioids")),
    ("Monitoring provider and setting", ("provider_name", "provider_phone", "provider_email",
                                         "setting_name", "setting_address")),
    ("Treatment", ("treatment_date", "dose", "dose_other_mg", "lot_numbers")),
    ("Time", ("minutes_first_device_to_end_of_monitoring", "minutes_until_ready_without_2h_rule")),
    ("Vital signs", ("vitals_acceptable_before_dosing", "vitals_acceptable_before_completion",
                     "bp_before_dosing", "bp_at_40_min", "bp_before_completion")),
    ("Events during monitoring", ("sedation", "dissociation", "respiratory_depression")),
    ("Leaving", ("left_against_advice", "left_against_advice_note")),
    ("Dose order (clinic record, not on the official form)",
     ("order_kind", "order_prescriber", "order_read_back", "order_countersigned")),
)
#: shown for verbal orders only
VERBAL_ONLY = ("order_read_back", "order_countersigned")


def _text(value: object) -> str:
    if value is None or value == "":
        return "MISSING"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, date):
        return value.isoformat()
    return printable(value)


def render_rems_pdf(form: RemsMonitoringForm, compress: bool = True) -> bytes:
    """Render the form as PDF bytes (``compress=False`` keeps text streams readable)."""
    assert {n for _, names in GROUPS for n in names} == {f.name for f in fields(form)}
    pdf = FPDF(format="Letter")
    pdf.set_compression(compress)
    use_unicode_font(pdf)
    pdf.set_creator("ketaclinic")
    pdf.set_title("Spravato REMS Patient Monitoring Form worksheet")
    pdf.add_page()
    pdf.set_font(FAMILY, "B", 14)
    pdf.cell(0, 9, "SPRAVATO REMS Patient Monitoring Form - worksheet", new_x="LMARGIN",
             new_y="NEXT")
    pdf.set_font(FAMILY, "", 9)
    due = form_due_date(form.treatment_date).isoformat() if form.treatment_date else "MISSING"
    pdf.multi_cell(0, 5, "Submit within 7 days of treatment (due " + due + ") at "
                   "spravatorems.com or by fax 1-877-778-0091. Clinic copy; not the official form.",
                   new_x="LMARGIN", new_y="NEXT")
    for title, names in GROUPS:
        pdf.ln(2)
        pdf.set_font(FAMILY, "B", 11)
        pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        for name in names:
            if name == "dose_other_mg" and form.dose != "other":
                continue
            if name == "left_against_advice_note" and not form.left_against_advice:
                continue
            if name in VERBAL_ONLY and not (form.order_kind or "").startswith("verbal"):
                continue
            value = _text(getattr(form, name))
            if name == "minutes_until_ready_without_2h_rule" and form.left_against_advice:
                value = "Never ready: LEFT AGAINST ADVICE"
            pdf.set_font(FAMILY, "", 10)
            pdf.cell(95, 6, FIELD_LABELS[name])
            pdf.set_font(FAMILY, "B" if value == "MISSING" else "", 10)
            pdf.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
