"""The PHP write scanner on tricky source: comments, strings, reads, shapes, guards."""

from __future__ import annotations

import textwrap

import pytest

from rca_toolkit.analyses.code import drift
from rca_toolkit.errors import NotFound

MODELS = {
    "app/Models/Appointment.php": """<?php
        namespace App\\Models;
        use Illuminate\\Database\\Eloquent\\Model;
        class Appointment extends Model { protected $guarded = ['id', 'price']; }
        """,
    "app/Models/Customer.php": """<?php
        namespace App\\Models;
        use Illuminate\\Database\\Eloquent\\Model;
        class Customer extends Model { protected $fillable = array('name', 'nickname'); }
        """,
    "app/Models/WebhookEvent.php": """<?php
        namespace App\\Models;
        use Illuminate\\Database\\Eloquent\\Model;
        class WebhookEvent extends Model { protected $guarded = []; }
        """,
    "app/Models/Category.php": """<?php
        namespace App\\Models;
        use Illuminate\\Database\\Eloquent\\Model;
        class Category extends Model { protected $table = 'legacy_categories'; }
        """,
    "app/Models/VipCustomer.php": """<?php
        namespace App\\Models;
        class VipCustomer extends Customer {}
        """,
}


def scan(tmp_path, body: str, extra: dict | None = None):
    """Write the models plus one file ``app/T.php`` (PHP body after ``<?php``) and scan them."""
    for rel, text in {**MODELS, **(extra or {})}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "app" / "T.php").write_text("<?php\nuse App\\Models\\Appointment;\n" + textwrap.dedent(body))
    frame = drift.scan_code(tmp_path)
    return frame[frame["file"] == "app/T.php"], frame


def rows(frame, *cols):
    cols = cols or ("table", "column", "line", "shape", "effect")
    return set(frame[list(cols)].itertuples(index=False, name=None))


def test_comments_strings_heredoc_nowdoc_and_reads_are_not_writes(tmp_path):
    writes, _ = scan(tmp_path, """
        // $a->forceFill(['created_by' => 1]);
        # $a->forceFill(['created_by' => 2]);
        /* $a->forceFill([
             'created_by' => 3]); */
        /** @example Appointment::create(['booking_source' => 'x']) */
        function f(Appointment $a) {
            $s = 'Appointment::create([\\'created_by\\' => 1])';
            $d = "forceFill(['booking_source' => {$a->id}])";
            $h = <<<EOT
            $a->forceFill(['created_by' => 1]);
            EOT;
            $n = <<<'EOT'
            Appointment::create(['booked_by_user_id' => 1]);
            EOT;
            $x = $a->booking_source ?? null;
            $y = $a->created_by;
            \\Log::info('booked', ['created_by' => $a->created_by, 'booking_source' => 'x']);
            return ['booked_by_user_id' => $x];
        }
        """)
    assert writes.empty


def test_keys_over_lines_array_merge_plus_spread_and_nested_values(tmp_path):
    writes, _ = scan(tmp_path, """
        function f(Appointment $a, array $base) {
            $extra = ['status' => 'x'];
            $a->forceFill(array_merge([
                'created_by'
                    => 'ai',
                'metadata' => ['booking_source' => 'nested value, not a column'],
            ], ['booked_by_user_id' => null], ...[]) + array('notes' => 'n', ...$extra));
        }
        """)
    assert rows(writes) == {
        ("appointments", "created_by", 7, "forceFill", drift.RAISES),
        ("appointments", "metadata", 9, "forceFill", drift.RAISES),
        ("appointments", "booked_by_user_id", 10, "forceFill", drift.RAISES),
        ("appointments", "notes", 10, "forceFill", drift.RAISES),
        ("appointments", "status", 5, "forceFill", drift.RAISES),
    }


def test_array_variable_with_later_subscript_additions(tmp_path):
    writes, _ = scan(tmp_path, """
        function f() {
            $appointment = Appointment::where('id', 1)->firstOrFail();
            $data = ['status' => 'cancelled'];
            $data['cancelled_by'] = 'customer';
            $appointment->update($data);
            $data['too_late'] = 1;
        }
        """)
    assert rows(writes) == {
        ("appointments", "status", 6, "update", drift.DROPPED),
        ("appointments", "cancelled_by", 7, "update", drift.DROPPED),
    }


def test_shapes_and_effects_by_guard(tmp_path):
    writes, _ = scan(tmp_path, """
        use App\\Models\\Customer as Client;
        use App\\Models\\WebhookEvent;
        use Illuminate\\Support\\Facades\\DB;
        class S {
            public function run() {
                Appointment::create(['created_by' => 1]);
                $n = new Appointment(['booking_source' => 'x']);
                Appointment::where('status', 'x')->update(['cancelled_by' => 'y']);
                Appointment::updateOrCreate(['ghost_key' => 1], ['rescheduled_by' => 2]);
                Client::create(['name' => 'a', 'age' => 3]);
                WebhookEvent::firstOrCreate(['provider' => 'p']);
                DB::table('appointments')->where('id', 1)->update(['previous_starts_at' => null]);
                \\DB::table('audit')->insert([['who' => 1], ['what' => 2]]);
                \\App\\Models\\Category::create(['title' => 't']);
                DB::table('appointments')->where('id', 2)->update(['metadata->booking_source' => 'x']);
            }
        }
        """)
    assert rows(writes, "table", "column", "shape", "guard", "effect") == {
        ("appointments", "created_by", "create", "guarded", drift.DROPPED),
        ("appointments", "booking_source", "new", "guarded", drift.DROPPED),
        ("appointments", "cancelled_by", "query_update", "guarded", drift.RAISES),
        ("appointments", "ghost_key", "updateOrCreate", "guarded", drift.RAISES),
        ("appointments", "rescheduled_by", "updateOrCreate", "guarded", drift.DROPPED),
        ("customers", "name", "create", "fillable", drift.RAISES),
        ("customers", "age", "create", "fillable", drift.DROPPED),
        ("webhook_events", "provider", "firstOrCreate", "none", drift.RAISES),
        ("appointments", "previous_starts_at", "db_table_update", "none", drift.RAISES),
        ("audit", "who", "db_table_insert", "none", drift.RAISES),
        ("audit", "what", "db_table_insert", "none", drift.RAISES),
        ("legacy_categories", "title", "create", "all", drift.MASS_ASSIGNMENT),
        ("appointments", "metadata", "db_table_update", "none", drift.RAISES),
    }
    assert set(writes["site"]) == {"S::run"}


def test_property_assignment_save_and_unguard(tmp_path):
    writes, _ = scan(tmp_path, """
        function f() {
            $a = new Appointment;
            $a->created_by = 'x';
            $a->exists = true;
            $a->metadata['k'] = 1;
            $a->save();
        }
        function g() {
            Appointment::unguard();
            Appointment::create(['booking_source' => 'y']);
            Appointment::reguard();
            Appointment::create(['booked_by_user_id' => 'z']);
        }
        function h() {
            Appointment::create(['rescheduled_by' => 'early']);
            Appointment::unguarded(function () {
                Appointment::create(['cancelled_by' => 'inside']);
            });
        }
        """)
    assert rows(writes, "column", "line", "shape", "guard", "effect", "site") == {
        ("created_by", 6, "save_property", "guarded", drift.RAISES, "f"),
        ("booking_source", 13, "create", "none", drift.RAISES, "g"),
        ("booked_by_user_id", 15, "create", "guarded", drift.DROPPED, "g"),
        ("rescheduled_by", 18, "create", "guarded", drift.DROPPED, "h"),
        ("cancelled_by", 20, "create", "none", drift.RAISES, "h{closure}"),
    }


def test_inheritance_foreach_closures_and_unresolved_receivers(tmp_path):
    writes, whole = scan(tmp_path, """
        function f($repo, $prefix) {
            foreach (Appointment::where('x', 1)->get() as $i => $appt) {
                $appt->update(['reschedule_source' => 'a']);
            }
            $vip = \\App\\Models\\VipCustomer::find(1);
            $cb = function () use ($vip) { $vip->fill(['nickname' => 'n', 'tier' => 1]); };
            $repo->update(['created_by' => 1]);
            Appointment::create(["{$prefix}_by" => 1]);
        }
        """)
    assert rows(writes, "table", "column", "shape", "effect", "site") == {
        ("appointments", "reschedule_source", "update", drift.DROPPED, "f"),
        ("vip_customers", "nickname", "fill", drift.RAISES, "f{closure}"),
        ("vip_customers", "tier", "fill", drift.DROPPED, "f{closure}"),
    }
    unresolved = whole.attrs["unresolved"]
    assert "app/T.php:10 ->update() on an unresolved receiver" in unresolved
    assert "app/T.php:11 create on Appointment: some keys are not literal (not checked)" in unresolved


@pytest.mark.parametrize("name,table", [
    ("Appointment", "appointments"), ("WebhookEvent", "webhook_events"), ("Category", "categories"),
    ("Address", "addresses"), ("Person", "people"), ("RetellCallSession", "retell_call_sessions"),
    ("Box", "boxes"), ("Day", "days"),
])
def test_laravel_table_convention(name, table):
    assert drift.table_for_class(name) == table


def test_syntax_errors_are_reported_and_bad_paths_raise(tmp_path):
    _, whole = scan(tmp_path, "function broken( { Appointment::create(['a' => 1]);\n")
    assert whole.attrs["parse_errors"] == ["app/T.php"]
    with pytest.raises(NotFound, match="does not exist"):
        drift.scan_code(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="no PHP files"):
        drift.scan_code(tmp_path / "empty")


def test_models_with_boot_hooks_or_traits_are_not_checked_for_required_columns(tmp_path):
    from rca_toolkit.sources.db import TableInfo

    extra = {"app/Models/Booking.php": """<?php
        namespace App\\Models;
        use Illuminate\\Database\\Eloquent\\Model;
        class Booking extends Model {
            use HasFactory, BelongsToCompany;
            protected $guarded = ['id', 'company_id'];
        }
        """}
    writes, whole = scan(tmp_path, """
        use App\\Models\\Booking;
        Booking::create(['status' => 'x']);
        Appointment::create(['status' => 'x']);
        """, extra)
    assert whole.attrs["models"]["Booking"]["may_set_columns"] is True
    assert whole.attrs["models"]["Appointment"]["may_set_columns"] is False
    cols = {"id": "BIGINT", "company_id": "BIGINT", "status": "VARCHAR"}
    table = dict(columns=cols, nullable={"id": False, "company_id": False, "status": True},
                 has_default={"id": False, "company_id": False, "status": False})
    schema = {"bookings": TableInfo("bookings", **table), "appointments": TableInfo("appointments", **table)}
    report = drift.find_drift(whole, schema)
    assert report.missing_required[["table", "column", "line"]].values.tolist() == [["appointments", "company_id", 6]]
    assert any("1 create sites not checked for required columns" in n and "Booking" in n for n in report.notes)
