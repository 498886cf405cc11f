#!/usr/bin/env python3
"""Benchmark replication to S3: `medark copy` vs `rclone sync` vs `restic copy`, side by side.

One moto S3 server on 127.0.0.1 (started as tests/s3_server.py does, stopped at exit) is
the offsite object store. Made once, untimed: the hospital dataset (``gen_dataset.py``),
a Medark and a restic source repository on local disk holding its day-0 backup, and a
copy of each to which the day-1 backup (after ``gen_dataset.py mutate --percent 1``) is
added. Then in every run, into fresh prefixes of one bucket, the tools in a rotating
order:

  1. full copy of the day-0 repository: ``medark copy --from-repo`` (destination
     initialized first, untimed), ``rclone sync`` of the Medark repository directory,
     ``restic copy --from-repo`` (destination ``init --copy-chunker-params``, untimed)
  2. incremental copy of the day-1 repository into the same destination
  3. bandwidth limit: ``medark --limit-upload 1220.703`` (10 Mbit/s) copy of a small
     separate repository (and ``rclone sync --bwlimit 1220.703K`` of its directory):
     achieved rate = bytes landed in the bucket / elapsed time

For each step: wall time, peak RSS, and the bytes that landed in the bucket (object sizes
listed under the prefix after the step minus before). Prints one table (medians over
``--runs``, Medark/rclone and Medark/restic ratios) and writes
``bench/out/copy-results-<date>.{json,md}``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
from _proc import ProcResult, run_measured
from _report import (
    MB,
    Figure,
    Measurements,
    format_markdown,
    format_table,
    medians,
    print_report,
    ratios,
)
from _tools import PASSWORD, Medark, Restic, restic_supports_compression
from _trees import copy_tree, du, remove, tree_stats
from run_bench import (
    ensure_bytecode,
    ensure_dataset,
    ensure_debs,
    ensure_numpy,
    environment,
    find_generators,
    log,
    prepare_workdir,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import s3_server  # noqa: E402

BUCKET = "medark-copy-bench"
LIMIT_BPS = 1_250_000  # 10 Mbit/s
LIMIT_KIB = LIMIT_BPS / 1024  # 1220.703125 KiB/s, what --limit-upload / --bwlimit take
TOOLS = ("medark", "medark-samekey", "rclone", "restic")
"""medark-samekey: the destination made with `init --same-key-as` the source (packs move
as they are); medark: a destination with its own key (everything re-encrypted)."""
DEBS = {"rclone": "rclone", "restic": "restic"}
_STRIP = ("MEDARK_", "RESTIC_", "RCLONE_", "AWS_")

FIGURES: tuple[Figure, ...] = (
    Figure("src_bytes", "source repository, day 0 (apparent size)", "MB", "lower", True),
    Figure("full_s", "full copy: time", "s", "lower"),
    Figure("full_mbps", "full copy: throughput", "MB/s", "higher"),
    Figure("full_landed", "full copy: bytes landed in the bucket", "MB", "lower", True),
    Figure("full_rss", "full copy: peak RSS", "MB", "lower", True),
    Figure("incr_s", "incremental copy (day 1, +1 %): time", "s", "lower"),
    Figure("incr_landed", "incremental: bytes landed in the bucket", "MB", "lower", True),
    Figure("incr_src_growth", "incremental: source repository growth", "MB", "lower", True),
    Figure("incr_new_packed", "incremental: new data stored (data_added_packed)", "MB",
           "lower", True),
    Figure("incr_landed_over_growth", "incremental: landed / source growth", "x", "lower"),
    Figure("incr_landed_over_packed", "incremental: landed / data_added_packed", "x", "lower"),
    Figure("incr_bytes_stored", "incremental: bytes_stored (copy --json)", "MB", "lower", True),
    Figure("incr_rss", "incremental copy: peak RSS", "MB", "lower", True),
    Figure("limit_s", "10 Mbit/s limit: time", "s", "lower", ratio=False),
    Figure("limit_landed", "10 Mbit/s limit: bytes landed", "MB", "lower", True, ratio=False),
    Figure("limit_mbit", "10 Mbit/s limit: achieved rate (landed / time)", "Mbit/s", "lower",
           ratio=False),
    Figure("limit_err_pct", "10 Mbit/s limit: error vs 10 Mbit/s", "%", "lower", ratio=False),
)

NOTES = [
    "MB = 10^6 bytes. The S3 server is moto in server mode on 127.0.0.1 (objects in RAM): "
    "loopback, no real link, so the times measure each tool's own work plus moto's.",
    "full throughput: Medark and restic = source repository bytes (apparent size of the "
    "day-0 repository) / time; rclone = bytes it transferred (landed) / time. rclone and "
    "Medark copy the same Medark repository.",
    "landed = sum of object sizes under the tool's prefix (list_objects_v2) after the step "
    "minus before. Source growth = apparent size of the day-1 source repository minus the "
    "day-0 one (rclone: the Medark repository). data_added_packed = Medark's day-1 "
    "`backup --json` figure.",
    "10 Mbit/s limit: 1,250,000 B/s (`--limit-upload 1220.703` KiB/s, rclone "
    "`--bwlimit 1220.703K`); rate = bytes landed / wall time of the whole command; error = "
    "rate / 10 Mbit/s - 1.",
    "medark = a destination with its own key (every blob re-encrypted, ids recomputed); "
    "medark-samekey = a destination made with `init --same-key-as` the source (whole packs "
    "move, checked against their SHA-256 names).",
    "Defaults otherwise: Medark --workers 2, rclone --transfers 4 --checkers 8, restic "
    "--compression auto. `sync` runs before every timed step; tools go in a rotating order.",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--size-mb", type=float, default=1000.0,
                    help="hospital dataset size in MiB (moto keeps every object in RAM)")
    ap.add_argument("--limit-size-mb", type=float, default=180.0,
                    help="dataset size in MiB of the small repository copied under the "
                    "10 Mbit/s limit (180 MiB stores about 75 MB: about 60 s); 0 skips it")
    ap.add_argument("--seed", type=int, default=1, help="generator seed")
    ap.add_argument("--mutate-percent", type=float, default=1.0,
                    help="gen_dataset.py mutate --percent for the day-1 backup")
    ap.add_argument("--runs", type=int, default=3, help="runs; the table shows medians")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated, from: " + ",".join(TOOLS))
    ap.add_argument("--no-rclone-limit", action="store_true",
                    help="run only Medark under the bandwidth limit")
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / "out" / "copy-work",
                    help="work directory (data/ is kept by --skip-generate, the rest is "
                    "wiped at each start)")
    ap.add_argument("--skip-generate", action="store_true",
                    help="reuse the datasets already in --workdir/data")
    ap.add_argument("--medark", type=Path, default=REPO_ROOT / ".venv" / "bin" / "medark")
    ap.add_argument("--shared", type=Path, default=None,
                    help="the shared/ directory holding bench/gen_dataset.py")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default bench/out/copy-results-<date>.json; the "
                    "Markdown table goes next to it)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get install rclone/restic or pip install numpy")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if not args.tools or set(args.tools) - set(TOOLS):
        ap.error(f"--tools: choose from {','.join(TOOLS)}")
    return args


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    lines = (out.stdout.strip() or out.stderr.strip()).splitlines()
    return lines[0] if lines else "unknown"


def _int(doc: dict[str, object], key: str) -> int:
    value = doc.get(key)
    return int(value) if isinstance(value, int | float) else 0


def _last_json(text: str) -> dict[str, object]:
    for line in reversed(text.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return {}


class Bucket:
    """The bench bucket on the moto server: sizes under a prefix, and cleanup."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=s3_server.CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=s3_server.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=s3_server.CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        self.s3.create_bucket(Bucket=BUCKET)

    def _objects(self, prefix: str) -> list[dict[str, object]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/")
        return [obj for page in pages for obj in page.get("Contents", [])]

    def size(self, prefix: str) -> tuple[int, int]:
        """(bytes, objects) under ``prefix/``."""
        objs = self._objects(prefix)
        return sum(int(str(o["Size"])) for o in objs), len(objs)

    def delete(self, prefix: str) -> None:
        """Free moto's memory: every object under ``prefix/``."""
        keys = [{"Key": o["Key"]} for o in self._objects(prefix)]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[i:i + 1000]})


class CopyBench:
    def __init__(self, args: argparse.Namespace, url: str, gen: Path) -> None:
        self.args = args
        self.url = url
        self.gen = gen
        self.wd: Path = args.workdir
        self.bucket = Bucket(url)
        self.medark = Medark("medark", str(args.medark), None)
        self.restic = Restic("restic", "restic")
        self.rclone_flags = [
            "--s3-provider", "Other", "--s3-endpoint", url,
            "--s3-access-key-id", s3_server.CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "--s3-secret-access-key", s3_server.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "--s3-region", s3_server.CREDENTIALS["AWS_DEFAULT_REGION"],
            "--s3-force-path-style",
        ]
        self.rclone_conf = self.wd / "rclone.conf"
        self.src: dict[str, Path] = {}  # "medark0", "medark1", "restic0", "restic1", "limit"
        self.setup_info: dict[str, object] = {}
        self.runs: list[dict[str, object]] = []
        self.measured: list[Measurements] = []
        self.errors: list[str] = []
        self.run_idx = 0
        self._rotation = 0
        self.cur: Measurements = {}
        self.steps: dict[str, dict[str, object]] = {}
        self.orders: list[dict[str, object]] = []

    # -- environment --------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP)}
        base.update(s3_server.CREDENTIALS)
        base["RCLONE_CONFIG"] = str(self.rclone_conf)
        base.update(extra)
        return base

    def medark_env(self, cache: Path) -> dict[str, str]:
        return self.env(MEDARK_PASSWORD=PASSWORD, MEDARK_FROM_PASSWORD=PASSWORD,
                        MEDARK_CACHE_DIR=str(cache))

    def restic_env(self, cache: Path) -> dict[str, str]:
        return self.env(RESTIC_PASSWORD=PASSWORD, RESTIC_FROM_PASSWORD=PASSWORD,
                        RESTIC_CACHE_DIR=str(cache))

    def s3_url(self, prefix: str) -> str:
        return f"s3:{self.url}/{BUCKET}/{prefix}"

    # -- setup (once, untimed) ------------------------------------------------------------
    def must(self, cmd: list[str], env: dict[str, str], name: str) -> ProcResult:
        res = run_measured(cmd, env=env, log_dir=self.wd / "logs" / "setup", name=name)
        if not res.ok:
            sys.exit(f"setup step {name} failed ({res.rc}): {res.tail()}")
        log(f"  {name:<24} {res.seconds:8.2f} s")
        return res

    def setup(self, day0: Path, limit_data: Path | None) -> None:
        repos, cache = self.wd / "repos", self.wd / "cache" / "setup"
        self.rclone_conf.write_text("")
        src = self.wd / "src" / "hospital"
        log(f"copying {day0} to {src}")
        copy_tree(day0, src)
        s0 = tree_stats(src)
        info: dict[str, object] = {"dataset_day0": {"files": s0.files, "bytes": s0.bytes}}
        want_restic = "restic" in self.args.tools
        kinds = ["medark", *(["restic"] if want_restic else [])]
        for kind in kinds:
            tool = self.medark if kind == "medark" else self.restic
            repo = self.src[f"{kind}0"] = repos / f"{kind}-day0"
            repos.mkdir(parents=True, exist_ok=True)
            env = tool.env(repo, cache / f"{kind}-day0")
            self.must(tool.init_cmd(), env, f"{kind}_init")
            res = self.must(tool.backup_cmd(src, "day0"), env, f"{kind}_backup_day0")
            info[f"{kind}_day0_summary"] = tool.parse_backup(res.stdout).raw
        log(f"mutate --percent {self.args.mutate_percent:g}")
        subprocess.run([sys.executable, str(self.gen), "mutate", str(src), "--percent",
                        f"{self.args.mutate_percent:g}"], check=True, stdout=sys.stderr)
        s1 = tree_stats(src)
        info["dataset_day1"] = {"files": s1.files, "bytes": s1.bytes}
        for kind in kinds:
            tool = self.medark if kind == "medark" else self.restic
            repo = self.src[f"{kind}1"] = repos / f"{kind}-day1"
            copy_tree(self.src[f"{kind}0"], repo)  # cp -a: unchanged files keep their mtime
            env = tool.env(repo, cache / f"{kind}-day1")
            res = self.must(tool.backup_cmd(src, "day1"), env, f"{kind}_backup_day1")
            info[f"{kind}_day1_summary"] = tool.parse_backup(res.stdout).raw
            info[f"{kind}_day0_bytes"] = du(self.src[f"{kind}0"])[1]
            info[f"{kind}_day1_bytes"] = du(repo)[1]
        if limit_data is not None:
            repo = self.src["limit"] = repos / "medark-limit"
            env = self.medark.env(repo, cache / "medark-limit")
            self.must(self.medark.init_cmd(), env, "limit_init")
            self.must(self.medark.backup_cmd(limit_data, "limit"), env, "limit_backup")
            info["limit_repo_bytes"] = du(repo)[1]
        remove(src)
        self.setup_info = info
        for key in ("medark_day0_bytes", "medark_day1_bytes", "restic_day0_bytes",
                    "restic_day1_bytes", "limit_repo_bytes"):
            if key in info:
                log(f"  {key}: {_int(info, key) / MB:.1f} MB")

    # -- timed steps ----------------------------------------------------------------------
    def order(self, tools: list[str], what: str) -> list[str]:
        k = (self._rotation + self.run_idx) % len(tools)
        self._rotation += 1
        rotated = tools[k:] + tools[:k]
        self.orders.append({"step": what, "order": rotated})
        return rotated

    def put(self, tool: str, key: str, value: float | None) -> None:
        if value is not None:
            self.cur.setdefault(tool, {})[key] = float(value)

    def prefix(self, tool: str, step: str = "") -> str:
        return f"{tool}{'-' + step if step else ''}-r{self.run_idx + 1}"

    def run_step(self, tool: str, name: str, cmd: list[str], env: dict[str, str],
                 prefix: str, timed: bool = True) -> tuple[ProcResult, int] | None:
        """Run ``cmd``; the result and the bytes it landed under ``prefix``."""
        before = self.bucket.size(prefix)[0]
        log_dir = self.wd / "logs" / f"run{self.run_idx + 1}" / tool
        res = run_measured(cmd, env=env, log_dir=log_dir, name=name)
        after, objects = self.bucket.size(prefix)
        self.steps.setdefault(tool, {})[name] = {
            "cmd": cmd, "rc": res.rc, "seconds": round(res.seconds, 4),
            "maxrss_bytes": res.maxrss_bytes, "landed_bytes": after - before,
            "objects": objects, "log": res.log_prefix,
        }
        if not res.ok:
            msg = f"run {self.run_idx + 1}: {tool}: {name} exited {res.rc}: {res.tail()}"
            log("  FAILED " + msg)
            self.errors.append(msg)
            return None
        if timed:
            log(f"  {name:<12} {tool:<8} {res.seconds:8.2f} s  landed "
                f"{(after - before) / MB:8.1f} MB  rss {res.maxrss_bytes / MB:6.1f} MB")
        return res, after - before

    def copy_cmd(self, tool: str, src: Path, prefix: str, limit: bool = False) -> list[str]:
        if tool.startswith("medark"):
            lim = ["--limit-upload", f"{LIMIT_KIB:.3f}"] if limit else []
            return [self.medark.exe, *lim, "--repo", self.s3_url(prefix), "--json", "copy",
                    "--from-repo", str(src)]
        if tool == "rclone":
            lim = ["--bwlimit", f"{LIMIT_KIB:.3f}K"] if limit else []
            return ["rclone", "sync", str(src), f":s3:{BUCKET}/{prefix}", *self.rclone_flags,
                    *lim]
        return ["restic", "-r", self.s3_url(prefix), "copy", "--from-repo", str(src)]

    def init_dest(self, tool: str, prefix: str, env: dict[str, str], src: Path) -> bool:
        if tool.startswith("medark"):
            same = ["--same-key-as", str(src)] if tool == "medark-samekey" else []
            cmd = [self.medark.exe, "--repo", self.s3_url(prefix), "init", *same]
        elif tool == "restic":
            cmd = ["restic", "-r", self.s3_url(prefix), "init", "--repository-version", "2",
                   "--from-repo", str(src), "--copy-chunker-params"]
        else:
            return True
        return self.run_step(tool, "init", cmd, env, prefix, timed=False) is not None

    def tool_env(self, tool: str, tag: str = "") -> dict[str, str]:
        cache = self.wd / "cache" / f"run{self.run_idx + 1}" / f"{tool}{tag}"
        if tool.startswith("medark"):
            return self.medark_env(cache)
        if tool == "restic":
            return self.restic_env(cache)
        return self.env()

    def source(self, tool: str, day: int) -> Path:
        return self.src[f"{'restic' if tool == 'restic' else 'medark'}{day}"]

    def run_once(self, r: int) -> None:
        self.run_idx, self.cur, self.steps, self.orders = r, {}, {}, []
        self._rotation = 0
        log(f"\n=== run {r + 1}/{self.args.runs} ===")
        info = self.setup_info
        alive = list(self.args.tools)
        summaries: dict[str, object] = {}

        log("full copy (day 0)")
        for tool in self.order(alive, "full"):
            src, prefix, env = self.source(tool, 0), self.prefix(tool), self.tool_env(tool)
            src_bytes = _int(info, f"{'restic' if tool == 'restic' else 'medark'}_day0_bytes")
            if not self.init_dest(tool, prefix, env, src):
                alive.remove(tool)
                continue
            done = self.run_step(tool, "full", self.copy_cmd(tool, src, prefix), env, prefix)
            if done is None:
                alive.remove(tool)
                continue
            res, landed = done
            self.put(tool, "src_bytes", src_bytes)
            self.put(tool, "full_s", res.seconds)
            moved = landed if tool == "rclone" else src_bytes
            self.put(tool, "full_mbps", moved / MB / res.seconds)
            self.put(tool, "full_landed", landed)
            self.put(tool, "full_rss", res.maxrss_bytes)
            if tool == "medark":
                summaries["full"] = _last_json(res.stdout)

        log(f"incremental copy (day 1, +{self.args.mutate_percent:g} %)")
        for tool in self.order(alive, "incr"):
            src, prefix, env = self.source(tool, 1), self.prefix(tool), self.tool_env(tool)
            done = self.run_step(tool, "incr", self.copy_cmd(tool, src, prefix), env, prefix)
            if done is None:
                continue
            res, landed = done
            kind = "restic" if tool == "restic" else "medark"
            growth = _int(info, f"{kind}_day1_bytes") - _int(info, f"{kind}_day0_bytes")
            self.put(tool, "incr_s", res.seconds)
            self.put(tool, "incr_landed", landed)
            self.put(tool, "incr_src_growth", growth)
            self.put(tool, "incr_landed_over_growth", landed / growth if growth else None)
            self.put(tool, "incr_rss", res.maxrss_bytes)
            if tool.startswith("medark"):
                summary = _last_json(res.stdout)
                if tool == "medark":
                    summaries["incr"] = summary
                day1 = info.get("medark_day1_summary")
                packed = _int(day1, "data_added_packed") if isinstance(day1, dict) else 0
                self.put(tool, "incr_new_packed", packed or None)
                self.put(tool, "incr_bytes_stored", _int(summary, "bytes_stored"))
                if packed:
                    self.put(tool, "incr_landed_over_packed", landed / packed)

        if "limit" in self.src:
            self.limit_step(summaries)

        for tool in self.args.tools:
            for step in ("", "limit"):
                self.bucket.delete(self.prefix(tool, step))
        self.runs.append({"run": r + 1, "figures": self.cur, "steps": self.steps,
                          "orders": self.orders, "medark_copy_summaries": summaries})
        self.measured.append(self.cur)

    def limit_step(self, summaries: dict[str, object]) -> None:
        tools = ["medark"]
        if "rclone" in self.args.tools and not self.args.no_rclone_limit:
            tools.append("rclone")
        log(f"bandwidth limit {LIMIT_BPS * 8 / 1e6:g} Mbit/s")
        for tool in self.order(tools, "limit"):
            prefix, env = self.prefix(tool, "limit"), self.tool_env(tool, "-limit")
            src = self.src["limit"]
            if not self.init_dest(tool, prefix, env, src):
                continue
            cmd = self.copy_cmd(tool, src, prefix, limit=True)
            done = self.run_step(tool, "limit", cmd, env, prefix)
            if done is None:
                continue
            res, landed = done
            rate = landed / res.seconds
            self.put(tool, "limit_s", res.seconds)
            self.put(tool, "limit_landed", landed)
            self.put(tool, "limit_mbit", rate * 8 / 1e6)
            self.put(tool, "limit_err_pct", 100 * (rate / LIMIT_BPS - 1))
            log(f"    achieved {rate * 8 / 1e6:.2f} Mbit/s ({100 * (rate / LIMIT_BPS - 1):+.1f} %)")
            if tool == "medark":
                summaries["limit"] = _last_json(res.stdout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir = args.workdir.resolve()
    # SIGTERM ends the script through sys.exit, so that atexit stops the moto server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    gen, _many = find_generators(args)
    ensure_debs([t for t in args.tools if not t.startswith("medark")], not args.no_install,
                DEBS)
    if "restic" in args.tools and not restic_supports_compression("restic"):
        sys.exit("restic >= 0.14 is needed (repository v2, copy --from-repo)")
    if not os.access(args.medark, os.X_OK):
        sys.exit(f"medark not found at {args.medark} (run `make venv` or pass --medark)")
    ensure_numpy(not args.no_install)
    ensure_bytecode()
    url = s3_server.endpoint()
    if url is None:
        sys.exit(f"moto_server not found next to {sys.executable} (pip install 'moto[server]')")
    log(f"moto S3 server at {url}")

    started = dt.datetime.now()
    prepare_workdir(args.workdir, keep_data=args.skip_generate)
    data = args.workdir / "data"
    dataset = ensure_dataset(args, gen, data / "hospital")
    limit_data = None
    if args.limit_size_mb > 0:
        limit_args = argparse.Namespace(size_mb=args.limit_size_mb, seed=args.seed,
                                        skip_generate=args.skip_generate)
        dataset["limit"] = ensure_dataset(limit_args, gen, data / "limit")
        limit_data = data / "limit"

    bench = CopyBench(args, url, gen)
    log("setup: source repositories (untimed)")
    bench.setup(data / "hospital", limit_data)
    for r in range(args.runs):
        bench.run_once(r)

    labels = list(args.tools)
    med = medians(bench.measured, labels)
    pairs = [(m, o) for m in ("medark", "medark-samekey") if m in labels
             for o in labels if not o.startswith("medark")]
    rat = ratios(med, pairs, FIGURES)
    table = format_table(med, labels, rat, FIGURES)
    markdown = format_markdown(med, labels, rat, FIGURES)
    notes = [*NOTES, f"Figures are medians over {args.runs} run(s); ratios are Medark / other "
             "(below 1 is better for times, sizes and RSS; above 1 for throughput)."]
    out = args.out or REPO_ROOT / "bench" / "out" / f"copy-results-{started:%Y-%m-%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env_info = environment([])
    env_info["tools"] = {
        "medark": _version([str(args.medark), "--version"]),
        "rclone": _version(["rclone", "version"]),
        "restic": _version(["restic", "version"]),
        "moto_server": _version([sys.executable, "-c", "import moto; print(moto.__version__)"]),
    }
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": env_info,
        "dataset": dataset,
        "setup": bench.setup_info,
        "figures": {f.key: {"title": f.title, "unit": f.unit, "better": f.better,
                            "stored_in": "bytes" if f.is_bytes else f.unit} for f in FIGURES},
        "median": med,
        "ratios": rat,
        "runs": bench.runs,
        "errors": bench.errors,
        "notes": notes,
        "table": table,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown + "\n\n" + "\n".join(f"* {n}" for n in notes)
                                      + "\n")

    day0 = bench.setup_info.get("dataset_day0", {})
    if isinstance(day0, dict):
        print(f"\ndataset: {day0.get('files')} files, {int(day0.get('bytes', 0)) / MB:.1f} MB")
    print_report(table, notes, bench.errors, f"{out} (Markdown: {out.with_suffix('.md')})")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
