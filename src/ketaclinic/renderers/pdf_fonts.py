"""The Unicode font every PDF embeds, and the text it can print.

fpdf2's core fonts (Helvetica) are Latin-1 only: "Zoë Ńowak" printed as "Zo? ?owak" and 张伟 as
"??". Every PDF the application writes (progress report, REMS worksheet) calls
:func:`use_unicode_font` and passes its text through :func:`printable`.

The font is DejaVu Sans (free licence: Bitstream Vera / public-domain changes; the licence
text ships beside the font as ``LICENSE_DEJAVU``) from matplotlib's data folder: matplotlib is
a declared dependency (the report's chart draws with it), so a fresh ``pip install`` always has
the font. DejaVu covers Latin, Greek, Cyrillic, Arabic, Hebrew and many symbols, not CJK.
A character the font lacks is never printed as "?": a run of such characters is replaced by
its transliteration (anyascii; "张伟" -> "Zhang Wei"), labelled ``(transliterated)`` so a
reader knows the printed name is not the registered spelling; a character without a
transliteration prints as its code point (``U+XXXX``).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

FAMILY = "DejaVu"
LABEL = " (transliterated)"
_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def use_unicode_font(pdf: Any) -> str:
    """Add DejaVu Sans (regular, bold, italic) to an ``FPDF`` document; returns the family."""
    for style, name in _FILES.items():
        pdf.add_font(FAMILY, style, str(font_dir() / name))
    return FAMILY


@lru_cache(maxsize=1)
def _covered() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(font_dir() / _FILES[""]), lazy=True) as font:
        return frozenset(font.getBestCmap())


def _translit(run: str) -> str:
    from anyascii import anyascii

    parts = [anyascii(ch).strip() or f"U+{ord(ch):04X}" for ch in run]
    ideographic = all(unicodedata.name(ch, "").startswith(("CJK", "HANGUL", "HIRAGANA",
                                                           "KATAKANA")) for ch in run)
    return (" " if ideographic else "").join(parts)


def printable(text: object) -> str:
    """``text`` with every run of characters the font cannot draw transliterated and labelled."""
    s, covered = str(text), _covered()
    out: list[str] = []
    run: list[str] = []
    for ch in s:
        if ord(ch) in covered or ch in "\n\r\t":
            if run:
                out.append(_translit("".join(run)) + LABEL)
                run = []
            out.append(ch)
        else:
            run.append(ch)
    if run:
        out.append(_translit("".join(run)) + LABEL)
    return "".join(out)
