"""A tiny "HIS" for the DR tests: an HTTP service that writes one order row per request
through the pooler, so a switch is measured the way a hospital's clients would feel it.

Run as a subprocess (closer to a real application than a thread in the test process):
    python tests/his_app.py --dsn "host=127.0.0.1 port=6432 dbname=his user=postgres" --port N

POST /orders {"ref": "..."} answers 201 {"id", "ref", "server_port"} only after COMMIT
(server_port is the PostgreSQL port that took the row, so a test sees which server it
landed on); any database error answers 503. GET /health answers 200 when `SELECT 1`
works, else 503. Each handler thread keeps one connection and opens a new one after an
error, as an application's connection pool would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

ORDERS_DDL = (
    "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, ref text UNIQUE NOT NULL,"
    " patient text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp())")


class _Db:
    """A connection per handler thread. prepare_threshold=None: pgbouncer's transaction
    pooling cannot keep prepared statements across server connections."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.local = threading.local()

    def conn(self) -> psycopg.Connection[tuple[object, ...]]:
        conn: psycopg.Connection[tuple[object, ...]] | None = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, prepare_threshold=None, connect_timeout=30)
            self.local.conn = conn
        return conn

    def drop(self) -> None:
        conn = getattr(self.local, "conn", None)
        self.local.conn = None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def make_handler(db: _Db) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the load test sends thousands of requests

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/health":
                self._answer(404, {"error": "not found"})
                return
            try:
                with db.conn().transaction():
                    db.conn().execute("SELECT 1").fetchone()
            except psycopg.Error as exc:
                db.drop()
                self._answer(503, {"status": "down", "error": str(exc).strip()[:200]})
                return
            self._answer(200, {"status": "ok"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                ref = str(body["ref"])
            except (ValueError, KeyError, TypeError):
                self._answer(400, {"error": "body must be JSON with a ref"})
                return
            if self.path != "/orders":
                self._answer(404, {"error": "not found"})
                return
            try:
                conn = db.conn()
                with conn.transaction():
                    row = conn.execute(
                        "INSERT INTO orders (ref, patient) VALUES (%s, %s)"
                        " RETURNING id, inet_server_port()", (ref, f"patient-{ref}")).fetchone()
            except psycopg.Error as exc:
                db.drop()
                self._answer(503, {"error": str(exc).strip()[:200]})
                return
            assert row is not None
            self._answer(201, {"id": row[0], "ref": ref, "server_port": row[1]})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(_Db(args.dsn)))
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
