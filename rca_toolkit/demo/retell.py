"""Retell get-call objects (``calls.raw``) for the scripted demo calls.

Private helper of :mod:`rca_toolkit.demo`. The object follows data-contract §6.1: ms-epoch
start/end, ``transcript_object`` with per-word ``start``/``end`` seconds (words spread evenly
over each utterance), ``transcript_with_tool_calls`` with ``tool_call_invocation`` /
``tool_call_result`` entries carrying ``time_sec``, latency blocks in ms whose percentiles
are linear interpolations of ``values``, and ``call_cost`` in cents.
"""

from __future__ import annotations

import json

import numpy as np

from rca_toolkit.demo import spec as S

FAILED_CONTENT = {
    "phantom": {"success": False, "error": "Termin konnte nicht gespeichert werden"},
    "calcom_409": {"success": False, "error": "Der Termin ist leider nicht mehr verfügbar"},
    "calcom_400": {"success": False, "error": "Buchung fehlgeschlagen"},
    "d2": {"success": False, "error": "Unknown function"},
    "d4": {"success": False, "error": "Unknown function"},
}
UNIT_PRICE = 0.1266667  # cents per second (data-contract §6.1)


def _words(text: str, start: float, end: float) -> list[dict]:
    tokens = text.split()
    step = (end - start) / max(len(tokens), 1)
    return [{"word": w, "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3)}
            for i, w in enumerate(tokens)]


def _block(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    pct = {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in (50, 90, 95, 99)}
    return {**pct, "min": float(arr.min()), "max": float(arr.max()), "num": len(values), "values": values}


def call_object(script: dict, *, start_ms: int, agent_id: str, tool_outcomes: list[str]) -> str:
    """The Retell object of one scripted call as JSON text (``tool_outcomes``: error kind per tool)."""
    utterances = sorted(script["segments"], key=lambda s: s[2])
    transcript_object = [
        {"role": role, "content": text, "words": _words(text, t0, t1),
         "metadata": {"response_id": i} if role == "agent" else {}}
        for i, (role, text, t0, t1) in enumerate(utterances)
    ]
    entries = [(t0, {"role": role, "content": text, "words": _words(text, t0, t1)})
               for role, text, t0, t1 in utterances]
    entries.append((0.0, {"role": "node_transition", "former_node_id": "begin", "former_node_name": "Begin",
                          "new_node_id": "greeting", "new_node_name": "Begrüßung", "time_sec": 0.0}))
    for k, ((name, args, t0, t1, result, _forced), kind) in enumerate(zip(script["tools"], tool_outcomes)):
        tid = f"tool_call_{k + 1:02d}"
        content = FAILED_CONTENT[kind] if kind else (result or {"success": True})
        entries.append((t0, {"role": "tool_call_invocation", "tool_call_id": tid, "name": name,
                             "arguments": json.dumps(args, ensure_ascii=False), "time_sec": t0,
                             "type": "custom"}))
        entries.append((t1, {"role": "tool_call_result", "tool_call_id": tid, "successful": True,
                             "content": json.dumps(content, ensure_ascii=False), "time_sec": t1}))
    entries.sort(key=lambda e: e[0])
    duration_ms = script["duration_ms"]
    # turn latency: user end -> next agent start, in ms
    gaps = [round((b[2] - a[3]) * 1000) for a, b in zip(utterances, utterances[1:])
            if a[0] == "user" and b[0] == "agent"] or [900]
    seconds = int(np.ceil(duration_ms / 1000))
    tts = round(seconds * 0.1166667, 4)
    llm = round(seconds * 0.01, 4)
    obj = {
        "call_id": script["call_id"], "call_type": "phone_call", "agent_id": agent_id,
        "agent_version": script["agent_version"], "agent_name": "Demo Terminannahme (synthetic)",
        "call_status": "ended", "start_timestamp": start_ms, "end_timestamp": start_ms + duration_ms,
        "duration_ms": duration_ms, "direction": "inbound", "from_number": "anonymous", "to_number": "+4930123456780",
        "disconnection_reason": script["disconnection_reason"],
        "transcript": "\n".join(f"{'Agent' if r == 'agent' else 'User'}: {t}" for r, t, *_ in utterances),
        "transcript_object": transcript_object,
        "transcript_with_tool_calls": [e for _, e in entries],
        "latency": {"e2e": _block(gaps), "llm": _block([round(g * 0.6) for g in gaps]),
                    "tts": _block([280, 301, 295][: max(1, min(3, len(gaps)))])},
        "call_cost": {"product_costs": [{"product": "elevenlabs_tts", "unit_price": 0.1166667, "cost": tts},
                                        {"product": "gpt_4o_mini", "unit_price": 0.01, "cost": llm}],
                      "combined_cost": round(tts + llm, 4), "total_duration_seconds": seconds,
                      "total_duration_unit_price": UNIT_PRICE},
        "call_analysis": {"call_summary": "Synthetic demo call.", "user_sentiment": "Negative",
                          "call_successful": False, "in_voicemail": False, "custom_analysis_data": {}},
        "metadata": {"synthetic": True},
    }
    return json.dumps(obj, ensure_ascii=False)


def start_ms_of(script: dict) -> int:
    """Retell start (ms epoch) = session start minus the webhook offset."""
    return (S.berlin(script["session_start"]) - script["offset_ms"] * S.MS) // S.MS
