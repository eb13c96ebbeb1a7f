"""Settings, resolved as: defaults < config file < RCA_* environment < explicit arguments.

Read only when asked (never at import). The config file is ``rca.yaml`` in the working
directory or the file named by ``RCA_CONFIG``. Database *profiles* let a parameter name a
database without carrying its password: ``profiles: {prod: {url: mysql+pymysql://ro@db/app,
password_env: RCA_PROD_PASSWORD}}`` and then ``--db prod``.
"""

from __future__ import annotations

import os
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
}


def _coerce(name: str, value):
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "bool":
        return str(value).strip().lower() not in ("0", "false", "no", "off", "")
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number", hint="give seconds, e.g. 60") from None
    return value


def read_yaml_mapping(path: Path, what: str, *, unreadable_hint: str, mapping_hint: str) -> dict:
    """A YAML file that must hold a mapping; ``what`` names it in the one-line error."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {str(exc).splitlines()[0]}", hint=unreadable_hint) from None
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
            f"config file {path} has unknown keys: {', '.join(sorted(unknown))}",
            hint=f"known keys: {', '.join(sorted(known))}",
        )
    return data


def load_settings(**overrides) -> Settings:
    """Resolve settings from every layer; explicit non-None ``overrides`` win."""
    values: dict = {}
    path = Path(os.environ.get("RCA_CONFIG", "rca.yaml"))
    if path.exists():
        values.update(_read_file(path))
    elif "RCA_CONFIG" in os.environ:
        raise ConfigError(f"RCA_CONFIG={path} does not exist", hint="point it at a YAML file or unset it")
    for env, name in _ENV.items():
        if env in os.environ:
            values[name] = os.environ[env]
    values = {k: _coerce(k, v) if k != "profiles" else v for k, v in values.items()}
    return Settings(**values).with_overrides(**overrides)


def progress_enabled() -> bool:
    """Progress bars are on unless RCA_PROGRESS=0 (checked at call time, not import)."""
    return os.environ.get("RCA_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def progress(items, desc: str, *, unit: str, at_least: int, leave: bool = True):
    """tqdm over ``items`` when there are at least ``at_least`` of them and bars are on (RCA_PROGRESS)."""
    if len(items) < at_least or not progress_enabled():
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=leave)
