"""The one Markdown table writer (GitHub-flavoured): reports, sweep summaries, results.md;
and the "mean ± std" cell of the results and selection tables."""

import math
from typing import Any

import pandas as pd


def cell_text(value: Any, decimals: int) -> str:
    """A table cell: blank for missing values, floats to ``decimals`` places, ``|`` escaped."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:.{decimals}f}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def mean_and_spread(values: pd.Series) -> str:
    """ "92.21 ± 0.16" (sample std over seeds), or the mean alone for one seed."""
    spread = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}"


def markdown_table(
    frame: pd.DataFrame, decimals: dict[str, int] | None = None, default_decimals: int = 4
) -> str:
    """A Markdown table of ``frame``: numeric columns right-aligned, floats to
    ``decimals[column]`` places (``default_decimals`` otherwise). No trailing newline."""
    decimals = decimals or {}
    columns = [str(column) for column in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes]
    places = [decimals.get(column, default_decimals) for column in columns]
    lines = [
        "| " + " | ".join(cell_text(column, 0) for column in columns) + " |",
        "| " + " | ".join("---:" if right else "---" for right in numeric) + " |",
    ]
    lines += [
        "| " + " | ".join(cell_text(v, d) for v, d in zip(row, places, strict=True)) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)
