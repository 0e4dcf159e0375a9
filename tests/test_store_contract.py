"""Each store backend of ``iranpki.store.BACKENDS`` passes the store contract
(``tests/store_contract.py``); a backend with no class here fails the first test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from iranpki.clock import Clock
from iranpki.store import BACKENDS, Store, open_store

from .store_contract import StoreContract


class TestSqliteStore(StoreContract):
    scheme = "sqlite"

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[Clock], Store]:
        return lambda clock: open_store(f"sqlite:///{tmp_path}/contract.sqlite3", clock=clock, create=True)


class TestPostgresStore(StoreContract):
    scheme = "postgresql"

    @pytest.fixture
    def make_store(self, postgresql: dict[str, str]) -> Callable[[Clock], Store]:
        from .conftest import new_database

        url = new_database(postgresql)
        return lambda clock: open_store(url, clock=clock, create=True)


def test_every_backend_is_held_to_the_contract() -> None:
    held = {cls.scheme for cls in StoreContract.__subclasses__()}
    assert held == set(BACKENDS), f"store backends without a contract test: {set(BACKENDS) - held}"
