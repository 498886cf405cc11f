"""The two catalogs every catalog test runs on: a SQLite file, and a throwaway database on
the running PostgreSQL (127.0.0.1:5432, dropped afterwards), as a regional center uses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
KINDS = ["sqlite", "postgresql"]


def catalog_urls(kind: str, sqlite_file: Path, prefix: str) -> Iterator[str]:
    """Yields one catalog URL of `kind` (a fixture's param): `sqlite_file`, or a database
    named `prefix`_<random> on PostgreSQL."""
    if kind == "sqlite":
        yield f"sqlite:///{sqlite_file}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
