"""Connectors: venue feeds (Binance) and recorded files turned into sq.md.* events."""
