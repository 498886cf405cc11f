#!/usr/bin/env python3
"""Benchmark Medark against restic and borg, side by side in one run.

Generates the hospital dataset (``gen_dataset.py``) and a many-small-files tree
(``gen_manyfiles.py``) from ``<repo>/../shared/bench``, then for every tool, in a rotating
order per step and with encryption on:

  1. full backup of the dataset                  (time, MB/s, peak RSS)
  2. ``gen_dataset.py mutate --percent 1`` and an incremental backup
                                                 (time, data added, repository growth)
  3. full restore into a fresh directory, twice (rotated, then reversed order), each
     verified against the source (time, MB/s: the mean of the two)
  4. ``check --read-data`` / ``borg check --verify-data``  (time, MB/s)
  5. stored size (du of the repository after steps 1-2)
  6. many-files tree: first backup, no-change re-backup, restore into a fresh directory
     (verified; time, files/s), re-backup after ``gen_manyfiles.py touch`` of 100 files

Prints a table with the median over ``--runs`` and the Medark/restic and Medark/borg
ratios, and writes everything to ``bench/out/results-<date>.json``.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _proc
from _proc import ProcResult, run_measured
from _report import (
    FIGURES,
    MB,
    Measurements,
    format_table,
    medians,
    print_report,
    ratio_pairs,
    ratios,
)
from _tools import (
    BORG_COMPRESSION,
    RESTIC_COMPRESSION,
    TOOL_NAMES,
    BackupStats,
    Tool,
    build_tools,
    restic_supports_compression,
)
from _trees import copy_tree, du, locate_restored, remove, tree_stats, verify_restore

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZE_MB = 2048.0
DEFAULT_MANYFILES = 200_000
TOUCH_MARKER = "manyfiles.touched.json"
WARM_CACHE_NOTE = (
    "All tools read a warm page cache (the source was just generated or copied; the page "
    "cache is not dropped; `sync` runs before every timed step). Tools run in a rotating "
    "order: over as many runs as tools, each tool goes first once at every step."
)
COLD_CACHE_NOTE = (
    "Every timed step starts with an empty page cache (--cold: `sync`, then "
    "/proc/sys/vm/drop_caches), so sources and repositories are read from the disk. Tools "
    "run in a rotating order: over as many runs as tools, each tool goes first once at "
    "every step."
)
DEBS = {"restic": "restic", "borg": "borgbackup", "time": "time"}
"""Commands the bench needs -> their Debian packages (GNU time measures peak RSS: _proc.py)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")


# ---------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--size-mb",
        type=float,
        default=None,
        help=f"hospital dataset size in MiB (default {DEFAULT_SIZE_MB:g}; with "
        "--skip-generate, the existing dataset's size)",
    )
    ap.add_argument("--seed", type=int, default=1, help="generator seed")
    ap.add_argument(
        "--manyfiles",
        type=int,
        default=None,
        help=f"files in the many-files tree (default {DEFAULT_MANYFILES}; 0 skips that part)",
    )
    ap.add_argument(
        "--touch",
        type=int,
        default=100,
        help="files rewritten by gen_manyfiles.py touch before the last re-backup",
    )
    ap.add_argument(
        "--mutate-percent",
        type=float,
        default=1.0,
        help="gen_dataset.py mutate --percent before the incremental backup",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "bench" / "out" / "work",
        help="work directory (its data/ is kept by --skip-generate, the rest is "
        "wiped at each start)",
    )
    ap.add_argument(
        "--tools",
        default=",".join(TOOL_NAMES),
        help="comma-separated tools to run, from: " + ",".join(TOOL_NAMES),
    )
    ap.add_argument(
        "--medark-compression",
        default="",
        help="comma-separated `medark init --compression` values, e.g. "
        "zstd:1,zstd:3; Medark runs once per value (default: its own default)",
    )
    ap.add_argument(
        "--medark",
        type=Path,
        default=REPO_ROOT / ".venv" / "bin" / "medark",
        help="medark executable",
    )
    ap.add_argument(
        "--shared",
        type=Path,
        default=None,
        help="the shared/ directory holding bench/gen_dataset.py "
        "(default $MEDARK_SHARED, else <repo>/../shared)",
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=1,
        help="repeat every timed step this many times and report the median",
    )
    ap.add_argument(
        "--skip-generate",
        action="store_true",
        help="reuse the dataset and many-files tree already in --workdir/data",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default bench/out/results-<date>.json)",
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="drop the page cache before every timed step (root): reads come from the "
        "disk, as in a first backup of a store not read since boot",
    )
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="do not apt-get install restic/borgbackup or pip install numpy",
    )
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    return args


def find_generators(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.shared is not None:
        shared = args.shared
    elif os.environ.get("MEDARK_SHARED"):
        shared = Path(os.environ["MEDARK_SHARED"])
    else:
        shared = REPO_ROOT.parent / "shared"
    for bench_dir in (shared / "bench", shared):
        gen, many = bench_dir / "gen_dataset.py", bench_dir / "gen_manyfiles.py"
        if gen.is_file() and many.is_file():
            return gen.resolve(), many.resolve()
    sys.exit(
        f"gen_dataset.py / gen_manyfiles.py not found under {shared}/bench "
        "(set --shared or MEDARK_SHARED)"
    )


def ensure_numpy(allow_install: bool) -> None:
    """The generators need numpy in the interpreter that runs them (this one)."""
    probe = subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True)
    if probe.returncode == 0:
        return
    if not allow_install or sys.prefix == sys.base_prefix:
        sys.exit(f"numpy is missing for {sys.executable}: pip install numpy (in a virtualenv)")
    log(f"installing numpy into {sys.prefix} ...")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "numpy"], check=True)


def ensure_bytecode() -> None:
    """Medark's modules compiled ahead, as an installed package has them: an editable
    install under PYTHONDONTWRITEBYTECODE would compile them in every timed command."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "src")],
                   check=True, stdout=subprocess.DEVNULL)


def ensure_debs(names: list[str], allow_install: bool, debs: dict[str, str] = DEBS) -> None:
    """Install the Debian package (``debs``: command -> package) of each missing command."""
    missing = [debs[n] for n in names if n in debs and shutil.which(n) is None]
    if not missing:
        return
    if not allow_install or os.geteuid() != 0:
        sys.exit(f"missing: {' '.join(missing)} (apt-get install -y {' '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {' '.join(missing)} from Debian packages ...")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def prepare_workdir(workdir: Path, keep_data: bool) -> None:
    """Wipe what earlier runs left; only the known subdirectories are ever removed."""
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("src", "repos", "cache", "restore", "logs"):
        remove(workdir / sub)
    if not keep_data:
        remove(workdir / "data")
    (workdir / "data").mkdir(exist_ok=True)


def _read_state(root: Path) -> dict[str, object] | None:
    try:
        state = json.loads((root / ".gen_state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _run_generator(cmd: list[str]) -> float:
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return time.perf_counter() - t0


def ensure_dataset(args: argparse.Namespace, gen: Path, root: Path) -> dict[str, object]:
    state = _read_state(root)
    size = args.size_mb
    if args.skip_generate and state is not None:
        same = (size is None or state.get("size_mb") == size) and state.get("seed") == args.seed
        if same and state.get("mutations") == 0:
            log(f"reusing dataset {root} (size_mb={state.get('size_mb')}, seed={args.seed})")
            return {"size_mb": state.get("size_mb"), "seed": args.seed, "generated": False}
        log(f"existing dataset {root} does not match (or was mutated): regenerating")
    size = DEFAULT_SIZE_MB if size is None else size
    remove(root)
    secs = _run_generator(
        [
            sys.executable,
            str(gen),
            "generate",
            str(root),
            "--size-mb",
            f"{size:g}",
            "--seed",
            str(args.seed),
        ]
    )
    return {"size_mb": size, "seed": args.seed, "generated": True, "generate_s": secs}


def ensure_manyfiles(args: argparse.Namespace, gen: Path, root: Path) -> dict[str, object]:
    state = _read_state(root)
    n = args.manyfiles
    if args.skip_generate and state is not None:
        if (n is None or state.get("n") == n) and state.get("seed") == args.seed:
            log(f"reusing many-files tree {root} (n={state.get('n')})")
            return {"n": state.get("n"), "seed": args.seed, "generated": False}
        log(f"existing many-files tree {root} does not match: regenerating")
    n = DEFAULT_MANYFILES if n is None else n
    remove(root)
    secs = _run_generator(
        [sys.executable, str(gen), "generate", str(root), "--n", str(n), "--seed", str(args.seed)]
    )
    return {"n": n, "seed": args.seed, "generated": True, "generate_s": secs}


def revert_touches(gen: Path, root: Path, marker: Path) -> None:
    """Undo ``gen_manyfiles.py touch`` runs (recorded in ``marker``), so the tree is pristine."""
    if not marker.exists():
        return
    info = json.loads(marker.read_text())
    for seed in reversed(info.get("seeds", [])):
        subprocess.run(
            [
                sys.executable,
                str(gen),
                "touch",
                str(root),
                "--k",
                str(info["k"]),
                "--seed",
                str(seed),
                "--revert",
            ],
            check=True,
            stdout=sys.stderr,
        )
    marker.unlink()


def _version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def environment(tools: list[Tool]) -> dict[str, object]:
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": sys.version.split()[0],
        "git_commit": _version_of(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"]),
        "tools": {
            t.label: {"version": t.version(), "settings": t.settings(), "exe": t.exe} for t in tools
        },
    }


# ---------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------
class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        tools: list[Tool],
        gen_dataset: Path,
        gen_manyfiles: Path,
    ) -> None:
        self.args = args
        self.tools = tools
        self.gen_dataset = gen_dataset
        self.gen_manyfiles = gen_manyfiles
        self.wd: Path = args.workdir
        self.pristine = self.wd / "data" / "hospital"
        self.manyfiles = self.wd / "data" / "manyfiles"
        self.src = self.wd / "src" / "hospital"
        self.touch_marker = self.wd / "data" / TOUCH_MARKER
        self.runs: list[dict[str, object]] = []
        self.measured: list[Measurements] = []
        self.errors: list[str] = []
        self.mf_failed: dict[str, str] = {}
        self._rotation = 0
        # per-run state
        self.run_idx = 0
        self.failed: dict[str, str] = {}
        self.cur: Measurements = {}
        self.steps: dict[str, dict[str, object]] = {}
        self.orders: list[dict[str, object]] = []
        self.failed_in_run: set[str] = set()

    # -- helpers ------------------------------------------------------------------------
    def repo(self, tool: Tool, kind: str) -> Path:
        return self.wd / "repos" / _safe(tool.label) / kind

    def cache(self, tool: Tool, kind: str) -> Path:
        return self.wd / "cache" / _safe(tool.label) / kind

    def order(self, kind: str, what: str) -> list[Tool]:
        """Tools still alive for ``kind``, rotated by one at every step (``what``) and by
        one more at every run, so that over as many runs as tools each tool takes each
        place once at every step (going first is not neutral: a restore right after
        another tool's restore was deleted ran up to 1.6x faster than the first one)."""
        failed = self.failed if kind == "dataset" else self.mf_failed
        alive = [t for t in self.tools if t.label not in failed]
        if not alive:
            return []
        k = (self._rotation + self.run_idx) % len(alive)
        self._rotation += 1
        rotated = alive[k:] + alive[:k]
        self.orders.append({"step": what, "order": [t.label for t in rotated]})
        return rotated

    def put(self, tool: Tool, key: str, value: float | None) -> None:
        if value is not None:
            self.cur.setdefault(tool.label, {})[key] = float(value)

    def fail(self, tool: Tool, kind: str, msg: str, fatal: bool = True) -> None:
        """Record an error; ``fatal`` skips the tool's later steps on that repository."""
        text = f"run {self.run_idx + 1}: {tool.label}: {msg}"
        log("  FAILED " + text)
        self.errors.append(text)
        if fatal:
            (self.failed if kind == "dataset" else self.mf_failed)[tool.label] = msg
        # a peak over only the steps that ran would flatter the tool: drop it for this run
        self.failed_in_run.add(tool.label)

    def step(
        self,
        tool: Tool,
        kind: str,
        name: str,
        cmd: list[str],
        cwd: Path | None = None,
        fatal: bool = True,
    ) -> ProcResult | None:
        log_dir = self.wd / "logs" / f"run{self.run_idx + 1}" / _safe(tool.label)
        env = tool.env(self.repo(tool, kind), self.cache(tool, kind))
        res = run_measured(cmd, env=env, log_dir=log_dir, name=name, cwd=cwd)
        self.steps.setdefault(tool.label, {})[name] = {
            "cmd": cmd,
            "rc": res.rc,
            "seconds": round(res.seconds, 4),
            "maxrss_bytes": res.maxrss_bytes,
            "log": res.log_prefix,
        }
        if res.ok:
            peak = self.cur.get(tool.label, {}).get("peak_rss", 0.0)
            self.put(tool, "peak_rss", max(peak, res.maxrss_bytes))
        else:
            msg = f"{name} exited {res.rc}: {res.tail()} (logs {res.log_prefix}.*)"
            self.fail(tool, kind, msg, fatal)
            return None
        log(
            f"  {name:<22} {tool.label:<16} {res.seconds:9.2f} s  "
            f"rss {res.maxrss_bytes / MB:7.1f} MB"
        )
        return res

    def backup(self, tool: Tool, kind: str, name: str, path: Path) -> BackupStats | None:
        archive = f"{name}-{self.run_idx + 1}"
        res = self.step(tool, kind, name, tool.backup_cmd(path, archive))
        if res is None:
            return None
        stats = tool.parse_backup(res.stdout)
        res_steps = self.steps[tool.label][name]
        assert isinstance(res_steps, dict)
        res_steps["summary"] = stats.raw
        self.put(tool, f"{name}_s", res.seconds)
        self.put(tool, f"{name}_rss", res.maxrss_bytes)
        self.put(tool, f"{name}_data_added", stats.data_added)
        return stats

    def init_repo(self, tool: Tool, kind: str) -> bool:
        remove(self.repo(tool, kind))
        remove(self.cache(tool, kind))
        self.repo(tool, kind).parent.mkdir(parents=True, exist_ok=True)
        self.cache(tool, kind).mkdir(parents=True, exist_ok=True)
        return self.step(tool, kind, f"init_{kind}", tool.init_cmd()) is not None

    # -- one run ------------------------------------------------------------------------
    def run_once(self, r: int) -> None:
        self.run_idx, self.failed, self.cur, self.steps, self.orders = r, {}, {}, {}, []
        self._rotation = 0
        self.failed_in_run = set(self.mf_failed)
        run_info: dict[str, object] = {"run": r + 1}
        log(f"\n=== run {r + 1}/{self.args.runs} ===")
        t0 = time.perf_counter()
        copy_tree(self.pristine, self.src)
        s0 = tree_stats(self.src)
        log(
            f"source {self.src}: {s0.files} files, {s0.bytes / MB:.1f} MB "
            f"(copied in {time.perf_counter() - t0:.1f} s)"
        )
        run_info["dataset_before"] = {"files": s0.files, "bytes": s0.bytes}

        for t in self.order("dataset", "init"):
            self.init_repo(t, "dataset")

        log("full backup")
        for t in self.order("dataset", "full_backup"):
            if self.backup(t, "dataset", "full_backup", self.src) is not None:
                self.put(t, "full_backup_mbps", s0.bytes / MB / self.cur[t.label]["full_backup_s"])
                self.put(t, "full_repo_bytes", du(self.repo(t, "dataset"))[0])

        log(f"mutate --percent {self.args.mutate_percent:g}")
        subprocess.run(
            [
                sys.executable,
                str(self.gen_dataset),
                "mutate",
                str(self.src),
                "--percent",
                f"{self.args.mutate_percent:g}",
            ],
            check=True,
            stdout=sys.stderr,
        )
        s1 = tree_stats(self.src)
        run_info["dataset_after"] = {"files": s1.files, "bytes": s1.bytes}

        log("incremental backup")
        for t in self.order("dataset", "incr_backup"):
            if self.backup(t, "dataset", "incr_backup", self.src) is not None:
                disk, apparent = du(self.repo(t, "dataset"))
                self.put(t, "stored_bytes", disk)
                self.put(t, "stored_apparent_bytes", apparent)
                self.put(t, "incr_repo_growth", disk - self.cur[t.label]["full_repo_bytes"])

        log("restore")
        verify: dict[str, object] = {}
        # Twice per tool, in rotated then reversed order, averaged (see order()).
        order = self.order("dataset", "restore")
        seconds: dict[str, list[float]] = {}
        for rep, tools in enumerate((order, list(reversed(order)))):
            for t in tools:
                if rep and t.label not in seconds:
                    continue  # failed or did not verify in the first pass
                target = self.wd / "restore" / _safe(t.label)
                remove(target)
                target.mkdir(parents=True)
                cmd, cwd = t.restore_cmd(target, f"incr_backup-{r + 1}")
                # restore and check leave the repository as it was: a failure is not fatal
                res = self.step(t, "dataset", f"restore{rep + 1}", cmd, cwd=cwd, fatal=False)
                if res is None:
                    seconds.pop(t.label, None)
                    remove(target)
                    continue
                result = verify_restore(self.src, locate_restored(target, self.src),
                                        seed=r + 1)
                verify[f"{t.label} #{rep + 1}"] = {"ok": result.ok, "message": result.message}
                log(f"  verify {t.label}: {'OK' if result.ok else 'MISMATCH'}: "
                    f"{result.message}")
                if result.ok:
                    seconds.setdefault(t.label, []).append(res.seconds)
                else:
                    seconds.pop(t.label, None)
                    msg = f"restore does not match the source: {result.message}"
                    self.fail(t, "dataset", msg, fatal=False)
                remove(target)
        for t in order:
            if len(seconds.get(t.label, [])) == 2:
                mean = sum(seconds[t.label]) / 2
                self.put(t, "restore_s", mean)
                self.put(t, "restore_mbps", s1.bytes / MB / mean)
        run_info["restore_verify"] = verify

        log("check --read-data")
        for t in self.order("dataset", "check"):
            res = self.step(t, "dataset", "check", t.check_cmd(), fatal=False)
            if res is not None:
                self.put(t, "check_s", res.seconds)
                self.put(t, "check_mbps", s1.bytes / MB / res.seconds)

        if self.args.manyfiles != 0:
            run_info["manyfiles"] = self.manyfiles_steps(r)

        for label in self.failed_in_run:
            self.cur.get(label, {}).pop("peak_rss", None)
        run_info["figures"] = self.cur
        run_info["steps"] = self.steps
        run_info["orders"] = self.orders
        run_info["failed"] = dict(self.failed)
        self.runs.append(run_info)
        self.measured.append(self.cur)

    def manyfiles_steps(self, r: int) -> dict[str, object]:
        info: dict[str, object] = {}
        if r == 0:
            log("many files: first backup")
            for t in self.order("manyfiles", "mf_first_backup"):
                if self.init_repo(t, "manyfiles"):
                    self.backup(t, "manyfiles", "mf_first_backup", self.manyfiles)
        log("many files: no-change re-backup")
        for t in self.order("manyfiles", "mf_nochange"):
            self.backup(t, "manyfiles", "mf_nochange", self.manyfiles)
        n = int(json.loads((self.manyfiles / ".gen_state.json").read_text())["n"])
        info["restore_verify"] = self.manyfiles_restore(n)
        k = min(self.args.touch, n)
        if k > 0:
            seed = r + 1
            marker = (
                json.loads(self.touch_marker.read_text())
                if self.touch_marker.exists()
                else {"k": k, "seeds": []}
            )
            marker["seeds"].append(seed)
            self.touch_marker.write_text(json.dumps(marker))
            subprocess.run(
                [
                    sys.executable,
                    str(self.gen_manyfiles),
                    "touch",
                    str(self.manyfiles),
                    "--k",
                    str(k),
                    "--seed",
                    str(seed),
                ],
                check=True,
                stdout=sys.stderr,
            )
            log(f"many files: re-backup after touching {k} files")
            for t in self.order("manyfiles", "mf_touched"):
                self.backup(t, "manyfiles", "mf_touched", self.manyfiles)
            info["touched"] = {"k": k, "seed": seed}
        return info

    def manyfiles_restore(self, n: int) -> dict[str, object]:
        """Restore the tree (as the no-change re-backup left it) into a fresh directory
        each tool creates itself, verified against the source."""
        log("many files: restore")
        verify: dict[str, object] = {}
        for t in self.order("manyfiles", "mf_restore"):
            target = self.wd / "restore" / f"mf-{_safe(t.label)}"
            remove(target)
            cmd, cwd = t.restore_cmd(target, f"mf_nochange-{self.run_idx + 1}")
            if cwd is not None:
                cwd.mkdir(parents=True)  # borg extracts into its working directory
            res = self.step(t, "manyfiles", "mf_restore", cmd, cwd=cwd, fatal=False)
            if res is None:
                remove(target)
                continue
            result = verify_restore(self.manyfiles, locate_restored(target, self.manyfiles),
                                    seed=self.run_idx + 1)
            verify[t.label] = {"ok": result.ok, "message": result.message}
            log(f"  verify {t.label}: {'OK' if result.ok else 'MISMATCH'}: {result.message}")
            if result.ok:
                self.put(t, "mf_restore_s", res.seconds)
                self.put(t, "mf_restore_fps", n / res.seconds)
            else:
                self.fail(t, "manyfiles", f"restore does not match the source: "
                          f"{result.message}", fatal=False)
            remove(target)
        return verify

    def run(self) -> None:
        try:
            for r in range(self.args.runs):
                self.run_once(r)
        finally:
            revert_touches(self.gen_manyfiles, self.manyfiles, self.touch_marker)


def describe_data(runs: list[dict[str, object]], many: dict[str, object]) -> str:
    def fmt(stats: object) -> str:
        if not isinstance(stats, dict):
            return "-"
        return f"{stats.get('files')} files, {int(stats.get('bytes', 0)) / MB:.1f} MB"

    last = runs[-1] if runs else {}
    text = (
        f"dataset: {fmt(last.get('dataset_before'))}, "
        f"after mutate: {fmt(last.get('dataset_after'))}"
    )
    if many.get("n"):
        text += f"; many files: {fmt(many)}"
    return text


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir = args.workdir.resolve()
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    bad = sorted(set(names) - set(TOOL_NAMES))
    if bad or not names:
        sys.exit(f"--tools: unknown {bad or 'empty'}; choose from {','.join(TOOL_NAMES)}")
    levels = [c.strip() for c in args.medark_compression.split(",") if c.strip()]
    gen_dataset, gen_manyfiles = find_generators(args)
    if args.cold:
        try:
            _proc.drop_page_cache()
        except OSError as exc:
            sys.exit(f"--cold: cannot drop the page cache ({exc.strerror}): run as root")
        _proc.COLD_CACHE = True

    ensure_debs([*names, "time"], not args.no_install)
    if "medark" in names and not os.access(args.medark, os.X_OK):
        sys.exit(f"medark not found at {args.medark} (run `make dev-venv` or pass --medark)")
    tools = build_tools(names, str(args.medark), levels)
    for t in tools:
        if t.name == "restic" and not restic_supports_compression(t.exe):
            sys.exit("restic >= 0.14 is needed (repository v2 with compression)")
    ensure_numpy(not args.no_install)
    ensure_bytecode()

    started = dt.datetime.now()
    data = args.workdir / "data"
    if args.skip_generate:  # a crashed earlier run may have left touched files behind
        revert_touches(gen_manyfiles, data / "manyfiles", data / TOUCH_MARKER)
    prepare_workdir(args.workdir, keep_data=args.skip_generate)
    dataset_info = ensure_dataset(args, gen_dataset, data / "hospital")
    many_info: dict[str, object] = {"n": 0}
    if args.manyfiles != 0:
        many_info = ensure_manyfiles(args, gen_manyfiles, data / "manyfiles")
        many_stats = tree_stats(data / "manyfiles")
        many_info.update(files=many_stats.files, bytes=many_stats.bytes)

    bench = Bench(args, tools, gen_dataset, gen_manyfiles)
    bench.run()

    labels = [t.label for t in tools]
    med = medians(bench.measured, labels)
    rat = ratios(med, ratio_pairs([(t.label, t.name) for t in tools]))
    notes = [
        COLD_CACHE_NOTE if args.cold else WARM_CACHE_NOTE,
        "MB = 10^6 bytes. Throughput = source bytes / wall time: full backup over the "
        "dataset before the mutation, restore and check over the dataset after it.",
        f"restic: repository v2, --compression {RESTIC_COMPRESSION}; borg 1.2: repokey-blake2, "
        f"--compression {BORG_COMPRESSION}; Medark: see tools.*.settings.",
        "data added = each tool's own figure (restic/Medark: data_added, borg: "
        "deduplicated_size); repository growth = du of the repository, comparable across tools.",
        f"Figures are medians over {args.runs} run(s); ratios are Medark / other "
        "(below 1 is better for times, sizes and RSS; above 1 for throughput).",
    ]
    table = format_table(med, labels, rat)
    out = args.out or REPO_ROOT / "bench" / "out" / f"results-{started:%Y-%m-%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": environment(tools),
        "dataset": dataset_info,
        "manyfiles": many_info,
        "figures": {
            f.key: {
                "title": f.title,
                "unit": f.unit,
                "better": f.better,
                "stored_in": "bytes" if f.is_bytes else f.unit,
            }
            for f in FIGURES
        },
        "median": med,
        "ratios": rat,
        "runs": bench.runs,
        "errors": bench.errors,
        "notes": notes,
        "table": table,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")

    print()
    print(describe_data(bench.runs, many_info))
    print_report(table, notes, bench.errors, str(out),
                 "ERRORS (figures of a failed tool are missing or partial):")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
