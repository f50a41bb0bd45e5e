"""Position keeping: exact positions, average cost and P&L per account and symbol, and open orders."""

from processors.positions._position import EXACT, Position, apply_fill, signed
from processors.positions.book import Book, evolve

__all__ = ["EXACT", "Book", "Position", "apply_fill", "evolve", "signed"]
