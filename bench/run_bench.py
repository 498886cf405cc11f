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

The setup (generators, packages, data, work directory) is in _setup.py, the timed steps
(the Bench class) in _bench.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import _proc
from _bench import Bench
from _report import (
    FIGURES,
    MB,
    format_table,
    medians,
    print_report,
    ratio_pairs,
    ratios,
)
from _setup import (
    DEFAULT_MANYFILES,
    DEFAULT_SIZE_MB,
    REPO_ROOT,
    TOUCH_MARKER,
    ensure_bytecode,
    ensure_dataset,
    ensure_debs,
    ensure_manyfiles,
    ensure_numpy,
    environment,
    find_generators,
    log,
    prepare_workdir,
    revert_touches,
)
from _tools import (
    BORG_COMPRESSION,
    RESTIC_COMPRESSION,
    TOOL_NAMES,
    build_tools,
    restic_supports_compression,
)
from _trees import tree_stats

__all__ = [  # the setup helpers other benches import from here
    "ensure_bytecode",
    "ensure_dataset",
    "ensure_debs",
    "ensure_numpy",
    "environment",
    "find_generators",
    "log",
    "main",
    "prepare_workdir",
]

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


# ---------------------------------------------------------------------------------------
# command line
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
