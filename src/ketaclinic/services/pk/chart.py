"""The predicted-exposure chart as an SVG string (no scripts; every text escaped).

Typical patient (line) plus the 5–95 % band of a virtual population with the same covariates,
hours on the x axis and ng/mL on the y axis, with the model id, its citation, the sampling site
and the caution that the curve explains exposure and does not set doses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ketaclinic.renderers.charts import PAD_L, PAD_R, PAD_T, _a, _axes, _fmt, _Frame, _ticks

CAPTION = "explains exposure; does not set doses"
PK_W, PK_H = 720, 420  # plot frame; the SVG adds FOOTER pixels below for caption and source
FOOTER = 44


@dataclass(frozen=True)
class PkChart:
    """Everything the chart shows, as plain values (hours, ng/mL)."""

    title: str
    analyte: str
    model_id: str
    citation: str
    sampling_site: str
    hours: Sequence[float]
    typical_ng_per_ml: Sequence[float]
    p5_ng_per_ml: Sequence[float]
    p95_ng_per_ml: Sequence[float]
    band_label: str
    notes: Sequence[str] = field(default_factory=tuple)


def _path(f: _Frame, xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(
        f"{'M' if i == 0 else 'L'}{f.x(x):.1f},{f.y(y):.1f}"
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
    )


def svg_pk_chart(chart: PkChart, chart_id: str = "pk") -> str:
    """The chart as a standalone SVG document (valid XML, renders in an <img>)."""
    hours = list(chart.hours)
    y_max = max([1.0, *chart.typical_ng_per_ml, *chart.p95_ng_per_ml]) * 1.3  # room for legend
    f = _Frame(hours[0], hours[-1], 0.0, y_max, PK_W, PK_H)
    desc = (
        f"Predicted {chart.analyte} concentration in {chart.sampling_site} plasma (ng/mL) over "
        f"{_fmt(hours[-1] - hours[0])} hours, model {chart.model_id}: typical patient line and "
        f"{chart.band_label}. This {CAPTION}."
    )
    out = [
        "<svg xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {PK_W} {PK_H + FOOTER}' width='{PK_W}' height='{PK_H + FOOTER}' role='img' "
        f"aria-labelledby='{chart_id}-title {chart_id}-desc'>",
        f"<title id='{chart_id}-title'>{_a(chart.title)}</title>",
        f"<desc id='{chart_id}-desc'>{_a(desc)}</desc>",
        f"<rect x='0' y='0' width='{PK_W}' height='{PK_H + FOOTER}' fill='#ffffff'/>",
    ]
    out += _axes(
        f,
        "hours",
        f"{chart.analyte}, ng/mL ({chart.sampling_site})",
        _ticks(hours[0], hours[-1], 6),
        _ticks(0.0, y_max, 5),
    )
    upper = _path(f, hours, chart.p95_ng_per_ml)
    lower = " ".join(
        f"L{f.x(x):.1f},{f.y(y):.1f}"
        for x, y in zip(reversed(hours), reversed(chart.p5_ng_per_ml), strict=True)
    )
    out.append(
        f"<path id='{chart_id}-band' class='pk-band' d='{upper} {lower} Z' fill='#9ec5e8' "
        f"fill-opacity='0.55' stroke='none'><title>{_a(chart.band_label)}</title></path>"
    )
    line = _path(f, hours, chart.typical_ng_per_ml)
    out.append(
        f"<path id='{chart_id}-typical' class='pk-typical' d='{line}' "
        "fill='none' stroke='#0b4f8a' stroke-width='2.5'><title>typical patient</title></path>"
    )
    legend_x = PK_W - PAD_R - 330
    out += [
        "<g font-family='system-ui, sans-serif' font-size='12' fill='#222'>",
        f"<text x='{PAD_L}' y='18' font-size='14' font-weight='bold'>{_a(chart.title)}</text>",
        f"<rect x='{legend_x}' y='{PAD_T}' width='14' height='10' fill='#9ec5e8'/>",
        f"<text x='{legend_x + 20}' y='{PAD_T + 10}'>{_a(chart.band_label)}</text>",
        f"<line x1='{legend_x}' y1='{PAD_T + 22}' x2='{legend_x + 14}' y2='{PAD_T + 22}' "
        "stroke='#0b4f8a' stroke-width='2.5'/>",
        f"<text x='{legend_x + 20}' y='{PAD_T + 26}'>typical patient</text>",
        f"<text x='{legend_x}' y='{PAD_T + 44}'>{_a(chart.sampling_site)} plasma · "
        f"model {_a(chart.model_id)}</text>",
    ]
    out.append(
        f"<text class='pk-caption' x='{PAD_L}' y='{PK_H + 10}' font-weight='bold'>"
        f"Caution: this curve {_a(CAPTION)}.</text>"
    )
    out.append(
        f"<text class='pk-citation' x='{PAD_L}' y='{PK_H + 30}' font-size='10'>"
        f"Source: {_a(chart.citation[:140])}</text>"
    )
    for i, note in enumerate(chart.notes[:2]):
        out.append(
            f"<text x='{PAD_L + 8}' y='{PAD_T + 62 + 14 * i}' font-size='11' "
            f"fill='#7a4b00'>{_a(note[:120])}</text>"
        )
    out.append("</g></svg>")
    return "\n".join(out)
