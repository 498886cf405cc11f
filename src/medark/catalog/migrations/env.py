"""Alembic environment: run with the connection catalog/store.py hands over."""

from __future__ import annotations

from alembic import context

from medark.catalog.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
