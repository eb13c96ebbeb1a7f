"""Cal.com webhook handlers and whether each clears the availability cache (incident C).

A handler that changes a booking but leaves the cached availability in place offers stale
slots, so RB030 asks of every ``handleBooking*`` method: does it clear? The answer is read
from the PHP syntax tree (:mod:`rca_toolkit.sources.php_scan`), so comments and strings that
merely mention a cache never count.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from rca_toolkit.sources import php_scan
from rca_toolkit.errors import NotFound

CLEAR_NAME = re.compile(r"(?i)(clear|flush|forget|invalidate|bust|purge|evict)\w*(availabilit|slot)"
                        r"|(availabilit|slot)\w*(clear|flush|forget|invalidate|bust|purge|evict)")
_CACHE_VERBS = {"forget", "flush", "delete", "del", "forgetMany", "tags", "unlink", "deleteMultiple"}
_CACHE_TOPIC = re.compile(r"(?i)availab|slot")
_CALLS = ("member_call_expression", "nullsafe_member_call_expression", "scoped_call_expression", "function_call_expression")
COLUMNS = ["class", "method", "file", "line", "clears_cache", "via"]


def _php_calls(node, src: bytes):
    """(name, receiver text, string literals) of every call below ``node`` (comments never match)."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.type in _CALLS:
            name_node = cur.child_by_field_name("function" if cur.type == "function_call_expression" else "name")
            recv = cur.child_by_field_name("object") or cur.child_by_field_name("scope")
            strings = [src[n.start_byte:n.end_byte].decode(errors="replace") for n in _descend(cur)
                       if n.type in ("string", "encapsed_string", "string_content")]
            if name_node is not None:
                yield (src[name_node.start_byte:name_node.end_byte].decode(), "" if recv is None else
                       src[recv.start_byte:recv.end_byte].decode(), strings)
        stack.extend(cur.children)


def _descend(node):
    stack = list(node.children)
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(cur.children)


def _clearing_call(name: str, strings: list[str]) -> bool:
    return bool(CLEAR_NAME.search(name)) or (name in _CACHE_VERBS and any(_CACHE_TOPIC.search(s) for s in strings))


def cache_handlers(code_path, *, class_pattern: str = r"(?i)cal\.?com", method_pattern: str = r"^handleBooking") -> pd.DataFrame:
    """Every Cal.com webhook handler method and whether it clears the availability cache.

    A method clears when it calls a function whose name says so (``clearAvailabilityCache``,
    ``invalidateSlots`` ...), a cache verb (``Cache::forget``, ``->tags([...])->flush()``)
    with an availability/slot key, or (transitively) a method of the same class that does.
    """
    root = Path(code_path)
    if not root.exists():
        raise NotFound(f"code path {root} does not exist", hint="give the Laravel application's root folder")
    rows = []
    for file in php_scan.php_files(root):
        src = file.read_bytes()
        tree = php_scan.parse(src)
        for cls in _descend(tree.root_node):
            if cls.type != "class_declaration":
                continue
            cname = src[cls.child_by_field_name("name").start_byte:cls.child_by_field_name("name").end_byte].decode()
            if not re.search(class_pattern, cname):
                continue
            methods = {}
            for m in _descend(cls):
                if m.type == "method_declaration":
                    name = m.child_by_field_name("name")
                    methods[src[name.start_byte:name.end_byte].decode()] = (m, list(_php_calls(m, src)))
            clears = {n: next((f"{recv}->{c}" if recv else c for c, recv, st in calls if _clearing_call(c, st)), None)
                      for n, (_, calls) in methods.items()}
            changed = True
            while changed:  # same-class helpers: $this->x(), self::x(), static::x()
                changed = False
                for n, (_, calls) in methods.items():
                    if clears[n] is None:
                        via = next((c for c, recv, _ in calls if recv in ("$this", "self", "static") and clears.get(c)), None)
                        if via:
                            clears[n], changed = f"$this->{via} -> {clears[via]}", True
            for n, (m, _) in methods.items():
                if re.search(method_pattern, n):
                    rows.append({"class": cname, "method": n, "file": str(file.relative_to(root)),
                                 "line": m.start_point[0] + 1, "clears_cache": clears[n] is not None, "via": clears[n] or ""})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["file", "line"], kind="stable").reset_index(drop=True)
