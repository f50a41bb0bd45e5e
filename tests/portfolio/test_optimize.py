"""The numpy optimisers agree with scipy's SLSQP on the same real covariance and respect every bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processors.portfolio import optimize as opt
from processors.reporting import read_prices_csv

scipy_optimize = pytest.importorskip("scipy.optimize", reason="scipy is in the test extra")

PRICES = Path(__file__).resolve().parents[2] / "data" / "samples" / "pypfopt_stock_prices.csv"
BOUNDS = [(0.0, 1.0), (-0.1, 0.3), (0.02, 0.12)]


@pytest.fixture(scope="module")
def estimates() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Assets, expected returns and covariance from the shipped prices (PyPortfolioOpt's defaults)."""
    _, assets, prices = read_prices_csv(PRICES)
    returns = opt.daily_returns(prices)
    returns = returns[~np.isnan(returns).all(axis=1)]
    return assets, opt.mean_historical_return(returns), opt.sample_covariance(returns)


def _slsqp(objective, n: int, bounds: tuple[float, float], start: np.ndarray | None = None) -> np.ndarray:
    result = scipy_optimize.minimize(
        objective, np.full(n, 1 / n) if start is None else start, method="SLSQP", jac=True,
        bounds=[bounds] * n, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(n)}],
        options={"ftol": 1e-16, "maxiter": 2000})
    # Status 8 ("positive directional derivative") is SLSQP stopping at its own precision floor.
    assert result.status in (0, 8), result.message
    return result.x


def _assert_within(weights: np.ndarray, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    assert abs(weights.sum() - 1) < 1e-9
    assert weights.min() >= lo - 1e-9 and weights.max() <= hi + 1e-9


@pytest.mark.parametrize("bounds", BOUNDS)
def test_min_variance_when_compared_with_slsqp_then_weights_agree_to_1e6(estimates, bounds):
    _, _, cov = estimates
    ours = opt.min_variance(cov, bounds)
    theirs = _slsqp(lambda w: (w @ cov @ w, 2 * cov @ w), len(cov), bounds)
    _assert_within(ours, bounds)
    assert np.abs(ours - theirs).max() < 1e-6
    assert ours @ cov @ ours <= theirs @ cov @ theirs + 1e-15


@pytest.mark.parametrize("bounds", BOUNDS)
def test_max_sharpe_when_compared_with_slsqp_then_weights_agree_to_1e6(estimates, bounds):
    _, mu, cov = estimates
    rf = 0.02

    def negative_sharpe(w: np.ndarray) -> tuple[float, np.ndarray]:
        variance = w @ cov @ w
        excess = w @ mu - rf
        sd = np.sqrt(variance)
        return -excess / sd, -(mu * sd - excess * (cov @ w) / sd) / variance

    ours = opt.max_sharpe(mu, cov, rf, bounds)
    # Start SLSQP from a nearby point so it converges to full precision on the non-quadratic ratio.
    start = np.clip(ours + 0.01 * np.sign(np.arange(len(ours)) % 2 - 0.5), *bounds)
    theirs = _slsqp(negative_sharpe, len(cov), bounds, start / start.sum())
    _assert_within(ours, bounds)
    assert np.abs(ours - theirs).max() < 1e-6
    assert negative_sharpe(ours)[0] <= negative_sharpe(theirs)[0] + 1e-12


def test_risk_parity_when_compared_with_slsqp_then_risk_contributions_are_equal(estimates):
    _, _, cov = estimates
    n = len(cov)
    ours = opt.risk_parity(cov)

    def spread(w: np.ndarray) -> tuple[float, np.ndarray]:
        # Sum of squared differences of risk contributions from their mean (Maillard et al.).
        sigma_w = cov @ w
        rc = w * sigma_w
        d = rc - rc.mean()
        grad_rc = np.diag(sigma_w) + w[:, None] * cov  # d rc_i / d w_j
        return float(d @ d) * 1e6, 2e6 * (grad_rc.T @ d - grad_rc.T.sum(axis=1) * d.sum() / n)

    theirs = _slsqp(spread, n, (0.0, 1.0))
    contributions = ours * (cov @ ours)
    assert np.ptp(contributions) < 1e-9 * contributions.mean()
    assert np.abs(ours - theirs).max() < 1e-6
    _assert_within(ours, (0.0, 1.0))


def test_optimize_when_run_on_prices_then_reports_estimates_and_portfolio_figures():
    _, assets, prices = read_prices_csv(PRICES)
    result = opt.optimize("max-sharpe", assets, prices, risk_free=0.02, bounds=(0.0, 0.25))
    w = np.asarray(result.weights)
    _assert_within(w, (0.0, 0.25))
    cov, mu = np.asarray(result.covariance), np.asarray(result.expected_returns)
    assert result.expected_return == pytest.approx(w @ mu, rel=1e-12)
    assert result.volatility == pytest.approx(np.sqrt(w @ cov @ w), rel=1e-12)
    assert result.sharpe == pytest.approx((w @ mu - 0.02) / np.sqrt(w @ cov @ w), rel=1e-12)
    goog = prices[:, 0][~np.isnan(prices[:, 0])]
    r = goog[1:] / goog[:-1] - 1
    assert mu[0] == pytest.approx(np.prod(1 + r) ** (252 / len(r)) - 1, rel=1e-12)


def test_sample_covariance_when_pairs_overlap_partly_then_matches_pairwise_complete_estimate(estimates):
    _, assets, prices = read_prices_csv(PRICES)
    returns = opt.daily_returns(prices)
    i, j = assets.index("GOOG"), assets.index("BABA")
    both = ~np.isnan(returns[:, i]) & ~np.isnan(returns[:, j])
    expected = np.cov(returns[both, i], returns[both, j], ddof=1)[0, 1] * 252
    assert estimates[2][i, j] == pytest.approx(expected, rel=1e-9)


def test_ledoit_wolf_when_applied_then_shrinks_towards_scaled_identity(estimates):
    _, assets, prices = read_prices_csv(PRICES)
    returns = opt.daily_returns(prices)
    shrunk, intensity = opt.ledoit_wolf(returns)
    assert 0 < intensity < 1
    x = np.nan_to_num(returns)
    emp = np.cov(x, rowvar=False, ddof=0) * 252
    target = np.trace(emp) / len(emp) * np.eye(len(emp))
    assert np.allclose(shrunk, (1 - intensity) * emp + intensity * target, rtol=1e-10, atol=1e-14)
    assert np.linalg.eigvalsh(shrunk).min() > 0


def test_bounds_when_infeasible_then_error_names_the_bound_and_limit(estimates):
    _, _, cov = estimates
    with pytest.raises(opt.InvalidOptimization) as caught:
        opt.min_variance(cov, (0.0, 0.04))
    assert caught.value.field == "bounds.hi" and caught.value.value == 0.04
    with pytest.raises(opt.InvalidOptimization, match="bounds 0.3,0.1 must satisfy LO < HI"):
        opt.min_variance(cov, (0.3, 0.1))
    with pytest.raises(opt.InvalidOptimization, match="weights.FB 0.0685862 from risk parity is outside bounds 0.0,0.06"):
        opt.optimize_estimates("risk-parity", estimates[0], estimates[1], cov, bounds=(0.0, 0.06))


def test_unbounded_when_optimised_then_match_closed_forms(estimates):
    # Without bounds both problems have textbook answers: S^-1 1 / 1'S^-1 1 and S^-1 (mu - rf), normalised.
    _, mu, cov = estimates
    unbounded = (-np.inf, np.inf)
    ones = np.linalg.solve(cov, np.ones(len(cov)))
    assert np.abs(opt.min_variance(cov, unbounded) - ones / ones.sum()).max() < 1e-9
    tangent = np.linalg.solve(cov, mu - 0.02)
    assert np.abs(opt.max_sharpe(mu, cov, 0.02, unbounded) - tangent / tangent.sum()).max() < 1e-7


def test_max_sharpe_when_no_asset_beats_risk_free_then_refused(estimates):
    _, mu, cov = estimates
    with pytest.raises(opt.InvalidOptimization, match="must exceed the risk-free rate 1.0"):
        opt.max_sharpe(mu, cov, 1.0)
