"""Small inline-SVG charts drawn in Python: lines, filled areas, bars and a heatmap (no JS, no CDN)."""

from __future__ import annotations

from html import escape

import numpy as np
from numpy.typing import NDArray

WIDTH, HEIGHT = 860, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 24, 30
# A path of more points than pixels only makes the file bigger: thin long series to this many.
MAX_POINTS = 1600


def _fmt(value: float) -> str:
    """A coordinate with two decimals (sub-pixel precision is noise)."""
    return f"{value:.2f}"


def _thin(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """At most MAX_POINTS points, keeping the first and the last."""
    if len(x) <= MAX_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
    return x[keep], y[keep]


class Frame:
    """Maps data coordinates onto the plot area of one chart."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], *, pad_below: bool = True) -> None:
        x0, x1 = x_range
        y0, y1 = y_range
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        pad = (y1 - y0) * 0.05 or abs(y0) * 0.05 or 1.0
        # Counts start at 0: padding below would label the axis with a negative count.
        self.y0, self.y1 = (y0 - pad) if pad_below else y0, y1 + pad

    def x(self, value: NDArray[np.float64]) -> NDArray[np.float64]:
        """Pixel x of data x."""
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: NDArray[np.float64]) -> NDArray[np.float64]:
        """Pixel y of data y (SVG's y grows downwards)."""
        return TOP + (self.y1 - value) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)


def line_path(frame: Frame, x: NDArray[np.float64], y: NDArray[np.float64]) -> str:
    """The `d` of a polyline through the points."""
    x, y = _thin(x, y)
    px, py = frame.x(x), frame.y(y)
    return "M" + " L".join(f"{_fmt(a)},{_fmt(b)}" for a, b in zip(px, py, strict=True))


def area_path(frame: Frame, x: NDArray[np.float64], y: NDArray[np.float64], base: float = 0.0) -> str:
    """The `d` of the area between the points and a horizontal base line."""
    x, y = _thin(x, y)
    base_y = _fmt(float(frame.y(np.array(base))))
    return (f"M{_fmt(float(frame.x(x[0])))},{base_y} L" + line_path(frame, x, y)[1:]
            + f" L{_fmt(float(frame.x(x[-1])))},{base_y} Z")


def bars_path(frame: Frame, left: NDArray[np.float64], right: NDArray[np.float64],
              height: NDArray[np.float64]) -> str:
    """The `d` of one rectangle per bar, from 0 up to `height`."""
    parts = []
    base = float(frame.y(np.array(0.0)))
    for x0, x1, top in zip(frame.x(left), frame.x(right), frame.y(height), strict=True):
        if top < base:
            parts.append(f"M{_fmt(x0)},{_fmt(base)} V{_fmt(top)} H{_fmt(x1)} V{_fmt(base)} Z")
    return " ".join(parts)


def axes(frame: Frame, y_label: str, x_labels: tuple[str, str], y_format: str = "{:.0%}") -> str:
    """Axis box, zero line where in range, y extremes and first/last x labels."""
    bottom = HEIGHT - BOTTOM
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{bottom - TOP}" '
           'fill="none" stroke="#ccc"/>']
    if frame.y0 < 0 < frame.y1:
        zero = _fmt(float(frame.y(np.array(0.0))))
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero}" y2="{zero}" stroke="#999" '
                   'stroke-dasharray="3,3"/>')
    for value in (frame.y0, frame.y1):
        y = _fmt(float(frame.y(np.array(value))))
        out.append(f'<text x="{LEFT - 6}" y="{y}" text-anchor="end" dominant-baseline="middle">'
                   f"{escape(y_format.format(value))}</text>")
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 8}">{escape(x_labels[0])}</text>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{escape(x_labels[1])}</text>')
    out.append(f'<text x="{LEFT}" y="{TOP - 8}" font-weight="bold">{escape(y_label)}</text>')
    return "".join(out)


def svg(chart_id: str, body: str, height: int = HEIGHT) -> str:
    """Wrap chart elements in an <svg> that scales with the page."""
    return (f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">{body}</svg>')


def diverging_colour(value: float, scale: float) -> str:
    """Red for losses, green for gains, white at zero; saturating at +-scale."""
    t = 0.0 if scale <= 0 else max(-1.0, min(1.0, value / scale))
    if t >= 0:
        r, g, b = 255 - int(t * 200), 255 - int(t * 80), 255 - int(t * 200)
    else:
        r, g, b = 255 + int(t * 40), 255 + int(t * 200), 255 + int(t * 200)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(chart_id: str, rows: list[str], columns: list[str], values: NDArray[np.float64]) -> str:
    """A grid of coloured cells (NaN cells left blank) with the value written in each."""
    cell_w, cell_h = (WIDTH - LEFT - RIGHT) / max(len(columns), 1), 22
    height = TOP + cell_h * len(rows) + 8
    finite = values[np.isfinite(values)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    out = []
    for j, name in enumerate(columns):
        out.append(f'<text x="{_fmt(LEFT + (j + 0.5) * cell_w)}" y="{TOP - 8}" text-anchor="middle">'
                   f"{escape(name)}</text>")
    for i, name in enumerate(rows):
        y = TOP + i * cell_h
        out.append(f'<text x="{LEFT - 6}" y="{_fmt(y + cell_h / 2)}" text-anchor="end" '
                   f'dominant-baseline="middle">{escape(name)}</text>')
        for j in range(len(columns)):
            value = float(values[i, j])
            if not np.isfinite(value):
                continue
            x = LEFT + j * cell_w
            out.append(f'<path d="M{_fmt(x)},{_fmt(y)} h{_fmt(cell_w - 1)} v{cell_h - 1} h{_fmt(1 - cell_w)} Z" '
                       f'fill="{diverging_colour(value, scale)}"><title>{escape(name)}-{escape(columns[j])}: '
                       f"{value:.2%}</title></path>")
            out.append(f'<text x="{_fmt(x + cell_w / 2)}" y="{_fmt(y + cell_h / 2)}" text-anchor="middle" '
                       f'dominant-baseline="middle" font-size="10">{value * 100:.1f}</text>')
    return svg(chart_id, "".join(out), int(height))
