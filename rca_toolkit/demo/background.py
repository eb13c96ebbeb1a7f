"""Vectorised plan of the background traffic: call, trace and transcript plans as frames.

Private helper of :mod:`rca_toolkit.demo`. A *plan* holds what happened in a call relative to
its Retell start (offsets in ms); :mod:`rca_toolkit.demo.rows` turns plans into table rows.
Plans carry a global call index ``cidx``; everything is drawn from one numpy Generator in a
fixed order, so the same seed gives the same world.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rca_toolkit.demo import spec as S

HEX = np.frombuffer(b"0123456789abcdef", dtype="S1")
ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype="S1")
DISCONNECT = np.array(["user_hangup", "agent_hangup", "inactivity", "call_transfer", "max_duration_reached",
                       "error_llm_websocket_open"])
DISCONNECT_P = np.array([0.86, 0.07, 0.03, 0.02, 0.005, 0.015])

AGENT_TEXT = np.array([
    "Guten Tag, Sie sprechen mit der Terminannahme. Wie kann ich Ihnen helfen?",
    "Einen Moment bitte, ich prüfe die Verfügbarkeit.",
    "Der Termin ist frei. Soll ich ihn für Sie eintragen?",
    "Vielen Dank für Ihren Anruf. Auf Wiederhören!",
    "Welcher Tag würde Ihnen denn passen?",
    "Ich habe Ihren Termin notiert.",
])
USER_TEXT = np.array([
    "Ich hätte gerne einen Termin für einen Haarschnitt.",
    "Am Dienstag nachmittag, wenn das geht.",
    "Ja, das passt mir gut.",
    "Nein danke, das war alles.",
    "Haben Sie am Freitag noch etwas frei?",
    "Okay, dann tschüss.",
])


def random_strings(rng: np.random.Generator, n: int, length: int, alphabet=HEX) -> np.ndarray:
    """``n`` random strings of ``length`` characters (vectorised, object array of str)."""
    codes = rng.integers(0, len(alphabet), size=(n, length), dtype=np.int8)
    raw = alphabet[codes].view(f"S{length}").ravel()
    return raw.astype(f"U{length}").astype(object)


def retell_ids(rng: np.random.Generator, n: int, taken: set[str]) -> np.ndarray:
    """Unique ``call_`` + 27 hex ids, never colliding with ``taken``."""
    ids = "call_" + pd.Series(random_strings(rng, n, 27), dtype=object)
    dup = ids.duplicated() | ids.isin(taken)
    while dup.any():  # astronomically rare; redraw deterministically
        ids[dup] = "call_" + pd.Series(random_strings(rng, int(dup.sum()), 27), index=ids.index[dup], dtype=object)
        dup = ids.duplicated() | ids.isin(taken)
    return ids.to_numpy(dtype=object)


def uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Version-4-shaped UUID strings (deterministic)."""
    h = pd.Series(random_strings(rng, n, 32), dtype=object).str
    return (h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]).to_numpy(dtype=object)


def wall_to_utc(wall_us: np.ndarray) -> np.ndarray:
    """Naive Berlin wall microseconds (outside 2025-10-26 02:00-03:00) -> UTC microseconds."""
    switch_wall = S.DST_END + 2 * S.HOUR_US  # 2025-10-26 03:00 wall time, read as if UTC
    return wall_us - np.where(wall_us < switch_wall, 2, 1) * S.HOUR_US


def agent_version(start_us: np.ndarray) -> np.ndarray:
    """Agent version as a step function of time: <=133 before the switch, 4..24 after; 106 on 10-18."""
    old = np.interp(start_us, [S.WINDOW_START, S.berlin("2025-10-18 00:00:00"), S.AGENT_SWITCH], [90, 106, 133])
    new = np.interp(start_us, [S.AGENT_SWITCH, S.WINDOW_END], [4, 24])
    version = np.where(start_us < S.AGENT_SWITCH, np.floor(old), np.floor(new)).astype(np.int64)
    day18 = (start_us >= S.berlin("2025-10-18 00:00:00")) & (start_us < S.berlin("2025-10-19 00:00:00"))
    return np.where(day18, 106, version)


def sample_starts(rng: np.random.Generator, scale: int) -> np.ndarray:
    """Retell start instants (UTC us) of the background calls, day by day."""
    out = []
    day_wall = S.WINDOW_START + 2 * S.HOUR_US  # 2025-09-22 00:00 wall, read as if UTC
    for day in range(70):
        wall0 = day_wall + day * S.DAY_US
        weekday = (day % 7) < 5  # 2025-09-22 is a Monday
        lo, hi, lam = (8, 19, 24) if weekday else (9, 17, 8)
        n = int(rng.poisson(lam * scale))
        if day == 32:  # 2025-10-24: the stuck day, sessions 06:56-18:23 (P5)
            lo, hi = 6 + 56 / 60, 18 + 23 / 60
        secs = np.sort(rng.uniform(lo * 3600, hi * 3600, size=n))
        if day == 32 and n >= 2:
            secs[0], secs[-1] = lo * 3600 + 5, hi * 3600 - 5
        out.append(wall_to_utc(wall0 + (secs * S.US).astype(np.int64)))
    return np.concatenate(out)


def plan_calls(rng: np.random.Generator, starts: np.ndarray, *, booking: np.ndarray | None = None,
               path: np.ndarray | None = None, kind: str = "background") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Call plan and trace plan for calls starting at ``starts`` (forced booking/path optional)."""
    n = len(starts)
    dur = np.clip(rng.lognormal(np.log(60_000), 0.5, n), 20_000, 640_000)
    init_at = rng.uniform(450, 700, n)
    init_ms = np.where(rng.random(n) < 0.85, 1000.0, rng.uniform(850, 1400, n).round())
    avail_at = rng.uniform(12_000, 25_000, n)
    avail_ms = np.clip(rng.lognormal(np.log(900), 0.45, n), 250, 2_600).round()
    wants_booking = rng.random(n) < 0.55 if booking is None else booking
    chosen_path = np.where(rng.random(n) < 0.5, "collect_appointment", "book_appointment") if path is None else path
    book_at = avail_at + avail_ms + rng.uniform(10_000, 45_000, n)
    book_ms = np.where(chosen_path == "collect_appointment", rng.uniform(800, 3_000, n),
                       rng.uniform(1_000, 4_000, n)).round()
    calcom_fail = np.where(rng.random(n) < 0.02, np.where(rng.random(n) < 0.7, "calcom_409", "calcom_400"), "")
    alias_draw = rng.random(n)
    dur = np.maximum(dur, avail_at + avail_ms + 16_000)
    dur = np.where(wants_booking, np.maximum(dur, book_at + book_ms + 6_000), dur).round()
    calls = pd.DataFrame({
        "start_us": starts.astype(np.int64),
        "dur_ms": dur,
        "company_id": np.where(rng.random(n) < S.COMPANY_SHARE, 1, 2),
        "customer_id": np.where(rng.random(n) < 0.8, rng.integers(1, 500, n), -1),
        "sess_offset_us": rng.uniform(300_000, 2_000_000, n).astype(np.int64),
        "sess_delay_us": rng.uniform(200_000, 1_500_000, n).astype(np.int64),
        "disconnection_reason": rng.choice(DISCONNECT, size=n, p=DISCONNECT_P),
        "anonymous": rng.random(n) < 0.15,
        "kind": kind,
    })
    versioned = calls["start_us"].to_numpy() >= S.AGENT_SWITCH
    book_name = np.where(versioned, np.where(alias_draw < 0.7, "book_appointment_v17", "start_booking"),
                         np.where(alias_draw < 0.8, "book_appointment", "start_booking"))
    booking_name = np.where(chosen_path == "collect_appointment", "collect_appointment_data", book_name)
    local = np.arange(n)
    traces = pd.concat([
        pd.DataFrame({"local": local, "seq": 1, "function_name": "initialize_call", "path": "",
                      "offset_ms": init_at.round(), "real_ms": init_ms, "forced_error": ""}),
        pd.DataFrame({"local": local, "seq": 2,
                      "function_name": np.where(versioned, "check_availability_v17", "check_availability"),
                      "path": "", "offset_ms": avail_at.round(), "real_ms": avail_ms, "forced_error": ""}),
        pd.DataFrame({"local": local[wants_booking], "seq": 3, "function_name": booking_name[wants_booking],
                      "path": chosen_path[wants_booking], "offset_ms": book_at[wants_booking].round(),
                      "real_ms": book_ms[wants_booking], "forced_error": calcom_fail[wants_booking]}),
    ], ignore_index=True)
    return calls, traces


def plan_segments(rng: np.random.Generator, calls: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """Six transcript segments per background call, timed around its tool calls."""
    n = len(calls)
    avail = traces[traces["seq"] == 2].set_index("local")["offset_ms"].reindex(np.arange(n)).to_numpy()
    dur = calls["dur_ms"].to_numpy()
    offsets = np.stack([
        np.full(n, 800.0), np.full(n, 5_200.0), avail - 3_000, avail + 3_500, avail + 8_000, dur - 3_500,
    ], axis=1)
    lengths = np.array([3_600.0, 2_900.0, 2_400.0, 2_200.0, 3_800.0, 1_600.0])
    roles = np.array(["agent", "user", "agent", "user", "agent", "user"])
    pool = np.concatenate([AGENT_TEXT, USER_TEXT]).astype(object)
    text_idx = rng.integers(0, len(AGENT_TEXT), size=(n, 6)) + np.where(roles == "user", len(AGENT_TEXT), 0)
    text_idx[:, 0], text_idx[:, 2] = 0, 1
    texts = pool[text_idx]
    offsets = np.minimum(offsets, (dur - 1_700)[:, None])
    seg = pd.DataFrame({
        "local": np.repeat(np.arange(n), 6),
        "seq": np.tile(np.arange(1, 7), n),
        "role": np.tile(roles, n),
        "text": texts.ravel(),
        "offset_ms": offsets.ravel().round(),
        "dur_ms": np.tile(lengths, n),
    })
    return seg
