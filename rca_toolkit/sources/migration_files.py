"""The migration files Laravel itself sees, so pending/missing lists say what ``migrate:status`` says.

Why: ``php artisan migrate:status`` marks every file the framework's Migrator finds as Ran or
Pending; a lister of our own (``Path.glob("*.php")``) finds other files and names them otherwise.
The rule is the framework's, ``Illuminate\\Database\\Migrations\\Migrator`` (laravel/framework):

.. code-block:: php

    public function getMigrationFiles($paths)
    {
        return (new Collection($paths))
            ->flatMap(fn ($path) => str_ends_with($path, '.php') ? [$path] : $this->files->glob($path.'/*_*.php'))
            ->filter()
            ->values()
            ->keyBy(fn ($file) => $this->getMigrationName($file))
            ->sortBy(fn ($file, $key) => $key)
            ->all();
    }

    public function getMigrationName($path)
    {
        return str_replace('.php', '', basename($path));
    }

(the 12.x form; 5.x writes ``Collection::make($paths)->flatMap(function ($path) { return
$this->files->glob($path.'/*_*.php'); })->filter()->sortBy(...)->values()->keyBy(...)``: the same
files under the same names). ``Filesystem::glob`` is PHP's ``glob()``, the C library's glob(3)
without flags, so what it never returns is never a migration:

- names without an underscore before ``.php`` (``*_*.php``), other suffixes (``.php.bak``,
  ``.php.txt``) and other cases (``.PHP``: glob matches case-sensitively);
- hidden names (``.x_y.php``, macOS ``._x_y.php``): a leading ``.`` must be matched explicitly;
- anything in a subfolder: the pattern has no ``**`` and glob does not recurse.

Whatever the folder lists under a matching name is returned, files, symlinks and directories alike
(glob does not look at the type). The name drops *every* ``.php`` of the basename, and a later file
with the same name replaces an earlier one (``keyBy``). Package paths (``loadMigrationsFrom``) and
``--path`` are not seen here: only the folder given.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path

from rca_toolkit.errors import NotFound

MIGRATION_GLOB = "*_*.php"
RULE = "Illuminate\\Database\\Migrations\\Migrator::getMigrationFiles: $this->files->glob($path.'/*_*.php')"
# The laravel/framework majors whose Migrator was read for this rule (5.x and 12.x sources; the
# glob line and getMigrationName did not change in between).
RULE_READ_FOR = (5, 12)
_MAJOR = re.compile(r"^v?(\d+)\.")


def migration_name(path) -> str:
    """``getMigrationName``: the basename with every ``.php`` removed (``a_b.php.php`` -> ``a_b``)."""
    return os.path.basename(str(path)).replace(".php", "")


def is_migration_file_name(name: str) -> bool:
    """True when PHP's ``glob($path.'/*_*.php')`` returns an entry of this name."""
    return not name.startswith(".") and fnmatch.fnmatchcase(name, MIGRATION_GLOB)


def migration_files(folder) -> dict[str, Path]:
    """Migration name -> path, sorted by name, for one folder, as the Migrator finds them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"migrations folder {folder} does not exist", hint="give the app's database/migrations")
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries)  # glob(3) sorts (C locale: by bytes)
    found: dict[str, Path] = {}
    for name in names:
        if is_migration_file_name(name):
            found[migration_name(name)] = folder / name  # keyBy: the later of two equal names wins
    return dict(sorted(found.items()))


def laravel_version(*roots) -> str | None:
    """The laravel/framework version an application vendors, from the first ``composer.lock`` found
    in ``roots`` (``packages`` or ``packages-dev``); None when there is none or it does not say."""
    for root in roots:
        if root is None:
            continue
        lock = Path(root) / "composer.lock"
        if not lock.is_file():
            continue
        try:
            data = json.loads(lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in ("packages", "packages-dev"):
            packages = data.get(key) if isinstance(data, dict) else None
            for package in packages if isinstance(packages, list) else []:
                if isinstance(package, dict) and package.get("name") == "laravel/framework":
                    version = package.get("version")
                    return str(version) if version else None
    return None


def rule_note(version: str | None) -> str:
    """What the file list rests on: the rule, and whether it was read for the vendored version."""
    said = f"Laravel's own rule ({RULE})"
    if version is None:
        return f"migration files listed by {said}; no composer.lock names the laravel/framework version"
    match = _MAJOR.match(version)
    major = int(match.group(1)) if match else None
    if major is not None and RULE_READ_FOR[0] <= major <= RULE_READ_FOR[1]:
        return f"migration files listed by {said}, as laravel/framework {version} (composer.lock) does"
    return (f"migration files listed by {said}; composer.lock vendors laravel/framework {version}, whose Migrator "
            f"was not read for this rule (read for {RULE_READ_FOR[0]}.x-{RULE_READ_FOR[1]}.x): check it")
