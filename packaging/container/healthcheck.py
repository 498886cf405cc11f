"""The container's HEALTHCHECK: GET /api/health of the server in the same container.

It asks loopback, so the certificate (which names the center's public host) is not
verified; the probe only learns whether the process answers. Exit 0 healthy, 1 not.
MEDARK_HEALTH_URL overrides the URL (default https://127.0.0.1:8443/api/health).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request

DEFAULT_URL = "https://127.0.0.1:8443/api/health"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("MEDARK_HEALTH_URL", DEFAULT_URL)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            body = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"healthy: {url}: {body}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
