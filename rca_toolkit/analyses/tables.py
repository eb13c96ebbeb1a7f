"""Result tables as a reader wants them: one formatter behind every result object's tables.

Why: a table is read in seconds only when every table follows the same rules. No pandas row
numbers; the unit in the header, so cells are bare numbers; durations in seconds at a precision
that fits their size; a percentage with the count it was computed from (``53.9 % (213/395)``);
an interval as ``a-b``; p-values as ``< 0.001`` or two significant digits; a time in the report's
zone (``source_tz``) without microseconds; one mark (``-``) for "no value", whether pandas said
NaN, NaT, None or ``<NA>``; long text cut with the whole of it in a tooltip (HTML ``title``) or
wrapped (plain text, within :data:`TEXT_WIDTH` columns, the width ``rca`` prints).

A :class:`Table` is built from a frame and a list of :class:`Column` (source column, header,
formatter, alignment, cut length) and renders itself as HTML (``_repr_html_``: JupyterLab and the
reports show the same table), Markdown and text.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Iterable

import pandas as pd

from rca_toolkit.analyses.markdown import md_items, md_table

MISSING = "-"
TEXT_WIDTH = 100  # columns of `rca` text output
CUT = 80  # characters of a long text cell before it is cut (HTML: the rest in the tooltip)
_MIN_WRAP = 10  # a text column is never wrapped narrower than this
_LONG_WORD = 24  # a word longer than this may be broken to fit
_FAIR = 30  # text columns first share the room down to this width


# --------------------------------------------------------------------------- values
def is_missing(value: Any) -> bool:
    """None, NaN, NaT, ``pd.NA`` and empty text are one thing to a reader: no value."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (list, tuple, dict, set)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def seconds(value: Any, decimals: int | None = None) -> str:
    """A duration in seconds: one decimal (none from 1,000 s on), or ``decimals`` (latencies: 2)."""
    if is_missing(value):
        return MISSING
    v = float(value)
    if decimals is None:
        decimals = 1 if abs(v) < 1000 else 0
    return f"{v:,.{decimals}f}"


def ms_as_seconds(value: Any, decimals: int | None = None) -> str:
    """A duration stored in milliseconds, shown in seconds (the header says ``(s)``)."""
    return MISSING if is_missing(value) else seconds(float(value) / 1000, decimals)


def _not_reading_as(value: float, decimals: int, avoid: tuple, sign: str = "") -> tuple[str, bool]:
    """``value`` with ``decimals`` decimals, or up to three more until it reads as none of ``avoid`` it is not;
    whether that was reached (the text at the most decimals otherwise)."""
    for places in range(decimals, decimals + 4):
        text = f"{value:{sign}.{places}f}"
        if float(text) not in avoid or float(text) == value:
            return text, True
    return text, False


def percent_number(share: Any, decimals: int = 1) -> str:
    """``100 * share`` with ``decimals`` decimals, or up to three more where a share that is not 0 or 1 would read
    as 0 or 100: a Wilson bound of 0.09 % is "0.1", never "0" (as if certain); smaller still is "<0.001"."""
    value = 100 * float(share)
    text, fits = _not_reading_as(value, decimals, (0, 100))
    if fits:
        return text
    return f"<{10.0 ** -(decimals + 3):.{decimals + 3}f}" if value < 50 else f">{100 - 10.0 ** -(decimals + 3):.{decimals + 3}f}"


def signed_points(diff: Any, decimals: int = 1) -> str:
    """A difference of two shares in percentage points with its sign (``+48.7``); one that is not 0 never reads as 0
    (``-0.0 to +0.0`` said a 0/25,818 -> 0/19,760 change was certain): up to three more decimals."""
    return MISSING if is_missing(diff) else _not_reading_as(100 * float(diff), decimals, (0,), sign="+")[0]


def percent(share: Any, decimals: int = 1, unit: str = " %") -> str:
    """A share (0-1) as ``53.9 %`` (``unit=""`` when the header carries the ``%``), never 0 or 100 unless it is."""
    return MISSING if is_missing(share) else f"{percent_number(share, decimals)}{unit}"


def share_of(k: Any, n: Any, decimals: int = 1, unit: str = " %") -> str:
    """A percentage with its count and denominator: ``53.9 % (213/395)``; ``- (0/0)`` without data.
    ``unit=""`` when the header carries the ``%``: ``53.9 (213/395)``."""
    if is_missing(n) or is_missing(k):
        return MISSING
    k, n = int(k), int(n)
    return f"{f'{percent_number(k / n, decimals)}{unit}' if n else MISSING} ({k:,}/{n:,})"


def interval(low: Any, high: Any, fmt: Callable[[Any], str] | None = None, unit: str = "") -> str:
    """A confidence interval as ``a-b`` (``49.0-58.8 %``); ``fmt`` formats each bound."""
    if is_missing(low) or is_missing(high):
        return MISSING
    fmt = fmt or number
    text = f"{fmt(low)}-{fmt(high)}"
    return f"{text} {unit}" if unit else text


def percent_interval(low: Any, high: Any, decimals: int = 1, unit: str = "%") -> str:
    """A confidence interval of a share: ``49.0-58.8 %`` (``unit=""`` when the header says ``%``)."""
    return interval(low, high, lambda v: percent_number(v, decimals), unit)


def signed_interval(low: Any, high: Any, fmt: Callable[[Any], str] | None = None) -> str:
    """An interval of a difference, whose bounds carry signs: ``-11.0 to +11.7``."""
    if is_missing(low) or is_missing(high):
        return MISSING
    fmt = fmt or (lambda v: f"{float(v):+.1f}")
    return f"{fmt(low)} to {fmt(high)}"


def p_value(p: Any) -> str:
    """``< 0.001`` for tiny p-values, else two significant digits (``0.012``, ``0.46``, ``1``)."""
    if is_missing(p):
        return MISSING
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def p_text(p: Any) -> str:
    """A p-value in prose as the tables write it: ``p < 0.001``, ``p = 0.012``."""
    shown = p_value(p)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def count(value: Any) -> str:
    """An integer with thousands separators."""
    return MISSING if is_missing(value) else f"{int(value):,}"


def number(value: Any, decimals: int | None = None) -> str:
    """A plain number: integers as counts, floats at a precision that fits their size."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and decimals is None and value.is_integer()):
        return f"{int(value):,}"  # a count read as float (a column with gaps) stays a count
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if decimals is None:
        decimals = 3 if abs(v) < 1 else 2 if abs(v) < 100 else 1 if abs(v) < 1000 else 0
    return f"{v:,.{decimals}f}"


def when(value: Any, tz: str | None = None, *, with_seconds: bool = True) -> str:
    """An instant in the report's zone without microseconds: ``2025-10-18 12:09:26 CEST``.

    A zone-less value is taken as UTC (the loaders' frames are UTC); a date stays a date.
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    if tz is None:
        from rca_toolkit.rules.timeutil import source_tz

        tz = source_tz()
    local = ts.tz_convert(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if with_seconds else "%Y-%m-%d %H:%M %Z")


def between(start: Any, end: Any, tz: str | None = None) -> str:
    """Two instants to the minute in the report's zone: ``2025-10-13 11:11 -> 11:22 CEST`` on one day."""
    if is_missing(start) or is_missing(end):
        return f"{when(start, tz, with_seconds=False)} -> {when(end, tz, with_seconds=False)}"
    a, b = when(start, tz, with_seconds=False), when(end, tz, with_seconds=False)
    (a_day, a_time, a_zone), (b_day, b_time, b_zone) = a.split(" "), b.split(" ")
    if a_day == b_day and a_zone == b_zone:
        return f"{a_day} {a_time} -> {b_time} {b_zone}"
    return f"{a} -> {b}"


def text(value: Any) -> str:
    """Any value as one line of text; lists joined with ``, ``; no value as :data:`MISSING`."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (list, tuple, set)):
        return ", ".join(text(v) for v in value) or MISSING
    if isinstance(value, dict):
        return ", ".join(f"{k}: {text(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, datetime)):
        return when(value)
    if isinstance(value, float):
        return number(value)
    return " ".join(str(value).split())


def cut(value: str, limit: int = CUT) -> str:
    """``value`` shortened to ``limit`` characters, ending in ``…`` when cut."""
    return value if len(value) <= limit else value[: max(1, limit - 1)].rstrip() + "…"


def cut_html(value: str, limit: int = CUT) -> str:
    """``value`` escaped for HTML, cut as :func:`cut` with the whole text as its tooltip when cut; a number kept with
    its unit (:func:`units_unbroken`), as a page outside the reports' own tidying (the run index) shows it too."""
    shown = cut(value, limit)
    if shown == value:
        return html.escape(units_unbroken(value))
    return f'<span title="{html.escape(value, quote=True)}">{html.escape(units_unbroken(shown))}</span>'


def _auto(value: Any) -> str:
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return count(value)
    return text(value)


# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Column:
    """One shown column: the frame's ``key``, its ``header`` (with the unit), how a cell is written
    (``fmt``, default by value type), ``numeric`` (right-aligned, never wrapped), ``max_chars``
    (longer text is cut; the whole text is the cell's tooltip in HTML) and ``nowrap`` (an HTML cell kept
    on one line, e.g. a time span)."""

    key: str
    header: str | None = None
    fmt: Callable[[Any], str] | None = None
    numeric: bool = False
    max_chars: int | None = None
    nowrap: bool = False

    @property
    def title(self) -> str:
        return self.header if self.header is not None else self.key


def col(key: str, header: str | None = None, fmt: Callable[[Any], str] | None = None, *, numeric: bool = False,
        max_chars: int | None = None, nowrap: bool = False) -> Column:
    """Shorthand for :class:`Column`."""
    return Column(key, header, fmt, numeric, max_chars, nowrap)


def _numeric_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


class Table:
    """Display strings of a frame under the rules of this module; renders as HTML, Markdown, text."""

    def __init__(self, frame: pd.DataFrame | Iterable[dict], columns: list[Column | str] | None = None, *,
                 empty: str = "none"):
        frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
        if columns is None:
            columns = [Column(str(c), numeric=_numeric_dtype(frame[c]), max_chars=None if _numeric_dtype(frame[c]) else CUT)
                       for c in frame.columns]
        self.columns = [c if isinstance(c, Column) else Column(c) for c in columns]
        self.empty = empty
        self.cells: list[list[str]] = []
        for row in frame.to_dict(orient="records"):
            self.cells.append([(c.fmt or _auto)(row.get(c.key)) for c in self.columns])
        for line in self.cells:  # a formatter may return "" for no value: one mark for it
            for i, cell in enumerate(line):
                line[i] = MISSING if cell is None or str(cell).strip() == "" else " ".join(str(cell).split())

    # ---- shape
    @property
    def headers(self) -> list[str]:
        return [c.title for c in self.columns]

    def __len__(self) -> int:
        return len(self.cells)

    def to_frame(self) -> pd.DataFrame:
        """The display strings (whole texts) as a frame with the shown headers."""
        return pd.DataFrame(self.cells, columns=self.headers)

    def column(self, header: str) -> list[str]:
        """The display strings of one column, by its shown header."""
        i = self.headers.index(header)
        return [row[i] for row in self.cells]

    # ---- renderings
    def to_markdown(self) -> str:
        if not self.cells:
            return f"_{self.empty}_"
        return md_table(self.to_frame())

    def to_html(self) -> str:
        if not self.cells:
            return f"<p><i>{html.escape(self.empty)}</i></p>"
        right = ' style="text-align:right"'  # a header may wrap; its numbers never do
        head = "".join(f'<th scope="col"{right if c.numeric else ""}>{html.escape(c.title)}</th>' for c in self.columns)
        body = []
        for row in self.cells:
            tds = []
            for c, value in zip(self.columns, row):
                inner = cut_html(value, c.max_chars) if c.max_chars else html.escape(value)
                tds.append(f"<td{_align(c)}>{inner}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        return (f'<table class="rca-table"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
                + "\n</tbody></table>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_markdown_(self) -> str:  # what the Markdown report shows (runs.render)
        return self.to_markdown()

    def to_text(self, width: int = TEXT_WIDTH, indent: str = "") -> str:
        """Aligned columns within ``width`` characters. Headers wrap first, then text columns (widest
        first), then numbers at their spaces (``66.7 (n=123)``); a number is never cut inside."""
        if not self.cells:
            return f"{indent}({self.empty})"
        heads = self.headers
        cells = [[_UNIT_SPACE.sub(_KEPT_SPACE, cell) for cell in row] for row in self.cells]  # "12.5 %" never parts
        cell_w = [max([0] + [len(r[i]) for r in cells]) for i in range(len(heads))]
        head_min = [max(len(t) for t in _header_lines(h, 1)) for h in heads]
        token_w = [max([0] + [len(t) for r in cells for t in r[i].split()]) for i in range(len(heads))]
        widths = [max(len(h), c) for h, c in zip(heads, cell_w)]
        numeric = [c.numeric for c in self.columns]
        # a text column wraps at its spaces down to its longest word (words over _LONG_WORD may break)
        text_floor = [max(m, min(t, _LONG_WORD), min(_MIN_WRAP, c), 1) for m, t, c in zip(head_min, token_w, cell_w)]
        stages = [  # 1. headers wrap; 2. long texts wrap to a fair width; 3. numbers wrap at spaces; 4. texts wrap further
            ([max(c, m) for c, m in zip(cell_w, head_min)], False),
            ([max(c, m) if num else max(t, _FAIR) for c, m, t, num in zip(cell_w, head_min, text_floor, numeric)], True),
            ([max(k, m, 1) if num else max(t, _FAIR) for k, m, t, num in zip(token_w, head_min, text_floor, numeric)], True),
            ([max(k, m, 1) if num else t for k, m, t, num in zip(token_w, head_min, text_floor, numeric)], True),
            ([max(k, m, 1) if num else max(m, min(_MIN_WRAP, c), 1)
              for k, m, c, num in zip(token_w, head_min, cell_w, numeric)], True),  # 5. long words break
        ]
        # two spaces between columns; one where the columns would not fit with two unless a word or a number broke
        gap = 2 if sum(stages[-2][0]) + 2 * (len(widths) - 1) <= width - len(indent) else 1
        room = width - len(indent) - gap * (len(widths) - 1)
        for floor, widest_first in stages:
            while sum(widths) > room:
                candidates = [i for i in range(len(widths)) if widths[i] > floor[i]]
                if not candidates:
                    break
                pick = max(candidates, key=lambda i: widths[i] if widest_first else widths[i] - floor[i])
                widths[pick] -= 1
        lines = []
        header_parts = [_header_lines(h, w) for h, w in zip(heads, widths)]
        body = [[(textwrap.wrap(cell, w, break_long_words=not num, break_on_hyphens=False) or [""]) if len(cell) > w else [cell]
                 for cell, w, num in zip(row, widths, numeric)] for row in cells]
        for parts in [header_parts] + body:
            for k in range(max(len(p) for p in parts)):
                pieces = []
                for p, w, num in zip(parts, widths, numeric):
                    piece = (p[k] if k < len(p) else "").replace(_KEPT_SPACE, " ")
                    pieces.append(piece.rjust(w) if num else piece.ljust(w))
                lines.append((indent + (" " * gap).join(pieces)).rstrip())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()


def _header_lines(header: str, width: int) -> list[str]:
    """A header wrapped at spaces and hyphens (``p (Mann-`` / ``Whitney)``)."""
    return textwrap.wrap(header, max(width, 1), break_long_words=False, break_on_hyphens=True) or [""]


def _align(column: Column) -> str:
    if column.numeric:
        return ' style="text-align:right;white-space:nowrap"'
    return ' style="white-space:nowrap"' if column.nowrap else ""


def show(frame: pd.DataFrame, columns: list[Column | str] | None = None, **kwargs) -> Table:
    """A frame under these rules (what a notebook shows instead of a raw frame)."""
    return Table(frame, columns, **kwargs)


def bullet_list(items: Iterable[str]) -> str:
    """Notes as an HTML list (never a Python list literal)."""
    items = [str(i) for i in items]
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>" if items else ""


_KEPT_SPACE = "\x00"  # stands for a space no line may break at while a line is wrapped
# a number and its unit ("12.5 %", "604800 s", "3.8 MiB"), "95 % CI" and a p-value ("p < 0.001") stay on one line
_UNIT_SPACE = re.compile(r"(?<=\d) (?=(?:%|ms|s|min|h|KiB|MiB|GiB)(?!\w))|(?<=%) (?=CI\b)|(?<=\bp) (?=[<=] \d)|(?<=\bp [<=]) (?=\d)")


# The class of a result's own summary (HTML: the incident's box, the overview's headline) that only says what the
# report's verdict block says: a rendered report leaves it out, JupyterLab shows it (it has no verdict block)
VERDICT_REPEAT = "rca-verdict-repeat"


def verdict_repeat_md(lines: Iterable[str]) -> str:
    """Markdown lines marked as :data:`VERDICT_REPEAT` (between HTML comments, which Markdown never shows), so a
    rendered report can leave them out as it leaves out the HTML part with that class."""
    return f"<!-- {VERDICT_REPEAT} -->\n" + "\n\n".join(lines) + f"\n<!-- /{VERDICT_REPEAT} -->"


def units_unbroken(text: str) -> str:
    """``text`` with a no-break space between each number and its unit, so a browser never wraps "98 %" apart."""
    return _UNIT_SPACE.sub("\u00a0", text)


def wrap_lines(lines: Iterable[str], width: int = TEXT_WIDTH, indent: str = "", hang: str = "  ") -> str:
    """Plain-text lines wrapped to ``width`` (continuations indented by ``hang``); a number keeps its ``%``."""
    out = []
    for line in lines:
        if len(indent + line) <= width or not line.strip():
            out.append(indent + line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        kept = _UNIT_SPACE.sub(_KEPT_SPACE, line.strip())
        out += [part.replace(_KEPT_SPACE, " ") for part in textwrap.wrap(
            kept, width, initial_indent=indent + lead, subsequent_indent=indent + lead + hang, break_long_words=True,
            break_on_hyphens=False)]
    return "\n".join(out)


class Notes(list):
    """A list of notes that shows as a bullet list in a notebook and as lines in text."""

    def _repr_html_(self) -> str:
        return bullet_list(self)

    def _repr_markdown_(self) -> str:
        return "\n".join(md_items(self))

    def __repr__(self) -> str:
        return "\n".join(f"- {n}" for n in self)


__all__ = ["CUT", "MISSING", "TEXT_WIDTH", "Column", "Notes", "Table", "between", "bullet_list", "col", "count", "cut", "cut_html", "interval",
           "is_missing", "ms_as_seconds", "number", "p_value", "percent", "percent_interval", "seconds", "share_of", "signed_interval", "signed_points", "show",
           "text", "verdict_repeat_md", "when", "wrap_lines"]
