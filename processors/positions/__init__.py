"""Position keeping: exact positions, average cost and P&L per account and symbol, and open orders."""

from processors.positions._position import EXACT, Position, apply_fill, signed
from processors.positions.book import Book, ParentOrder, WorkingChild, evolve

__all__ = ["EXACT", "Book", "ParentOrder", "Position", "WorkingChild", "apply_fill", "evolve", "signed"]
