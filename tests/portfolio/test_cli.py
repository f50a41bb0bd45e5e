"""`sq portfolio optimize` as a subprocess on the shipped prices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "samples" / "pypfopt_stock_prices.csv"


def run_portfolio(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m processors.portfolio.cli portfolio ...` in the repository."""
    return subprocess.run([sys.executable, "-m", "processors.portfolio.cli", "portfolio", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_optimize_when_max_sharpe_with_bounds_then_json_has_weights_estimates_and_figures():
    done = run_portfolio("optimize", "--prices", str(PRICES), "--method", "max-sharpe", "--risk-free", "0.02",
                         "--bounds", "0,0.2", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    weights = np.array(list(report["weights"].values()))
    assert list(report["weights"])[:3] == ["GOOG", "AAPL", "FB"]
    assert abs(weights.sum() - 1) < 1e-9 and weights.min() >= -1e-9 and weights.max() <= 0.2 + 1e-9
    cov = np.array(report["covariance"])
    mu = np.array(list(report["expected_returns"].values()))
    assert cov.shape == (20, 20)
    assert abs(report["volatility"] - np.sqrt(weights @ cov @ weights)) < 1e-12
    assert abs(report["sharpe"] - (weights @ mu - 0.02) / report["volatility"]) < 1e-9


def test_optimize_when_shrinkage_then_reports_intensity():
    done = run_portfolio("optimize", "--prices", str(PRICES), "--method", "min-variance", "--shrinkage", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0 < report["shrinkage"] < 1 and report["estimators"]["covariance"] == "ledoit-wolf"


def test_optimize_when_bounds_infeasible_then_exit_2_naming_bound_and_limit():
    done = run_portfolio("optimize", "--prices", str(PRICES), "--method", "min-variance", "--bounds", "0,0.01")
    assert done.returncode == 2
    assert "bounds.hi 0.01 times 20 assets is below 1; at least 0.05" in done.stderr
    done = run_portfolio("optimize", "--prices", str(PRICES), "--method", "equal", "--bounds", "0;1")
    assert done.returncode == 2 and "--bounds '0;1' must be LO,HI" in done.stderr


def test_optimize_when_price_not_positive_then_error_names_row_and_asset(tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text("date,A,B\n2024-01-01,1,2\n2024-01-02,1.1,0\n2024-01-03,1.2,2.1\n")
    done = run_portfolio("optimize", "--prices", str(prices), "--method", "equal")
    assert done.returncode == 2 and "row 3 column 'B': '0' is not a positive price" in done.stderr
