"""`medark server`: the management API (FastAPI on uvicorn) over the catalog.

A layer of its own above `service/`, beside `cli/` (docs/architecture.md): it uses the
service and catalog layers, and only `cli/commands/server.py` imports it. Users, roles
with separation of duties, institutions, sessions and API tokens live in the catalog
(migration 0006), so several server processes can share one PostgreSQL catalog.
"""
