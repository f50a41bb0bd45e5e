"""Binance spot and USD-M futures: message parsing, local-book sync and signed REST."""
