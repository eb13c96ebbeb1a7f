"""Settings, resolved as: defaults < config file < RCA_* environment < explicit arguments.

Read only when asked (never at import). The config file is ``rca.yaml`` in the working
directory or the file named by ``RCA_CONFIG``. Database *profiles* let a parameter name a
database without carrying its password: ``profiles: {prod: {url: mysql+pymysql://ro@db/app,
password_env: RCA_PROD_PASSWORD}}`` and then ``--db prod``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from rca_toolkit.errors import ConfigError

DEMO_DB_PATH = Path("data/demo.sqlite")


def default_database_url() -> str:
    """The embedded default: the demo SQLite database built by ``make demo``."""
    return f"sqlite:///{DEMO_DB_PATH}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    source_tz: str = "Europe/Berlin"
    db_time_zone: str = "+00:00"
    statement_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    redis_url: str | None = None
    reports_dir: str = "reports"
    progress: bool = True
    profiles: dict = field(default_factory=dict)
    # which function makes the booking, per agent version (rules.functions.booking_steps): "auto" (the
    # response decides), "confirm_booking" (two steps) or "start_booking" (one step); keys "<agent_id>:<version>",
    # "<agent_id>" or "<version>"
    booking_steps: dict = field(default_factory=dict)
    # the local store the analyses read (rca_toolkit.sources.store): "auto" (MariaDB/MySQL through the store,
    # a SQLite file read directly), "on" (every database through the store) or "off" (direct reads)
    cache: str = "auto"
    cache_dir: str = "data/cache"
    # a store refreshed (by any process) less than this many seconds ago is read as it is; its reports say
    # when it was refreshed (`rca cache refresh` or --no-cache read now)
    cache_max_age_s: float = 300.0
    # every refresh of a store, the ones the analyses make first included, reads at most this many rows a second
    # from the source (the rows its checks scan count too); None: no limit (`rca cache refresh --max-rows-per-second`)
    cache_max_rows_per_s: float | None = None
    # a refresh the analyses make first also checks the rows older than its trailing window (changed or deleted
    # anywhere: a scan of every table) when the last such check is older than this; `rca cache refresh` always checks
    cache_check_every_s: float = 604800.0

    def reads_store(self, backend: str) -> bool:
        """Whether the analyses read a database of ``backend`` (a SQLAlchemy dialect name) through its local store."""
        return self.cache == "on" or (self.cache == "auto" and backend in ("mysql", "mariadb"))

    def with_overrides(self, **overrides) -> "Settings":
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **clean)


_ENV = {
    "RCA_DATABASE_URL": "database_url",
    "RCA_SOURCE_TZ": "source_tz",
    "RCA_DB_TIME_ZONE": "db_time_zone",
    "RCA_STATEMENT_TIMEOUT_S": "statement_timeout_s",
    "RCA_CONNECT_TIMEOUT_S": "connect_timeout_s",
    "RCA_REDIS_URL": "redis_url",
    "RCA_REPORTS_DIR": "reports_dir",
    "RCA_PROGRESS": "progress",
    "RCA_CACHE": "cache",
    "RCA_CACHE_DIR": "cache_dir",
    "RCA_CACHE_MAX_AGE_S": "cache_max_age_s",
    "RCA_CACHE_MAX_ROWS_PER_S": "cache_max_rows_per_s",
    "RCA_CACHE_CHECK_EVERY_S": "cache_check_every_s",
}
CACHE_MODES = ("auto", "on", "off")


# Timeouts are bounded both ways: 0, a negative value or inf would mean "no limit" to a driver or
# to MariaDB's max_statement_time, nan compares false everywhere; a day is far beyond any read.
SECONDS_RANGE = (0.0, 86400.0)
CHECK_EVERY_MAX_S = 31 * 86400.0  # cache_check_every_s: old rows checked at least monthly
_FALSE = ("0", "false", "no", "off", "")
# the session time zone MariaDB is told (an offset, a zone name or SYSTEM): also what keeps it out of SQL
DB_TIME_ZONE = re.compile(r"[+-]\d{2}:\d{2}|[A-Za-z_/]+|SYSTEM")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROFILE_KEYS = ("url", "password_env")


def _coerce(name: str, value, label: str | None = None):
    """``value`` of setting ``name`` as its type and inside its range, or one ConfigError naming
    ``label`` (where it came from: the RCA_* variable or the config file key) and the allowed values."""
    label = label or name
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if name == "profiles":
        return _profiles(value, label)
    if name == "booking_steps":
        return _booking_steps(value, label)
    if name == "cache_max_rows_per_s":
        return rows_per_s_setting(label, value)
    if kind == "bool":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        if isinstance(value, str):
            return value.strip().lower() not in _FALSE
        raise ConfigError(f"{label}={_shown(value)} is not true or false", hint="write true or false")
    if name == "cache_check_every_s":
        return seconds_setting(label, value, high=CHECK_EVERY_MAX_S,
                               hint="give seconds up to 31 days, e.g. 86400 for a daily check (`rca cache refresh` checks every time)")
    if kind == "float":
        return seconds_setting(label, value)
    if kind == "str | None" and (value is None or value == ""):
        return None  # RCA_REDIS_URL= or redis_url: null: none
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ConfigError(f"{label}={_shown(value)} is not a non-empty text", hint=_TEXT_HINTS.get(name, "give a text value"))
    if name == "source_tz":
        _check_zone(label, value)
    elif name == "cache" and value.strip().lower() not in CACHE_MODES:
        raise ConfigError(f"{label}={_shown(value)} is not a cache mode", hint="use auto, on or off")
    elif name == "cache":
        return value.strip().lower()
    elif name == "db_time_zone" and not DB_TIME_ZONE.fullmatch(value):
        raise ConfigError(f"{label}={_shown(value)} is not a time zone", hint="use +00:00, SYSTEM or a zone name")
    return value


_TEXT_HINTS = {
    "database_url": "give a URL such as sqlite:///data/demo.sqlite or mysql+pymysql://user@host:3306/db",
    "source_tz": "give an IANA zone name such as Europe/Berlin",
    "db_time_zone": "use +00:00, SYSTEM or a zone name",
    "redis_url": "give a URL such as redis://127.0.0.1:6379/0",
    "reports_dir": "give a folder path such as reports",
    "cache_dir": "give a folder path such as data/cache",
    "cache": "use auto, on or off",
}


def _number(value) -> float:
    """``value`` as a float: a number or its text; nan for anything else (a bool, a list, words)."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    return float("nan")


def seconds_setting(label: str, value, high: float = SECONDS_RANGE[1], hint: str | None = None) -> float:
    """A number of seconds in (0, ``high``] (finite), else one line naming ``label``."""
    low = SECONDS_RANGE[0]
    seconds = _number(value)
    if not low < seconds <= high:  # nan and inf fail here too
        raise ConfigError(f"{label}={_shown(value)} is not a number of seconds in ({low:g}, {high:.0f}]",
                          hint=hint or "give seconds, e.g. 60 (0, a negative value or inf would mean no limit)")
    return seconds


ROWS_PER_S_RANGE = (1.0, 1e12)


def rows_per_s_setting(label: str, value) -> float | None:
    """A limit in rows a second inside ``ROWS_PER_S_RANGE``, None (no limit) when empty, else one line naming ``label``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    rate = _number(value)
    low, high = ROWS_PER_S_RANGE
    if not low <= rate <= high:  # nan and inf fail here too
        raise ConfigError(f"{label}={_shown(value)} is not a number of rows a second in [{low:g}, {high:g}]",
                          hint="give rows a second, e.g. 50000, or leave it empty for no limit")
    return rate


def _check_zone(label: str, value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{label}={_shown(value)} is not a time zone", hint="give an IANA zone name such as Europe/Berlin") from None


def _profiles(value, label: str) -> dict:
    """``profiles``: a mapping of names to ``{url: ..., password_env: ...}``."""
    example = "write profiles: {prod: {url: mysql+pymysql://ro@db/app, password_env: RCA_PROD_PASSWORD}}"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{label} is not a mapping of profile names (it is a {type(value).__name__})", hint=example)
    for name, profile in value.items():
        where = f"{label}.{name}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{label} has the name {_shown(name)}, not a text", hint="name each profile, e.g. prod")
        if not isinstance(profile, dict):
            raise ConfigError(f"{where} is not a mapping with url and password_env (it is a {type(profile).__name__})",
                              hint=example)
        unknown = sorted(str(k) for k in profile if k not in _PROFILE_KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(unknown)}", hint=f"known keys: {', '.join(_PROFILE_KEYS)}")
        url = profile.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{where}.url is missing or not a text", hint=example)
        env = profile.get("password_env")
        if env is not None and not (isinstance(env, str) and _ENV_NAME.fullmatch(env)):
            raise ConfigError(f"{where}.password_env={_shown(env)} is not an environment variable name",
                              hint="e.g. RCA_PROD_PASSWORD")
    return value


BOOKING_STEP_CHOICES = ("auto", "confirm_booking", "start_booking")  # what rules.functions.booking_steps reads


def _booking_steps(value, label: str) -> dict:
    """``booking_steps``: agent version keys (``"<agent_id>:<version>"``, ``"<agent_id>"``, ``<version>``) mapped to
    one of :data:`BOOKING_STEP_CHOICES`; keys come back as texts."""
    example = "write booking_steps: {\"agent_f1ce85d06a84afb989dfbb16a9:25\": confirm_booking}"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{label} is not a mapping of agent versions (it is a {type(value).__name__})", hint=example)
    out = {}
    for key, choice in value.items():
        text = str(key).strip() if isinstance(key, (str, int)) and not isinstance(key, bool) else ""
        if not text:
            raise ConfigError(f"{label} has the key {_shown(key)}, not an agent version",
                              hint="use <agent_id>:<version>, <agent_id> or a version number")
        if choice not in BOOKING_STEP_CHOICES:
            raise ConfigError(f"{label}.{text}={_shown(choice)} is not a booking step choice",
                              hint=f"use one of {', '.join(BOOKING_STEP_CHOICES)}")
        out[text] = choice
    return out


def _shown(value) -> str:
    """A value in an error line: its repr, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_yaml_mapping(path: Path, what: str, *, unreadable_hint: str, mapping_hint: str) -> dict:
    """A YAML file that must hold a mapping; ``what`` names it in the one-line error."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:  # a binary or deeply nested file too
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot read {what} {path}: {first}", hint=unreadable_hint) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} is not a mapping", hint=mapping_hint)
    return data


def _read_file(path: Path) -> dict:
    data = read_yaml_mapping(path, "config file", unreadable_hint="fix or remove the file",
                             mapping_hint="write key: value lines")
    known = {f.name for f in fields(Settings)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown keys: {', '.join(sorted(map(str, unknown)))}",
            hint=f"known keys: {', '.join(sorted(known))}",
        )
    return data


def load_settings(**overrides) -> Settings:
    """Resolve settings from every layer; explicit non-None ``overrides`` win."""
    values: dict = {}
    path = Path(os.environ.get("RCA_CONFIG", "rca.yaml"))
    if path.exists():
        values.update({k: _coerce(k, v, f"config file {path}: {k}") for k, v in _read_file(path).items()})
    elif "RCA_CONFIG" in os.environ:
        raise ConfigError(f"RCA_CONFIG={path} does not exist", hint="point it at a YAML file or unset it")
    for env, name in _ENV.items():
        if env in os.environ:
            values[name] = _coerce(name, os.environ[env], f"{name} ({env})")
    return Settings(**values).with_overrides(**overrides)


def progress_enabled() -> bool:
    """Progress bars are on unless the ``progress`` setting says no (``RCA_PROGRESS=0`` or ``progress: false``
    in rca.yaml), read at call time with the same true/false words as every other setting."""
    return load_settings().progress


def progress(items, desc: str, *, unit: str, at_least: int, leave: bool = True):
    """A progress bar over ``items`` when there are at least ``at_least`` of them and bars are on (RCA_PROGRESS)."""
    if len(items) < at_least or not progress_enabled():
        return items
    return progress_bar(items, desc=desc, unit=unit, leave=leave)


def progress_bar(iterable=None, **kwargs):
    """``tqdm`` on a terminal (or in a notebook kernel); elsewhere (a log file, cron, CI) :class:`LineProgress`,
    which writes one plain line per step instead of a ``\\r``-joined line."""
    import sys

    if sys.stderr.isatty() or _in_kernel():
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    return LineProgress(iterable, **kwargs)


def _in_kernel() -> bool:
    """Running inside a Jupyter kernel (its bars are widgets, not lines)."""
    import sys

    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


class LineProgress:
    """The part of tqdm's interface the toolkit uses, as lines on stderr: one per step, a step being one
    item of up to ``MAX_LINES`` items or a tenth of the total (bytes, rows). A transient bar
    (``leave=False``, e.g. one table of the demo build) writes nothing: a log keeps what lasts."""

    MAX_LINES = 10

    def __init__(self, iterable=None, *, total=None, desc: str = "", unit: str = "it", disable: bool = False,
                 leave: bool = True, unit_scale: bool = False, **_ignored):
        self.iterable, self.desc, self.unit, self.disable, self.leave = iterable, desc, unit, disable or not leave, leave
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix, self._shown = 0, "", 0
        self._step = 1 if not self.total or self.total <= self.MAX_LINES else self.total / self.MAX_LINES
        self.unit_scale = unit_scale

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _amount(self, n) -> str:
        if self.unit_scale and n >= 1000:
            for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
                if n >= factor:
                    return f"{n / factor:.1f} {prefix}{self.unit}"
        return f"{n:,} {self.unit}"

    def _line(self) -> None:
        import sys

        of = f"/{self._amount(self.total)}" if self.total else f" {self.unit}"
        count = f"{self._amount(self.n)}{of}" if self.unit_scale else f"{self.n:,}{of}"
        pct = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        print(f"{self.desc}: {count}{pct}" + (f" {self.postfix}" if self.postfix else ""), file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.disable and int(self.n // self._step) > self._shown:
            self._shown = int(self.n // self._step)
            self._line()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        if not self.disable and self.n and self._shown < int(self.n // self._step):
            self._line()
        self.disable = True
