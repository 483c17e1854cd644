"""Fixtures for central: a migrated SQLite store per test (PostgreSQL in test_postgres.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.db import open_store
from tests.central.results import register_sites
from tests.central.webfixtures import add_users, seed


@pytest.fixture
def store(tmp_path: Path):
    """(engine, session factory) of a fresh, migrated SQLite file; the test schools known."""
    engine, sessions = open_store(f"sqlite:///{tmp_path / 'central.db'}")
    register_sites(sessions)
    try:
        yield engine, sessions
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (Debian's postgresql package)."""
    from benchmarks.localpostgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_store(postgres_server):
    """(engine, session factory) of a fresh, migrated PostgreSQL database."""
    engine, sessions = open_store(postgres_server.create_database())
    register_sites(sessions)
    try:
        yield engine, sessions
    finally:
        engine.dispose()


@pytest.fixture
def site(store):
    """(session factory, seeded ids) of a store with the dashboard's test users and rows."""
    _, sessions = store
    add_users(sessions)
    return sessions, seed(sessions)
