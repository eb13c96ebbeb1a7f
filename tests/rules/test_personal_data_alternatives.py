"""``personal_data.mask`` finds each value and each head of it by its literal and tests what surrounds it, without
compiling a regex per text: it must mask exactly as the one alternation over all of them did (that alternation is
kept here as the oracle: leftmost match, the first alternative there, then on after it)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import personal_data
from rca_toolkit.rules.personal_data import EMAIL_MASK, NAME_MASK, PHONE_MASK, find, name_parts


def _whole_alternation(text: str, known) -> str:
    """The rule before: every value and every head of it a cut text may end with, longest first, in one regex."""
    if not text:
        return text
    values = frozenset(v for v in {*known, *find(text)} if v and v.strip())
    alternatives = []
    mails = {v for v in values if "@" in v}
    phones = {v for v in values - mails if sum(c.isdigit() for c in v) >= 6 and not re.search(r"[A-Za-zÄÖÜäöüß]", v)}
    for value in mails:
        alternatives += [(re.escape(value) + r"(?![\w.-]*\w)", len(value), "email")]
        alternatives += [(re.escape(value[:n]) + r"(?=\.\.\.|…|[^\w.@+-]|$)", n, "email") for n in range(6, len(value))]
    for value in phones:
        alternatives += [(re.escape(value) + r"(?!\d)", len(value), "phone")]
        heads = [value[:n] for n in range(len(value) - 1, 0, -1) if value[n - 1].isdigit()
                 and sum(c.isdigit() for c in value[:n]) >= 5]
        alternatives += [(re.escape(h) + r"(?!\d)(?=\.\.\.|…|\W|$)", len(h), "phone") for h in heads]
    for part in name_parts(values - mails - phones):
        alternatives += [(r"(?<!\w)" + re.escape(part) + r"(?!\w)", len(part), "name")]
        alternatives += [(r"(?<!\w)" + re.escape(part[:n]) + r"(?=\.\.\.|…|$|<|\"|\n)", n, "name")
                         for n in range(3, len(part)) if len(part) >= 5]
    if not alternatives:
        return text
    alternatives.sort(key=lambda a: -a[1])
    kinds = {f"g{i}": {"email": EMAIL_MASK, "phone": PHONE_MASK, "name": NAME_MASK}[k] for i, (_, _, k) in enumerate(alternatives)}
    pattern = re.compile("|".join(f"(?P<g{i}>{r})" for i, (r, _, _) in enumerate(alternatives)))
    return pattern.sub(lambda m: kinds[m.lastgroup], text)


NAMES = ["Max Mustermann", "Erika Musterfrau-Schmidt", "Hans von Müller", "Jürgen", "Anna", "O'Neill", "Ann-Kathrin",
         "max.mustermann@example.com", "a.b@c.de", "+49 30 1234567", "030 1234567", "0151-23456789"]
# the names and their heads cut as tables and pandas cut them, next to what ends or continues a word
PIECES = NAMES + ["Muster", "Mustermann...", "Musterm…", "Müll", "max.muster", "max.mustermann@exa…", "+49 30 123...",
                  "030 12345", " ", "\n", '"', "<", ".", "-", "_", "x", "7", "Mein Name ist Hans Weber", "Herr Weber",
                  "Termin mit ", "Tel. ", "@", "…", "..."]
texts = st.lists(st.sampled_from(PIECES), max_size=10).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=texts, known=st.lists(st.sampled_from(NAMES), max_size=3))
def test_masking_by_literals_equals_the_whole_alternation(text, known):
    assert personal_data.mask(text, known) == _whole_alternation(text, known)


def test_a_cut_head_and_a_whole_name_are_both_masked():
    text = "Termin mit Max Mustermann; Notiz: Rückruf an Musterm… (max.mustermann@exa…)"
    masked = personal_data.mask(text, ["Max Mustermann", "max.mustermann@example.com"])
    assert masked == _whole_alternation(text, ["Max Mustermann", "max.mustermann@example.com"])
    assert "Muster" not in masked and "max.muster" not in masked
