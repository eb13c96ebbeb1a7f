"""Markdown for result objects: one table renderer, so every report escapes and blanks cells alike."""

from __future__ import annotations

import re

import pandas as pd


_ENTITY = re.compile(r"&(?=#?\w+;)")
_BLOCK_MARK = re.compile(r"^(\s*)([>#])")


def md_text(value) -> str:
    """Data as Markdown text: ``<`` written as ``&lt;``, so a value such as ``<script>`` or ``<img ...>`` reads as
    written instead of being taken for HTML, which renderers drop (the value vanishes) or run; an ``&`` that would
    start an entity (``&lt;``) as ``&amp;`` (any other stays: "R&D" reads as it is in the file too), and a leading
    ``>`` or ``#`` escaped."""
    text = _ENTITY.sub("&amp;", str(value)).replace("<", "&lt;")
    return _BLOCK_MARK.sub(r"\1\\\2", text)  # a line led by ">" or "#" stays a line, not a quote or a heading


def md_items(items) -> list[str]:
    """Lines of a Markdown bullet list, each item on one line (its whitespace collapsed: four leading spaces would
    make it a code block) through :func:`md_text`."""
    return [f"- {md_text(' '.join(str(item).split()))}" for item in items]


def md_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency); pipes and ``<`` in cells are escaped, missing values blank."""
    def cell(value) -> str:
        if value is None or (not isinstance(value, (list, tuple, dict, set)) and pd.isna(value)):
            return ""
        return " ".join(md_text(value).split()).replace("|", "\\|")  # a line break would end the row
    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False, name=None)]
    return "\n".join([head, rule] + body)
