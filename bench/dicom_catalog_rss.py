#!/usr/bin/env python3
"""The DICOM catalog's memory (issue 18: RSS flat in the file count): peak RSS of a first
backup, a no-change backup and a `dicom find` of generated PACS trees of several sizes.

    .venv/bin/python bench/dicom_catalog_rss.py --files 20000 200000
    .venv/bin/python bench/dicom_catalog_rss.py --files 20000 --medark-src /tmp/old/src

The trees are tiny DICOM files (about 600 bytes: one pydicom-written template whose
fixed-width UIDs, patient and accession are patched per instance, so 200,000 files take
seconds to write), laid out like dcm4chee's storage: `<day>/<study>/<series>/<sop>.dcm`,
50 instances a series, 4 series a study. Each size gets a fresh repository under
--workdir (deleted afterwards unless --keep). `--medark-src` runs another checkout's
`src` with this interpreter (the "before" figures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PER_SERIES, PER_STUDY, PER_DAY = 50, 4, 20
_STUDY, _SERIES, _SOP = "9" * 8, "8" * 8, "7" * 8


def _template() -> bytes:
    from dicom_samples import Instance, encode, uid

    return encode(Instance("x.dcm", "P" + _STUDY, "张^三", uid(int(_STUDY)),
                           uid(int(_STUDY), int(_SERIES)),
                           uid(int(_STUDY), int(_SERIES), int(_SOP)), "CT", "20261103",
                           "A" + _STUDY, "胸部CT平扫", pixels=bytes(128)))


def write_tree(root: Path, files: int) -> None:
    """`files` instances; each UID keeps the template's length (elements stay valid)."""
    template = _template()
    assert template.count(_SOP.encode()) >= 1
    made: set[Path] = set()
    for n in range(files):
        study, rest = divmod(n, PER_SERIES * PER_STUDY)
        series, index = divmod(rest, PER_SERIES)
        st, se, so = f"{study:08d}", f"{series + 1:08d}", f"{index + 1:08d}"
        data = (template.replace(_SOP.encode(), so.encode())
                .replace(_SERIES.encode(), se.encode()).replace(_STUDY.encode(), st.encode()))
        folder = root / f"d{study // PER_DAY:04d}" / st / se
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        (folder / f"{so}.dcm").write_bytes(data)


def run(env: dict[str, str], command: list[str], *args: str) -> tuple[float, int, str]:
    """(wall seconds, the child's peak RSS in KiB, stdout): one child at a time, so
    RUSAGE_CHILDREN's maximum is this child's once it exceeds the earlier ones'; the
    figure is read from /usr/bin/time's own report instead when it is there."""
    t0 = time.perf_counter()
    timed = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") else []
    proc = subprocess.run([*timed, *command, *args], env=env, capture_output=True,
                          check=False, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        sys.exit(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
    if timed:
        rss = int(proc.stderr.strip().splitlines()[-1])
    else:
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, rss, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--medark-src", default=None,
                        help="run this checkout's src (e.g. the code before a change)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-dicom-catalog", action="store_true",
                        help="the backups without the catalog (the backup's own memory)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dicom-rss-"))
    if args.medark_src:
        command = [sys.executable, "-m", "medark"]
        pythonpath = str(Path(args.medark_src).resolve())
    else:
        command = [str(Path(sys.executable).parent / "medark")]
        pythonpath = ""
    rows = []
    try:
        for files in args.files:
            case = work / f"n{files}"
            shutil.rmtree(case, ignore_errors=True)
            tree = case / "pacs"
            t0 = time.perf_counter()
            write_tree(tree, files)
            written = time.perf_counter() - t0
            env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
            env.update(HOME=str(case), MEDARK_REPO=str(case / "repo"),
                       MEDARK_CACHE_DIR=str(case / "cache"), MEDARK_PASSWORD="bench",
                       MEDARK_KDF_N="1024",
                       MEDARK_INSECURE_TEST_KDF="i-understand-this-weakens-every-key")
            if pythonpath:
                env["PYTHONPATH"] = pythonpath
            run(env, command, "init")
            flag = ["--no-dicom-catalog"] if args.no_dicom_catalog else []
            first = run(env, command, "backup", str(tree), "--json", *flag)
            summary = [json.loads(line) for line in first[2].splitlines()
                       if '"summary"' in line][-1]
            again = run(env, command, "backup", str(tree), "--json", *flag)
            found = run(env, command, "dicom", "find", "--json", "--patient-id",
                        f"P{5:08d}", "--catalog",
                        f"sqlite:///{case / 'audit.sqlite'}")
            row = {"files": files, "instances": summary.get("dicom", {}).get("instances"),
                   "write_s": round(written, 1),
                   "backup_s": round(first[0], 1), "backup_rss_mb": round(first[1] / 1024, 1),
                   "again_s": round(again[0], 1), "again_rss_mb": round(again[1] / 1024, 1),
                   "find_s": round(found[0], 1), "find_rss_mb": round(found[1] / 1024, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not args.keep:
                shutil.rmtree(case, ignore_errors=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
