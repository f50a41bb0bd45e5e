"""Stateless processors: risk, router and simulated venue, portfolio, reporting, aggregator, connectors."""
