"""Vectorised performance analytics over simple return series, one series or many along an axis.

Conventions (empyrical's, the standard behind pyfolio and zipline, unless marked *ours*):

- Returns are simple, non-cumulative, per period (`r_t = P_t / P_{t-1} - 1`), and they compound:
  wealth after `t` periods is `prod(1 + r_1..r_t)`.
- `periods_per_year` defaults to 252 (trading days). A year is `n / periods_per_year` periods.
- `risk_free` and `required_return` are *per period* (a daily rate for daily returns), subtracted
  from each return; Omega's `required_return` alone is annual, as in empyrical.
- Dispersion is the sample standard deviation (ddof=1), annualised by `sqrt(periods_per_year)`.
- Sharpe: `mean(r - rf) / std(r - rf) * sqrt(ppy)`.
- Sortino: `mean(r - req) * ppy / downside_risk`, where downside risk is
  `sqrt(mean(min(r - req, 0)^2)) * sqrt(ppy)`: the mean is over *every* period, not only losses.
- Drawdown is measured against the running peak of wealth *including the starting value*, so a
  series that only falls draws down from its start. Max drawdown is a negative fraction.
- Calmar: annual return / |max drawdown| (NaN when there is no drawdown).
- Beta: `cov(r, b) / var(b)`; alpha: `(mean(r - rf - beta * (b - rf)) + 1) ** ppy - 1`, annualised
  by compounding.
- Tail ratio: |95th percentile| / |5th percentile| (linear interpolation).
- *Ours*, not in empyrical: tracking error is annualised, `std(r - b) * sqrt(ppy)`, and the
  information ratio is annualised, `mean(r - b) * ppy / tracking_error` (empyrical's
  `excess_sharpe` is the same ratio per period, i.e. ours divided by `sqrt(ppy)`). Win rate is the
  share of non-zero periods that are positive; profit factor is gains / |losses|; expectancy is the
  mean return of a non-zero period. Drawdown dates are indices into the wealth curve (0 = start).

Inputs must be finite: a NaN or infinity is an error naming its position, not a silent skip.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

PERIODS_PER_YEAR = 252

Floats = NDArray[np.float64]
Result = Any  # a float for a 1-D series, an array over the other axes for 2-D input


class InvalidSeries(ValueError):
    """A return series cannot be analysed; `field`, `value` and `limit` say why."""

    def __init__(self, field: str, value: object, limit: str) -> None:
        super().__init__(f"{field} {value} {limit}")
        self.field = field
        self.value = value
        self.limit = limit


def _series(returns: ArrayLike, axis: int, field: str = "returns") -> Floats:
    """The input as float64 with time on axis 0, refusing non-finite values and empty series."""
    array = np.moveaxis(np.asarray(returns, dtype=np.float64), axis, 0)
    if array.shape[0] < 1:
        raise InvalidSeries(field, "length 0", "must hold at least 1 period")
    if not np.isfinite(array).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise InvalidSeries(f"{field}[{', '.join(map(str, where))}]", array[where], "is not a finite number")
    return array


def _pair(returns: ArrayLike, benchmark: ArrayLike, axis: int) -> tuple[Floats, Floats]:
    """Returns and a benchmark aligned on time; a 1-D benchmark applies to every series."""
    r = _series(returns, axis)
    b = np.asarray(benchmark, dtype=np.float64)
    b = _series(b, axis if b.ndim == r.ndim else 0, "benchmark")
    if b.shape[0] != r.shape[0]:
        raise InvalidSeries("benchmark", f"length {b.shape[0]}", f"must match returns length {r.shape[0]}")
    if b.ndim < r.ndim:
        b = b.reshape(b.shape + (1,) * (r.ndim - b.ndim))
    return r, b


def _out(value: Floats) -> Result:
    """A 0-d result as a Python float, otherwise the array."""
    return float(value) if np.ndim(value) == 0 else value


def _std(x: Floats) -> Floats:
    """Sample standard deviation along time (NaN for a single period)."""
    if x.shape[0] < 2:
        return np.full(x.shape[1:], np.nan)
    return np.std(x, axis=0, ddof=1)


def _divide(numerator: Floats, denominator: Floats) -> Floats:
    """Elementwise division where x/0 is +-inf or NaN, without numpy's warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(numerator, denominator)


def cum_returns(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Compounded return after each period (the wealth curve minus 1)."""
    r = _series(returns, axis)
    return np.moveaxis(np.cumprod(1.0 + r, axis=0) - 1.0, 0, axis)


def cumulative_return(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Total compounded return over the whole series."""
    return _out(np.prod(1.0 + _series(returns, axis), axis=0) - 1.0)


def annual_return(returns: ArrayLike, *, periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> Result:
    """Compound annual growth rate (CAGR)."""
    r = _series(returns, axis)
    years = r.shape[0] / periods_per_year
    return _out(np.prod(1.0 + r, axis=0) ** (1.0 / years) - 1.0)


def annual_volatility(returns: ArrayLike, *, periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> Result:
    """Sample standard deviation of returns, annualised by the square root of time."""
    return _out(_std(_series(returns, axis)) * math.sqrt(periods_per_year))


def sharpe_ratio(returns: ArrayLike, *, risk_free: float = 0.0, periods_per_year: float = PERIODS_PER_YEAR,
                 axis: int = 0) -> Result:
    """Annualised mean excess return over its sample standard deviation."""
    excess = _series(returns, axis) - risk_free
    return _out(_divide(excess.mean(axis=0), _std(excess)) * math.sqrt(periods_per_year))


def downside_risk(returns: ArrayLike, *, required_return: float = 0.0,
                  periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> Result:
    """Annualised root mean square of shortfalls below `required_return` (over every period)."""
    shortfall = np.minimum(_series(returns, axis) - required_return, 0.0)
    return _out(np.sqrt(np.mean(shortfall * shortfall, axis=0)) * math.sqrt(periods_per_year))


def sortino_ratio(returns: ArrayLike, *, required_return: float = 0.0,
                  periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> Result:
    """Annualised mean return above `required_return` over the downside risk."""
    r = _series(returns, axis)
    excess = r - required_return
    shortfall = np.minimum(excess, 0.0)
    risk = np.sqrt(np.mean(shortfall * shortfall, axis=0)) * math.sqrt(periods_per_year)
    return _out(_divide(excess.mean(axis=0) * periods_per_year, risk))


def _wealth(r: Floats) -> Floats:
    """Wealth curve starting at 1 before the first period: n + 1 points along time."""
    wealth = np.empty((r.shape[0] + 1,) + r.shape[1:])
    wealth[0] = 1.0
    np.cumprod(1.0 + r, axis=0, out=wealth[1:])
    return wealth


def drawdown_series(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Drawdown after each period: wealth over its running peak (the start included), minus 1."""
    wealth = _wealth(_series(returns, axis))
    return np.moveaxis((wealth / np.maximum.accumulate(wealth, axis=0) - 1.0)[1:], 0, axis)


def max_drawdown(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Deepest fall of wealth from a previous peak, as a negative fraction (0 with no fall)."""
    wealth = _wealth(_series(returns, axis))
    return _out(np.min(wealth / np.maximum.accumulate(wealth, axis=0) - 1.0, axis=0))


def max_drawdown_indices(returns: ArrayLike, *, axis: int = 0) -> tuple[Result, Result, Result]:
    """Peak, trough and recovery of the max drawdown as indices into the wealth curve.

    Index 0 is the start (before the first return), index t is after return t, so the date of
    index t > 0 is the date of return t - 1. Recovery is -1 while wealth is still below the peak;
    with no drawdown, peak = trough = recovery = 0.
    """
    wealth = _wealth(_series(returns, axis))
    peaks = np.maximum.accumulate(wealth, axis=0)
    return _drawdown_indices(wealth, peaks, wealth / peaks - 1.0)


def _drawdown_indices(wealth: Floats, peaks: Floats, drawdown: Floats) -> tuple[Result, Result, Result]:
    """Peak, trough and recovery indices from a wealth curve, its running peak and its drawdown."""
    trough = np.argmin(drawdown, axis=0)
    n = wealth.shape[0]
    index = np.arange(n).reshape((n,) + (1,) * (wealth.ndim - 1))
    at_trough = np.expand_dims(trough, 0)
    peak_value = np.take_along_axis(peaks, at_trough, axis=0)
    # The peak is the last time before the trough that wealth stood at the peak value.
    peak = np.max(np.where((wealth == peak_value) & (index <= at_trough), index, 0), axis=0)
    recovered = (wealth >= peak_value) & (index > at_trough)
    recovery = np.where(recovered.any(axis=0), np.argmax(recovered, axis=0), -1)
    recovery = np.where(trough == peak, peak, recovery)

    def scalar(x: NDArray[np.int64]) -> Result:
        return int(x) if np.ndim(x) == 0 else x
    return scalar(peak), scalar(trough), scalar(recovery)


def calmar_ratio(returns: ArrayLike, *, periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> Result:
    """Annual return over the absolute max drawdown (NaN when nothing was ever lost)."""
    r = _series(returns, axis)
    drawdown = np.asarray(max_drawdown(r))
    annual = np.asarray(annual_return(r, periods_per_year=periods_per_year))
    ratio = _divide(annual, np.where(drawdown < 0, -drawdown, np.nan))
    return _out(np.where(np.isinf(ratio), np.nan, ratio))


def omega_ratio(returns: ArrayLike, *, risk_free: float = 0.0, required_return: float = 0.0,
                periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> Result:
    """Gains over losses around a threshold: `required_return` is annual, deannualised by compounding."""
    r = _series(returns, axis)
    if required_return <= -1:
        raise InvalidSeries("required_return", required_return, "must be above -1")
    threshold = required_return if periods_per_year == 1 else (1 + required_return) ** (1 / periods_per_year) - 1
    excess = r - risk_free - threshold
    gains = np.where(excess > 0, excess, 0.0).sum(axis=0)
    losses = -np.where(excess < 0, excess, 0.0).sum(axis=0)
    return _out(np.where(losses > 0, _divide(gains, losses), np.nan))


def tail_ratio(returns: ArrayLike, *, axis: int = 0) -> Result:
    """|95th percentile| over |5th percentile| of returns: right tail against left tail."""
    p5, p95 = np.percentile(_series(returns, axis), [5, 95], axis=0)
    return _out(_divide(np.abs(p95), np.abs(p5)))


def beta(returns: ArrayLike, benchmark: ArrayLike, *, axis: int = 0) -> Result:
    """Sensitivity of returns to the benchmark: cov(r, b) / var(b)."""
    r, b = _pair(returns, benchmark, axis)
    return _out(_beta(r, b))


def _beta(r: Floats, b: Floats) -> Floats:
    """Beta with time on axis 0 (NaN when the benchmark does not move)."""
    residual = b - b.mean(axis=0)
    variance = np.mean(residual * residual, axis=0)
    return _divide(np.mean(residual * r, axis=0), np.where(variance < 1e-30, np.nan, variance))


def alpha_beta(returns: ArrayLike, benchmark: ArrayLike, *, risk_free: float = 0.0,
               periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> tuple[Result, Result]:
    """Jensen's alpha, annualised by compounding, and beta against the benchmark."""
    r, b = _pair(returns, benchmark, axis)
    slope = _beta(r, b)
    per_period = np.mean((r - risk_free) - slope * (b - risk_free), axis=0)
    return _out((per_period + 1.0) ** periods_per_year - 1.0), _out(slope)


def tracking_error(returns: ArrayLike, benchmark: ArrayLike, *, periods_per_year: float = PERIODS_PER_YEAR,
                   axis: int = 0) -> Result:
    """Annualised sample standard deviation of active return (returns minus benchmark)."""
    r, b = _pair(returns, benchmark, axis)
    return _out(_std(r - b) * math.sqrt(periods_per_year))


def information_ratio(returns: ArrayLike, benchmark: ArrayLike, *, periods_per_year: float = PERIODS_PER_YEAR,
                      axis: int = 0) -> Result:
    """Annualised mean active return over the annualised tracking error."""
    r, b = _pair(returns, benchmark, axis)
    active = r - b
    return _out(_divide(active.mean(axis=0), _std(active)) * math.sqrt(periods_per_year))


def win_rate(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Share of non-zero periods with a positive return (NaN when every period is zero)."""
    r = _series(returns, axis)
    return _out(_divide((r > 0).sum(axis=0).astype(float), (r != 0).sum(axis=0).astype(float)))


def profit_factor(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Sum of gains over the absolute sum of losses (inf with no loss, NaN with neither)."""
    r = _series(returns, axis)
    return _out(_divide(np.where(r > 0, r, 0.0).sum(axis=0), -np.where(r < 0, r, 0.0).sum(axis=0)))


def expectancy(returns: ArrayLike, *, axis: int = 0) -> Result:
    """Mean return of a non-zero period: win rate x average win - loss rate x average loss."""
    r = _series(returns, axis)
    return _out(_divide(r.sum(axis=0), (r != 0).sum(axis=0).astype(float)))


METRIC_NAMES = ("cumulative_return", "annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio",
                "downside_risk", "max_drawdown", "calmar_ratio", "omega_ratio", "tail_ratio", "win_rate",
                "profit_factor", "expectancy")
BENCHMARK_METRIC_NAMES = ("alpha", "beta", "tracking_error", "information_ratio")


def summary(returns: ArrayLike, benchmark: ArrayLike | None = None, *, risk_free: float = 0.0,
            periods_per_year: float = PERIODS_PER_YEAR, axis: int = 0) -> dict[str, Result]:
    """Every metric at once (and the benchmark ones when a benchmark is given), keyed by name.

    Same formulas as the functions above, computed once from shared intermediates (one wealth
    curve, one running peak, one excess series) because this is the many-series hot path.
    Sortino and downside risk use `risk_free` as the required return.
    """
    r = _series(returns, axis)
    ppy, root = periods_per_year, math.sqrt(periods_per_year)
    n = r.shape[0]
    wealth = _wealth(r)
    peaks = np.maximum.accumulate(wealth, axis=0)
    drawdown = wealth / peaks - 1.0
    worst = drawdown.min(axis=0)
    growth = wealth[-1]
    annual = growth ** (ppy / n) - 1.0
    excess = r - risk_free
    mean_excess = excess.mean(axis=0)
    shortfall = np.minimum(excess, 0.0)
    downside = np.sqrt(np.mean(shortfall * shortfall, axis=0)) * root
    gains_over = np.maximum(excess, 0.0).sum(axis=0)
    losses_under = -shortfall.sum(axis=0)
    calmar = _divide(annual, np.where(worst < 0, -worst, np.nan))
    p5, p95 = np.percentile(r, [5, 95], axis=0)
    positive = (r > 0).sum(axis=0)
    nonzero = (r != 0).sum(axis=0).astype(float)
    gains, losses = np.where(r > 0, r, 0.0).sum(axis=0), -np.where(r < 0, r, 0.0).sum(axis=0)
    out: dict[str, Result] = {
        "periods": n,
        "cumulative_return": _out(growth - 1.0),
        "annual_return": _out(annual),
        "annual_volatility": _out(_std(r) * root),
        "sharpe_ratio": _out(_divide(mean_excess, _std(excess)) * root),
        "sortino_ratio": _out(_divide(mean_excess * ppy, downside)),
        "downside_risk": _out(downside),
        "max_drawdown": _out(worst),
        "calmar_ratio": _out(np.where(np.isinf(calmar), np.nan, calmar)),
        "omega_ratio": _out(np.where(losses_under > 0, _divide(gains_over, losses_under), np.nan)),
        "tail_ratio": _out(_divide(np.abs(p95), np.abs(p5))),
        "win_rate": _out(_divide(positive.astype(float), nonzero)),
        "profit_factor": _out(_divide(gains, losses)),
        "expectancy": _out(_divide(r.sum(axis=0), nonzero)),
    }
    peak, trough, recovery = _drawdown_indices(wealth, peaks, drawdown)
    out.update(max_drawdown_peak=peak, max_drawdown_trough=trough, max_drawdown_recovery=recovery)
    if benchmark is not None:
        b = np.asarray(benchmark, dtype=np.float64)
        r, b = _pair(r, b if b.ndim < r.ndim else np.moveaxis(b, axis, 0), 0)
        slope = _beta(r, b)
        per_period = np.mean(excess - slope * (b - risk_free), axis=0)
        active = r - b
        active_sd = _std(active)
        out.update(alpha=_out((per_period + 1.0) ** ppy - 1.0), beta=_out(slope),
                   tracking_error=_out(active_sd * root),
                   information_ratio=_out(_divide(active.mean(axis=0), active_sd) * root))
    return out
