"""The analytics benchmark runs and reports its metrics (tiny sizes; real figures come from `sq bench analytics`)."""

from tests.bench.bench_analytics import bench_optimize, bench_series


def test_bench_analytics_when_run_small_then_reports_each_metric() -> None:
    results = [bench_series(series=40, baseline_series=3, repeats=1), bench_optimize(40, (0.0, 0.25), repeats=1)]
    assert [r.metric for r in results] == ["analytics_series", "optimize_40"]
    assert all(r.value > 0 and r.baseline_value > 0 for r in results)
