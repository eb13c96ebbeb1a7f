"""Personal data in text and data: phone numbers, e-mail addresses and the names the data itself names.

Why: reports, printed lines and imported scratch databases leave the analyst's machine; the people who
called must not. One rule, so ``rca import``, the run writer (``runs/output``) and the CLI mask the
same things in the same way, with the same tokens ``[PHONE]``, ``[EMAIL]`` and ``[NAME]``.

- **Phone numbers**: ``phonenumbers`` (region DE) decides; a candidate starts with ``+``, ``00``, ``0``
  or ``(`` at a word start (German national and international forms, E.164), so ids, timestamps and
  measurements are left alone. An E.164-shaped ``+`` and 8-15 digits is masked even when no numbering
  plan knows it (``+490000000000``).
- **E-mail addresses**: a local part, ``@``, and a domain with an alphabetic top-level domain; the user
  of a URL (``scheme://user@host``) is not an address.
- **Names**: those the data names, :func:`names_in` (values of name keys such as ``name``,
  ``customer_name``, ``vorname``; Cal.com attendees; Retell dynamic variables), and those said in the
  text, :func:`said_names` ("Mein Name ist Hans Müller", "Herr Müller").

:func:`mask` masks a value wherever it occurs, and also a truncated head of it at the end of a cut
text (a table cell cut to 60 characters or pandas' ``...``), so "0151 234..." does not survive either.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from typing import Any, Iterable

PHONE_MASK, EMAIL_MASK, NAME_MASK = "[PHONE]", "[EMAIL]", "[NAME]"
REGION = "DE"

EMAIL = re.compile(r"(?<![\w.+%-])(?<!//)[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,24}(?![\w-])")
# look-behinds placed after the first character (the same matches): the scan then jumps to that character,
# many times faster than trying look-behinds at every position
E164 = re.compile(r"\+(?<![\w+]\+)\d{8,15}(?!\d)")
# where a phone number may start: + / 00 / 0 / ( at a word start; the window runs over phone characters
PHONE_START = re.compile(r"\+(?<![\w+(]\+)(?<!\d[.,:-]\+)\d|\((?<![\w+(]\()(?<!\d[.,:-]\()\+?\d"
                          r"|0(?<![\w+(]0)(?<!\d[.,:-]0)\d")  # not inside 00:02:07.52 or 2025-10-07
# what a table of numbers has and a phone number has not: a decimal with one or two digits ("52.5", "0.0")
# and a fraction in parentheses ("(0/68)", "(213/395)")
_MEASUREMENT = re.compile(r"(?<![\d.])\d+\.\d{1,2}(?![\d.])|\(\d*/")
_PHONE_CHARS = re.compile(r"[\d+()\s./\u2010-\u2015-]{0,40}")
_SEPARATOR = re.compile(r"[\s./\u2010-\u2015-]+")
_NAME_WORD = r"[A-ZÄÖÜ][^\W\d_]+(?:['’-][^\W\d_]+)*"  # a capitalised word without digits
SAID_NAME = re.compile(
    r"(?i:mein name ist|mein name lautet|ich heiße|ich heisse|name ist|my name is|name is|hier spricht)\s+"
    rf"({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})")
SALUTED_NAME = re.compile(rf"\b(?:Herrn?|Frau|Mr\.?|Mrs\.?|Ms\.?)\s+({_NAME_WORD})")
# keys whose values name a person (``name`` alone only when the value looks like one, see names_in)
_PERSON_KEY = re.compile(
    r"^(?:(?:customer|caller|client|patient|attendee|contact|guest|kunden?|person)[_ -]?)?"
    r"(?:full[_ -]?|first[_ -]?|last[_ -]?|given[_ -]?|family[_ -]?|sur|vor|nach)?name$|^kunde$",
    re.IGNORECASE)
_LOOKS_LIKE_A_NAME = re.compile(rf"^{_NAME_WORD}(?:[ -]+(?:{_NAME_WORD}|von|van|de|der|zu|di|da|del))*$")
_PARTICLES = {"von", "van", "de", "der", "den", "zu", "zum", "la", "le", "di", "da", "del", "ten", "ter", "und"}
_MAX_WALK = 200_000  # values visited by names_in: a bound, not a limit real data reaches


# --------------------------------------------------------------------------- finding
def phone_numbers(text: str) -> list[str]:
    """Every phone number in ``text`` as written there (national, international or E.164 form)."""
    import phonenumbers

    found: list[str] = [m.group(0) for m in E164.finditer(text)]
    taken_until = -1
    for start in PHONE_START.finditer(text):
        at = start.start()
        if at < taken_until:
            continue
        window = _PHONE_CHARS.match(text, at).group(0).rstrip()
        for candidate in _heads(window):  # longest first: "030 1234567 42" is a number, so is "030 1234567"
            if len(re.sub(r"\D", "", candidate)) < 6:
                break
            if _MEASUREMENT.search(candidate):
                continue
            match = next(iter(phonenumbers.PhoneNumberMatcher(candidate, REGION, leniency=phonenumbers.Leniency.VALID,
                                                              max_tries=10)), None)
            if match is not None and match.start <= 1:
                end = at + match.start + len(match.raw_string)
                if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                    continue  # "0301234abc12" is a commit id; "030 100000 0A": the shorter head is the number
                found.append(match.raw_string)
                taken_until = end
                break
    return found


def _heads(window: str) -> list[str]:
    """The window and each shorter head of it that ends before a separator, longest first."""
    heads = [window]
    for sep in reversed(list(_SEPARATOR.finditer(window))):
        head = window[:sep.start()].rstrip()
        if head and head != heads[-1]:
            heads.append(head)
    return heads


def emails(text: str) -> list[str]:
    return EMAIL.findall(text)


def said_names(text: str) -> set[str]:
    """Names the text itself says: "Mein Name ist Hans Müller" -> Hans Müller, "Herr Müller" -> Müller."""
    return {m.group(1) for m in SAID_NAME.finditer(text)} | {m.group(1) for m in SALUTED_NAME.finditer(text)}


# what each finding needs somewhere in the text: an @ (e-mail), a phone number's start (the patterns above),
# the words that say or salute a name (SAID_NAME, SALUTED_NAME)
_SAID_WORDS = ("name ist", "name lautet", "name is", "ich hei", "hier spricht")  # SAID_NAME's phrases, lower case
_SALUTES = ("Herr", "Frau", "Mr", "Ms")  # SALUTED_NAME's words

# the same, without look-behinds (RE2: pyarrow, DuckDB), for prefilters over a whole column: FINDABLE_RE2 matches
# every text findable accepts, MAY_HOLD_RE2 every text may_hold accepts, and a few more
# (tests/rules/test_personal_data_prefilter.py). RE2's \d is ASCII, Python's any decimal digit: \p{Nd}.
FINDABLE_RE2 = (r"@|(?i:name is|name lautet|herr|frau|hier spricht|ich hei)|Mr|Ms"
                r"|(?:^|[^\w+])\+\p{Nd}|(?:^|[^\w+(])\(\+?\p{Nd}|(?:^|[^\w+(.,:-]|(?:^|\D)[.,:-])0\p{Nd}")
MAY_HOLD_RE2 = r"\\u|(?i:name|kunde)|" + FINDABLE_RE2


def _said_hint(text: str) -> bool:
    """Could SAID_NAME or SALUTED_NAME match? (Substring tests: a case-insensitive regex costs ten times more.)"""
    low = text.lower()
    return any(w in low for w in _SAID_WORDS) or any(w in text for w in _SALUTES)


def findable(text: str) -> bool:
    """False only when :func:`find` finds nothing in ``text``: a few scans, a fraction of finding's cost."""
    return "@" in text or _said_hint(text) or bool(PHONE_START.search(text) or E164.search(text))


def may_hold(text: str) -> bool:
    """False only when ``mask(text, names_in(text))`` is ``text`` itself: nothing to find, no person-name key
    ("...name", "kunde"), no JSON escape that could spell one.

    Why: a store of a million rows masks each text; most (ids, SQL errors, Retell events) hold nothing, and
    this costs a hundredth of masking. ``tests/rules/test_personal_data_prefilter.py`` attacks it."""
    if not text:
        return False
    low = text.lower()
    return "name" in low or "kunde" in low or "\\u" in text or findable(text)


def find(text: str) -> set[str]:
    """The personal values ``text`` shows by itself: e-mail addresses, phone numbers and said names."""
    if not text or not findable(text):
        return set()
    return set(emails(text)) | set(phone_numbers(EMAIL.sub(EMAIL_MASK, text))) | said_names(text)


def names_in(*values: Any) -> set[str]:
    """The names the data itself names: values of person-name keys (``customer_name``, ``vorname``; a
    bare ``name`` when its value looks like a name, not ``check_customer``) anywhere in dicts, lists,
    JSON strings, data frames and dataclasses, plus the names said in any text among them.

    Column names of a frame are not keys (``tool_calls.name`` holds function names); only dict keys
    inside its cells count."""
    found: set[str] = set()
    texts: list[str] = []  # said names are looked for once, in all texts joined (NUL ends every pattern)
    stack: list[tuple[Any, str | None]] = [(v, None) for v in values]
    seen = 0
    while stack and seen < _MAX_WALK:
        value, key = stack.pop()
        seen += 1
        if isinstance(value, str):
            text = value.strip()
            if key is not None and text and _is_person_value(key, text):
                found.add(text)
            if text[:1] in "{[":
                try:
                    stack.append((json.loads(text), None))
                except (ValueError, RecursionError):
                    pass
            texts.append(value)
        elif isinstance(value, dict):
            stack += [(v, str(k)) for k, v in value.items()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack += [(v, key) for v in value]
        elif hasattr(value, "columns") and hasattr(value, "dtypes"):  # a pandas DataFrame: text cells only
            for column in value.columns:
                if value[column].dtype == object or str(value[column].dtype).startswith("string"):
                    stack += [(v, None) for v in value[column].tolist()]
        elif hasattr(value, "dtype") and hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1:  # a Series
            stack += [(v, None) for v in value.tolist()]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            stack += [(getattr(value, f.name), None) for f in dataclasses.fields(value)]
    joined = "\x00".join(texts)
    if _said_hint(joined):
        found |= said_names(joined)
    return found


@lru_cache(maxsize=4096)
def _is_person_key(key: str) -> bool:
    return bool(_PERSON_KEY.match(key))


def _is_person_value(key: str, text: str) -> bool:
    if not _is_person_key(key) or len(text) > 80 or "[" in text:
        return False
    if key.lower() == "name":  # also a function's, a service's or a kernel's name: only a person-shaped value
        return bool(_LOOKS_LIKE_A_NAME.match(text))
    return not re.search(r"\d|_|@", text)


# --------------------------------------------------------------------------- masking
def mask(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every e-mail address, phone number and name masked: those in ``known`` (found
    elsewhere in the same output) and those ``text`` shows by itself."""
    if not text:
        return text
    values = frozenset(v for v in {*known, *find(text)} if v and v.strip())
    if not values:
        return text
    # each alternative where it matches; the regex alternation they stand for takes, at the leftmost place where any
    # matches, the first of them (the longest), then goes on after it
    found = sorted(_matches(text, _alternatives(values)))
    if not found:  # none in the text, or values with nothing that identifies (a "name" of punctuation)
        return text
    out, done = [], 0
    for start, _, end, token in found:
        if start >= done:
            out += [text[done:start], token]
            done = end
    return "".join(out) + text[done:]


def name_parts(names: Iterable[str]) -> set[str]:
    """The words of each name that identify a person ("Hans von Müller" -> Hans, Müller)."""
    parts = set()
    for name in names:
        for part in re.split(r"[\s,;:!?()\"]+", name):
            part = part.strip(".'’-")
            if len(part) >= 2 and part.lower() not in _PARTICLES:
                parts.add(part)
    return parts


# what must follow a value (so that it is not the head of a longer word, address or number), and what must follow
# a head of one that a cut text ends with (pandas' "...", a table cell's "…", the end)
_AFTER = {kind: re.compile(after) for kind, after in (
    ("email", r"(?![\w.-]*\w)"), ("email cut", r"(?=\.\.\.|…|[^\w.@+-]|$)"),
    ("phone", r"(?!\d)"), ("phone cut", r"(?!\d)(?=\.\.\.|…|\W|$)"),
    ("name", r"(?!\w)"), ("name cut", r"(?=\.\.\.|…|$|<|\"|\n)"))}
_WORD_CHAR = re.compile(r"\w")
_MASKS = {"email": EMAIL_MASK, "phone": PHONE_MASK, "name": NAME_MASK}


@lru_cache(maxsize=64)
def _alternatives(values: frozenset[str]) -> tuple[tuple[str, str, str], ...]:
    """Every value and every head of it a cut text may end with, longest first: ``(literal, kind, after)``, ``after``
    the key of what must follow it in ``_AFTER`` (a name must also start a word)."""
    alternatives: list[tuple[str, str, str]] = []
    mails = {v for v in values if "@" in v}
    phones = {v for v in values - mails if sum(c.isdigit() for c in v) >= 6 and not re.search(r"[A-Za-zÄÖÜäöüß]", v)}
    for value in mails:
        alternatives += [(value, "email", "email")] + [(value[:n], "email", "email cut") for n in range(6, len(value))]
    for value in phones:
        heads = [value[:n] for n in range(len(value) - 1, 0, -1) if value[n - 1].isdigit()
                 and sum(c.isdigit() for c in value[:n]) >= 5]
        alternatives += [(value, "phone", "phone")] + [(h, "phone", "phone cut") for h in heads]
    for part in name_parts(values - mails - phones):
        alternatives += [(part, "name", "name")]
        alternatives += [(part[:n], "name", "name cut") for n in range(3, len(part)) if len(part) >= 5]
    return tuple(sorted(alternatives, key=lambda a: -len(a[0])))


def _matches(text: str, alternatives) -> list[tuple[int, int, int, str]]:
    """``(start, order, end, mask)`` of every place an alternative matches in ``text``.

    Why not one regex: compiling the alternation of every value and head for each text with other names was 1.7 ms
    of a 2 ms booking payload; finding each literal and testing what surrounds it needs no compile."""
    found = []
    for order, (literal, kind, after) in enumerate(alternatives):
        at = text.find(literal)
        while at >= 0:
            end = at + len(literal)
            if (kind != "name" or at == 0 or not _WORD_CHAR.match(text, at - 1)) and _AFTER[after].match(text, end):
                found.append((at, order, end, _MASKS[kind]))
            at = text.find(literal, at + 1)
    return found


__all__ = ["EMAIL", "EMAIL_MASK", "NAME_MASK", "PHONE_MASK", "REGION", "SAID_NAME", "SALUTED_NAME", "emails", "find",
           "mask", "name_parts", "names_in", "phone_numbers", "said_names"]
