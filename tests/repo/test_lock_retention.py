"""The lock policy and the retention keeper (repo/retention.py), against a fake storage
capability that counts requests: extension is batched and known expiries cost nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.errors import LockUnavailable, ObjectNotFound, UsageError
from medark.repo.compression import parse_compression
from medark.repo.config import RepoConfig
from medark.repo.retention import CONFIG_KEY, LockPolicy, RetentionKeeper
from medark.storage.mem import MemoryBackend
from medark.storage.objectlock import Retention, RetentionRule, Tampered, object_lock
from medark.storage.wrappers import RetryBackend


class FakeLock:
    def __init__(self) -> None:
        self.objects: dict[str, Retention] = {}
        self.heads = 0
        self.puts = 0
        self.rule: RetentionRule | None = None

    def object_lock_enabled(self) -> bool:
        return True

    def create_locked(self) -> None:
        return None

    def set_retention_rule(self, rule: RetentionRule | None) -> None:
        self.rule = rule

    def set_retention(self, name: str, until: datetime, mode: str) -> None:
        self.puts += 1
        self.objects[name] = Retention(mode, until)

    def retention(self, name: str) -> Retention:
        self.heads += 1
        if name not in self.objects:
            raise ObjectNotFound(name)
        return self.objects[name]

    def set_legal_hold(self, name: str, on: bool) -> None:
        old = self.objects[name]
        self.objects[name] = Retention(old.mode, old.until, on)

    def tampered(self) -> list[Tampered]:
        return []


def test_policy_validation_and_margin() -> None:
    assert LockPolicy.new(7).margin_days == 1
    assert LockPolicy.new(365, "governance").margin_days == 30
    assert LockPolicy.new(100).margin_days == 10
    for bad in (0, -3, 40_000):
        with pytest.raises(UsageError):
            LockPolicy.new(bad)
    with pytest.raises(UsageError):
        LockPolicy.new(7, "strict")


def test_policy_round_trips_through_the_sealed_config() -> None:
    config = RepoConfig.new("aes-256-gcm", parse_compression("zstd:3"))
    assert LockPolicy.from_config(config) is None
    policy = LockPolicy.new(30, "governance")
    config = RepoConfig(config.id, config.suite, config.compression, config.chunker,
                        extra={CONFIG_KEY: policy.to_doc()})
    assert LockPolicy.from_config(RepoConfig.from_json(config.to_json())) == policy


def test_rule_locks_everything_but_lock_files(tmp_path: Path) -> None:
    fake = FakeLock()
    keeper = RetentionKeeper(LockPolicy.new(10), fake, tmp_path / "r.sqlite")
    assert fake.rule is not None
    mode, until = fake.rule("data/ab/abcd") or ("", None)
    assert mode == "compliance" and until is not None
    assert until - datetime.now(UTC) > timedelta(days=10)
    assert fake.rule("locks/123") is None
    assert keeper.known("data/ab/abcd") == int(until.timestamp())
    keeper.close()
    assert fake.rule is None


def test_ensure_extends_only_what_expires_too_soon_and_remembers(tmp_path: Path) -> None:
    fake = FakeLock()
    now = datetime.now(UTC)
    fake.objects = {"old": Retention("compliance", now + timedelta(days=1)),
                    "fresh": Retention("compliance", now + timedelta(days=40))}
    keeper = RetentionKeeper(LockPolicy.new(20), fake, tmp_path / "r.sqlite")
    horizon = keeper.horizon(now)
    assert keeper.ensure(["old", "fresh", "gone"], horizon) == 1
    assert fake.heads == 3 and fake.puts == 1
    new_until = fake.objects["old"].until
    assert new_until is not None and new_until >= now + timedelta(days=22)
    # Known now: a second backup asks the storage nothing.
    assert keeper.ensure(["old", "fresh"], horizon) == 0
    assert fake.heads == 3 and fake.puts == 1
    keeper.close()
    # The sidecar survives the process: a new keeper knows the expiries too.
    again = RetentionKeeper(LockPolicy.new(20), fake, tmp_path / "r.sqlite")
    assert again.ensure(["old", "fresh"], horizon) == 0
    assert fake.heads == 3
    again.close()


def test_tree_memo_and_minimum(tmp_path: Path) -> None:
    keeper = RetentionKeeper(LockPolicy.new(5), FakeLock(), None)
    now = datetime.now(UTC)
    keeper.record_trees([b"t1"], now + timedelta(days=6))
    assert keeper.tree_covered(b"t1", now + timedelta(days=5))
    assert not keeper.tree_covered(b"t1", now + timedelta(days=7))
    assert not keeper.tree_covered(b"t2", now)
    assert keeper.known_minimum(["x"]) is None


def test_without_capability_only_writes_fail(tmp_path: Path) -> None:
    config = RepoConfig.new("aes-256-gcm", parse_compression("zstd:3"))
    config = RepoConfig(config.id, config.suite, config.compression, config.chunker,
                        extra={CONFIG_KEY: LockPolicy.new(3).to_doc()})
    keeper = RetentionKeeper.attach(MemoryBackend(), config, None)
    assert keeper is not None and keeper.capability is None
    with pytest.raises(LockUnavailable):
        keeper.ensure(["config"], datetime.now(UTC))
    assert keeper.locked_until("config", datetime.now(UTC)) is None
    keeper.close()


def test_capability_is_found_through_wrappers() -> None:
    fake = FakeLock()
    assert object_lock(RetryBackend(fake)) is fake  # type: ignore[arg-type]
    assert object_lock(RetryBackend(MemoryBackend())) is None
