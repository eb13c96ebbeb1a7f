"""rca_toolkit: incident analysis and runbooks for a Retell -> Laravel -> Cal.com platform.

The public API is kept small; analyses live in their own modules (``timeline``,
``compare``, ``drift`` ...) and are imported from there.
"""

from rca_toolkit.errors import RcaError

__version__ = "0.1.0"
__all__ = ["RcaError", "__version__"]
