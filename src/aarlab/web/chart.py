"""The progress curve as plain numbers: best-so-far step curves, then SVG geometry.

Pure functions, no I/O: ``best_so_far`` turns released scores in time order into one step curve
per researcher and one for the lab; ``progress_svg`` places them in a viewBox with reference
lines and axis ticks. The template only prints the result, so the browser needs no chart
library and the geometry is unit-testable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aarlab.clock import as_utc

LAB = "lab"


@dataclass(frozen=True)
class Ref:
    """A horizontal reference line (weak floor, ceiling, best classical baseline)."""

    value: float
    label: str
    css: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    title: str


@dataclass
class Series:
    name: str
    css: str
    path: str  # SVG polyline points "x,y x,y ..."
    markers: list[Marker] = field(default_factory=list)


@dataclass
class Chart:
    width: int
    height: int
    plot: tuple[float, float, float, float]  # left, top, right, bottom
    series: list[Series]
    refs: list[tuple[float, Ref]]  # (y pixel, ref)
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    x_label: str
    empty: bool

    @property
    def n_points(self) -> int:
        return sum(len(s.markers) for s in self.series)


def best_so_far(points: Iterable[dict]) -> dict[str, list[tuple[datetime, float]]]:
    """Step curves of the best released PGR: one per researcher, and ``LAB`` over all of them.

    ``points`` are dicts with ``time``, ``researcher`` and ``released_pgr`` in time order (the
    shape of ``aarlab.lab.status.progress_points``). A point is kept only where a best rises, so
    all submissions and only the ones that raised a release give the same curves.
    """
    curves: dict[str, list[tuple[datetime, float]]] = {}
    best: dict[str, float] = {}
    for p in points:
        v = p["released_pgr"]
        if v is None:
            continue
        t = as_utc(p["time"])
        for name in (p["researcher"], LAB):
            if name not in best or v > best[name]:
                best[name] = v
                curves.setdefault(name, []).append((t, v))
    return curves


def _nice_step(span: float, target: int) -> float:
    """The smallest 1, 2 or 5 times a power of ten that cuts ``span`` into at most ``target``."""
    raw = span / max(1, target)
    for exp in range(-4, 8):
        for mult in (1, 2, 5):
            step = mult * 10.0 ** exp
            if step >= raw:
                return step
    return raw


def progress_svg(curves: dict[str, list[tuple[datetime, float]]], refs: list[Ref],
                 end: datetime | None = None, width: int = 720, height: int = 300) -> Chart:
    """Place ``curves`` (from ``best_so_far``) and ``refs`` in a ``width`` x ``height`` box.

    Time is minutes since the first point; each curve is drawn as steps and carried flat to
    ``end`` (default: the last point), so a researcher whose best stopped rising still shows.
    """
    left, top, right, bottom = 48.0, 12.0, width - 12.0, height - 36.0
    times = [t for c in curves.values() for t, _ in c]
    values = [v for c in curves.values() for _, v in c] + [r.value for r in refs]
    if not times:
        return Chart(width, height, (left, top, right, bottom), [], [], [], [],
                     "minutes since the first submission", True)
    t0 = min(times)
    t_end = max([*times, as_utc(end)] if end else times)
    span_min = max((t_end - t0).total_seconds() / 60, 1e-3)
    lo, hi = min([*values, 0.0]), max([*values, 1.0])
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad

    def x(t: datetime) -> float:
        return round(left + (t - t0).total_seconds() / 60 / span_min * (right - left), 1)

    def y(v: float) -> float:
        return round(bottom - (v - lo) / (hi - lo) * (bottom - top), 1)

    series = []
    names = sorted(n for n in curves if n != LAB) + ([LAB] if LAB in curves else [])
    for i, name in enumerate(names):
        pts, marks, prev_y = [], [], None
        for t, v in curves[name]:
            if prev_y is not None:
                pts.append(f"{x(t)},{prev_y}")  # flat until the next rise, then up
            pts.append(f"{x(t)},{y(v)}")
            marks.append(Marker(x(t), y(v), f"{name}: {v:.3f} at {t:%Y-%m-%d %H:%M:%S} UTC"))
            prev_y = y(v)
        pts.append(f"{x(t_end)},{prev_y}")
        css = "lab" if name == LAB else f"s{i % 8}"
        series.append(Series(name, css, " ".join(pts), marks))

    step = _nice_step(hi - lo, 6)
    y_ticks, v = [], step * int(lo / step)
    while v <= hi:
        if v >= lo:
            y_ticks.append((y(v), f"{v:.2f}".rstrip("0").rstrip(".") if step < 1 else f"{v:g}"))
        v = round(v + step, 9)
    xs = _nice_step(span_min, 6)
    x_ticks, m = [], 0.0
    while m <= span_min + 1e-9:
        x_ticks.append((round(left + m / span_min * (right - left), 1), f"{m:g}"))
        m = round(m + xs, 9)
    ref_rows = [(y(r.value), r) for r in refs]
    return Chart(width, height, (left, top, right, bottom), series, ref_rows, y_ticks, x_ticks,
                 "minutes since the first submission", False)
