"""Database URLs parsed once: where the password is, which options are allowed, how to print them.

A password can sit in the user-info (``user:pw@``, also with an unencoded ``@``, ``/``, ``?`` or
``#``) or in the query (``?password=``, ``?passwd=``, any key ending in ``password``). Every form
is found here, so redaction and the engine factory agree on what a secret is.

URL options are allow-listed for MariaDB: an option that runs SQL (``init_command``), loads
files (``local_infile``, ``read_default_file``), or changes the session before the toolkit
makes it read-only (``autocommit``, ``sql_mode``, ``client_flag``) is refused, and so is any
option not known to be harmless. Kept: ``charset``, TLS (``ssl_ca`` ...), ``unix_socket`` and
the three timeouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from rca_toolkit.config import seconds_setting
from rca_toolkit.errors import ConfigError, RcaError

MASK = "***"
PASSWORD_KEYS = ("password", "passwd")  # pymysql takes both for the login password
ALLOWED_MYSQL_OPTIONS = (
    "charset", "connect_timeout", "read_timeout", "write_timeout", "unix_socket",
    "ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_check_hostname", "ssl_key_password",
)
TIMEOUT_OPTIONS = ("connect_timeout", "read_timeout", "write_timeout")
REFUSED_WHY = {  # named in the error so the user sees why, not only that
    "init_command": "it runs SQL before the session is made read-only",
    "autocommit": "it changes the session's transaction mode",
    "sql_mode": "it changes the session's SQL mode",
    "local_infile": "it lets the server read local files",
    "client_flag": "it can enable multi-statements and local files",
    "read_default_file": "it loads options (and init_command) from a file",
    "read_default_group": "it loads options (and init_command) from a file",
}

_SCHEME = re.compile(r"^([A-Za-z][\w+.-]*)://(.*)$", re.DOTALL)
_HOST_REST = re.compile(r"^(\[[^\]]*\]|[^/?:@#\s]*)(:\d*)?(/[^?@]*)?(\?.*)?$", re.DOTALL)
_USERNAME = re.compile(r"^[^:/@?#\s]*$")
# user-info password: up to the LAST @ of the whitespace-free run (an unencoded @ or / stays inside)
_USERINFO_IN_TEXT = re.compile(r"(://[^:/@\s]*:)(\S*)(@[^@\s]*)")
# scheme://name:secret/ without an @: a password whose @host was forgotten reads as a port; a port that
# is not digits is never valid, so masking it loses nothing
_HOSTLESS_SECRET_IN_TEXT = re.compile(r"(://[^:/@\s\[\]]+:)(?!\d*(?:[/?#\s]|$))([^/?#@\s]+)(?=[/?#\s]|$)")
_QUERY_SECRET_IN_TEXT = re.compile(r"([?&;][\w.-]*(?:password|passwd)=)([^&\s]*)", re.IGNORECASE)
# the URL-encoded forms of the two URL patterns (a URL inside a link or a query string)
_ENCODED_USERINFO = re.compile(r"(%3A%2F%2F[^\s:/@%]*(?:%(?!3A|40)[0-9A-Fa-f]{2}[^\s:/@%]*)*%3A)(\S*?)(%40)", re.I)
_ENCODED_QUERY_SECRET = re.compile(r"((?:%3F|%26|%3B)[\w.-]*(?:password|passwd)%3D)((?:[^\s&%]|%(?!26)[0-9A-Fa-f]{2})*)", re.I)
# key: value / key=value / "key": "value" for any *password / passwd key (YAML, logs, printed dicts)
_KEY_VALUE_SECRET = re.compile(r"""((?<![\w-])[\w.-]*(?:password|passwd)["']?\s*[:=]\s*["']?)(?!\*\*\*)([^"'\s,&;}]+)""", re.I)
_NOT_A_SECRET = {"yes", "no", "true", "false", "none", "null", "required"}  # "(using password: YES)"


def is_secret_key(key: str) -> bool:
    """A query key that carries a password (``password``, ``passwd``, ``*password``)."""
    low = key.lower()
    return low == "passwd" or low.endswith("password")


def parse_url(raw: str | URL) -> URL:
    """Parse a URL once, tolerating passwords with unencoded ``@ / ? #``; query ``password``/``passwd``
    move into the user-info, where SQLAlchemy never prints them."""
    url = raw if isinstance(raw, URL) else _parse_text(str(raw))
    query = dict(url.query)
    found = {k: v for k, v in query.items() if k.lower() in PASSWORD_KEYS}
    values = {url.password, *(_single(k, v) for k, v in found.items())} - {None}
    if len(values) > 1:
        raise ConfigError(f"the database URL gives {len(values)} different passwords "
                          f"({', '.join(['user-info'] * (url.password is not None) + sorted(found))})",
                          hint="give the password once, best through a profile's password_env")
    if found:
        url = url.difference_update_query(list(found)).set(password=values.pop())
    return url


def _single(key: str, value) -> str:
    if isinstance(value, tuple):
        if len(set(value)) > 1:
            raise ConfigError(f"the database URL repeats ?{key}= with different values", hint="give it once")
        return value[0]
    return value


def _parse_text(text: str) -> URL:
    match = _SCHEME.match(text.strip())
    if not match:
        return make_url(text)  # raises ArgumentError with SQLAlchemy's own wording
    scheme, rest = match.groups()
    at = _userinfo_end(rest)
    if at is None:
        return make_url(f"{scheme}://{rest}")
    user, _, password = rest[:at].partition(":")
    url = make_url(f"{scheme}://{rest[at + 1:]}")
    return url.set(username=unquote(user) or None,
                   password=unquote(password) if ":" in rest[:at] else None)


def _userinfo_end(rest: str) -> int | None:
    """Index of the ``@`` that ends the user-info: the rightmost one after which a host (and a path)
    follows and before which a plain user name stands; a database path wins over a bare host."""
    valid = []
    for i in [m.start() for m in re.finditer("@", rest)][::-1]:
        head, tail = rest[:i], rest[i + 1:]
        if _USERNAME.match(head.partition(":")[0]) and _HOST_REST.match(tail):
            valid.append((i, "/" in tail.split("?", 1)[0]))
    with_path = [i for i, has_path in valid if has_path]
    return with_path[0] if with_path else (valid[0][0] if valid else None)


def redact_url(url: str | URL) -> str:
    """Render a URL with every password (user-info and query) replaced by ``***`` (safe to log or store).

    A read-only SQLite URI (``sqlite:///file:/p.sqlite?mode=ro&uri=true``) is shown as the
    plain ``sqlite:////p.sqlite`` the user gave.
    """
    try:
        parsed = parse_url(url)
    except (ArgumentError, ValueError, ConfigError):
        return redact_text(str(url))
    if parsed.get_backend_name() == "sqlite" and (parsed.database or "").startswith("file:"):
        return redact_text(f"sqlite:///{parsed.database[5:]}")
    secrets = [k for k in parsed.query if is_secret_key(k)]
    if secrets:
        parsed = parsed.update_query_dict({k: MASK for k in secrets})
    return redact_text(parsed.render_as_string(hide_password=True))


def redact_text(text: str) -> str:
    """Mask every password inside free text: ``scheme://user:password@`` (up to the last ``@`` of the
    URL, so an unencoded ``@`` or ``/`` does not leak the tail), ``?password=``/``passwd=``/``*password=``,
    their URL-encoded forms, and ``password: value`` as YAML, logs and printed dicts write it (an error
    line quoting a config value, a report quoting a log)."""
    text = _USERINFO_IN_TEXT.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    text = _HOSTLESS_SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)
    text = _QUERY_SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)
    text = _ENCODED_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    text = _ENCODED_QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _KEY_VALUE_SECRET.sub(lambda m: m.group(0) if _not_a_secret(m.group(2)) else m.group(1) + MASK, text)


def _not_a_secret(value: str) -> bool:
    return value.rstrip(").]").lower() in _NOT_A_SECRET


def carries_credentials(value: str | None) -> bool:
    """True when ``value`` (a URL or free text holding one) carries a password in any form the gate knows:
    user-info, ``password``/``passwd`` or any ``*password`` query key. The schedule printers refuse such a
    value, so the rule is this module's one definition of a secret rather than a second regex."""
    if not value or "://" not in value:
        return False
    try:
        url = parse_url(value)
    except (ArgumentError, ValueError, ConfigError):
        return redact_text(value) != value
    return url.password is not None or any(is_secret_key(k) for k in url.query) or redact_text(value) != value


def secrets_in_text(text: str) -> list[str]:
    """The passwords :func:`redact_text` masks in ``text`` (user-info, host-less ``name:secret/``, query keys),
    so a caller can also scrub them where the text reappears changed (a URL read as a path loses a ``/``)."""
    found = [m.group(2) for pattern in (_USERINFO_IN_TEXT, _HOSTLESS_SECRET_IN_TEXT, _QUERY_SECRET_IN_TEXT,
                                        _ENCODED_USERINFO, _ENCODED_QUERY_SECRET) for m in pattern.finditer(text)]
    found += [m.group(2) for m in _KEY_VALUE_SECRET.finditer(text) if not _not_a_secret(m.group(2))]
    return [s for s in found if s and s != MASK]


MIN_SECRET = 3  # shorter values would mask ordinary text wherever they occur; the URL patterns still catch them


def secret_forms(value) -> list[str]:
    """Every password ``value`` (a URL, or a text holding one) carries, as typed and URL-encoded, to scrub
    wherever it reappears, changed or not: what the gate's parser finds (user-info with raw ``@ / ? #``,
    ``password``/``passwd``/any ``*password`` query key) and what :func:`secrets_in_text` finds."""
    if not isinstance(value, str) or "://" not in value:
        return []
    found = secrets_in_text(value)
    try:
        url = parse_url(value)
        found += [url.password] if url.password else []
        found += [str(v) for k, v in url.query.items() if is_secret_key(k)]
    except (ArgumentError, ValueError, RcaError):
        pass  # not a URL the parser takes: the text patterns above are all there is
    return sorted({form for p in found if p and p != MASK and len(p) >= MIN_SECRET
                   for form in (p, quote(p, safe=""))}, key=lambda f: (-len(f), f))


@dataclass
class GatedUrl:
    """What the engine is built from: ``url`` holds no secret (a password shows as ``***`` even
    unhidden); ``secrets`` are driver keywords handed over only at connect time."""

    url: URL
    secrets: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)

    def secret_values(self) -> list[str]:
        """Every secret value, to scrub from driver messages."""
        return [v for v in self.secrets.values() if v]


def gate_url(url: URL) -> GatedUrl:
    """Split ``url`` into a printable URL and its secrets, refusing options that are not allowed."""
    url = parse_url(url)
    secrets: dict[str, str] = {}
    if url.password is not None:
        secrets["password"] = url.password
        url = url.set(password=MASK)
    if url.get_backend_name() == "sqlite" and (secrets or any(is_secret_key(k) for k in url.query)):
        raise ConfigError("a SQLite database URL carries a password, which SQLite does not take",
                          hint="drop the password: sqlite:///path/to/file.sqlite")
    if url.get_backend_name() not in ("mysql", "mariadb"):
        return GatedUrl(url, secrets)
    if any(not _latin1(v) for v in secrets.values()):
        raise ConfigError("the database password has a character outside Latin-1, which the MySQL protocol "
                          "(pymysql) cannot send", hint="change the password to ASCII, or check the URL's %-escapes")
    timeouts: dict[str, float] = {}
    for key, value in url.query.items():
        if key in REFUSED_WHY or key not in ALLOWED_MYSQL_OPTIONS:
            why = REFUSED_WHY.get(key, "it is not an option the toolkit knows to be harmless")
            raise ConfigError(f"database URL option {key!r} is refused: {why}",
                              hint=f"remove ?{key}= from the URL; allowed: {', '.join(ALLOWED_MYSQL_OPTIONS)}")
        if is_secret_key(key):
            secrets[key] = _single(key, value)
        elif key in TIMEOUT_OPTIONS:
            timeouts[key] = seconds_setting(f"URL option {key}", _single(key, value))
    moved = [k for k in url.query if is_secret_key(k) or k in TIMEOUT_OPTIONS]
    return GatedUrl(url.difference_update_query(moved), secrets, timeouts)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
