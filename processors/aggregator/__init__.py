"""The aggregator: L2 books from snapshots and deltas, candles and volume profiles from trades."""
