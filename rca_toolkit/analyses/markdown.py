"""Markdown for result objects: one table renderer, so every report escapes and blanks cells alike."""

from __future__ import annotations

import pandas as pd


def md_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency); pipes in cells are escaped, missing values blank."""
    def cell(value) -> str:
        if value is None or (not isinstance(value, (list, tuple, dict, set)) and pd.isna(value)):
            return ""
        return str(value).replace("|", "\\|")
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False, name=None)]
    return "\n".join([head, rule] + body)
