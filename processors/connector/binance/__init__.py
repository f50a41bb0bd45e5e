"""Binance spot and USD-M futures: message parsing, signing, the live stream with book sync (live), signed orders (orders)."""
