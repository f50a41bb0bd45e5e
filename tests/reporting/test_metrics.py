"""The analytics agree with empyrical on real returns; where conventions differ, ours are pinned."""

from __future__ import annotations

import math

import numpy as np
import pytest

from processors.reporting import metrics as m

empyrical = pytest.importorskip("empyrical", reason="empyrical-reloaded is in the test extra")

RTOL = 1e-9
DAILY_RF = 0.0001


def close(ours: float, theirs: float) -> bool:
    """Equal to 1e-9 relative (and NaN equals NaN)."""
    return math.isclose(ours, float(theirs), rel_tol=RTOL) or (math.isnan(ours) and math.isnan(float(theirs)))


def test_metrics_when_compared_with_empyrical_on_goog_then_agree_to_1e9(goog_and_benchmark):
    _, r, b = goog_and_benchmark
    pairs = {
        "cumulative_return": (m.cumulative_return(r), empyrical.cum_returns_final(r)),
        "annual_return": (m.annual_return(r), empyrical.annual_return(r)),
        "cagr": (m.annual_return(r), empyrical.cagr(r)),
        "cum_returns_last": (float(m.cum_returns(r)[-1]), empyrical.cum_returns(r)[-1]),
        "cum_returns_mid": (float(m.cum_returns(r)[400]), empyrical.cum_returns(r)[400]),
        "annual_volatility": (m.annual_volatility(r), empyrical.annual_volatility(r)),
        "sharpe": (m.sharpe_ratio(r), empyrical.sharpe_ratio(r)),
        "sharpe_rf": (m.sharpe_ratio(r, risk_free=DAILY_RF), empyrical.sharpe_ratio(r, risk_free=DAILY_RF)),
        "sortino": (m.sortino_ratio(r), empyrical.sortino_ratio(r)),
        "sortino_req": (m.sortino_ratio(r, required_return=DAILY_RF),
                        empyrical.sortino_ratio(r, required_return=DAILY_RF)),
        "downside_risk": (m.downside_risk(r, required_return=DAILY_RF),
                          empyrical.downside_risk(r, required_return=DAILY_RF)),
        "max_drawdown": (m.max_drawdown(r), empyrical.max_drawdown(r)),
        "calmar": (m.calmar_ratio(r), empyrical.calmar_ratio(r)),
        "omega": (m.omega_ratio(r), empyrical.omega_ratio(r)),
        "omega_req": (m.omega_ratio(r, risk_free=DAILY_RF, required_return=0.05),
                      empyrical.omega_ratio(r, risk_free=DAILY_RF, required_return=0.05)),
        "tail_ratio": (m.tail_ratio(r), empyrical.tail_ratio(r)),
        "beta": (m.beta(r, b), empyrical.beta(r, b)),
        "alpha": (m.alpha_beta(r, b)[0], empyrical.alpha(r, b)),
        "alpha_rf": (m.alpha_beta(r, b, risk_free=DAILY_RF)[0], empyrical.alpha(r, b, risk_free=DAILY_RF)),
        "beta_rf": (m.alpha_beta(r, b, risk_free=DAILY_RF)[1], empyrical.beta(r, b, risk_free=DAILY_RF)),
        "monthly_annual_return": (m.annual_return(r[:240], periods_per_year=12),
                                  empyrical.annual_return(r[:240], period="monthly")),
    }
    wrong = {name: (ours, theirs) for name, (ours, theirs) in pairs.items() if not close(ours, theirs)}
    assert not wrong
    assert all(math.isfinite(ours) for ours, _ in pairs.values())


def test_information_ratio_when_compared_with_empyrical_then_is_excess_sharpe_annualised(goog_and_benchmark):
    # Convention difference: empyrical's excess_sharpe is per period; ours is annualised by sqrt(252),
    # and tracking error (not in empyrical) is the annualised sample std of active return.
    _, r, b = goog_and_benchmark
    assert close(m.information_ratio(r, b), empyrical.excess_sharpe(r, b) * math.sqrt(252))
    assert close(m.tracking_error(r, b), np.std(r - b, ddof=1) * math.sqrt(252))


def test_two_dimensional_input_when_many_series_then_each_column_matches_its_1d_result(goog_and_benchmark):
    _, r, b = goog_and_benchmark
    block = np.column_stack([r, b, r * 0.5 - 0.0002])
    for name in m.METRIC_NAMES:
        many = getattr(m, name)(block)
        single = [getattr(m, name)(block[:, j]) for j in range(3)]
        assert np.allclose(many, single, rtol=RTOL, atol=0), name
        assert np.allclose(getattr(m, name)(block.T, axis=1), single, rtol=RTOL, atol=0), name
    alpha, slope = m.alpha_beta(block, b)
    assert close(alpha[0], empyrical.alpha(r, b)) and close(slope[0], empyrical.beta(r, b))
    assert np.allclose(m.drawdown_series(block)[:, 0], empyrical.stats.drawdown_series(r), rtol=RTOL, atol=1e-15)


def _trade_stats(values: list[float]) -> tuple[float, float, float]:
    wins = [x for x in values if x > 0]
    losses = [x for x in values if x < 0]
    rate = len(wins) / (len(wins) + len(losses))
    expect = rate * (sum(wins) / len(wins)) - (1 - rate) * (-sum(losses) / len(losses))
    return rate, sum(wins) / -sum(losses), expect


def test_win_rate_profit_factor_expectancy_when_on_goog_then_match_their_definitions(goog_and_benchmark):
    # Not in empyrical: pinned against the textbook definitions over non-zero periods.
    _, r, _ = goog_and_benchmark
    rate, factor, expect = _trade_stats(list(r))
    assert close(m.win_rate(r), rate) and close(m.profit_factor(r), factor)
    assert math.isclose(m.expectancy(r), expect, rel_tol=1e-9)


def _drawdown_by_loop(values: list[float]) -> tuple[int, int, int, float]:
    wealth = [1.0]
    for x in values:
        wealth.append(wealth[-1] * (1 + x))
    best, peak_at, worst, result = wealth[0], 0, 0.0, (0, 0)
    for i, w in enumerate(wealth):
        if w >= best:
            best, peak_at = w, i
        if w / best - 1 < worst:
            worst, result = w / best - 1, (peak_at, i)
    peak, trough = result
    recovery = next((i for i in range(trough + 1, len(wealth)) if wealth[i] >= wealth[peak]), -1)
    return peak, trough, recovery if worst < 0 else 0, worst


def test_max_drawdown_dates_when_on_goog_then_match_a_plain_loop(goog_and_benchmark):
    dates, r, b = goog_and_benchmark
    for series in (r, b, r[:200], -np.abs(r[:50])):
        peak, trough, recovery, worst = _drawdown_by_loop(list(series))
        assert m.max_drawdown_indices(series) == (peak, trough, recovery)
        assert close(m.max_drawdown(series), worst)
    peak, trough, _ = m.max_drawdown_indices(r[5:])
    assert peak > 0 and dates[5 + trough - 1] > dates[5 + peak - 1]


def test_drawdown_when_series_only_falls_then_measured_from_the_start():
    peak, trough, recovery = m.max_drawdown_indices([-0.1, -0.1])
    assert (peak, trough, recovery) == (0, 2, -1)
    assert close(m.max_drawdown([-0.1, -0.1]), 0.81 - 1)
    assert m.max_drawdown_indices([0.01, 0.02]) == (0, 0, 0)
    assert math.isnan(m.calmar_ratio([0.01, 0.02]))


def test_returns_when_not_finite_then_error_names_position_and_value():
    with pytest.raises(m.InvalidSeries) as caught:
        m.sharpe_ratio([[0.01, 0.02], [0.03, math.nan]])
    assert caught.value.field == "returns[1, 1]" and math.isnan(caught.value.value)
    with pytest.raises(m.InvalidSeries, match="benchmark length 2 must match returns length 3"):
        m.beta([0.01, 0.02, 0.03], [0.01, 0.02])


def test_summary_when_benchmark_given_then_holds_every_metric(goog_and_benchmark):
    _, r, b = goog_and_benchmark
    out = m.summary(r, b, risk_free=DAILY_RF)
    assert set(m.METRIC_NAMES + m.BENCHMARK_METRIC_NAMES) <= set(out)
    assert close(out["sortino_ratio"], empyrical.sortino_ratio(r, required_return=DAILY_RF))
    assert close(out["alpha"], empyrical.alpha(r, b, risk_free=DAILY_RF))


def test_summary_when_many_series_then_equals_each_metric_function(goog_and_benchmark):
    # summary() shares intermediates for speed; this keeps it in step with the one-metric functions.
    _, r, b = goog_and_benchmark
    block = np.column_stack([r, b, r * 0.5 - 0.0002])
    out = m.summary(block, b, risk_free=DAILY_RF)
    singles = {
        "cumulative_return": m.cumulative_return(block), "annual_return": m.annual_return(block),
        "annual_volatility": m.annual_volatility(block), "sharpe_ratio": m.sharpe_ratio(block, risk_free=DAILY_RF),
        "sortino_ratio": m.sortino_ratio(block, required_return=DAILY_RF),
        "downside_risk": m.downside_risk(block, required_return=DAILY_RF), "max_drawdown": m.max_drawdown(block),
        "calmar_ratio": m.calmar_ratio(block), "omega_ratio": m.omega_ratio(block, risk_free=DAILY_RF),
        "tail_ratio": m.tail_ratio(block), "win_rate": m.win_rate(block), "profit_factor": m.profit_factor(block),
        "expectancy": m.expectancy(block), "alpha": m.alpha_beta(block, b, risk_free=DAILY_RF)[0],
        "beta": m.beta(block, b), "tracking_error": m.tracking_error(block, b),
        "information_ratio": m.information_ratio(block, b)}
    for name, expected in singles.items():
        assert np.allclose(out[name], expected, rtol=1e-12, atol=0, equal_nan=True), name
    indices = m.max_drawdown_indices(block)
    for got, expected in zip((out["max_drawdown_peak"], out["max_drawdown_trough"], out["max_drawdown_recovery"]),
                             indices, strict=True):
        assert (got == expected).all()
