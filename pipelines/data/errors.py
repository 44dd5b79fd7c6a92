"""The one error type bad input raises, formatted so a user can find the offending cell.

Messages are single lines of the form
``bars/ES.csv: column 'close', row 17 (ts 2024-01-01T16:00:00+00:00): price must be > 0 (got -3.5)``
so the CLI can print them as they are, without a traceback.
"""

from __future__ import annotations

from typing import Any


def _fmt_ts(ts: Any) -> str:
    """ISO text for a timestamp (or whatever raw value stood in the cell)."""
    iso = getattr(ts, "isoformat", None)
    return str(iso()) if callable(iso) else str(ts)


class DataError(ValueError):
    """Bad input data: names the origin (file path or S3 URI), column and 1-based data row.

    ``row`` counts data rows in the file (the first row after the header is row 1), which is
    what a person sees when opening the file in an editor or spreadsheet, minus the header.
    """

    def __init__(
        self,
        origin: str,
        problem: str,
        *,
        column: str | None = None,
        row: int | None = None,
        ts: Any = None,
    ) -> None:
        self.origin = origin
        self.problem = problem
        self.column = column
        self.row = row
        self.ts = ts
        location = [f"column '{column}'"] if column is not None else []
        if row is not None:
            location.append(f"row {row}" + (f" (ts {_fmt_ts(ts)})" if ts is not None else ""))
        head = f"{origin}: {', '.join(location)}" if location else origin
        # One line, whatever the problem text held: the CLI prints it without a traceback.
        super().__init__(f"{head}: {' '.join(problem.split())}")


class RejectedInputError(ValueError):
    """Raised by entry points (the CLI, the collect flow) for input a flow run refused: its
    one line, printed without a traceback. Here, beside :class:`DataError`, so the CLI names
    it without importing the Prefect tasks."""
