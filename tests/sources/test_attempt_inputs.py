"""attempt_traces takes the stored booking-function names from loaders.family_names, not from how
family_in_sql happens to name its bind parameters (a caller's own ``family`` parameter is no function name)."""

from __future__ import annotations

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


def test_a_callers_parameter_named_like_a_family_is_not_taken_for_a_stored_booking_function(demo_sqlite):
    engine = loaders.engine_for(demo_sqlite[0])
    schema = requirements.schema_of(engine)
    plain: list = []
    expected = attempt_inputs.attempt_traces(engine, schema, S, E, None, lean=False, statements=plain)
    statements: list = []
    frame = attempt_inputs.attempt_traces(engine, schema, S, E, None, lean=False, statements=statements,
                                          extra_params={"family": "start_booking_v99"})
    _sql, params = statements[0]
    validation = sorted(v for k, v in params.items() if k.startswith("vs"))
    assert validation == ["start_booking"]  # the stored validation step only
    assert params["family"] == "start_booking_v99"  # the caller's own parameter is still bound
    assert len(frame) == len(expected) > 0 and frame["trace_id"].tolist() == expected["trace_id"].tolist()
    engine.dispose()
