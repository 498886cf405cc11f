"""The Bench class: run_bench.py's timed steps for every tool, in a rotating order, on
the dataset (full and incremental backup, restore twice, check) and the many-files tree
(first and no-change backup, restore, backup after touch), with their figures and logs."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from _proc import ProcResult, run_measured
from _report import MB, Measurements
from _setup import TOUCH_MARKER, log, revert_touches
from _tools import BackupStats, Tool
from _trees import copy_tree, du, locate_restored, remove, tree_stats, verify_restore


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")


class Bench:
    """One benchmark: every run's steps per tool, the figures (``measured``), the
    command records (``runs``) and the errors; a failed tool skips that data set's
    later steps."""

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
        self.restored_trees: list[Path] = []
        """Many-files restores, kept until the end (_trees.RECENTLY_DELETED)."""
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
            "tree_rss_bytes": res.tree_rss_bytes,
            "log": res.log_prefix,
        }
        if res.ok:
            peak = self.cur.get(tool.label, {}).get("peak_rss", 0.0)
            self.put(tool, "peak_rss", max(peak, res.maxrss_bytes))
            tree_peak = self.cur.get(tool.label, {}).get("peak_tree_rss", 0.0)
            self.put(tool, "peak_tree_rss", max(tree_peak, res.tree_rss_bytes))
        else:
            msg = f"{name} exited {res.rc}: {res.tail()} (logs {res.log_prefix}.*)"
            self.fail(tool, kind, msg, fatal)
            return None
        log(
            f"  {name:<22} {tool.label:<16} {res.seconds:9.2f} s  "
            f"rss {res.maxrss_bytes / MB:7.1f} MB  all processes {res.tree_rss_bytes / MB:7.1f} MB"
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
        self.put(tool, f"{name}_tree_rss", res.tree_rss_bytes)
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
        each tool creates itself, verified against the source, and kept until the end
        of the benchmark: removing it would slow the next tool's restore on some file
        systems (_trees.RECENTLY_DELETED)."""
        log("many files: restore")
        verify: dict[str, object] = {}
        for t in self.order("manyfiles", "mf_restore"):
            target = self.wd / "restore" / f"mf-{_safe(t.label)}-{self.run_idx + 1}"
            remove(target)
            self.restored_trees.append(target)
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
        return verify

    def run(self) -> None:
        try:
            for r in range(self.args.runs):
                self.run_once(r)
        finally:
            revert_touches(self.gen_manyfiles, self.manyfiles, self.touch_marker)
            for tree in self.restored_trees:
                remove(tree)
