"""The one Markdown table writer (GitHub-flavoured): reports, sweep summaries, results.md."""

from typing import Any

import pandas as pd


def cell_text(value: Any, decimals: int) -> str:
    """A table cell: blank for missing values, floats to ``decimals`` places, ``|`` escaped."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return ""
    text = f"{value:.{decimals}f}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, decimals: dict[str, int] | None = None) -> str:
    """``frame`` as Markdown: numeric columns right-aligned, floats to ``decimals[column]``
    places (4 otherwise). No trailing newline."""
    places = [(decimals or {}).get(str(column), 4) for column in frame.columns]
    lines = [
        [cell_text(str(column), 0) for column in frame.columns],
        ["---:" if pd.api.types.is_numeric_dtype(dtype) else "---" for dtype in frame.dtypes],
        *(map(cell_text, row, places) for row in frame.itertuples(index=False)),
    ]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
