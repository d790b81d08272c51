"""Every PDF prints any name: a Unicode font is embedded, CJK falls back to a labelled
transliteration, and nothing is ever printed as "?"."""

from __future__ import annotations

import pathlib
import re

from kcpdf import pdf_font_names, pdf_text
from test_chair_rems import full_record
from test_report_pdf_progress import _report

from ketaclinic.clinical.rems import build_rems_form
from ketaclinic.renderers.pdf_fonts import LABEL, font_dir, printable
from ketaclinic.renderers.rems_pdf import render_rems_pdf
from ketaclinic.renderers.report_pdf import render_progress_report

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "ketaclinic"
LATIN = "Zoë Ńowak"
CJK = "张伟"


def _renders(name: str) -> dict[str, bytes]:
    return {"progress report": render_progress_report(_report(patient_label=name)),
            "REMS worksheet": render_rems_pdf(build_rems_form(full_record(patient_name=name)))}


def test_every_pdf_prints_accented_latin_names_exactly_with_an_embedded_unicode_font():
    for kind, pdf in _renders(LATIN).items():
        assert LATIN in pdf_text(pdf), kind
        fonts = pdf_font_names(pdf)
        assert fonts and all("DejaVuSans" in f for f in fonts), (kind, fonts)
        assert not any("Helvetica" in f for f in fonts), kind


def test_every_pdf_prints_a_chinese_name_as_a_labelled_transliteration_never_question_marks():
    for kind, pdf in _renders(f"{CJK} / {LATIN}").items():
        text = pdf_text(pdf)
        assert f"Zhang Wei{LABEL} / {LATIN}" in text, kind
        assert not re.search(r"\?\?", text), kind


def test_printable_keeps_what_the_font_draws_and_labels_what_it_cannot():
    assert printable("Zoë Ńowak — ≥ 12 µg → Ωmega Жанна") == "Zoë Ńowak — ≥ 12 µg → Ωmega Жанна"
    assert printable(CJK) == "Zhang Wei" + LABEL
    assert "?" not in printable("\U0001F9EA test")  # no transliteration: a code point instead


def test_the_font_and_its_licence_come_with_a_declared_dependency():
    assert (font_dir() / "DejaVuSans.ttf").is_file()
    assert (font_dir() / "LICENSE_DEJAVU").is_file()
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    deps = pyproject.split("[project.optional-dependencies]")[0]
    assert '"matplotlib' in deps and '"anyascii' in deps


def test_every_module_that_builds_a_pdf_embeds_the_unicode_font():
    builders = [p for p in SRC.rglob("*.py") if "FPDF(" in p.read_text(encoding="utf-8")]
    assert builders
    for p in builders:
        text = p.read_text(encoding="utf-8")
        assert "use_unicode_font(" in text and '"Helvetica"' not in text, p.name
