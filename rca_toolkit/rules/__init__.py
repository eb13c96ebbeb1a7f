"""Domain rules, each defined once: call ids, function families, session states, error
signatures, time zones, JSON values, booking verdict bands.

Rules import nothing but the top-level basics (``config``, ``errors``, ``distinct``); where a
rule is also needed inside SQL, its SQL twin sits beside the pandas one.
"""

from rca_toolkit.frames import use_python_text  # noqa: E402

use_python_text()  # before any frame is made
