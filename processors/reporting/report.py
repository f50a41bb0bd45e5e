"""One return series' metrics as a JSON-ready report, shared by `sq report metrics` and the tear sheet."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from processors.reporting import metrics
from processors.reporting.series_io import InvalidCsv


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to null (JSON has neither)."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def align(dates: list[str], returns: np.ndarray, bench_dates: list[str], bench: np.ndarray
          ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Returns and benchmark on the dates both have, in the returns file's order."""
    by_date = dict(zip(bench_dates, bench, strict=True))
    keep = [i for i, date in enumerate(dates) if date in by_date]
    if not keep:
        raise InvalidCsv("benchmark", 0, "date", f"{bench_dates[0]}..{bench_dates[-1]}",
                         f"shares no date with returns {dates[0]}..{dates[-1]}")
    return [dates[i] for i in keep], returns[keep], np.array([by_date[dates[i]] for i in keep])


def metrics_report(dates: list[str], returns: np.ndarray, benchmark: np.ndarray | None = None, *,
                   risk_free: float = 0.0, periods_per_year: float = metrics.PERIODS_PER_YEAR) -> dict[str, Any]:
    """Every metric of one series, with drawdown dates and the conventions used, as a JSON-ready dict."""
    out = metrics.summary(returns, benchmark, risk_free=risk_free, periods_per_year=periods_per_year)

    def date_of(index: int) -> str | None:
        # Wealth index t > 0 is the close of return t - 1; index 0 is before the first return.
        return dates[index - 1] if index > 0 else None

    for part in ("peak", "trough", "recovery"):
        index = out.pop(f"max_drawdown_{part}")
        out[f"max_drawdown_{part}_date"] = date_of(index) if index >= 0 else None
    out.update(start=dates[0], end=dates[-1], periods_per_year=periods_per_year, risk_free=risk_free,
               benchmark=benchmark is not None)
    return jsonable(out)
