"""Text of a PDF as a reader's copy-and-paste would give it (pypdf; a dev dependency)."""

from __future__ import annotations

import io


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def pdf_font_names(pdf: bytes) -> set[str]:
    """BaseFont names of every font the PDF uses (embedded subsets carry a tag prefix)."""
    from pypdf import PdfReader

    names: set[str] = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        fonts = page["/Resources"].get_object().get("/Font") or {}
        for ref in fonts.values():
            names.add(str(ref.get_object()["/BaseFont"]))
    return names
