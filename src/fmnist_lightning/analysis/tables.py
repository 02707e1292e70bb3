"""The one Markdown table writer (GitHub-flavoured): reports, sweep summaries, results.md;
and the "mean ± std" cell of the results and selection tables."""

import math
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd


def cell_text(value: Any, decimals: int) -> str:
    """A table cell: blank for missing values, floats to ``decimals`` places, ``|`` escaped."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:.{decimals}f}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def by_configuration(items: Iterable, order: str) -> Iterator[tuple[str, pd.DataFrame]]:
    """(configuration, its items' fields as a frame sorted by ``order``) per configuration,
    in the order configurations first appear."""
    frame = pd.DataFrame([vars(item) for item in items])
    for configuration, group in frame.groupby("configuration", sort=False):
        yield configuration, group.sort_values(order, kind="stable")


def listed(values: Iterable, unique: bool = False) -> str:
    """Values as one cell, "0, 1, 2"; with ``unique`` each value once."""
    return ", ".join(str(value) for value in (dict.fromkeys(values) if unique else values))


def mean_and_spread(values: pd.Series) -> str:
    """ "92.21 ± 0.16" (sample std over seeds), or the mean alone for one seed."""
    spread = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}"


def markdown_table(
    frame: pd.DataFrame, decimals: dict[str, int] | None = None, default_decimals: int = 4
) -> str:
    """``frame`` as Markdown: numeric columns right-aligned, floats to ``decimals[column]``
    places (``default_decimals`` otherwise). No trailing newline."""
    decimals = decimals or {}
    columns = [str(column) for column in frame.columns]
    places = [decimals.get(column, default_decimals) for column in columns]
    lines = [
        [cell_text(column, 0) for column in columns],
        ["---:" if pd.api.types.is_numeric_dtype(dtype) else "---" for dtype in frame.dtypes],
        *(map(cell_text, row, places) for row in frame.itertuples(index=False)),
    ]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
