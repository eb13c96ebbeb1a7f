"""Personal data masked inside what an import stores: text, and every string of a JSON value.

Why: ``rca import`` writes Cal.com deliveries, Laravel log entries and call-history rows into a
scratch database that leaves the analyst's machine. What is personal (phone numbers, e-mail
addresses, the names the data names) is decided by the one rule, :mod:`rca_toolkit.rules.personal_data`;
this module only walks dicts and lists so that rule reaches every field, keys and shapes unchanged.
"""

from __future__ import annotations

from typing import Any, Iterable

from rca_toolkit.rules import personal_data


def mask_text(text, names: Iterable[str] = ()):
    """``text`` with whole known names as one ``[NAME]`` ("Max Muster" -> "[NAME]", not two tokens),
    then everything :func:`personal_data.mask` masks; anything but a string is returned as it is."""
    if not isinstance(text, str) or not text:
        return text
    names = sorted({n for n in names if isinstance(n, str) and n.strip()}, key=len, reverse=True)
    for name in names:
        text = text.replace(name, personal_data.NAME_MASK)
    return personal_data.mask(text, names)


def mask_value(value: Any, names: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings, numbers) with every string masked by
    :func:`mask_text`; dict keys, numbers, booleans and None are kept."""
    names = list(names)
    if isinstance(value, dict):
        return {k: mask_value(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v, names) for v in value]
    return mask_text(value, names)


def names_of(*values: Any) -> list[str]:
    """The names the values themselves name (person-name keys, said names), for :func:`mask_value`."""
    return sorted(personal_data.names_in(*values))
