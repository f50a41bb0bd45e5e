"""Zerodha Kite: KiteTicker binary packet decoding."""
