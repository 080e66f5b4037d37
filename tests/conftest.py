"""Shared fixtures: a real PostgreSQL server and fresh databases on it.

The server is the embedded one (started in a temporary home for the test session), or the
server named by ``SKYREG_TEST_DATABASE_URL`` when that is set; every test that needs a registry
gets a database of its own, created on that server and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from skyreg import Registry
from skyreg.db.engine import normalize_url

TEST_URL_ENV = "SKYREG_TEST_DATABASE_URL"

pytest_plugins = ["embedded_fixtures", "service_fixtures"]

# Embedded servers started by tests (and by the skyreg processes they spawn) stop as soon as
# their last user leaves, so that no server outlives the temporary home it runs in. Tests of
# lingering servers ask for a linger time explicitly.
os.environ["SKYREG_SERVER_LINGER"] = "0"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a database on the test server (used only to create and drop test databases)."""
    configured = os.environ.get(TEST_URL_ENV)
    if configured:
        yield normalize_url(configured)
        return
    from skyreg.db.embedded import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="skyreg-t-"))
    server = EmbeddedServer(home)
    try:
        yield server.acquire()
    finally:
        server.release()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def database_factory(server_url: str) -> Iterator[Callable[[], str]]:
    """Call it to get the URL of a new, empty database."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []
    prefix = f"skyreg_test_{os.getpid()}"

    def make() -> str:
        name = f"{prefix}_{len(created)}"
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(database_factory: Callable[[], str]) -> str:
    """A fresh empty database for one test."""
    return database_factory()


@pytest.fixture
def registry(database_url: str) -> Iterator[Registry]:
    """A registry on a fresh database."""
    with Registry.connect(database_url) as reg:
        yield reg
