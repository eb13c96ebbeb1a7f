"""File formats -> frames and typed objects (Retell call objects, Laravel logs, exports).

Each module reads one format, tolerates its documented dirt (data-contract P1-P20) and
raises :class:`rca_toolkit.errors.InputFormatError` with a hint when a file is not what it
was given as.
"""
