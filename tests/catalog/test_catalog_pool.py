"""PostgreSQL catalog connections: the pool pings a connection that sat idle before
handing it out (catalog/store.py), so one the database ended meanwhile (a restart, an
idle timeout) is replaced instead of failing the next transaction."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from catalog_urls import PG_ADMIN, catalog_urls

from medark.catalog import job_queue, store
from medark.catalog.store import Catalog
from medark.errors import CatalogError


def _end_connections(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()",
                                 (database,)).fetchall())


def test_an_idle_connection_the_database_ended_is_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in catalog_urls("postgresql", tmp_path / "unused.sqlite", "medark_pool"):
        catalog = Catalog(url)
        try:
            assert job_queue.list_jobs(catalog, institutions=None) == []
            monkeypatch.setattr(store, "PING_IDLE", 0.0)  # every connection idle enough
            assert _end_connections(url) >= 1
            assert job_queue.list_jobs(catalog, institutions=None) == []
        finally:
            catalog.close()


def test_a_connection_in_use_a_moment_ago_is_not_pinged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ping within PING_IDLE of its last use (the round trip the pool saves): a
    connection ended in that moment fails its one transaction, and the pool then
    connects anew."""
    for url in catalog_urls("postgresql", tmp_path / "unused.sqlite", "medark_pool"):
        catalog = Catalog(url)
        try:
            monkeypatch.setattr(store, "PING_IDLE", 3600.0)
            assert job_queue.list_jobs(catalog, institutions=None) == []
            assert _end_connections(url) >= 1
            with pytest.raises(CatalogError):
                job_queue.list_jobs(catalog, institutions=None)
            assert job_queue.list_jobs(catalog, institutions=None) == []
        finally:
            catalog.close()
