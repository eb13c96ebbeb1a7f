"""Where data comes from: database engines, the schema, loaders, file formats, imports.

Everything that reads the analysed database or a user's file lives here and returns typed
pandas frames; nothing here decides what the data means (that is ``rules`` and ``analyses``).
"""

import rca_toolkit.frames  # noqa: F401,E402 - pandas' text storage before any frame is made
