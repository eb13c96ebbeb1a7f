"""Where data comes from: database engines, the schema, loaders, file formats, imports.

Everything that reads the analysed database or a user's file lives here and returns typed
pandas frames; nothing here decides what the data means (that is ``rules`` and ``analyses``).
"""

from rca_toolkit.frames import use_python_text  # noqa: E402

use_python_text()  # before any frame is made
