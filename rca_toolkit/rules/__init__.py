"""Domain rules, each defined once: call ids, function families, session states, error
signatures, time zones, JSON values, booking verdict bands.

Rules import nothing but the top-level basics (``config``, ``errors``, ``distinct``); where a
rule is also needed inside SQL, its SQL twin sits beside the pandas one.
"""

import rca_toolkit.frames  # noqa: F401,E402 - pandas' text storage before any frame is made
