"""The importer's surface: every public function is used, and docstrings point only to code that exists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import rca_toolkit.sources
from rca_toolkit.sources import importer

PACKAGE = Path(rca_toolkit.__file__).parent


def test_every_public_importer_function_is_called_by_the_toolkit():
    """A public entry no command reaches (import_file wrote Retell rows another way) misleads readers."""
    sources = {path: path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}
    own = Path(importer.__file__).resolve()
    unused = []
    for name, function in inspect.getmembers(importer, inspect.isfunction):
        if function.__module__ != importer.__name__ or name.startswith("_"):
            continue
        calls = sum(len(re.findall(rf"\b{name}\(", text)) for text in sources.values())
        calls -= len(re.findall(rf"^def {name}\(", sources[own], re.MULTILINE))
        if calls == 0:
            unused.append(name)
    assert unused == []


def test_every_function_a_sources_module_docstring_names_is_in_that_module():
    dangling = []
    for info in pkgutil.walk_packages(rca_toolkit.sources.__path__, "rca_toolkit.sources."):
        module = importlib.import_module(info.name)
        for name in re.findall(r":func:`~?(\w+)`", module.__doc__ or ""):
            if not callable(getattr(module, name, None)):
                dangling.append(f"{info.name}: {name}")
    assert dangling == []
