"""moto's S3 server as `moto_server` runs it, with one difference: a conditional write
(`If-None-Match: *` or `If-Match`) is atomic, as on S3, MinIO and Ceph. moto checks the
condition and then stores the object without a lock between the two, so of eight writers
racing for one lock name two could both be told they won (seen once in `make test`:
test_concurrent_saves_of_one_name_have_one_winner[s3]). tests/s3_server.py starts it:

    python tests/moto_atomic.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def conditional_writes_atomic(app: Wsgi) -> Wsgi:
    """One conditional PUT at a time: its check and its store run inside the call."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT" and (
                "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ):
            with lock:
                return app(environ, start_response)
        return app(environ, start_response)

    return serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, conditional_writes_atomic(app), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
