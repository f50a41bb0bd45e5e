"""Market-data tests: books, Binance parsing, candles, replay, CLI, aggregator, Kite packets, signing."""
