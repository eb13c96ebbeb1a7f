"""Data-quality report for any session/call frame (an export or ``loaders.calls``).

Why: before any duration or outcome statistic, the analyst must know what is dirty in the
set: test/demo/temp/typo ids (P4), sessions stuck ``in_progress`` (P5), negative, missing or
zero durations (P6), near-duplicate ids (a typo id seconds before the real one), DST-ambiguous
wall times (P1), round or fabricated values (P7) and counters that disagree with the traces.
Each finding has a count and examples; the report does no I/O and renders itself.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from scipy.stats import binomtest

from rca_toolkit.analyses import tables
from rca_toolkit.analyses.markdown import md_items, md_table, md_text
from rca_toolkit.rules import call_ids, sessions
from rca_toolkit.rules.timeutil import source_tz

NEAR_DUPLICATE_WINDOW = pd.Timedelta(minutes=5)
MAX_EXAMPLES = 10
MAX_NEAR_PAIRS = 1000  # near-duplicate pairs kept in a report (all are counted); the text lists MAX_EXAMPLES of them


@dataclass
class Finding:
    """One quality check: ``count`` affected rows, a few ``examples``, ``detail`` numbers."""

    name: str
    title: str
    count: int
    examples: list = field(default_factory=list)
    detail: dict = field(default_factory=dict)


@dataclass
class QualityReport:
    n_rows: int
    source: str | None
    as_of: str | None
    findings: dict[str, Finding]
    excluded_ids: list[dict]
    near_duplicates: list[dict]
    longest_calls: list[dict]
    notes: list[str]

    def __getitem__(self, name: str) -> Finding:
        return self.findings[name]

    def to_dict(self) -> dict:
        return {
            "n_rows": self.n_rows, "source": self.source, "as_of": self.as_of,
            "findings": {k: asdict(v) for k, v in self.findings.items()},
            "excluded_ids": self.excluded_ids, "near_duplicates": self.near_duplicates,
            "longest_calls": self.longest_calls, "notes": self.notes,
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, ensure_ascii=False, **kwargs)

    def shown(self, f: Finding) -> tuple[str, int, list]:
        """A finding as the report shows it: test ids the loader already excluded count too, so the count
        agrees with the loader's and the overview's (the rows left here are ``f.count``)."""
        before = int(f.detail.get("excluded_by_loader", 0) or 0)
        if not before:
            return f.title, f.count, f.examples
        title = f"{f.title} ({before} excluded by the loader, {f.count} left in these rows)"
        return title, f.count + before, list(f.detail.get("excluded_examples", [])) + f.examples

    def to_markdown(self) -> str:
        lines = [f"# Data quality: {md_text(self.source or 'frame')}", "",
                 f"{self.n_rows:,} rows; stuck judged as of {tables.when(self.as_of)}.", "", self._checks().to_markdown()]
        if self.near_duplicates:
            lines += ["", "## Near-duplicate ids", "", md_table(pd.DataFrame(
                [(d["call_id"], d["similar_to"], d["edit_distance"], f"{d['seconds_apart']:g}")
                 for d in self.near_duplicates[:MAX_EXAMPLES]],
                columns=["id", "similar to", "edits", "seconds apart"]))]
        if self.longest_calls:
            lines += ["", "## Longest calls", "", md_table(pd.DataFrame(
                [(c["call_id"], tables.when(c["started_at"]), f"{c['duration_s']:.3f}", c["call_status"])
                 for c in self.longest_calls],
                columns=["call_id", "started_at", "duration (s)", "status"]))]
        if self.notes:
            lines += ["", "## Notes", ""] + md_items(self.notes)
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        shown = [self.shown(f) for f in self.findings.values()]
        width = max(len(title) for title, _, _ in shown)
        digits = max([5] + [len(f"{n:,}") for _, n, _ in shown])
        out = [f"data quality of {self.source or 'frame'}: {self.n_rows:,} rows (stuck as of {tables.when(self.as_of)})"]
        rows = [f"  {title:<{width}}  {n:>{digits},}  {', '.join(str(e) for e in examples[:3])}".rstrip()
                for title, n, examples in shown]
        out = [tables.wrap_lines(out), tables.wrap_lines(rows, hang=" " * (width + digits + 4))]  # examples under their column
        for d in self.near_duplicates[:MAX_EXAMPLES]:
            out.append(tables.wrap_lines([f"  near-duplicate: {d['call_id']} ~ {d['similar_to']} ({d['edit_distance']} "
                                          f"edit(s), {d['seconds_apart']:g} s apart)"], hang="    "))
        for c in self.longest_calls[:5]:
            out.append(f"  long call: {c['call_id']} {c['duration_s']:.3f} s ({c['call_status']})")
        out += [tables.wrap_lines([f"  note: {n}" for n in self.notes], hang="    ")] if self.notes else []
        return "\n".join(out)

    def _checks(self) -> tables.Table:
        rows = []
        for f in self.findings.values():
            title, n, examples = self.shown(f)
            rows.append({"check": title, "count": n, "examples": ", ".join(str(e) for e in examples[:5])
                         + (" …" if len(examples) > 5 else "")})
        return tables.Table(rows, [tables.col("check", "Check"), tables.col("count", "Count", tables.count, numeric=True),
                                   tables.col("examples", "Examples", max_chars=70)])

    def _title(self) -> str:
        return f"Data quality: {self.source or 'frame'} ({self.n_rows:,} rows)"

    def _repr_markdown_(self) -> str:  # a section of the Markdown report (runs.render), as the HTML is one of the page
        return "\n".join([f"#### {md_text(self._title())}", "", self._checks().to_markdown(), ""] + md_items(self.notes))

    def _repr_html_(self) -> str:
        return f"<h4>{html.escape(self._title())}</h4>" + self._checks().to_html() + tables.bullet_list(self.notes)


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Levenshtein distance, or ``limit + 1`` once it exceeds ``limit`` (rapidfuzz: bit-parallel, in C++)."""
    return Levenshtein.distance(a, b, score_cutoff=limit)


BLOCK = 64  # ids compared at once with the ids after them (rapidfuzz.process.cdist)


def near_duplicate_ids(frame: pd.DataFrame, *, window: pd.Timedelta = NEAR_DUPLICATE_WINDOW, limit: int = 2) -> list[dict]:
    """Pairs of distinct ids within ``limit`` edits that started within ``window`` of each other, in start order."""
    return near_duplicates(frame, window=window, limit=limit)[0]


def near_duplicates(frame: pd.DataFrame, *, window: pd.Timedelta = NEAR_DUPLICATE_WINDOW, limit: int = 2,
                    keep: int | None = None) -> tuple[list[dict], int]:
    """:func:`near_duplicate_ids`, the first ``keep`` of them (None: all), and how many there are.

    Why blocks: at 1M calls each id has ~50 others within five minutes; a Python loop over those pairs ran for hours
    (`rca quality` never finished). Each block of ``BLOCK`` ids is compared with every id up to the last one its
    window reaches, in one cdist call; the pairs outside a window are dropped."""
    rows = frame[["call_id", "started_at"]].dropna().sort_values("started_at").reset_index(drop=True)
    ids = rows["call_id"].astype(str).to_numpy(dtype=object)
    starts = rows["started_at"]
    at = pd.DatetimeIndex(starts)
    ends = np.searchsorted(at.asi8, (at + window).asi8, side="right")  # the ids within i's window: i < j < ends[i]
    pairs, total = [], 0
    for lo in range(0, len(ids), BLOCK):
        hi = min(lo + BLOCK, len(ids))
        reach = int(ends[hi - 1])  # the farthest any window of the block reaches (starts are sorted)
        distances = cdist(ids[lo:hi], ids[lo:reach], scorer=Levenshtein.distance, score_cutoff=limit, dtype=np.int32)
        j = np.arange(lo, reach)
        i = np.arange(lo, hi)[:, None]
        near = (distances <= limit) & (distances > 0) & (j > i) & (j < ends[lo:hi, None])  # 0 edits: the same id
        total += int(np.count_nonzero(near))
        if keep is not None and len(pairs) >= keep:
            continue  # counted; the pairs kept are in
        found = np.argwhere(near)  # row-major: by i, then j
        for a, b in found if keep is None else found[:keep - len(pairs)]:
            first, second = ids[lo + a], ids[lo + b]
            odd, real = (first, second) if not call_ids.is_real_call_id(first) else (second, first)
            pairs.append({"call_id": odd, "similar_to": real, "edit_distance": int(distances[a, b]),
                          "seconds_apart": (starts.iloc[lo + b] - starts.iloc[lo + a]).total_seconds(),
                          "malformed": not call_ids.is_real_call_id(odd)})
    return pairs, total


def _as_of(frame: pd.DataFrame, as_of) -> pd.Timestamp:
    if as_of is not None:
        return pd.Timestamp(as_of).tz_convert("UTC") if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of, tz="UTC")
    if frame.attrs.get("generated_at"):
        return pd.Timestamp(frame.attrs["generated_at"]).tz_convert("UTC")
    return pd.Timestamp.now(tz="UTC")


def _examples(frame: pd.DataFrame, mask) -> list[str]:
    return frame.loc[mask, "call_id"].astype(str).head(MAX_EXAMPLES).tolist()


def _finding(frame, name, title, mask, **detail) -> Finding:
    mask = pd.Series(mask, index=frame.index).fillna(False).astype(bool)
    return Finding(name, title, int(mask.sum()), _examples(frame, mask), detail)


def quality_report(frame: pd.DataFrame, *, as_of=None, longest_n: int = 10) -> QualityReport:
    """Check a session frame (``call_id``, ``started_at`` UTC, ``call_status``, ``duration_ms``;
    optional ``ended_at``, ``function_call_count``, ``functions``, DST flag columns).

    ``as_of`` (default: the export's ``generated_at``, else now) dates the 2-hour stuck rule, applied
    as :func:`rca_toolkit.rules.sessions.stuck_or_open_without_end_times`: in a set that records no
    end times at all (exports) every open session counts, and a note says so.
    """
    missing = [c for c in ("call_id", "started_at", "call_status", "duration_ms") if c not in frame]
    if missing:
        from rca_toolkit.errors import SchemaError

        raise SchemaError(f"the frame lacks columns {', '.join(missing)}", hint="pass an export or loaders.calls frame")
    as_of_ts = _as_of(frame, as_of)
    notes: list[str] = []
    texts = frame["call_id"].astype(str)
    kind = call_ids.id_kinds(texts)
    odd = (kind != "retell").to_numpy()
    excluded = [{"call_id": cid, "kind": k} for cid, k in zip(texts.to_numpy(dtype=object)[odd], kind.to_numpy()[odd])]
    in_progress = frame["call_status"].astype("string").eq(sessions.OPEN_STATUS).fillna(False)
    open_ = sessions.open_sessions(frame)
    old = sessions.started_before(frame, as_of_ts)
    over = sessions.call_completed(frame)
    records_ends = sessions.records_end_times(frame)
    stuck = sessions.stuck_or_open_without_end_times(frame, as_of_ts)
    no_end = open_ & (not records_ends)
    duration = pd.to_numeric(frame["duration_ms"], errors="coerce").astype("Float64")
    closed = ~in_progress
    days = frame.loc[stuck, "started_at"].dt.tz_convert(source_tz()).dt.strftime("%Y-%m-%d").value_counts().sort_index()
    findings = {
        "test_ids": _finding(frame, "test_ids", "test/demo/temp/malformed ids", kind != "retell",
                             by_kind=kind[kind != "retell"].value_counts().to_dict(),
                             excluded_by_loader=int(frame.attrs.get("excluded_test_ids") or 0),
                             excluded_examples=list(frame.attrs.get("excluded_examples") or [])[:MAX_EXAMPLES]),
        "stuck": _finding(frame, "stuck", "stuck in_progress sessions", stuck,
                          older_than_2h=int((open_ & old).sum()), ended_per_calls_row=int((open_ & over).sum()),
                          without_end=int(no_end.sum()), set_records_end_times=records_ends,
                          by_day=days.to_dict()),
        "negative_duration": _finding(frame, "negative_duration", "negative durations", duration < 0),
        "missing_duration": _finding(frame, "missing_duration", "missing durations", duration.isna(),
                                     on_closed_sessions=int((duration.isna() & closed).sum())),
        "zero_duration": _finding(frame, "zero_duration", "zero durations", duration == 0),
    }
    findings["missing_duration_closed"] = _finding(frame, "missing_duration_closed", "missing durations (not in_progress)",
                                                   duration.isna() & closed)
    amb = frame.get("started_at_ambiguous", pd.Series(False, index=frame.index)).fillna(False).astype(bool)
    nonex = frame.get("started_at_nonexistent", pd.Series(False, index=frame.index)).fillna(False).astype(bool)
    findings["dst_ambiguous"] = _finding(frame, "dst_ambiguous", "DST-ambiguous start times", amb & ~nonex)
    findings["dst_nonexistent"] = _finding(frame, "dst_nonexistent", "nonexistent (DST gap) start times", nonex)
    findings["round_durations"] = _round_values(frame, duration, frame.attrs.get("duration_precision_ms") or 1)
    if (frame.attrs.get("duration_precision_ms") or 1) > 1:
        notes.append(f"durations have {frame.attrs['duration_precision_ms']} ms precision, so the round-value share "
                     "is judged against that baseline, not 1 in 1,000")
    findings.update(_counter_checks(frame, notes))
    duplicates = frame["call_id"].duplicated(keep=False)
    findings["duplicate_ids"] = _finding(frame, "duplicate_ids", "exactly repeated ids", duplicates)
    near, near_total = near_duplicates(frame, keep=MAX_NEAR_PAIRS)
    findings["near_duplicates"] = Finding("near_duplicates", "near-duplicate ids", near_total,
                                          [d["call_id"] for d in near][:MAX_EXAMPLES])
    if near_total > len(near):
        notes.append(f"{near_total:,} near-duplicate id pairs: the first {len(near):,} are kept in this report, "
                     f"{min(len(near), MAX_EXAMPLES)} listed")
    if frame.attrs.get("excluded_test_ids"):
        notes.append(f"the loader already excluded {frame.attrs['excluded_test_ids']} test ids "
                     f"(e.g. {', '.join(frame.attrs.get('excluded_examples', [])[:3])})")
    if frame.attrs.get("duration_note"):
        notes.append(frame.attrs["duration_note"])
    for table, cols in (frame.attrs.get("missing_columns") or {}).items():  # written by the loaders, never assumed
        notes.append(f"columns absent in {table}: {', '.join(cols)} (read as empty; a finding that uses them, e.g. "
                     "stuck while the call row says completed, may be undercounted)")
    if not records_ends and int(open_.sum()):
        notes.append(f"no end times in this set: every in_progress row counts as stuck "
                     f"({int((open_ & old).sum())} of them older than 2 h at {as_of_ts})")
    longest = frame.assign(dur_ms=duration).dropna(subset=["dur_ms"]).sort_values("dur_ms", ascending=False).head(longest_n)
    longest_calls = [{"call_id": str(r.call_id), "started_at": str(r.started_at), "duration_s": float(r.dur_ms) / 1000,
                      "call_status": str(r.call_status), "test_id": call_ids.id_kind(str(r.call_id)) != "retell"}
                     for r in longest.itertuples()]
    return QualityReport(len(frame), frame.attrs.get("source"), str(as_of_ts), findings, excluded, near,
                         longest_calls, notes)


def _round_values(frame: pd.DataFrame, duration: pd.Series, precision_ms: int) -> Finding:
    """P7: share of durations divisible by 1,000 ms; by chance 1 in 1,000 (precision/1,000 if rounded)."""
    present = duration.dropna()
    round_mask = ((duration % 1000 == 0) & (duration != 0)).fillna(False)  # zeros are their own finding
    baseline = min(1.0, precision_ms / 1000)
    detail = {"share": (float(round_mask.sum()) / len(present)) if len(present) else None, "n": len(present),
              "chance_baseline": baseline}
    if len(present) and baseline < 1:
        test = binomtest(int(round_mask.sum()), len(present), baseline, alternative="greater")
        detail["p_value_if_random"] = float(test.pvalue)
    if "functions" in frame:
        traces = [fn.get("duration_ms") for fns in frame["functions"] if isinstance(fns, list) for fn in fns]
        traces = [t for t in traces if isinstance(t, (int, float))]
        detail["trace_n"] = len(traces)
        detail["trace_round"] = sum(1 for t in traces if t % 1000 == 0)
        detail["trace_share"] = detail["trace_round"] / len(traces) if traces else None
    return _finding(frame, "round_durations", "durations divisible by 1,000 ms", round_mask, **detail)


def _counter_checks(frame: pd.DataFrame, notes: list[str]) -> dict[str, Finding]:
    """``function_call_count`` vs the traced functions (trust traces; the counter is cached, P5)."""
    if "function_call_count" not in frame or "functions" not in frame:
        notes.append("no per-call function list: counter-vs-traces check not possible")
        return {}
    known = frame["functions"].map(lambda v: isinstance(v, list))
    if not known.any():
        notes.append("function lists unknown (e.g. CSV export): counter-vs-traces check not possible")
        return {}
    traced = frame["functions"].map(lambda v: len(v) if isinstance(v, list) else pd.NA)
    counter = pd.to_numeric(frame["function_call_count"], errors="coerce")
    mismatch = known & counter.notna() & (counter != traced)
    return {"counter_mismatch": _finding(frame, "counter_mismatch", "function_call_count != traced functions", mismatch)}
