#!/usr/bin/env python3
"""The web console at a regional center's size (issue 17): cold loads until usable, the
first screen's gzip JS, and how soon a job's change shows on the page.

The shape is bench/server_bench.py's (its site is built by its own code): one regional
center with `--hospitals` + `--clinics` institutions, `--systems` systems, `--jobs` job
rows over 90 days, on a new PostgreSQL database (`--database`, dropped after), one
`medark server` serving the built console (`make web`; `--console-dir` for another
build). Debian's chromium (Playwright, /usr/bin/chromium), signed in as the center's
viewer, zh-CN, 1366x768.

* **Cold load until usable**: a new browser context (empty cache) opens each page of
  `--pages` the viewer's menu holds; usable = the page's main data drawn, the first
  element matching the page's `--ready` selector (the dashboard's first system tile, the
  topology's chart, the jobs table's first row), timed in the page from the navigation's
  start (Performance API: `performance.now()` when a requestAnimationFrame poll first
  finds it), with the navigation's DOMContentLoaded and load for comparison.
* **First screen's JS**: the JavaScript files each cold load fetched (resource timing),
  gzip -9 of the built files; the login page's too.
* **Live update**: the jobs page open (it follows GET /api/events); a job queued
  through the API, then its agent claims it (GET /api/agent/jobs: running), reports
  its progress (POST .../events: 50 %) and reports it done (POST .../result:
  succeeded); the latency is from just before each agent call until a MutationObserver
  in the page sees the row's status word or percentage change, both read in the page
  (Date.now()).

Before and after on one seeded site: ``--compare DIR`` (another build, e.g. a copy of
an older `make web`): both builds' files in one directory the server serves (their
hashed chunks side by side), its index.html switched between the two before each cold
load, so the two builds' loads alternate at a like load; each build's figures reported
(in --json: "loads" and "compare_loads").

Run: ``.venv/bin/python bench/console_bench.py [--runs 3] [--json FILE]``; a smoke run:
``--hospitals 1 --clinics 1 --systems 4 --jobs 100 --runs 1 --live 2``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import Failed, Session, Site, check, institutions

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SIZE = {"width": 1366, "height": 768}
READY = {"/dashboard": "#main .tile", "/topology": "#main .graph canvas, #main .graph svg",
         "/jobs": "#main .el-table__row"}
READY_POLL = """(selector) => {
  window.__medarkReady = null
  const look = () => {
    if (document.querySelector(selector)) window.__medarkReady = performance.now()
    else requestAnimationFrame(look)
  }
  requestAnimationFrame(look)
}"""
TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0]
  return { ready: window.__medarkReady, dcl: nav.domContentLoadedEventEnd,
           load: nav.loadEventEnd,
           scripts: performance.getEntriesByType('resource').map(r => r.name)
             .filter(n => n.endsWith('.js')),
           // the waterfall (in --json): each request's start and end, first paints
           resources: [nav, ...performance.getEntriesByType('resource')].map(r => ({
             name: r.name.replace(location.origin, ''), start: Math.round(r.startTime),
             end: Math.round(r.responseEnd), bytes: r.transferSize })),
           paints: performance.getEntriesByType('paint').map(p => (
             { name: p.name, at: Math.round(p.startTime) })) }
}"""
WATCH = """([id, words]) => {
  window.__medarkSeen = {}
  const label = `Job #${id}`
  const look = () => {
    const button = [...document.querySelectorAll('#main .el-table__row button')]
      .find(b => b.getAttribute('aria-label') === label)
    const text = button ? button.closest('.el-table__row').textContent : ''
    for (const word of words) {
      if (!(word in window.__medarkSeen) && text.includes(word)) {
        window.__medarkSeen[word] = Date.now()
      }
    }
  }
  if (window.__medarkObserver) window.__medarkObserver.disconnect()  // the last job's
  window.__medarkObserver = new MutationObserver(look)
  window.__medarkObserver.observe(document.body,
    { subtree: true, childList: true, characterData: true })
  look()
}"""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def console_dir(args: argparse.Namespace) -> Path:
    found = Path(args.console_dir or os.environ.get("MEDARK_CONSOLE_DIR") or
                 ROOT / "src" / "medark" / "server" / "console")
    if not (found / "index.html").is_file():
        raise Failed(f"no built console in {found}: run `make web`")
    return found


def gzip_size(built: Path, urls: list[str]) -> tuple[int, int]:
    """(gzip -9 bytes, raw bytes) of the built files these URLs name."""
    packed = raw = 0
    for url in sorted(set(urls)):
        data = (built / urlsplit(url).path.lstrip("/")).read_bytes()
        raw += len(data)
        packed += len(gzip.compress(data, 9))
    return packed, raw


class Builds:
    """One build, or two served from one directory by switching its index.html (the
    hashed assets of both side by side): `use(label)` before each cold load."""

    def __init__(self, main: Path, other: Path | None, tmp: Path) -> None:
        self.labels = ["build"] if other is None else ["build", "compare"]
        self.dir = main
        self.index: dict[str, str] = {}
        if other is None:
            return
        self.dir = tmp / "console"
        shutil.copytree(main, self.dir)
        for found in (other / "assets").iterdir():
            target = self.dir / "assets" / found.name
            if not target.exists():
                shutil.copy2(found, target)
        self.index = {"build": (main / "index.html").read_text(),
                      "compare": (other / "index.html").read_text()}

    def use(self, label: str) -> None:
        if not self.index:
            return
        temp = self.dir / "index.html.tmp"
        temp.write_text(self.index[label])
        os.replace(temp, self.dir / "index.html")


def cookies_of(session: Session, url: str) -> list[dict[str, Any]]:
    return [{"name": c.name, "value": str(c.value), "url": url}
            for c in session.client.cookies.jar]


class Browser:
    def __init__(self, stack: ExitStack, url: str, session: Session) -> None:
        from playwright.sync_api import sync_playwright

        self.playwright = stack.enter_context(sync_playwright())
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        stack.callback(self.browser.close)
        self.url, self.session = url, session

    def context(self, signed_in: bool = True, locale: str = "zh-CN") -> Any:
        context = self.browser.new_context(base_url=self.url, viewport=SIZE)
        context.add_init_script(f"localStorage.setItem('medark.locale', '{locale}')")
        if signed_in:
            context.add_cookies(cookies_of(self.session, self.url))
        return context

    def menu(self) -> list[str]:
        context = self.context()
        try:
            page = context.new_page()
            page.goto("/")
            page.locator("nav a.menu-link").first.wait_for()
            return [str(h) for h in page.locator("nav a.menu-link").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))")]
        finally:
            context.close()

    def cold_load(self, path: str, selector: str, signed_in: bool = True
                  ) -> dict[str, Any]:
        """One load with an empty cache; times in ms from the navigation's start."""
        context = self.context(signed_in)
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_init_script(f"({READY_POLL})({json.dumps(selector)})")
            page.goto(path, wait_until="commit")
            page.wait_for_function("() => window.__medarkReady !== null", timeout=60_000)
            page.wait_for_load_state("load")
            found = dict(page.evaluate(TIMINGS))
            found["errors"] = errors
            return found
        finally:
            context.close()


def measure_loads(site: Site, browser: Browser, builds: Builds, args: argparse.Namespace
                  ) -> dict[str, dict[str, Any]]:
    """Each build's cold loads (by label), taken in turn, page by page."""
    builds.use(builds.labels[0])
    menu = browser.menu()
    wanted = [p for p in args.pages.split(",") if p]
    pages = [p for p in wanted if p in menu]
    absent = [p for p in wanted if p not in menu]
    if "/jobs" not in pages:
        pages.append("/jobs")  # measured always: it exists since the console's start
    selectors = {**READY, **dict(item.split("=", 1) for item in args.ready)}
    results: dict[str, dict[str, Any]] = {
        label: {"menu": menu, "absent": absent, "pages": {}} for label in builds.labels}
    cases = [("/login", "main input[name=username]", False)] + [
        (p, selectors.get(p, "#main .el-table__row, #main canvas"), True) for p in pages]
    for path, selector, signed_in in cases:
        taken: dict[str, list[dict[str, Any]]] = {label: [] for label in builds.labels}
        for _ in range(args.runs):
            for label in builds.labels:
                builds.use(label)
                taken[label].append(browser.cold_load(path, selector, signed_in))
                taken[label][-1]["load_average"] = os.getloadavg()[0]
        for label, runs in taken.items():
            results[label]["pages"][path] = page_figures(builds.dir, selector, runs)
    builds.use(builds.labels[0])
    return results


def page_figures(built: Path, selector: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    packed, raw = gzip_size(built, runs[-1]["scripts"])
    return {"selector": selector, "runs": runs,
            "ready_ms": median([r["ready"] for r in runs]),
            "dcl_ms": median([r["dcl"] for r in runs]),
            "load_ms": median([r["load"] for r in runs]),
            "js_gzip": packed, "js_raw": raw, "js_files": len(set(runs[-1]["scripts"])),
            "errors": sorted({e for r in runs for e in r["errors"]})}


def measure_live(site: Site, browser: Browser, args: argparse.Namespace) -> dict[str, Any]:
    """Queued -> running -> succeeded of `--live` jobs of the first hospital, through
    its (synthetic) agent's API, watched on the jobs page."""
    inst = institutions(args.hospitals, args.clinics)[0]
    at = next(i for i, (_n, where) in enumerate(site.agent_names) if where == inst)
    credential, plans = site.agents[at]
    url = site.urls[0]
    agent = httpx.Client(base_url=url, timeout=60,
                         headers={"Authorization": f"Bearer {credential}"})
    check(agent.post("/api/agent/heartbeat", json={
        "version": "bench", "plans": plans, "queue_length": 0, "interval": 10.0}), 200,
        "heartbeat")
    context = browser.context(locale="en")
    running: list[float] = []
    progress: list[float] = []
    succeeded: list[float] = []
    try:
        page = context.new_page()
        page.goto("/jobs")
        page.locator("#main .el-table__row").first.wait_for()
        for _ in range(args.live):
            job = check(site.sysadmin.client.post("/api/jobs", json={
                "institution": inst, "plan": plans[0], "kind": "backup"}), 202,
                "run now")["job"]
            page.get_by_role("button", name=f"Job #{job['id']}", exact=True).wait_for(
                timeout=30_000)
            page.evaluate(WATCH, [job["id"], ["Running", "50%", "Succeeded"]])
            sent = page.evaluate("Date.now()")  # the page's clock, just before
            offer = check(agent.get("/api/agent/jobs", params={"wait": 5}), 200, "claim")
            if offer["job"]["id"] != job["id"]:
                raise Failed(f"the agent was offered job {offer['job']['id']}")
            page.wait_for_function("() => 'Running' in window.__medarkSeen", timeout=30_000)
            running.append(page.evaluate("window.__medarkSeen.Running") - sent)
            sent = page.evaluate("Date.now()")
            check(agent.post(f"/api/agent/jobs/{job['id']}/events", json={
                "kind": "progress", "data": {"percent": 50, "message": "bench"}}), 200,
                "progress")
            page.wait_for_function("() => '50%' in window.__medarkSeen", timeout=30_000)
            progress.append(page.evaluate("window.__medarkSeen['50%']") - sent)
            sent = page.evaluate("Date.now()")  # the page's clock, just before
            check(agent.post(f"/api/agent/jobs/{job['id']}/result",
                             json={"status": "succeeded", "bytes_added": 1024}), 200,
                  "result")
            page.wait_for_function("() => 'Succeeded' in window.__medarkSeen", timeout=30_000)
            succeeded.append(page.evaluate("window.__medarkSeen.Succeeded") - sent)
    finally:
        context.close()
        agent.close()
    every = running + progress + succeeded
    return {"page": "/jobs", "running_ms": running, "progress_ms": progress,
            "succeeded_ms": succeeded, "median_ms": median(every), "max_ms": max(every),
            "load_average": os.getloadavg()[0]}


def report(result: dict[str, Any]) -> None:
    for label, key in (("build", "loads"), ("compare", "compare_loads")):
        if "compare_loads" in result:
            print(f"== {label}: {result['builds'][label]}")
        if key in result:
            report_loads(result[key])
    live = result["live"]
    print(f"live update on {live['page']}: median {live['median_ms']:.0f} ms, max "
          f"{live['max_ms']:.0f} ms (running: "
          f"{' '.join(f'{v:.0f}' for v in live['running_ms'])}; progress: "
          f"{' '.join(f'{v:.0f}' for v in live['progress_ms'])}; succeeded: "
          f"{' '.join(f'{v:.0f}' for v in live['succeeded_ms'])})")
    print(f"load average: {result['load_average']} -> {result['load_average_after']}")


def report_loads(loads: dict[str, Any]) -> None:
    print(f"menu of the center's viewer: {' '.join(loads['menu'])}")
    if loads["absent"]:
        print(f"not in the console yet (not measured): {' '.join(loads['absent'])}")
    print(f"{'page':<12} {'usable ms':>10} {'DCL ms':>8} {'load ms':>8} "
          f"{'JS gzip kB':>11} {'files':>6}  runs (usable ms)")
    for path, page in loads["pages"].items():
        runs = " ".join(f"{r['ready']:.0f}" for r in page["runs"])
        print(f"{path:<12} {page['ready_ms']:>10.0f} {page['dcl_ms']:>8.0f} "
              f"{page['load_ms']:>8.0f} {page['js_gzip'] / 1000:>11.1f} "
              f"{page['js_files']:>6}  {runs}")
        if page["errors"]:
            print(f"  page errors: {page['errors']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--clinics", type=int, default=13)
    parser.add_argument("--systems", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=17)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--live", type=int, default=5, help="live-update trials")
    parser.add_argument("--pages", default="/dashboard,/topology",
                        help="the pages to cold-load (the jobs page always)")
    parser.add_argument("--ready", action="append", default=[], metavar="PATH=CSS",
                        help="the element that makes a page usable (default: "
                             + ", ".join(f"{k}={v}" for k, v in READY.items()) + ")")
    parser.add_argument("--console-dir", help="a built console (default: the package's)")
    parser.add_argument("--compare", metavar="DIR",
                        help="another built console, its cold loads alternating with "
                             "the first's")
    parser.add_argument("--database", default="medark_bench_console")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    built = console_dir(args)
    result: dict[str, Any] = {"args": vars(args),
                              "when": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="medark-console-bench-") as tmp, \
            ExitStack() as stack:
        other = Path(args.compare) if args.compare else None
        if other and not (other / "index.html").is_file():
            raise Failed(f"no built console in {other}")
        builds = Builds(built, other, Path(tmp))
        result["builds"] = {"build": str(built), "compare": str(other)}
        site = Site(args, Path(tmp), stack)
        if args.console_dir or other:
            site.env["MEDARK_CONSOLE_DIR"] = str(builds.dir)
        site.build()
        result["seed_seconds"] = site.seed_seconds
        viewer = site.viewers["center"]
        browser = Browser(stack, site.urls[0], viewer)
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        loads = measure_loads(site, browser, builds, args)
        result["loads"] = loads["build"]  # --compare's in "compare_loads"
        if "compare" in loads:
            result["compare_loads"] = loads["compare"]
        result["live"] = measure_live(site, browser, args)
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
