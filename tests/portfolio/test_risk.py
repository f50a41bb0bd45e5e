"""Risk analytics on real returns: VaR and ES, historical and parametric, against scipy and plain loops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from processors.portfolio import risk
from processors.reporting import read_prices_csv
from processors.reporting.metrics import InvalidSeries

PRICES = Path(__file__).resolve().parents[2] / "data" / "samples" / "pypfopt_stock_prices.csv"


@pytest.fixture(scope="module")
def aapl_and_market() -> tuple[np.ndarray, np.ndarray]:
    """AAPL daily returns and the equal-weight return of the assets listed over the whole sample."""
    _, assets, prices = read_prices_csv(PRICES)
    full = ~np.isnan(prices).any(axis=0)
    returns = prices[1:, full] / prices[:-1, full] - 1
    names = [assets[i] for i in np.flatnonzero(full)]
    return returns[:, names.index("AAPL")], returns.mean(axis=1)


def test_normal_ppf_when_compared_with_scipy_then_agrees_to_1e12():
    stats = pytest.importorskip("scipy.stats", reason="scipy is in the test extra")
    for p in (1e-10, 0.001, 0.01, 0.02425, 0.05, 0.3, 0.5, 0.9, 0.95, 0.975, 0.99, 0.999999):
        assert math.isclose(risk.normal_ppf(p), stats.norm.ppf(p), rel_tol=1e-12, abs_tol=1e-14), p


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_var_and_es_when_on_real_returns_then_match_definitions(aapl_and_market, confidence):
    stats = pytest.importorskip("scipy.stats", reason="scipy is in the test extra")
    r, _ = aapl_and_market
    ordered = sorted(r)
    position = (len(r) - 1) * (1 - confidence)
    low = math.floor(position)
    quantile = ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)
    assert math.isclose(risk.historical_var(r, confidence), -quantile, rel_tol=1e-12)
    tail = [x for x in r if x <= quantile]
    assert math.isclose(risk.historical_es(r, confidence), -sum(tail) / len(tail), rel_tol=1e-12)
    mu, sd = r.mean(), r.std(ddof=1)
    assert math.isclose(risk.parametric_var(r, confidence), -stats.norm.ppf(1 - confidence, mu, sd), rel_tol=1e-10)
    expected_es = -stats.norm.expect(lambda x: x, loc=mu, scale=sd, ub=stats.norm.ppf(1 - confidence, mu, sd),
                                     conditional=True)
    assert math.isclose(risk.parametric_es(r, confidence), expected_es, rel_tol=1e-7)
    assert risk.historical_es(r, confidence) >= risk.historical_var(r, confidence) > 0


def test_risk_report_when_benchmark_given_then_beta_and_correlation_are_consistent(aapl_and_market):
    r, m = aapl_and_market
    report = risk.risk_report(r, m, confidence=0.99)
    assert math.isclose(report.correlation, np.corrcoef(r, m)[0, 1], rel_tol=1e-12)
    assert math.isclose(report.beta, report.correlation * r.std() / m.std(), rel_tol=1e-9)
    assert math.isclose(report.volatility, r.std(ddof=1) * math.sqrt(252), rel_tol=1e-12)
    assert risk.risk_report(r).beta is None


def test_var_when_confidence_out_of_range_then_error_names_value_and_limit():
    with pytest.raises(InvalidSeries, match="confidence 1.0 must be in"):
        risk.historical_var([0.01, -0.02], 1.0)


def test_var_and_es_when_compared_with_empyrical_then_var_agrees_and_es_convention_is_pinned(aapl_and_market):
    empyrical = pytest.importorskip("empyrical", reason="empyrical-reloaded is in the test extra")
    r, _ = aapl_and_market
    for cutoff in (0.05, 0.01):
        # empyrical reports VaR as the (negative) return quantile; ours is the loss, a positive number.
        assert math.isclose(risk.historical_var(r, 1 - cutoff), -empyrical.value_at_risk(r, cutoff), rel_tol=1e-12)
        # Convention difference: empyrical's CVaR averages the int((n-1)*cutoff)+1 lowest returns; our ES
        # averages every return at or below the interpolated quantile. Here both count the same tail.
        lowest = int((len(r) - 1) * cutoff) + 1
        ours_count = int((r <= np.percentile(r, 100 * cutoff)).sum())
        if ours_count == lowest:
            assert math.isclose(risk.historical_es(r, 1 - cutoff), -empyrical.conditional_value_at_risk(r, cutoff),
                                rel_tol=1e-12)
        else:
            assert abs(ours_count - lowest) <= 1
