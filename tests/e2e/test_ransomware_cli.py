"""End-to-end: ransomware detection through the real `medark` command.

A realistic small hospital tree (clinical notes and HL7 messages that compress, DICOM
images whose pixel data is already compressed) is backed up over several simulated days
of ordinary ~1% change, then 30% of its files are encrypted in place (AES-CTR, names and
sizes kept) or encrypted into `.locked` copies with the originals deleted.
"""

from __future__ import annotations

import filecmp
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, Result
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

WORDS = ("patient", "ward", "glucose", "5.6", "mmol/L", "follow-up", "stable", "discharge",
         "cardiology", "ECG", "sinus", "rhythm", "患者", "诊断", "复诊", "PID|1||998877",
         "OBX|1|NM|GLU", "\n")
EXIT_SUSPICIOUS = 4


def text(rng: random.Random, words: int) -> bytes:
    return " ".join(rng.choice(WORDS) for _ in range(words)).encode()


def dicom(rng: random.Random, pixels: int) -> bytes:
    """A DICOM-like file: preamble, a textual header, then compressed pixel data."""
    header = b"\0" * 128 + b"DICM" + text(rng, 60)
    return header + rng.randbytes(pixels)


def make_tree(root: Path, seed: int = 7) -> Path:
    rng = random.Random(seed)
    for i in range(160):
        path = root / "emr" / f"ward{i % 8}" / f"note{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text(rng, rng.randint(300, 4000)))
    for i in range(80):
        path = root / "his" / "hl7" / f"msg{i:04d}.hl7"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text(rng, rng.randint(100, 800)))
    for i in range(160):
        path = root / "pacs" / f"study{i // 10:03d}" / f"IM{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(dicom(rng, rng.randint(8_000, 60_000)))
    return root


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def ordinary_day(root: Path, day: int) -> None:
    """~1% of the files change: notes edited, an image re-sent, one message removed;
    plus new studies and a new note, as any day brings."""
    rng = random.Random(1000 + day)
    files = files_of(root)
    notes = [p for p in files if p.suffix == ".txt"]
    images = [p for p in files if p.suffix == ".dcm"]
    for path in rng.sample(notes, 2):
        with path.open("ab") as f:
            f.write(b"\n" + text(rng, 50))
    resent = rng.choice(images)
    resent.write_bytes(dicom(rng, resent.stat().st_size))
    rng.choice([p for p in files if p.suffix == ".hl7"]).unlink()
    study = root / "pacs" / f"new{day:03d}"
    study.mkdir()
    for i in range(4):
        (study / f"IM{i:05d}.dcm").write_bytes(dicom(rng, rng.randint(8_000, 60_000)))
    (root / "emr" / "ward0" / f"day{day:03d}.txt").write_bytes(text(rng, 500))


def encrypt(data: bytes, key: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(os.urandom(16))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def ransomware(root: Path, share: float = 0.3, rename: bool = False) -> int:
    """Encrypt `share` of the files; in place, or into NAME.locked with NAME deleted."""
    key = os.urandom(32)
    files = files_of(root)
    victims = random.Random(99).sample(files, round(share * len(files)))
    for path in victims:
        sealed = encrypt(path.read_bytes(), key)
        if rename:
            path.with_name(path.name + ".locked").write_bytes(sealed)
            path.unlink()
        else:
            path.write_bytes(sealed)
    return len(victims)


def backup(cli: Cli, root: Path, *extra: str, env: dict[str, str] | None = None
           ) -> tuple[Result, dict[str, Any], list[dict[str, Any]]]:
    """Run `backup --json`; (result, summary line, alert lines)."""
    saved = dict(cli.env)
    cli.env.update(env or {})
    try:
        result = cli("backup", root, "--json", *extra, check=False)
    finally:
        cli.env = saved
    assert result.returncode in (0, EXIT_SUSPICIOUS), result.stderr
    lines = result.json_lines()
    summary = next(line for line in lines if line.get("message_type") == "summary")
    alerts = [line for line in lines if line.get("message_type") == "alert"]
    return result, summary, alerts


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")


def quiet_days(cli: Cli, root: Path, days: int) -> list[str]:
    ids = []
    result, summary, alerts = backup(cli, root)
    assert result.returncode == 0 and "anomaly" not in summary  # first backup: no parent
    ids.append(summary["snapshot_id"])
    for day in range(1, days + 1):
        ordinary_day(root, day)
        result, summary, alerts = backup(cli, root)
        assert result.returncode == 0 and not alerts, summary.get("anomaly")
        assert summary["anomaly"]["suspicious"] is False
        assert summary["files_deleted"] == 1 and summary["files_new"] == 5
        assert 0 < summary["files_changed"] <= 4  # ~1% of ~400 files
        ids.append(summary["snapshot_id"])
    return ids


def test_encryption_in_place_flags_the_next_snapshot(
    initialized: Cli, tree: Path, tmp_path: Path
) -> None:
    cli = initialized
    ids = quiet_days(cli, tree, days=4)
    before_attack = shutil.copytree(tree, tmp_path / "before-attack", symlinks=True)

    victims = ransomware(tree, 0.3)
    result, summary, alerts = backup(cli, tree)
    assert result.returncode == EXIT_SUSPICIOUS
    flagged = summary["snapshot_id"]
    assert summary["anomaly"]["suspicious"] is True
    assert summary["files_changed_encrypted"] >= victims - 2  # tiny files may be too short
    assert "ALERT: snapshot " + flagged[:8] in result.stderr
    assert "files rewritten with encrypted-looking content" in result.stderr
    assert "medark snapshots --clean" in result.stderr
    [event] = alerts
    assert event["event"] == "ransomware_suspected" and event["snapshot_id"] == flagged
    assert event["paths"] == [str(tree)] and event["reasons"]
    assert event["stats"]["files_changed_encrypted"] == summary["files_changed_encrypted"]
    assert not any(line.get("message_type") == "error" for line in result.json_lines())

    # The encrypted state, backed up again, looks ordinary against its encrypted parent:
    # not flagged, and still no recovery candidate.
    result, after, _alerts = backup(cli, tree)
    assert result.returncode == 0 and after["anomaly"]["suspicious"] is False

    table = cli("snapshots").stdout
    flagged_row = next(line for line in table.splitlines() if line.startswith(flagged[:8]))
    assert flagged_row.rstrip().endswith("SUSPICIOUS")
    assert "1 flagged as suspicious" in table
    listed = {s["id"]: s["suspicious"] for s in cli("snapshots", "--json").json()}
    assert listed[flagged] is True and listed[ids[-1]] is False

    clean = cli("snapshots", "--clean", "--json").json()
    assert [s["id"] for s in clean] == [ids[-1]]
    assert [s["id"] for s in cli("snapshots", "--clean", "--latest", "2", "--json").json()
            ] == ids[-2:]
    assert ids[-1][:8] in cli("snapshots", "--clean").stdout

    # Retention keeps the flagged snapshot and the last clean one before it.
    groups = cli("forget", "--keep-last", "1", "--json").json()
    kept = {r["snapshot"]["id"]: r["matches"] for r in groups[0]["reasons"]}
    assert kept == {
        after["snapshot_id"]: ["last snapshot"],
        flagged: ["flagged as suspicious (forget it by id once resolved)"],
        ids[-1]: [f"last clean before suspicious {flagged[:8]}"],
    }
    assert {s["id"] for s in cli("snapshots", "--json").json()} == set(kept)
    text_out = cli("forget", "--keep-last", "1", "--dry-run").stdout
    assert f"last clean before suspicious {flagged[:8]}" in text_out

    # The candidate restores the tree as it was before the attack.
    cli("restore", ids[-1], "--target", tmp_path / "restored")
    restored = tmp_path / "restored" / tree.relative_to("/")
    compare = filecmp.dircmp(before_attack, restored)
    assert not compare.diff_files and not compare.left_only and not compare.right_only
    for path in files_of(before_attack):
        assert path.read_bytes() == (restored / path.relative_to(before_attack)).read_bytes()


def test_encrypted_copies_renamed_to_locked_flag(initialized: Cli, tree: Path) -> None:
    ids = quiet_days(initialized, tree, days=2)
    victims = ransomware(tree, 0.3, rename=True)
    result, summary, alerts = backup(initialized, tree)
    assert result.returncode == EXIT_SUSPICIOUS
    assert summary["files_deleted"] == victims and summary["files_ext_renamed"] == victims
    assert summary["files_unseen_ext"] == victims  # .locked was never seen before
    reasons = " ".join(alerts[0]["reasons"])
    assert "files renamed to another extension" in reasons
    assert "files rewritten with encrypted-looking content" in reasons
    assert "never had" in reasons
    assert [s["id"] for s in initialized("snapshots", "--clean", "--json").json()] == [ids[-1]]


def test_a_mass_deletion_flags_but_archiving_old_studies_does_not(initialized: Cli,
                                                                  tree: Path) -> None:
    ids = quiet_days(initialized, tree, days=2)
    archived = sorted((tree / "pacs").glob("study00[0-5]"))  # 60 of ~410 files: ~15 %
    for study in archived:
        shutil.rmtree(study)
    result, summary, alerts = backup(initialized, tree)
    assert result.returncode == 0 and not alerts, summary["anomaly"]
    assert summary["files_deleted"] == 60 and summary["anomaly"]["suspicious"] is False
    ids.append(summary["snapshot_id"])

    shutil.rmtree(tree / "emr")  # a wiper, or the notes' mount gone empty: ~46 % gone
    result, summary, alerts = backup(initialized, tree)
    assert result.returncode == EXIT_SUSPICIOUS
    assert summary["files_deleted"] >= 160
    assert "(mass deletion in the source)" in result.stderr
    reasons = " ".join(alerts[0]["reasons"])
    assert "files deleted" in reasons and "encrypted" not in reasons
    assert alerts[0]["anomaly"]["mass_deletions"]["files"] == summary["files_deleted"]
    assert [s["id"] for s in initialized("snapshots", "--clean", "--json").json()] == [ids[-1]]


def test_pacs_adding_compressed_studies_does_not_flag(initialized: Cli, tmp_path: Path
                                                      ) -> None:
    """Nearly all content is high-entropy, and a quarter more arrives each day."""
    rng = random.Random(3)
    root = tmp_path / "pacs"
    for i in range(120):
        path = root / f"study{i // 12:03d}" / f"IM{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(dicom(rng, rng.randint(5_000, 40_000)))
    result, _summary, _alerts = backup(initialized, root)
    assert result.returncode == 0
    for day in range(1, 4):
        study = root / f"day{day:03d}"
        study.mkdir()
        for i in range(30):
            (study / f"IM{i:05d}.dcm").write_bytes(dicom(rng, rng.randint(5_000, 40_000)))
        resent = rng.choice(files_of(root))
        resent.write_bytes(dicom(rng, 20_000))
        result, summary, alerts = backup(initialized, root)
        assert result.returncode == 0 and not alerts, summary["anomaly"]
        # most look encrypted (the smallest images, with their textual header, compress)
        assert summary["files_new_encrypted"] >= 20
    assert len(initialized("snapshots", "--clean", "--json").json()) == 1


def test_thresholds_come_from_options_and_environment(initialized: Cli, tree: Path) -> None:
    quiet_days(initialized, tree, days=1)
    ransomware(tree, 0.3)
    lenient = {"MEDARK_ANOMALY_MIN_SHARE": "50%"}
    result, summary, alerts = backup(initialized, tree, env=lenient)
    assert result.returncode == 0 and not alerts
    assert summary["anomaly"]["encrypted_rewrites"]["share"] >= 0.28

    bad = initialized("backup", tree, "--anomaly-factor", "many", check=False)
    assert bad.returncode == 2 and "anomaly factor" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_option_overrides_environment(initialized: Cli, tree: Path) -> None:
    quiet_days(initialized, tree, days=1)
    ransomware(tree, 0.15)
    result, _summary, alerts = backup(initialized, tree, "--anomaly-min-share", "12%",
                                      env={"MEDARK_ANOMALY_MIN_SHARE": "50%"})
    assert result.returncode == EXIT_SUSPICIOUS and alerts


def test_detection_without_compression_samples_chunks(cli: Cli, tree: Path) -> None:
    """With compression off there is no compressor verdict: chunks are sampled instead."""
    cli("init", "--compression", "none")
    quiet_days(cli, tree, days=1)
    ransomware(tree, 0.3)
    result, summary, alerts = backup(cli, tree)
    assert result.returncode == EXIT_SUSPICIOUS and alerts
    assert summary["content_encrypted"] > 0.9 * summary["content_sampled"]
