"""Portfolio manager tests: optimisation, rebalancing, reconciliation, risk, attribution, the core on a stack."""
