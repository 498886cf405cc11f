"""The agent's HTTP client for the management server: JSON over HTTPS (the server's
certificate verified, against --cacert when given), the agent's credential as a bearer
token. Every connection is opened by the agent.

Errors: Unreachable for what a later try may fix (no connection, a timeout, a 5xx);
AgentRefused for a refused token or credential (401); UsageError for a request the
server rejected otherwise. No credential or token is ever in a message.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from medark.errors import AgentRefused, MedarkError, UsageError


class Unreachable(MedarkError):
    """The server cannot be reached now (the agent keeps its schedule and retries)."""

    code = "server_unreachable"


class Client:
    def __init__(self, server: str, credential: str | None = None,
                 cacert: str | None = None) -> None:
        self.server = server.rstrip("/")
        if not self.server.endswith("/api"):
            self.server += "/api"
        if not self.server.startswith(("https://", "http://")):
            raise UsageError(f"--server {server!r}: give an http(s):// URL")
        self.credential = credential
        try:
            self.tls = ssl.create_default_context(cafile=cacert)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--cacert {cacert}: cannot be read as PEM certificates "
                             f"({type(exc).__name__})") from None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body or {}) of a 2xx answer."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.credential:
            headers["Authorization"] = f"Bearer {self.credential}"
        request = urllib.request.Request(self.server + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout,
                                        context=self.tls) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, TLS, a bad body
            reason = getattr(exc, "reason", None) or exc
            raise Unreachable(f"management server {self.server}: "
                              f"{type(reason).__name__}: {reason}") from None


def _refusal(exc: urllib.error.HTTPError) -> MedarkError:
    try:
        error = json.loads(exc.read() or b"{}").get("error", {})
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (OSError, ValueError, AttributeError):
        code, message = "", ""
    if exc.code == 401 or code in ("agent_only", "enrolment_refused"):
        return AgentRefused(f"the management server refused the agent: {message or code}",
                            code or "agent_refused")
    if exc.code >= 500 or exc.code == 429:
        return Unreachable(f"management server answered {exc.code} {code}: {message}")
    return UsageError(f"management server refused the request ({exc.code} {code}): "
                      f"{message}")
