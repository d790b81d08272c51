"""Accessible SVG charts as strings: score trajectory and Kaplan–Meier curve.

No JavaScript, no external fonts. Each chart has ``role="img"``, a ``<title>`` and ``<desc>``
(referenced by ``aria-labelledby``), axis labels in readable sizes and text labels for every
reference line, so the chart still makes sense in greyscale or to a screen reader.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from xml.sax.saxutils import escape

W, H = 720, 360
PAD_L, PAD_R, PAD_T, PAD_B = 64, 24, 40, 56
FONT = "font-family='system-ui, sans-serif'"


@dataclass(frozen=True)
class Band:
    """A shaded score band, e.g. PHQ-9 10–14 "moderate"."""

    lo: float
    hi: float
    label: str


def _a(s: object) -> str:
    return escape(str(s), {"'": "&apos;", '"': "&quot;"})


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _moment(v: date | datetime | float) -> datetime:
    """A date as its midnight; a datetime as it is."""
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    raise TypeError("a chart axis mixes dates and numbers")


def _number(v: date | datetime | float) -> float:
    if isinstance(v, date):
        raise TypeError("a chart axis mixes dates and numbers")
    return float(v)


def _as_days(values: Sequence[date | datetime | float]) -> tuple[list[float], date | None]:
    if not values:
        return [], None
    if isinstance(values[0], date):  # a datetime is a date too
        moments = [_moment(v) for v in values]
        base = min(m.date() for m in moments)
        start = datetime(base.year, base.month, base.day)
        return [(m - start).total_seconds() / 86400 for m in moments], base
    return [_number(v) for v in values], None


class _Frame:
    def __init__(self, x0: float, x1: float, y0: float, y1: float, w: int = W, h: int = H):
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)
        self.w, self.h = w, h

    def x(self, v: float) -> float:
        return PAD_L + (v - self.x0) / (self.x1 - self.x0) * (self.w - PAD_L - PAD_R)

    def y(self, v: float) -> float:
        return self.h - PAD_B - (v - self.y0) / (self.y1 - self.y0) * (self.h - PAD_T - PAD_B)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo if hi > lo else 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _open(chart_id: str, title: str, desc: str, w: int = W, h: int = H) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}' width='{w}' "
        f"height='{h}' role='img' aria-labelledby='{chart_id}-title {chart_id}-desc'>",
        f"<title id='{chart_id}-title'>{_a(title)}</title>",
        f"<desc id='{chart_id}-desc'>{_a(desc)}</desc>",
        f"<rect x='0' y='0' width='{w}' height='{h}' fill='#ffffff'/>",
    ]


def _axes(f: _Frame, x_label: str, y_label: str, xt: list[float], yt: list[float],
          y_pct: bool = False) -> list[str]:
    out = [f"<g class='axes' {FONT} font-size='13' fill='#222'>"]
    out.append(f"<line x1='{PAD_L}' y1='{f.y(f.y0):.1f}' x2='{f.w - PAD_R}' "
               f"y2='{f.y(f.y0):.1f}' stroke='#444'/>")
    out.append(f"<line x1='{PAD_L}' y1='{PAD_T}' x2='{PAD_L}' y2='{f.y(f.y0):.1f}' "
               f"stroke='#444'/>")
    for t in xt:
        out.append(f"<text x='{f.x(t):.1f}' y='{f.y(f.y0) + 18:.1f}' "
                   f"text-anchor='middle'>{_fmt(t)}</text>")
    for t in yt:
        lab = f"{_fmt(100 * t)} %" if y_pct else _fmt(t)
        out.append(f"<text x='{PAD_L - 8}' y='{f.y(t) + 4:.1f}' text-anchor='end'>{lab}</text>")
        out.append(f"<line x1='{PAD_L}' y1='{f.y(t):.1f}' x2='{f.w - PAD_R}' y2='{f.y(t):.1f}' "
                   "stroke='#e4e4e4'/>")
    out.append(f"<text class='x-label' x='{(PAD_L + f.w - PAD_R) / 2:.1f}' y='{f.h - 12}' "
               f"text-anchor='middle'>{_a(x_label)}</text>")
    out.append(f"<text class='y-label' x='16' y='{(PAD_T + f.y(f.y0)) / 2:.1f}' "
               f"text-anchor='middle' transform='rotate(-90 16 {(PAD_T + f.y(f.y0)) / 2:.1f})'>"
               f"{_a(y_label)}</text>")
    out.append("</g>")
    return out


def svg_trajectory_chart(
    times: Sequence[date | datetime | float],
    scores: Sequence[float],
    *,
    instrument: str,
    max_score: float,
    infusions: Sequence[date | datetime | float] = (),
    bands: Sequence[Band] = (),
    baseline: float | None = None,
    response_line: float | None = None,
    remission_line: float | None = None,
    chart_id: str = "trajectory",
) -> str:
    """Score trajectory with dose days marked, bands shaded and reference lines labelled.

    ``times`` and ``infusions`` are dates/datetimes (plotted as days from the first one) or
    numbers of days.
    """
    if len(times) != len(scores):
        raise ValueError("times and scores must have the same length")
    days, base = _as_days(list(times) + list(infusions))
    pts, inf_days = days[: len(times)], days[len(times):]
    x_hi = max(days) if days else 1.0
    f = _Frame(0.0, max(x_hi, 1.0), 0.0, float(max_score))
    since = f"days since {base.isoformat()}" if base else "days"
    n = len(scores)
    desc = (f"{instrument} scores over time, {n} assessment(s)"
            + (f", from {_fmt(scores[0])} to {_fmt(scores[-1])}" if n else "")
            + (f"; baseline {_fmt(baseline)}" if baseline is not None else "")
            + (f"; response at or below {_fmt(response_line)}" if response_line is not None else "")
            + (f"; remission at or below {_fmt(remission_line)}"
               if remission_line is not None else "")
            + f"; {len(inf_days)} dose day(s) marked.")
    out = _open(chart_id, f"{instrument} score trajectory", desc)
    out.append("<g class='bands'>")
    shades = ("#f3f7fb", "#e7eff7")
    for i, b in enumerate(bands):
        y_top, y_bot = f.y(min(b.hi, max_score)), f.y(max(b.lo, 0))
        out.append(f"<rect class='band' x='{PAD_L}' y='{y_top:.1f}' width='{W - PAD_L - PAD_R}' "
                   f"height='{max(y_bot - y_top, 0):.1f}' fill='{shades[i % 2]}'>"
                   f"<title>{_a(b.label)} {_fmt(b.lo)}–{_fmt(b.hi)}</title></rect>")
        out.append(f"<text x='{W - PAD_R - 4}' y='{y_top + 13:.1f}' text-anchor='end' {FONT} "
                   f"font-size='11' fill='#567'>{_a(b.label)}</text>")
    out.append("</g>")
    out += _axes(f, f"Time ({since})", f"{instrument} score", _ticks(0, f.x1), _ticks(0, f.y1))
    out.append("<g class='doses'>")
    for d in inf_days:
        out.append(f"<line class='dose' x1='{f.x(d):.1f}' y1='{PAD_T}' x2='{f.x(d):.1f}' "
                   f"y2='{f.y(0):.1f}' stroke='#b07aa1' stroke-dasharray='2 3'>"
                   f"<title>dose, day {_fmt(d)}</title></line>")
    out.append("</g>")
    for cls, value, label, colour in (
        ("baseline", baseline, "baseline", "#555"),
        ("response", response_line, "response", "#1f77b4"),
        ("remission", remission_line, "remission", "#2ca02c"),
    ):
        if value is None:
            continue
        out.append(f"<g class='{cls}'><line x1='{PAD_L}' y1='{f.y(value):.1f}' x2='{W - PAD_R}' "
                   f"y2='{f.y(value):.1f}' stroke='{colour}' stroke-dasharray='6 4'/>"
                   f"<text x='{PAD_L + 4}' y='{f.y(value) - 4:.1f}' {FONT} font-size='12' "
                   f"fill='{colour}'>{label} {_fmt(value)}</text></g>")
    if pts:
        path = " ".join(f"{'M' if i == 0 else 'L'}{f.x(x):.1f},{f.y(y):.1f}"
                        for i, (x, y) in enumerate(zip(pts, scores, strict=True)))
        out.append(f"<path class='trajectory' d='{path}' fill='none' stroke='#d62728' "
                   "stroke-width='2.5'/>")
        for x, y in zip(pts, scores, strict=True):
            out.append(f"<circle cx='{f.x(x):.1f}' cy='{f.y(y):.1f}' r='4' fill='#d62728'>"
                       f"<title>day {_fmt(x)}: {_fmt(y)}</title></circle>")
    out.append("</svg>")
    return "\n".join(out)


def svg_km_chart(
    times: Sequence[float],
    survival: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    *,
    at_risk: dict[float, int] | None = None,
    median: float | None = None,
    title: str = "Time to relapse after response",
    x_label: str = "Days since response",
    chart_id: str = "km",
) -> str:
    """Kaplan–Meier step curve with a shaded confidence band and numbers at risk below."""
    if not (len(times) == len(survival) == len(lo) == len(hi)):
        raise ValueError("times, survival, lo and hi must have the same length")
    at_risk = at_risk or {}
    h = H + (40 if at_risk else 0)
    x_hi = max(list(times) + list(at_risk) + [1.0])
    f = _Frame(0.0, x_hi, 0.0, 1.0, W, H)
    med = "not reached" if median is None else f"{_fmt(median)} days"
    desc = (f"Kaplan–Meier estimate of the share of responders without relapse; "
            f"{len(times)} time point(s); median time to relapse {med}; "
            f"shaded area is the 95 % confidence band.")
    out = _open(chart_id, title, desc, W, h)
    out += _axes(f, x_label, "Without relapse", _ticks(0, x_hi), [0, 0.25, 0.5, 0.75, 1.0],
                 y_pct=True)

    def steps(values: Sequence[float]) -> list[tuple[float, float]]:
        p: list[tuple[float, float]] = []
        for i, (t, v) in enumerate(zip(times, values, strict=True)):
            if i:
                p.append((f.x(t), p[-1][1]))
            p.append((f.x(t), f.y(v)))
        if p:
            p.append((f.x(x_hi), p[-1][1]))
        return p

    upper, lower = steps(hi), steps(lo)
    if upper:
        poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower[::-1])
        out.append(f"<polygon class='ci-band' points='{poly}' fill='#1f77b4' "
                   "fill-opacity='0.18' stroke='none'/>")
        line = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}"
                        for i, (x, y) in enumerate(steps(survival)))
        out.append(f"<path class='km-curve' d='{line}' fill='none' stroke='#1f77b4' "
                   "stroke-width='2.5'/>")
    out.append(f"<line class='median-line' x1='{PAD_L}' y1='{f.y(0.5):.1f}' x2='{W - PAD_R}' "
               f"y2='{f.y(0.5):.1f}' stroke='#888' stroke-dasharray='4 4'/>")
    if at_risk:
        y = H + 8
        out.append(f"<g class='at-risk' {FONT} font-size='12' fill='#222'>")
        out.append(f"<text x='{PAD_L - 8}' y='{y + 10}' text-anchor='end'>At risk</text>")
        for t, n in sorted(at_risk.items()):
            out.append(f"<text x='{f.x(t):.1f}' y='{y + 10}' text-anchor='middle'>{n}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
