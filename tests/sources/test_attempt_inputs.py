"""attempt_traces takes the stored booking-function names from loaders.family_names and binds them as
parameters."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from rca_toolkit.rules import functions
from rca_toolkit.sources import attempt_inputs, loaders, requirements

S, E = "2025-10-13T00:00:00+02:00", "2025-10-20T00:00:00+02:00"


def test_family_names_are_the_stored_names_of_the_families(demo_sqlite):
    engine = loaders.engine_for(demo_sqlite[0])
    stored = loaders.query(engine, "SELECT DISTINCT function_name FROM retell_function_traces", {})["function_name"]
    booking = sorted(n for n in stored if functions.function_family(n) in functions.BOOKING_FAMILIES)
    assert loaders.family_names(engine, functions.BOOKING_FAMILIES) == booking
    assert "start_booking" in booking and "check_availability" not in booking
    params: dict = {}
    assert loaders.family_clause(engine, "t.function_name", functions.BOOKING_FAMILIES, params, booking) == \
        [f"t.function_name IN ({', '.join(f':fam{i}' for i in range(len(booking)))})"]
    assert sorted(params.values()) == booking
    engine.dispose()


def test_the_traces_statement_binds_the_stored_booking_functions_and_validation_steps(demo_sqlite):
    """The family and validation-step lists are the names stored (loaders.family_names), bound as parameters;
    the frame read is the booking traces of the window in start order."""
    engine = loaders.engine_for(demo_sqlite[0])
    schema = requirements.schema_of(engine)
    statements: list = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, sql, params, context, many: statements.append((sql, context.compiled_parameters[0])))
    frame = attempt_inputs.attempt_traces(engine, schema, S, E, None, lean=False)
    params = next(p for sql, p in statements if sql.startswith("SELECT t.id AS trace_id"))
    assert sorted(v for k, v in params.items() if k.startswith("fam")) == loaders.family_names(engine, functions.BOOKING_FAMILIES)
    assert sorted(v for k, v in params.items() if k.startswith("vs")) == ["start_booking"]  # the stored validation step only
    assert len(frame) > 0 and frame["family"].astype(str).isin(functions.BOOKING_FAMILIES).all()
    assert frame["started_at"].is_monotonic_increasing
    engine.dispose()


def test_outcomes_read_the_padded_window_live_appointments_and_cal_com_webhooks_only(demo_sqlite, tmp_path):
    """On a copy of the demo: the window's last success has its appointment written 3 h later (within the 6 h the
    appointments are read after the last attempt: still its own); the success before it has its appointment
    soft-deleted (no longer its own); a webhook that linked a failure in time is filed under another provider
    (no Cal.com booking: the failure no longer holds its uid)."""
    from conftest import altered_copy
    from rca_toolkit.analyses.bookings.outcomes import booking_attempts

    url = demo_sqlite[0]
    base = booking_attempts(url, start=S, end=E)
    own = base[base["outcome"].eq("success") & base["calcom_link"].eq("appointment")]
    last, before = own.iloc[-1], own.iloc[-2]
    timed = base[base["calcom_link"].eq("time") & (base["at"] < before["at"])].iloc[-1]
    end = (last["at"] + pd.Timedelta(seconds=1)).isoformat()  # the window's last attempt is that success
    copy = altered_copy(url, tmp_path,
                        f"UPDATE appointments SET created_at = datetime(created_at, '+3 hours') WHERE id = {last['appointment_id']}",
                        f"UPDATE appointments SET deleted_at = created_at WHERE id = {before['appointment_id']}",
                        f"UPDATE webhook_events SET provider = 'retell' WHERE event_id = '{timed['calcom_uid']}'")
    got = booking_attempts(copy, start=S, end=end).set_index("trace_id")
    assert got.loc[last["trace_id"], ["appointment_id", "calcom_link"]].tolist() == [last["appointment_id"], "appointment"]
    assert pd.isna(got.loc[before["trace_id"], "appointment_id"])
    assert str(got.loc[before["trace_id"], "calcom_link"]) != "appointment"
    uid = got.loc[timed["trace_id"], "calcom_uid"]
    assert pd.isna(uid) or uid != timed["calcom_uid"]
