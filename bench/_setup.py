"""What run_bench.py (and the other benches) set up before measuring: the shared
generators, the Debian packages and numpy they need, Medark's bytecode, the work
directory, the generated data, and the record of the machine and tool versions."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _tools import Tool
from _trees import remove

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZE_MB = 2048.0
DEFAULT_MANYFILES = 200_000
TOUCH_MARKER = "manyfiles.touched.json"
DEBS = {"restic": "restic", "borg": "borgbackup", "time": "time"}
"""Commands the bench needs -> their Debian packages (GNU time measures peak RSS: _proc.py)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
