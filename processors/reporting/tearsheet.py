"""A self-contained HTML tear sheet: metrics table and five inline-SVG plots that open offline.

Plots: equity curve (with the benchmark when given), drawdown, monthly returns heatmap, return
distribution and exposure. No script, stylesheet, font or image is fetched: the file is one page.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html import escape
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.reporting import _svg, metrics
from processors.reporting.report import metrics_report

Floats = NDArray[np.float64]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PLOT_IDS = ("equity", "drawdown", "monthly", "distribution", "exposure")
EQUITY_COLOUR, BENCH_COLOUR, DRAWDOWN_COLOUR = "#1f5fbf", "#999999", "#c0392b"
HIST_COLOUR, EXPOSURE_COLOUR = "#6a4fb3", "#1e8449"


def monthly_returns(dates: list[str], returns: Floats) -> tuple[list[str], Floats]:
    """Compounded return per calendar month: year labels and a (years x 12) table, NaN where no data."""
    months = np.array([d[:7] for d in dates])
    years = sorted({m[:4] for m in months})
    table = np.full((len(years), 12), np.nan)
    growth = np.log1p(returns)
    for month in np.unique(months):
        year, number = month.split("-")
        table[years.index(year), int(number) - 1] = np.expm1(growth[months == month].sum())
    return years, table


def _equity_svg(dates: list[str], returns: Floats, benchmark: Floats | None) -> str:
    wealth = np.concatenate([[1.0], np.cumprod(1 + returns)])
    x = np.arange(len(wealth), dtype=float)
    series = [wealth] + ([np.concatenate([[1.0], np.cumprod(1 + benchmark)])] if benchmark is not None else [])
    frame = _svg.Frame((0, x[-1]), (min(s.min() for s in series), max(s.max() for s in series)))
    body = [_svg.axes(frame, "Equity (growth of 1)", (dates[0], dates[-1]), "{:.2f}")]
    if benchmark is not None:
        body.append(f'<path d="{_svg.line_path(frame, x, series[1])}" fill="none" stroke="{BENCH_COLOUR}" '
                    'stroke-width="1.2"><title>benchmark</title></path>')
    body.append(f'<path d="{_svg.line_path(frame, x, wealth)}" fill="none" stroke="{EQUITY_COLOUR}" '
                'stroke-width="1.8"><title>strategy</title></path>')
    return _svg.svg("equity", "".join(body))


def _drawdown_svg(dates: list[str], returns: Floats) -> str:
    drawdown = np.concatenate([[0.0], metrics.drawdown_series(returns)])
    x = np.arange(len(drawdown), dtype=float)
    frame = _svg.Frame((0, x[-1]), (min(float(drawdown.min()), -0.01), 0.0))
    return _svg.svg("drawdown", _svg.axes(frame, "Drawdown", (dates[0], dates[-1]))
                    + f'<path d="{_svg.area_path(frame, x, drawdown)}" fill="{DRAWDOWN_COLOUR}" '
                      f'fill-opacity="0.55" stroke="{DRAWDOWN_COLOUR}"/>')


def _distribution_svg(returns: Floats) -> str:
    counts, edges = np.histogram(returns, bins=min(60, max(10, len(returns) // 10)))
    frame = _svg.Frame((float(edges[0]), float(edges[-1])), (0.0, float(counts.max())), pad_below=False)
    mean_x = float(frame.x(np.array(returns.mean())))
    body = [_svg.axes(frame, "Distribution of period returns", (f"{edges[0]:.2%}", f"{edges[-1]:.2%}"), "{:.0f}"),
            f'<path d="{_svg.bars_path(frame, edges[:-1], edges[1:], counts.astype(float))}" '
            f'fill="{HIST_COLOUR}"/>',
            f'<path d="M{mean_x:.2f},{_svg.TOP} V{_svg.HEIGHT - _svg.BOTTOM}" stroke="#000" '
            'stroke-dasharray="4,2"><title>mean</title></path>']
    return _svg.svg("distribution", "".join(body))


def _exposure_svg(dates: list[str], exposure: Floats | None) -> str:
    label = "Gross exposure (fraction of equity)"
    if exposure is None:
        # Said on the chart, so nobody reads an assumption as a measurement.
        exposure = np.ones(len(dates))
        label += " - not in the input: drawn as fully invested"
    x = np.arange(len(exposure), dtype=float)
    frame = _svg.Frame((0, max(x[-1], 1.0)), (min(0.0, float(exposure.min())), max(float(exposure.max()), 1.0)))
    return _svg.svg("exposure", _svg.axes(frame, label, (dates[0], dates[-1]))
                    + f'<path d="{_svg.area_path(frame, x, exposure)}" fill="{EXPOSURE_COLOUR}" fill-opacity="0.35" '
                      f'stroke="{EXPOSURE_COLOUR}" stroke-width="1.5"/>')


def _metrics_table(report: dict[str, Any]) -> str:
    rows = []
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else ("n/a" if value is None else str(value))
        rows.append(f"<tr><th>{escape(key.replace('_', ' '))}</th><td>{escape(shown)}</td></tr>")
    return f'<table class="metrics">{"".join(rows)}</table>'


def render(dates: list[str], returns: Floats, *, benchmark: Floats | None = None, exposure: Floats | None = None,
           title: str = "Tear sheet", risk_free: float = 0.0,
           periods_per_year: float = metrics.PERIODS_PER_YEAR, source: str = "") -> str:
    """The tear sheet as one HTML document."""
    returns = np.asarray(returns, dtype=np.float64)
    if len(returns) < 2:
        raise metrics.InvalidSeries("returns", f"length {len(returns)}", "needs at least 2 periods for a tear sheet")
    report = metrics_report(dates, returns, benchmark, risk_free=risk_free, periods_per_year=periods_per_year)
    years, table = monthly_returns(dates, returns)
    figures = [
        ("Equity curve", _equity_svg(dates, returns, benchmark)),
        ("Drawdown from the running peak", _drawdown_svg(dates, returns)),
        ("Monthly returns (%)", _svg.heatmap("monthly", years, MONTHS, table)),
        ("Return distribution", _distribution_svg(returns)),
        ("Exposure", _exposure_svg(dates, exposure)),
    ]
    body = "".join(f"<figure><figcaption>{escape(caption)}</figcaption>{chart}</figure>" for caption, chart in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 20px; }} figure {{ margin: 16px 0; }} figcaption {{ font-weight: bold; margin-bottom: 4px; }}
table.metrics {{ border-collapse: collapse; font-size: 12px; }}
table.metrics th {{ text-align: left; padding: 2px 12px 2px 0; font-weight: normal; color: #555; }}
table.metrics td {{ text-align: right; padding: 2px 0; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{escape(dates[0])} to {escape(dates[-1])}, {len(returns)} periods, {periods_per_year:g} a year. {escape(source)}</p>
{_metrics_table(report)}
{body}
</body></html>
"""


def returns_from_pnl(points: list[tuple[int, Decimal]], capital: float) -> tuple[list[str], Floats]:
    """Daily returns on fixed `capital` from (ts_ns, cumulative net P&L) points: the day's P&L change / capital."""
    if capital <= 0:
        raise metrics.InvalidSeries("capital", capital, "must be above 0")
    by_day: dict[str, float] = {}
    for ts, net in sorted(points):
        day = dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).date().isoformat()
        by_day[day] = float(net)  # the last P&L of the day is the day's close
    days = sorted(by_day)
    closes = np.array([0.0] + [by_day[d] for d in days])
    equity = capital + closes
    return days, equity[1:] / equity[:-1] - 1
