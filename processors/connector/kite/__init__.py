"""Zerodha Kite: login with automated TOTP (session), orders (orders), KiteTicker packets (ticker) and stream client (stream)."""
