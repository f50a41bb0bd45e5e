"""Portfolio risk analytics: volatility, historical and parametric VaR and expected shortfall, beta, correlation.

VaR and ES are losses, reported as positive fractions of value over one period at `confidence`:
historical VaR is minus the (1 - confidence) quantile of returns (linear interpolation, numpy's
default); historical ES is minus the mean of returns at or below that quantile; parametric
(Gaussian) VaR is `z * sigma - mu` and ES is `sigma * pdf(z) / (1 - confidence) - mu`, with mu and
sigma the sample mean and standard deviation (ddof=1). Multiply by position value for money.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from processors.reporting.metrics import PERIODS_PER_YEAR, InvalidSeries, _pair, _series


def normal_ppf(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, refined by two Newton steps)."""
    if not 0 < p < 1:
        raise InvalidSeries("probability", p, "must be in (0, 1)")
    if p > 0.5:
        # Work in the lower tail: 1 - p is exact here (Sterbenz), Phi(x) - p near 1 is not.
        return -normal_ppf(1.0 - p)
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    low = 0.02425
    if p < low or p > 1 - low:
        q = math.sqrt(-2 * math.log(p if p < low else 1 - p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        x = x if p < low else -x
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    for _ in range(2):
        # Newton on Phi(x) - p, with Phi from erfc for accuracy in the tails.
        error = 0.5 * math.erfc(-x / math.sqrt(2)) - p
        x -= error / normal_pdf(x)
    return x


def normal_pdf(x: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1:
        raise InvalidSeries("confidence", confidence, "must be in [0.5, 1)")


def historical_var(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Loss not exceeded with `confidence`, from the empirical quantile of returns."""
    _check_confidence(confidence)
    return float(-np.percentile(_series(returns, 0), 100 * (1 - confidence)))


def historical_es(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Mean loss in the tail beyond the historical VaR."""
    _check_confidence(confidence)
    r = _series(returns, 0)
    cutoff = np.percentile(r, 100 * (1 - confidence))
    return float(-r[r <= cutoff].mean())


def parametric_var(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Gaussian VaR from the sample mean and standard deviation."""
    _check_confidence(confidence)
    r = _series(returns, 0)
    return float(normal_ppf(confidence) * r.std(ddof=1) - r.mean())


def parametric_es(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Gaussian expected shortfall from the sample mean and standard deviation."""
    _check_confidence(confidence)
    r = _series(returns, 0)
    return float(r.std(ddof=1) * normal_pdf(normal_ppf(confidence)) / (1 - confidence) - r.mean())


def correlation(returns: ArrayLike, benchmark: ArrayLike) -> float:
    """Pearson correlation of returns with the benchmark."""
    r, b = _pair(returns, benchmark, 0)
    return float(np.corrcoef(r.ravel(), b.ravel())[0, 1])


class RiskReport(msgspec.Struct, frozen=True, kw_only=True):
    """One series' risk figures at one confidence level (VaR/ES as positive fractions per period)."""

    confidence: float
    volatility: float
    historical_var: float
    historical_es: float
    parametric_var: float
    parametric_es: float
    beta: float | None = None
    correlation: float | None = None


def risk_report(returns: ArrayLike, benchmark: ArrayLike | None = None, *, confidence: float = 0.95,
                periods_per_year: float = PERIODS_PER_YEAR) -> RiskReport:
    """Every risk figure of one return series (annualised volatility; VaR/ES per period)."""
    from processors.reporting.metrics import annual_volatility, beta

    r = _series(returns, 0)
    return RiskReport(
        confidence=confidence, volatility=annual_volatility(r, periods_per_year=periods_per_year),
        historical_var=historical_var(r, confidence), historical_es=historical_es(r, confidence),
        parametric_var=parametric_var(r, confidence), parametric_es=parametric_es(r, confidence),
        beta=None if benchmark is None else beta(r, benchmark),
        correlation=None if benchmark is None else correlation(r, benchmark))
