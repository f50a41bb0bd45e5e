"""The risk benchmark runs and reports its metrics (tiny sizes; the real figures come from `sq bench risk`)."""

from tests.bench.bench_risk import run


def test_bench_risk_when_run_small_then_reports_each_metric() -> None:
    results = run(single_count=200, repeats=1)
    assert [r.metric for r in results] == ["risk_single", "risk_single_intent"]
    assert all(r.value > 0 and r.baseline_value > 0 for r in results)
