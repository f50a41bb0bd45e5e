"""`sq report metrics` as a subprocess on real files: JSON out, clear errors naming row and column."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from processors.reporting import metrics as m

REPO = Path(__file__).resolve().parents[2]


def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway.report_cli report ...` in the repository."""
    return subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def write_series(path: Path, dates: list[str], values) -> Path:
    """A CSV of date,return."""
    path.write_text("date,return\n" + "".join(f"{d},{v!r}\n" for d, v in zip(dates, values, strict=True)))
    return path


def test_metrics_when_returns_and_benchmark_given_then_json_holds_every_metric(tmp_path, goog_and_benchmark):
    dates, r, b = goog_and_benchmark
    returns = write_series(tmp_path / "goog.csv", dates, [float(x) for x in r])
    # The benchmark misses the first 10 dates: the report uses the dates both files have.
    bench = write_series(tmp_path / "bench.csv", dates[10:], [float(x) for x in b[10:]])
    done = run_report("metrics", "--returns", str(returns), "--benchmark", str(bench), "--risk-free", "0.0001",
                      "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["periods"] == len(r) - 10 and report["start"] == dates[10]
    assert math.isclose(report["sharpe_ratio"], m.sharpe_ratio(r[10:], risk_free=0.0001), rel_tol=1e-12)
    assert math.isclose(report["beta"], m.beta(r[10:], b[10:]), rel_tol=1e-12)
    assert set(m.METRIC_NAMES + m.BENCHMARK_METRIC_NAMES) <= set(report)
    peak, trough, _ = m.max_drawdown_indices(r[10:])
    assert report["max_drawdown_trough_date"] == dates[10 + trough - 1]


def test_metrics_when_a_cell_is_not_a_number_then_exit_2_naming_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,return\n2024-01-02,0.01\n2024-01-03,abc\n")
    done = run_report("metrics", "--returns", str(bad), "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert "row 3 column 'return': 'abc' is not a number" in done.stderr


@pytest.mark.parametrize(("content", "message"), [
    ("date,return\n2024-01-02,-1.5\n", "row 2 column 'return': -1.5 is a return of -100% or worse"),
    ("date,return\n", "file has no data rows"),
    ("date\n2024-01-02\n", "needs a date column and a value column"),
])
def test_metrics_when_file_is_malformed_then_error_says_what(tmp_path, content, message):
    path = tmp_path / "r.csv"
    path.write_text(content)
    done = run_report("metrics", "--returns", str(path))
    assert done.returncode == 2 and message in done.stderr
