"""Reading analysts' CSV files: a date,return series and a date-by-asset table of prices."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


class InvalidCsv(ValueError):
    """A CSV file cannot be read as asked; the file, row, column and value are attributes."""

    def __init__(self, path: str, row: int, column: str, value: object, reason: str) -> None:
        super().__init__(f"{path} row {row} column {column!r}: {value!r} {reason}")
        self.path = path
        self.row = row
        self.column = column
        self.value = value
        self.reason = reason


def _rows(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file, refusing an empty file or a missing header."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidCsv(str(path), 1, "", "", "file has no header row")
    return [cell.strip() for cell in rows[0]], rows[1:]


def _float(path: str, row: int, column: str, cell: str, *, blank_ok: bool) -> float:
    """One numeric cell; blanks become NaN only where a missing value is allowed."""
    text = cell.strip()
    if not text:
        if blank_ok:
            return math.nan
        raise InvalidCsv(path, row, column, cell, "is empty; a number is required")
    try:
        value = float(text)
    except ValueError:
        raise InvalidCsv(path, row, column, cell, "is not a number") from None
    if not math.isfinite(value):
        raise InvalidCsv(path, row, column, cell, "is not a finite number")
    return value


def read_column_csv(path: str | Path, column: str | None = None) -> tuple[list[str], NDArray[np.float64]]:
    """Dates (first column) and one numeric column (by name, default the second) of a CSV file."""
    name = str(path)
    header, rows = _rows(path)
    if len(header) < 2:
        raise InvalidCsv(name, 1, ",".join(header), header, "needs a date column and a value column")
    wanted = column or header[1]
    if wanted not in header[1:]:
        raise InvalidCsv(name, 1, wanted, header, "is not a column of the header")
    at = header.index(wanted)
    dates: list[str] = []
    values: list[float] = []
    for number, row in enumerate(rows, start=2):
        if len(row) <= at:
            raise InvalidCsv(name, number, wanted, row, f"has {len(row)} cells, needs {at + 1}")
        values.append(_float(name, number, wanted, row[at], blank_ok=False))
        dates.append(row[0].strip())
    if not values:
        raise InvalidCsv(name, 2, wanted, "", "file has no data rows")
    return dates, np.asarray(values)


def read_returns_csv(path: str | Path, column: str | None = None) -> tuple[list[str], NDArray[np.float64]]:
    """Dates and returns from a CSV of `date,return` (or `date` and the named column)."""
    header, _ = _rows(path)
    wanted = column or ("return" if "return" in header else (header[1] if len(header) > 1 else None))
    dates, values = read_column_csv(path, wanted)
    if (values <= -1).any():
        at = int(np.argmax(values <= -1))
        raise InvalidCsv(str(path), at + 2, str(wanted), float(values[at]),
                         "is a return of -100% or worse; limit is > -1")
    return dates, values


def csv_header(path: str | Path) -> list[str]:
    """The column names of a CSV file."""
    return _rows(path)[0]


def read_prices_csv(path: str | Path) -> tuple[list[str], list[str], NDArray[np.float64]]:
    """Dates, asset names and a (dates x assets) price matrix from a CSV of date and one column per asset.

    Blank cells (an asset not yet listed) are NaN; a non-positive price is an error.
    """
    name = str(path)
    header, rows = _rows(path)
    assets = header[1:]
    if not assets:
        raise InvalidCsv(name, 1, header[0], header, "needs at least one asset column after the date")
    dates: list[str] = []
    prices = np.empty((len(rows), len(assets)))
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InvalidCsv(name, number, "", row, f"has {len(row)} cells, the header has {len(header)}")
        dates.append(row[0].strip())
        for j, asset in enumerate(assets):
            value = _float(name, number, asset, row[j + 1], blank_ok=True)
            if value <= 0:
                raise InvalidCsv(name, number, asset, row[j + 1], "is not a positive price")
            prices[number - 2, j] = value
    if not dates:
        raise InvalidCsv(name, 2, "", "", "file has no data rows")
    return dates, assets, prices
