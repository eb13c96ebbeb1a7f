"""The pandas settings every frame of the toolkit is made under.

Why: pandas 3 keeps text in pyarrow as soon as pyarrow is installed (the local store needs pyarrow), and
that changes how the toolkit's frames behave and how fast they are: ``Series.isin`` over pyarrow text
builds a Python object per looked-up value (23 s of a 90 s health report at 1M calls). The toolkit's
frames keep the Python-backed text they were written and tested with. (The local store's reads hand their texts
to the loaders in Arrow, ``store.engine.ARROW_TEXT``; ``loaders.typed`` makes them Python-backed text or
categories before a frame leaves ``sources``.) Imported by ``rules`` and
``sources``, the layers every frame passes through; ``rca --help`` does not import pandas.
"""

import pandas as pd


def use_python_text() -> None:
    """Text in frames made from here on is Python-backed (``mode.string_storage``), whatever is installed."""
    pd.set_option("mode.string_storage", "python")
