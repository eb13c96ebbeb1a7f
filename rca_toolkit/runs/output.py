"""The one writer: every file a run leaves behind, the report index and the printed lines of a report.

Why: a promise kept by convention breaks at the next new file. Whatever a run writes (the executed
notebook, ``report.html``/``report.md``, ``params.yaml``, ``run.json``, ``metrics.json``, figures,
``signoff.md``, ``index.json``/``index.html``) and what ``rca timeline``/``rca run`` print goes through
a :class:`Policy` here, and only here:

- **credentials are redacted** in every form, by the one redaction of ``sources/credentials``
  (user-info passwords, ``?password=``/``?passwd=``/``?*password=``), plus the secret values the run
  knows (as typed and URL-encoded), the URL-encoded forms of those patterns, and ``*password`` keys
  in JSON and YAML data;
- **personal data is masked** (``rules/personal_data``: phone numbers, e-mail addresses, the names the
  data names) unless the run was asked to show it (``--show-personal-data``, for a local
  investigation); run.json records which (``"personal_data": "masked" | "shown"``).

papermill writes the executed notebook itself, so the runner passes the finished run folder through
:func:`clean_folder`, which reads every file back (JSON decoded, so an escaped ``\\u00fc`` hides
nothing; images untouched) and rewrites what still shows a secret or personal data.
``tests/runs/test_output_writer.py`` fails when anything else under ``runs/`` or ``commands/`` opens
a file for writing.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from rca_toolkit.rules import personal_data
from rca_toolkit.sources.credentials import MASK, is_secret_key, redact_text, secret_forms

SHOW_ENV = "RCA_SHOW_PERSONAL_DATA"  # "1" in the kernel of a run asked to show personal data
PARAM_ENV_PREFIX = "RCA_PARAM_"  # real parameter values in the kernel (runs/kernel.env_name)
NAMES_FILE = ".personal-names.json"  # names the kernel found in the data; read and removed by the runner
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".svgz", ".ico"}
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]{200,}$")
_DATA_URI = re.compile(r"(data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+)")


# --------------------------------------------------------------------------- the policy
@dataclass(frozen=True)
class Policy:
    """What the writer takes out: credentials always; personal data unless ``show_personal_data``.

    ``known`` are personal values found elsewhere in the same output (masked wherever they occur);
    ``secrets`` are secret values to scrub (typed and URL-encoded, see :func:`secret_forms`)."""

    show_personal_data: bool = False
    known: frozenset = field(default_factory=frozenset)
    secrets: frozenset = field(default_factory=frozenset)

    @property
    def personal_data(self) -> str:
        """The provenance word written into run.json and shown on the report."""
        return "shown" if self.show_personal_data else "masked"

    def knowing(self, *values: str) -> "Policy":
        return replace(self, known=self.known | {v for v in values if isinstance(v, str) and v.strip()})

    def with_secrets_of(self, *values: Any) -> "Policy":
        """The policy that also scrubs every secret the given URLs or texts carry."""
        return replace(self, secrets=self.secrets | {f for v in values for f in secret_forms(v)})

    # ---- applying it
    def text(self, text: str) -> str:
        """``text`` with every credential redacted and, unless shown, personal data masked; embedded
        images (``data:...;base64,`` URIs in a report page) are left as they are."""
        if not text:
            return text
        if "base64," in text:
            pieces = _DATA_URI.split(text)  # odd items are the images
            return "".join(p if i % 2 else self._text(p) for i, p in enumerate(pieces))
        return self._text(text)

    def _text(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = redact_text(text)
        if not self.show_personal_data:
            text = personal_data.mask(text, self.known)
        return text

    def value(self, value: Any, key: str = "") -> Any:
        """A copy of JSON-like data with every string cleaned, the value of a ``*password`` key masked,
        and images (``image/*`` outputs, long base64 blobs) left as they are."""
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self._item(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v, key) for v in value]
        if isinstance(value, str):
            if key.startswith("image/") or (len(value) >= 200 and _BASE64.match(value)):
                return value
            return self.text(value)
        return value

    def _item(self, key: str, value: Any) -> Any:
        if (is_secret_key(key) or key.lower().endswith("passwd")) and isinstance(value, str) and value:
            return MASK
        return self.value(value, key)

    def learn(self, texts: Iterable[str]) -> "Policy":
        """The policy that also knows every personal value these texts show (so a value cut short
        in one file is masked because it appears whole in another)."""
        if self.show_personal_data:
            return self
        found: set[str] = set()
        for text in texts:
            found |= personal_data.find(text)
        return self.knowing(*found) if found else self


def policy(show_personal_data: bool = False, *, secrets_of: Iterable[Any] = (), data: Iterable[Any] = ()) -> Policy:
    """The policy for one output: the secrets the given URLs carry, and the names the data itself names."""
    names = personal_data.names_in(*data) if data and not show_personal_data else set()
    return Policy(show_personal_data).with_secrets_of(*secrets_of).knowing(*names)


def run_policy(folder: str | Path | None = None) -> Policy:
    """The policy inside a run's kernel: personal data shown only when the runner said so, the secrets
    of the real parameter values, and the names the notebook declared (:func:`remember_names`)."""
    secrets = [v for k, v in os.environ.items() if k.startswith(PARAM_ENV_PREFIX)]
    names = _read_names(Path(folder)) if folder else []
    return Policy(os.environ.get(SHOW_ENV) == "1").with_secrets_of(*secrets).knowing(*names)


# --------------------------------------------------------------------------- writing
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace`` (a reader never
    sees half a file). Raw: callers outside this module use the cleaning writers below."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str, policy: Policy = Policy()) -> Path:
    return atomic_write_bytes(path, policy.text(text).encode("utf-8"))


def write_json(path: str | Path, data: Any, policy: Policy = Policy(), **dumps: Any) -> Path:
    """``data`` cleaned value by value, then serialised (indent 2, UTF-8 kept, a final newline)."""
    options = {"indent": 2, "ensure_ascii": False, "default": str} | dumps
    return atomic_write_bytes(path, (json.dumps(policy.value(_plain(data)), **options) + "\n").encode("utf-8"))


def names_sorted(metrics: dict) -> dict:
    """The metrics by name (a stable file to diff), each value's own keys in the order the notebook gave them.
    Why not ``sort_keys``: it sorts within values too, and the index lists ``key_numbers`` in that order."""
    return dict(sorted(metrics.items()))


def write_yaml(path: str | Path, data: Any, policy: Policy = Policy()) -> Path:
    import yaml

    text = yaml.safe_dump(policy.value(_plain(data)), sort_keys=False, allow_unicode=True)
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes, policy: Policy = Policy()) -> Path:
    """Bytes of any kind: images as they are, JSON (a notebook) cleaned in its decoded strings, text
    cleaned as text, anything else scrubbed of the known secret values."""
    return atomic_write_bytes(path, clean_bytes(Path(path), data, policy))


def clean_bytes(path: Path, data: bytes, policy: Policy) -> bytes:
    if path.suffix.lower() in BINARY_SUFFIXES:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for secret in sorted(policy.secrets, key=len, reverse=True):
            data = data.replace(secret.encode(), MASK.encode())
        return data
    if path.suffix.lower() in (".ipynb", ".json"):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, (dict, list)):
            cleaned = policy.value(document)
            if cleaned == document:
                return data
            if path.suffix.lower() == ".ipynb":  # nbformat's own layout
                return (json.dumps(cleaned, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
            return (json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    cleaned_text = policy.text(text)
    return data if cleaned_text == text else cleaned_text.encode("utf-8")


def clean_folder(folder: str | Path, policy: Policy) -> Policy:
    """Pass every file under ``folder`` through the writer (rewritten only when something was taken
    out); returns the policy that also knows every personal value the folder showed."""
    files = [p for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.suffix.lower() not in BINARY_SUFFIXES]
    policy = policy.learn(t for p in files for t in _texts_of(p))
    for path in files:
        data = path.read_bytes()
        cleaned = clean_bytes(path, data, policy)
        if cleaned != data:
            atomic_write_bytes(path, cleaned)
    return policy


def _texts_of(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if path.suffix.lower() in (".ipynb", ".json"):
        try:
            return list(_strings(json.loads(text)))
        except (ValueError, RecursionError):
            pass
    return [text]


def _strings(value: Any, key: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, str) and not key.startswith("image/"):
        yield value


def _plain(data: Any) -> Any:
    """JSON-able plain data (numpy scalars, timestamps, NaN as the JSON encoder would give them)."""
    from rca_toolkit.rules.jsonutil import json_default

    return json.loads(json.dumps(data, default=json_default))


# --------------------------------------------------------------------------- names the data names
def remember_names(folder: str | Path, names: Iterable[str]) -> Path | None:
    """Add names found in the data to the run folder's hidden list (the kernel's side; the runner
    masks them in every file and removes the list before the folder is complete)."""
    names = set(names)
    if not names:
        return None
    path = Path(folder) / NAMES_FILE
    merged = sorted(set(_read_names(Path(folder))) | names)
    return atomic_write_bytes(path, json.dumps(merged, ensure_ascii=False).encode("utf-8"))  # the names themselves


def take_names(folder: str | Path) -> list[str]:
    """The names the kernel remembered; the hidden list is removed."""
    names = _read_names(Path(folder))
    (Path(folder) / NAMES_FILE).unlink(missing_ok=True)
    return names


def _read_names(folder: Path) -> list[str]:
    try:
        names = json.loads((folder / NAMES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


# --------------------------------------------------------------------------- printed lines
def echo(text: str, policy: Policy = Policy(), *, file=None) -> None:
    """Print ``text`` through the policy (stdout unless ``file``)."""
    print(policy.text(str(text)), file=file or sys.stdout)


def echo_json(data: Any, policy: Policy = Policy()) -> None:
    print(json.dumps(policy.value(_plain(data)), indent=2, ensure_ascii=False))


__all__ = ["BINARY_SUFFIXES", "NAMES_FILE", "Policy", "SHOW_ENV", "atomic_write_bytes", "clean_bytes", "clean_folder",
           "echo", "echo_json", "policy", "remember_names", "run_policy", "take_names", "write_bytes",
           "write_json", "write_text", "write_yaml"]
