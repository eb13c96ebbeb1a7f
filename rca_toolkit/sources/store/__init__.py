"""The local analytical store: each analysed database copied once into DuckDB, then kept up to date.

Why: counting a month of calls on a production server at its default settings was random I/O that the
naive full read beat; a columnar copy is read sequentially once and then only where it changed
(:mod:`extract`). ``tables`` says what is stored, ``files`` where (``<cache_dir>/<fingerprint>/``, owner
only), ``catalog`` what a store holds and from when, ``engine`` opens it read-only for the loaders.
"""

from rca_toolkit.sources.store.engine import (age_s, check_due, close, fresh_store, is_store, open_store, query_frame, read_note, refresh_if_old,
                                             status, storage_zone)
from rca_toolkit.sources.store.extract import Refresh, refresh
from rca_toolkit.sources.store.files import drop, fingerprint, folder
from rca_toolkit.sources.store.tables import ERROR_MESSAGE_FOLDED, METADATA_CALL_ID, SESSION_COLUMNS, SESSION_REAL

__all__ = ["ERROR_MESSAGE_FOLDED", "METADATA_CALL_ID", "SESSION_COLUMNS", "SESSION_REAL", "Refresh", "age_s", "check_due", "close", "drop", "fingerprint", "folder", "fresh_store", "is_store", "open_store", "query_frame", "read_note",
           "refresh", "refresh_if_old", "status", "storage_zone"]
