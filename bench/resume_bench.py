#!/usr/bin/env python3
"""Resume after an interruption (issue 18): the bytes a rerun sends after a kill at X %.

For each case, a fresh destination, the first run started and SIGKILLed once X % of the
data has landed (pack files under their final names, or objects in the bucket), then the
same command run again to the end. Reported per case: where the kill landed, what the
rerun sent (bytes added to data/ or the bucket, as a % of the data), the excess over the
(100 - X) % that had not landed (target: at most 10 points), the rerun's time, and the
repository's size after `prune` relative to the data (target: at most 1.1).

Cases: `backup` to a local repository at full speed and paced by --limit-upload (a
link), `copy` of that backup to another local repository (its own key: every blob
re-sealed) paced, and `copy` to S3 (moto's server on 127.0.0.1, as tests/s3_server.py
starts it) paced. The data is incompressible (random files), so stored ≈ data bytes.

    .venv/bin/python bench/resume_bench.py                     # 1000 MB, S3 case 300 MB
    .venv/bin/python bench/resume_bench.py --size-mb 100 --s3-size-mb 100   # smoke run
    git archive <commit> src | tar -x -C /tmp/old     # the same cases on an older commit:
    .venv/bin/python bench/resume_bench.py --medark-src /tmp/old/src --workdir /tmp/r-old

Writes bench/out/resume-results-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import s3_server  # noqa: E402

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
MEDARK = [PYTHON, "-m", "medark"]
PASSWORD = "medark-bench-password-not-a-secret"
FILE_SIZE = 4 * 1024 * 1024
MB = 1_000_000


@dataclass
class Case:
    name: str
    data_bytes: int
    killed_at: float
    """Share of the data landed when the first run was killed."""
    rerun_sent: float
    """Bytes the rerun added, as a share of the data."""
    rerun_s: float
    size_after_prune: float
    """The repository's size after prune / the data."""

    @property
    def excess(self) -> float:
        return self.rerun_sent - (1 - self.killed_at)


def make_data(root: Path, size: int) -> None:
    if root.exists() and sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) == size:
        return
    shutil.rmtree(root, ignore_errors=True)
    for i in range(size // FILE_SIZE):
        sub = root / f"study{i % 16:02}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i:05}.dcm").write_bytes(os.urandom(FILE_SIZE))


def run(env: dict[str, str], *args: str) -> float:
    start = time.monotonic()
    proc = subprocess.run([*MEDARK, *args], env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"medark {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return time.monotonic() - start


def killed_at(env: dict[str, str], args: list[str], landed: Callable[[], int],
              goal: int) -> int:
    """Run `medark args`, SIGKILL it once `goal` bytes landed; the bytes landed then."""
    proc = subprocess.Popen([*MEDARK, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while landed() < goal:
            if proc.poll() is not None:
                raise SystemExit(f"medark {' '.join(args)} ended before the kill")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return landed()


def local_packs(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "data").glob("*/*")
               if p.is_file() and not p.name.startswith("."))


def local_total(repo: Path) -> int:
    return sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())


def s3_bytes(url: str, location: str, prefix: str) -> int:
    import boto3

    bucket, root = location.removeprefix(f"s3:{url}/").split("/", 1)
    client = boto3.client("s3", endpoint_url=url)
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{root}/{prefix}"):
        total += sum(int(item["Size"]) for item in page.get("Contents", []))
    return total


def measure(name: str, env: dict[str, str], args: list[str], data_bytes: int,
            landed: Callable[[], int], total: Callable[[], int], kill_at: float,
            limit_kib: float | None) -> Case:
    run(env, "init")
    paced = ["--limit-upload", str(limit_kib)] if limit_kib else []
    before = killed_at(env, [*args, *paced], landed, int(kill_at * data_bytes))
    rerun_s = run(env, *args)
    after = landed()
    run(env, "check", "--read-data")
    run(env, "prune")
    case = Case(name, data_bytes, before / data_bytes, (after - before) / data_bytes,
                rerun_s, total() / data_bytes)
    print(f"{name}: killed at {case.killed_at:.1%}, rerun sent {case.rerun_sent:.1%} "
          f"(excess {case.excess:+.1%}) in {rerun_s:.1f} s; "
          f"after prune {case.size_after_prune:.3f}x the data", flush=True)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--s3-size-mb", type=int, default=300,
                        help="data of the S3 case (moto keeps every object in RAM)")
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--limit-kib", type=float, default=40_000,
                        help="--limit-upload of the paced cases, KiB/s")
    parser.add_argument("--medark-src", type=Path,
                        help="run medark from this src/ directory (an older commit's, "
                             "exported with git archive) for a before/after figure")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / "out" / "resume")
    args = parser.parse_args()

    work = args.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    data, s3_data = work / "data", work / "data-s3"
    make_data(data, args.size_mb * MB // FILE_SIZE * FILE_SIZE)
    make_data(s3_data, args.s3_size_mb * MB // FILE_SIZE * FILE_SIZE)
    size = local_total(data)
    s3_size = local_total(s3_data)
    for old in ("backup", "backup-paced", "copy", "source-s3"):
        shutil.rmtree(work / old, ignore_errors=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEDARK_", "AWS_"))}
    base.update(MEDARK_PASSWORD=PASSWORD, HOME=str(work / "home"),
                MEDARK_CACHE_DIR=str(work / "cache"))
    shutil.rmtree(work / "cache", ignore_errors=True)
    if args.medark_src is not None:
        base["PYTHONPATH"] = str(args.medark_src.absolute())

    def local(name: str) -> dict[str, str]:
        return dict(base, MEDARK_REPO=str(work / name))

    cases = [
        measure("backup, local, full speed", local("backup"), ["backup", str(data)], size,
                lambda: local_packs(work / "backup"), lambda: local_total(work / "backup"),
                args.kill_at, None),
        measure("backup, local, paced", local("backup-paced"), ["backup", str(data)], size,
                lambda: local_packs(work / "backup-paced"),
                lambda: local_total(work / "backup-paced"), args.kill_at, args.limit_kib),
        measure("copy, local, paced", local("copy"),
                ["copy", "--from-repo", str(work / "backup")], size,
                lambda: local_packs(work / "copy"), lambda: local_total(work / "copy"),
                args.kill_at, args.limit_kib),
    ]
    url = s3_server.endpoint()
    if url is None:
        print("moto's server is not installed: no S3 case")
    else:
        source = local("source-s3")
        run(source, "init")
        run(source, "backup", str(s3_data))
        location = s3_server.new_location(url)
        s3_env = dict(base, MEDARK_REPO=location, **s3_server.CREDENTIALS)
        cases.append(measure(
            "copy, S3 (moto), paced", s3_env, ["copy", "--from-repo", str(work / "source-s3")],
            s3_size, lambda: s3_bytes(url, location, "data/"),
            lambda: s3_bytes(url, location, ""), args.kill_at, args.limit_kib))

    lines = ["| case | data (MB) | killed at | rerun sent | excess over the rest "
             "| rerun (s) | size after prune |", "|---|---|---|---|---|---|---|"]
    for c in cases:
        lines.append(f"| {c.name} | {c.data_bytes / MB:.0f} | {c.killed_at:.1%} | "
                     f"{c.rerun_sent:.1%} | {c.excess * 100:+.1f} points | {c.rerun_s:.1f} | "
                     f"{c.size_after_prune:.3f}× |")
    table = "\n".join(lines)
    print(table)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    out = REPO_ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    tag = "" if args.medark_src is None else "-other-src"
    (out / f"resume-results-{stamp}{tag}.md").write_text(table + "\n")
    (out / f"resume-results-{stamp}{tag}.json").write_text(json.dumps(
        [dict(asdict(c), excess=c.excess) for c in cases], indent=2) + "\n")


if __name__ == "__main__":
    main()
