"""The demo world's store, opened read-only as the analyses open it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rca_toolkit.sources import loaders, store


@pytest.fixture()
def demo_store(demo_sqlite, tmp_path):
    url, _ = demo_sqlite
    source = loaders.engine_for(url)
    folder = Path(tmp_path) / "store"
    store.refresh(source, folder, storage_zone=loaders.storage_zone(source))
    source.dispose()
    yield store.open_store(folder)
    store.close(folder)
