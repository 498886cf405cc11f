"""Write the seed corpus with Medark's own writers (and mbstream's, and MariaDB's).

Run once, by hand, when a format changes: `.venv/bin/python tests/fuzz/make_corpus.py`
(or name some writers: `... make_corpus.py records`).
The seeds are checked in; crashers found later are added beside them by hand, named
`crash-<what>`. Seeds are named `seed-*` and this script rewrites only those.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from fuzz_targets import CORPUS, MASTER_KEY, PASSWORD, SUITE, crypto  # noqa: E402

from medark.repo import index_file  # noqa: E402
from medark.repo.compression import CompressionSpec, Compressor  # noqa: E402
from medark.repo.config import RepoConfig  # noqa: E402
from medark.repo.crypto import SUITES  # noqa: E402
from medark.repo.keys import KdfParams, make_key_file  # noqa: E402
from medark.repo.pack import ENTRY, BlobType, PackBuilder, PackedBlob  # noqa: E402
from medark.snapshot.model import Node, Snapshot, encode_tree  # noqa: E402

REPO_ROOT = HERE.parent.parent


def write(target: str, name: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


def blobs() -> list[PackedBlob]:
    c = crypto()
    found = []
    offset = 0
    for i, (kind, text) in enumerate([(BlobType.DATA, b"patient record " * 20),
                                      (BlobType.TREE, b'{"nodes":[]}'),
                                      (BlobType.DATA, b"x")]):
        sealed = c.seal(text)
        found.append(PackedBlob(kind, c.blob_id(text), offset, len(sealed), i * 100))
        offset += len(sealed)
    return found


def packs() -> None:
    c = crypto()
    builder = PackBuilder()
    for kind, text in [(BlobType.DATA, b"patient record " * 20), (BlobType.TREE, b"{}")]:
        builder.add(kind, c.blob_id(text), c.seal(text), 0)
    write("pack_sealed", "two-blobs", bytes(builder.finish(c)))
    empty = PackBuilder()
    write("pack_sealed", "empty", bytes(empty.finish(c)))
    entries = blobs()
    header = b"".join(ENTRY.pack(e.type, e.id, e.length, e.raw_length) for e in entries)
    body = sum(e.length for e in entries)
    sealed_len = len(c.seal(header))
    write("pack_header", "three-entries",
          (body + sealed_len + 4).to_bytes(4, "little") + header)
    write("pack_header", "empty", (len(c.seal(b"")) + 4).to_bytes(4, "little"))


def blob_seeds() -> None:
    text = b"patient record, ward 3, bed 12; " * 64
    compressed = Compressor(CompressionSpec("zstd", 3)).compress(text)
    assert compressed is not None
    write("blob", "zstd3", struct.pack("<I", len(text)) + compressed)


def indexes() -> None:
    c = crypto()
    entries = blobs()
    cases = {
        "one-pack": ([(bytes(32), entries)], []),
        "two-packs-superseded": ([(b"\1" * 32, entries), (b"\2" * 32, entries[:1])],
                                 [b"\3" * 32, b"\4" * 32]),
        "empty": ([], []),
    }
    for name, (packs, superseded) in cases.items():
        compressed = index_file.encode(packs, superseded)
        write("index_zstd", name, compressed)
        write("index_sealed", name, c.seal(compressed))
        plain = zstandard_decompress(compressed)
        write("index_plain", name, plain)


def zstandard_decompress(data: bytes) -> bytes:
    import zstandard

    out: bytes = zstandard.ZstdDecompressor().decompress(data)
    return out


def trees_and_snapshots() -> None:
    c = crypto()
    nodes = [
        Node("dicom", "dir", mode=0o40755, uid=1000, gid=1000, user="pacs", group="pacs",
             mtime_ns=1_700_000_000_000_000_000, subtree=b"\xab" * 32),
        Node("report.pdf", "file", mode=0o100644, size=12345, inode=42, links=2,
             content=[b"\x01" * 32, b"\x02" * 32], mtime_ns=1_700_000_000_123_456_789),
        Node("latest", "symlink", mode=0o120777, linktarget="dicom/2024"),
        Node("病历.txt", "file", mode=0o100600, content=[], error="permission denied"),
        Node("null", "chardev", mode=0o20666, rdev=259),
    ]
    raw = encode_tree(nodes)
    write("tree", "five-nodes", raw)
    write("tree_sealed", "five-nodes", c.seal(raw))
    write("tree", "empty", encode_tree([]))
    snap = Snapshot(time=datetime(2026, 3, 1, 2, 0, 0, 123456, tzinfo=UTC), tree=b"\xcd" * 32,
                    paths=["/srv/pacs"], hostname="his-db", username="root",
                    tags=["nightly", "pg"], parent="ab" * 32, program_version="medark 0.9",
                    summary={"files_new": 3, "data_added": 1024},
                    source={"kind": "postgres", "system_id": "7312", "start_lsn": "0/2000028",
                            "timeline": 1}, original="ef" * 32)
    write("snapshot", "full", snap.to_json())
    write("snapshot_sealed", "full", c.seal(snap.to_json()))
    minimal = Snapshot(time=datetime(2026, 1, 1, tzinfo=UTC), tree=b"\0" * 32, paths=[],
                       hostname="h")
    write("snapshot", "minimal", minimal.to_json())


def keys_and_config() -> None:
    c = crypto()
    write("key_file", "n1024", make_key_file(SUITE, MASTER_KEY, PASSWORD, KdfParams(n=1024)))
    write("key_file", "sm4-n16",
          make_key_file(SUITES["sm4-gcm"], MASTER_KEY, PASSWORD, KdfParams(n=16)))
    config = RepoConfig.new("aes-256-gcm", CompressionSpec("zstd", 3))
    write("repo_config", "default", config.to_json())
    write("repo_config", "none", RepoConfig.new("sm4-gcm", CompressionSpec("none", 0),
                                                pack_size=4 << 20).to_json())
    write("repo_config_sealed", "default", c.seal(config.to_json()))


def archive_records() -> None:
    """Locks, a hold marker and its release, WAL and binlog records, as a repository's
    own writers store them (in memory), unsealed: the plaintext their parsers read."""
    from medark.engine.mysql_binlog import BinlogArchive, BinlogRecord
    from medark.engine.mysql_binlog import record_name as binlog_record_name
    from medark.engine.pg_wal import WalArchive
    from medark.engine.worm import hold, release
    from medark.repo.compression import parse_compression
    from medark.repo.repository import Repository
    from medark.sources.mysql.binlog import scan_events
    from medark.storage.mem import MemoryBackend
    from medark.util import clock

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from conftest import TEST_KDF

    os.environ.update(TEST_KDF)
    with tempfile.TemporaryDirectory() as cache:
        repo = Repository.init(MemoryBackend(), PASSWORD, "aes-256-gcm",
                               parse_compression("zstd:3"), Path(cache))
        for exclusive, command in [(False, "backup"), (True, "prune")]:
            held = repo.lock(exclusive, command, lambda _line: None)
            write("lock_file", command, repo.unseal(repo.backend.load(held.name)))
            held.release()
        snap = Snapshot(time=datetime(2026, 3, 1, tzinfo=UTC), tree=b"\xcd" * 32,
                        paths=["/srv/pacs"], hostname="his-db", id="ab" * 32)
        marker = hold(repo, snap, "court order 2026-17").marker
        write("hold_record", "held", repo.load_unpacked(marker))
        released = release(repo, snap, lambda _id: snap).marker
        write("hold_record", "released", repo.load_unpacked(released))
        wal = WalArchive(repo, "7312345678901234567")
        segment = "000000010000000000000001"
        for name, data, via in [(segment, b"\x01" * 1000 + bytes(300_000), "archive_command"),
                                ("00000002.history", b"1\t0/3000000\tno recovery target\n",
                                 "archive_command")]:
            wal.push(name, data, via)
        wal.push_partial("000000010000000000000002", b"\x02" * 5000, {"timeline": 1})
        for name in wal.names():
            file = name.rsplit("/", 1)[-1]
            seed = "partial-version" if ".partial-" in file else file.replace(".", "-")
            write("wal_record", seed, repo.unseal(repo.load_object(name)))
        binlog = (CORPUS / "binlog" / "seed-mariadb-first-file").read_bytes()
        archive = BinlogArchive(repo, "1")
        scan = scan_events(binlog)
        blobs, _added = archive.store_blocks(memoryview(binlog[: scan.end]))
        for version in ("", "00001772330400000"):
            record = BinlogRecord("binlog.000001", "1", scan.end,
                                  hashlib.sha256(binlog[: scan.end]).hexdigest(), blobs,
                                  clock.format_time(clock.now()), version, scan.last_time)
            archive.push(record)
            name = binlog_record_name("1", record.file, version)
            write("binlog_record", "complete" if not version else "version",
                  repo.unseal(repo.load_object(name)))
        repo.close()


def tars() -> None:
    """Shaped like pg_basebackup's base.tar: a label, directories, files, a tablespace
    link, a GNU long name; written by tarfile as ustar and GNU."""
    for fmt, name in [(tarfile.GNU_FORMAT, "gnu"), (tarfile.USTAR_FORMAT, "ustar"),
                      (tarfile.PAX_FORMAT, "pax")]:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
            def add(member: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
                    link: str = "") -> None:
                info = tarfile.TarInfo(member)
                info.type = kind
                info.mode = 0o700 if kind == tarfile.DIRTYPE else 0o600
                info.mtime = 1_700_000_000
                info.linkname = link
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

            add("backup_label", b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
                b"CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nSTART TIMELINE: 1\n")
            add("base", kind=tarfile.DIRTYPE)
            add("base/1", kind=tarfile.DIRTYPE)
            add("base/1/1259", b"\0" * 700)
            add("pg_tblspc", kind=tarfile.DIRTYPE)
            add("pg_tblspc/16384", kind=tarfile.SYMTYPE, link="/srv/tblspc")
            if fmt != tarfile.USTAR_FORMAT:
                add("base/1/" + "long_relation_name_" * 8, b"long")
            add("PG_VERSION", b"15\n")
        write("tar_tap", name, out.getvalue())
        write("pg_base_tar", name, out.getvalue())
    # hostile: a tablespace link to the sandbox around the target, then entries through it
    # (relative, so that a write through the link lands where the harness looks)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member, kind, link, data in [
                ("pg_tblspc", tarfile.DIRTYPE, "", b""),
                ("pg_tblspc/16384", tarfile.SYMTYPE, "../..", b""),
                ("pg_tblspc/16384/canary", tarfile.REGTYPE, "", b"overwritten"),
                ("pg_tblspc/16384/escaped", tarfile.REGTYPE, "", b"escaped"),
                ("base/hardlink", tarfile.LNKTYPE, "../canary", b""),
                ("../escaped", tarfile.REGTYPE, "", b"escaped")]:
            info = tarfile.TarInfo(member)
            info.type, info.linkname, info.size, info.mode = kind, link, len(data), 0o600
            tar.addfile(info, io.BytesIO(data) if data else None)
    write("pg_base_tar", "hostile-links", out.getvalue())


def xbstreams() -> None:
    """mbstream -c of a small data directory (the real writer)."""
    mbstream = shutil.which("mbstream")
    if mbstream is None:
        raise SystemExit("mbstream is not installed (apt-get install mariadb-backup)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "xtrabackup_binlog_info").write_text("binlog.000002\t604\t0-1-10\n")
        (root / "ibdata1").write_bytes(b"\x00\x01" * 300)
        (root / "his").mkdir()
        (root / "his" / "patients.ibd").write_bytes(b"row" * 100)
        stream = subprocess.run([mbstream, "-c", "xtrabackup_binlog_info", "ibdata1",
                                 "his/patients.ibd"], cwd=root, capture_output=True,
                                check=True).stdout
        # hostile: mbstream -c writes the name it is given, `..` and all
        (root / "sub").mkdir()
        hostile = subprocess.run([mbstream, "-c", "../ibdata1"], cwd=root / "sub",
                                 capture_output=True, check=True).stdout
    for name in ("xbstream_tap", "xbstream_guard"):
        write(name, "three-files", stream)
    write("xbstream_guard", "hostile-traversal", stream + hostile)


def binlogs() -> None:
    """The first kilobytes of a real MariaDB binary log (a throwaway server)."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from mysql_server import MariaServer, make_base

    server = MariaServer(make_base())
    server.init()
    server.start()
    try:
        server.root_sql("CREATE DATABASE his; CREATE TABLE his.p (id INT PRIMARY KEY, "
                        "name TEXT); INSERT INTO his.p VALUES (1, 'Zhang'), (2, 'Li'); "
                        "FLUSH BINARY LOGS")
        time.sleep(0.5)
        first = sorted(server.base.glob("binlog.0*"))[0]
        data = first.read_bytes()
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
    write("binlog", "mariadb-first-file", data[:8192])
    write("binlog_info", "backup", b"binlog.000002\t604\t0-1-10\n")
    write("binlog_info", "no-gtid", b"binlog.000002\t604\t\n")
    write("binlog_info", "dump",
          b"-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003', MASTER_LOG_POS=385;\n"
          b"-- SET GLOBAL gtid_slave_pos='0-1-17';\n")


def configs() -> None:
    write("plan_config", "example", (REPO_ROOT / "docs/examples/medark.toml").read_bytes())
    write("plan_config", "minimal", b"""
[sites.main]
location = "CN-SC"
[repositories.local]
site = "main"
url = "/backup"
[systems.his]
owner = "it"
[[systems.his.sources]]
type = "files"
paths = ["/srv"]
[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = { daily = 7, within = "2d" }
[alerts]
webhooks = [{ url = "https://hooks.example/x" }]
[alerts.email]
smtp = "mail.example:587"
sender = "medark@example"
to = ["it@example"]
username = "medark"
password_file = "/etc/medark/mail.password"
""")


WRITERS = {"packs": packs, "blobs": blob_seeds, "indexes": indexes,
           "trees": trees_and_snapshots, "keys": keys_and_config, "tars": tars,
           "xbstreams": xbstreams, "configs": configs, "binlogs": binlogs,
           "records": archive_records}
"""In order: `records` reads the binlog seed `binlogs` writes."""


def main() -> None:
    """Every seed, or (names given: `make_corpus.py records`) only those writers' seeds,
    the others left as they are."""
    chosen = sys.argv[1:] or list(WRITERS)
    if not sys.argv[1:]:
        for folder in CORPUS.glob("*"):
            for old in folder.glob("seed-*"):
                old.unlink()
    for name in chosen:
        WRITERS[name]()
    print(json.dumps({p.name: len(list(p.iterdir())) for p in sorted(CORPUS.iterdir())}))


if __name__ == "__main__":
    main()
