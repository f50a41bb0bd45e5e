"""Connectors: recorded files replayed onto the bus (`sq processor connector`: runner.py) and the live
venues, each its own process (`sq processor binance`: binance/, `sq processor kite`: kite/)."""
