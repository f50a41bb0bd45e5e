"""Reporting tests: analytics against empyrical, the analysts' CLI and the HTML tear sheet."""
