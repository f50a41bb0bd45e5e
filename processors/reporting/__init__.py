"""Reporting: the trade-report service (core, runner), vectorised return analytics, HTML tear sheets,
audit trails and order records from the WAL. `sq report` is in gateway/report_cli.py."""

from processors.reporting import metrics
from processors.reporting.series_io import InvalidCsv, read_prices_csv, read_returns_csv

__all__ = ["InvalidCsv", "metrics", "read_prices_csv", "read_returns_csv"]
