"""Rows of results (trials, optimizer runs, per-class metrics): printed as an aligned table, saved as CSV and JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from kerasdl import files

Row = dict[str, Any]


def columns_of(rows: list[Row]) -> list[str]:
    """Every key of every row, in first-seen order (rows may lack a key, e.g. a trial that failed)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def format_table(rows: list[Row]) -> str:
    """Left-aligned columns; floats to 4 decimals (tiny or huge ones to 3 significant digits), None as '-'."""
    columns = columns_of(rows)
    cells = [columns, *([_cell(row.get(column)) for column in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in cells)


def save_table(rows: list[Row], stem: Path) -> tuple[Path, Path]:
    """Write `stem`.csv and `stem`.json; the JSON keeps exact values and types."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    files.write_text(csv_path, csv_text(rows))
    files.write_json(json_path, rows)
    return csv_path, json_path


def csv_text(rows: list[Row], columns: list[str] | None = None) -> str:
    """`rows` as CSV text with a header (`columns`, default every key), ready for one crash-safe write."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns or columns_of(rows))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3g}"
    return str(value)
