"""The synthetic demo world: tables of the production schema with the documented incidents injected.

:func:`build` writes it into an empty SQLite file or MariaDB database and returns its ground
truth; the modules beside this one plan, render and load it (``world`` is the entry point).
"""

from rca_toolkit.demo.world import GENERATOR, NOTE, build, default_truth_path, generate

__all__ = ["GENERATOR", "NOTE", "build", "default_truth_path", "generate"]
