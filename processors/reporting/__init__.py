"""Reporting: vectorised return analytics, the analysts' command line and HTML tear sheets."""

from processors.reporting import metrics
from processors.reporting.series_io import InvalidCsv, read_prices_csv, read_returns_csv

__all__ = ["InvalidCsv", "metrics", "read_prices_csv", "read_returns_csv"]
