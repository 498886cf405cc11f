"""wrk as bench/server_bench.py's load client for the list endpoints: a C load generator
(closed loop, keep-alive, one event loop per thread) that costs the shared machine far
less CPU per request than Python threads, so less of the measured latency is the
client's own. One wrk process whatever the number of servers: its threads take the
servers in turn (thread i on urls[i % len]), as the Python client's clients do, and its
Lua `done()` prints the exact percentiles as JSON.

The credentials go in the Lua script (a 0600 file in the bench's temporary directory),
never on wrk's command line, where any user of the machine could read them."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SCRIPT = """\
local ports = {{{ports}}}
local n = 0
for name, value in pairs({headers}) do wrk.headers[name] = value end

function setup(thread)
  local addrs = wrk.lookup(wrk.host, ports[(n % #ports) + 1])
  thread.addr = addrs[1]
  n = n + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class WrkResult:
    """One wrk run: requests answered, their p50/p99 in ms, and the errors wrk counts
    (connect, read, write and timeout errors, and answers of status 400 or more)."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_error: str

    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> str | None:
    """wrk's path, or None when it is not on PATH."""
    return shutil.which("wrk")


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable ASCII is a Lua string literal


def run(urls: list[str], path: str, connections: int, threads: int, seconds: float,
        headers: dict[str, str], cookies: dict[str, str], workdir: Path,
        timeout_s: int = 10) -> WrkResult:
    """GET `path` with `connections` keep-alive connections over `threads` threads (at
    least one per server, a multiple of their number) for `seconds` (rounded up to
    whole seconds: wrk takes no fractions); a request slower than `timeout_s` counts as
    an error."""
    parts = [urlsplit(u) for u in urls]
    host = parts[0].hostname
    if any(p.hostname != host or p.scheme != "http" for p in parts):
        raise ValueError("wrk: the servers must share one plain-HTTP host")
    threads = max(threads, len(urls))
    threads += -threads % len(urls)
    connections = max(connections, threads)
    every = dict(headers)
    if cookies:
        every["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    script = workdir / "wrk-case.lua"
    script.unlink(missing_ok=True)
    script.touch(mode=0o600)
    script.write_text(SCRIPT.format(
        ports=", ".join(lua_string(str(p.port)) for p in parts),
        headers="{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}"
                                for k, v in every.items()) + "}"))
    duration = max(1, math.ceil(seconds))
    try:
        done = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
             f"--timeout={timeout_s}s", "--latency", "-s", str(script),
             f"{urls[0]}{path}"],
            capture_output=True, text=True, timeout=duration + timeout_s + 60, check=False)
    finally:
        script.unlink(missing_ok=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK-RESULT ")),
                None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    got = json.loads(line.split(" ", 1)[1])
    kinds = ("connect", "read", "write", "status", "timeout")
    errors = sum(int(got[k]) for k in kinds)
    return WrkResult(
        requests=int(got["requests"]), seconds=got["duration_us"] / 1e6,
        p50_ms=got["p50_us"] / 1000 if got["requests"] else float("nan"),
        p99_ms=got["p99_us"] / 1000 if got["requests"] else float("nan"),
        errors=errors,
        first_error="" if not errors else "wrk: " + ", ".join(
            f"{got[k]} {k}" + (" (HTTP status >= 400)" if k == "status" else "")
            for k in kinds if got[k]))
