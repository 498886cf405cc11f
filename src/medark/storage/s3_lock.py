"""S3 Object Lock for the S3 backend: retention on write, extension, legal holds, and reads
that survive an attacker's delete markers and overwrites.

On a bucket with Object Lock (which always has versioning on) a name may carry several
versions. Medark writes every name once, so the *oldest* version of a name is the one
Medark wrote; later versions and delete markers can only come from someone else (stolen
credentials, ransomware). This mixin therefore resolves every name to its oldest
version: listings use ListObjectVersions (one request per 1000 versions, as a plain
listing), and a name not seen in a listing costs one ListObjectVersions request before
its first read, then its version id is remembered. Removing a name deletes each of its
versions by version id (so nothing lingers as a noncurrent version); a locked version
refuses, and the caller gets ObjectLocked with the expiry.

Retention is read from HeadObject's x-amz-object-lock-* headers (GetObjectRetention is
missing from some S3 implementations, moto's server among them). A multipart upload gets
its retention with PutObjectRetention after completion (some stores ignore lock headers
on CreateMultipartUpload).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions

from medark.errors import BackendError, ObjectLocked, ObjectNotFound
from medark.storage.base import ObjectInfo
from medark.storage.objectlock import MODES, Retention, RetentionRule, Tampered
from medark.storage.wrappers.retry import Retrier
from medark.util import clock

_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}


def _code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code", "")) or str(status or "")


@dataclass(frozen=True)
class _Original:
    version: str
    size: int


class S3ObjectLockMixin:
    """Mixed into S3Backend, which provides client, location, _wrap and _plain_list."""

    client: Any
    location: Any

    def _wrap(self, exc: Exception, what: str) -> BackendError:
        raise NotImplementedError

    def _lock_init(self, retrier: Retrier) -> None:
        # The public lock methods below are called past the RetryBackend (objectlock.py
        # finds them through `.inner`), so they retry with its Retrier; inside the data
        # calls, which the wrapper already retries, the `_..._once` forms are used, so no
        # request path has two retry loops.
        self._retrier = retrier
        self._lock_enabled: bool | None = None
        self._rule: RetentionRule | None = None
        self._originals: dict[str, _Original] = {}
        self._tampered: dict[str, Tampered] = {}

    # ---- is this a locking bucket? ------------------------------------------------------

    def object_lock_enabled(self) -> bool:
        return self._retrier.call("reading the Object Lock configuration",
                                  self._lock_enabled_once)

    def _lock_enabled_once(self) -> bool:
        if self._lock_enabled is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.location.bucket)
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._lock_enabled = enabled == "Enabled"
            except botocore.exceptions.ClientError as exc:
                if _code(exc) in ("NoSuchBucket",):
                    return False  # not cached: `init` may create it
                failure = self._wrap(exc, "reading the bucket's Object Lock configuration")
                if failure.transient:  # a 503 says nothing about locking: never cache it
                    raise failure from exc
                # No configuration, or not allowed to read it: no locking as far as we know.
                self._lock_enabled = False
            except botocore.exceptions.BotoCoreError as exc:
                raise self._wrap(exc, "reading the bucket's Object Lock configuration") from exc
        return self._lock_enabled

    def _versioned(self) -> bool:
        return self._lock_enabled_once()

    def create_locked(self) -> None:
        self._retrier.call("create", self._create_locked_once)

    def _create_locked_once(self) -> None:
        region = self.client.meta.region_name
        args: dict[str, Any] = {"Bucket": self.location.bucket,
                                "ObjectLockEnabledForBucket": True}
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**args)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._wrap(exc, "creating the bucket with Object Lock") from exc
        self._lock_enabled = None

    # ---- retention on write ----------------------------------------------------------

    def set_retention_rule(self, rule: RetentionRule | None) -> None:
        self._rule = rule

    def _lock_args(self, name: str) -> dict[str, Any]:
        decided = self._rule(name) if self._rule is not None else None
        if decided is None:
            return {}
        mode, until = decided
        return {"ObjectLockMode": mode.upper(), "ObjectLockRetainUntilDate": until}

    def _saved(self, name: str, response: dict[str, Any], size: int) -> None:
        version = response.get("VersionId")
        if version and version != "null":
            self._originals.setdefault(name, _Original(str(version), size))

    def _after_multipart(self, name: str, lock_args: dict[str, Any]) -> None:
        self._originals.pop(name, None)
        if lock_args:
            self._set_retention_once(name, lock_args["ObjectLockRetainUntilDate"],
                                     lock_args["ObjectLockMode"].lower())

    # ---- the original version of a name ---------------------------------------------

    def _version_args(self, name: str) -> dict[str, Any]:
        """Extra GetObject/HeadObject arguments that pin the original version (none on a
        bucket without Object Lock); ObjectNotFound when no version exists."""
        if not self._versioned():
            return {}
        return {"VersionId": self._original(name).version}

    def _original(self, name: str) -> _Original:
        found = self._originals.get(name)
        if found is None:
            key = self.location.key(name)
            for info in self._versions(key, exact=True):
                found = self._originals.get(info.name)
            if found is None:
                raise ObjectNotFound(f"{name} not found in the repository")
        return found

    def _forget_version(self, name: str) -> None:
        self._originals.pop(name, None)

    def _versions(self, key_prefix: str, exact: bool = False) -> Iterator[ObjectInfo]:
        """Names under a key prefix with an original version; fills the version map and
        the tampered list. Versions of a key come newest first; keys in order."""
        base = self.location.key("")
        paginator = self.client.get_paginator("list_object_versions")
        current: str | None = None
        versions: list[tuple[str, int]] = []
        marker_latest = False
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=key_prefix):
                entries = [(str(v["Key"]), str(v["VersionId"]), int(v.get("Size", 0)),
                            bool(v.get("IsLatest")), False) for v in page.get("Versions", [])]
                entries += [(str(m["Key"]), str(m["VersionId"]), 0, bool(m.get("IsLatest")),
                             True) for m in page.get("DeleteMarkers", [])]
                entries.sort(key=lambda e: e[0])  # stable: per key, newest first as listed
                for key, version, size, latest, is_marker in entries:
                    if exact and key != key_prefix:
                        continue
                    if key != current:
                        if current is not None:
                            yield from self._group_done(current[len(base):], versions,
                                                        marker_latest)
                        current, versions, marker_latest = key, [], False
                    if is_marker:
                        marker_latest = marker_latest or latest
                    else:
                        versions.append((version, size))
            if current is not None:
                yield from self._group_done(current[len(base):], versions, marker_latest)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._wrap(exc, f"listing versions of {key_prefix or '/'}") from exc

    def _group_done(self, name: str, versions: list[tuple[str, int]],
                    marker_latest: bool) -> Iterator[ObjectInfo]:
        if not versions:
            self._originals.pop(name, None)
            self._tampered.pop(name, None)
            return
        version, size = versions[-1]  # the oldest
        self._originals[name] = _Original(version, size)
        if marker_latest or len(versions) > 1:
            self._tampered[name] = Tampered(name, marker_latest, len(versions) - 1)
        else:
            self._tampered.pop(name, None)
        if any(part.startswith(".") for part in name.split("/")):
            return
        yield ObjectInfo(name, size)

    def _list_versions(self, prefix: str) -> Iterator[ObjectInfo]:
        yield from self._versions(self.location.key("") + prefix)

    def tampered(self) -> list[Tampered]:
        return sorted(self._tampered.values(), key=lambda t: t.name)

    # ---- retention and legal hold of existing objects --------------------------------

    def retention(self, name: str) -> Retention:
        return self._retrier.call(f"retention {name}", lambda: self._retention_once(name))

    def _retention_once(self, name: str) -> Retention:
        head = self._object_call(self.client.head_object, name,
                                 f"reading the retention of {name}")
        mode = head.get("ObjectLockMode")
        until = head.get("ObjectLockRetainUntilDate")
        if isinstance(until, str):
            until = datetime.fromisoformat(until.replace("Z", "+00:00"))
        if isinstance(until, datetime):
            until = until.astimezone(UTC)
        return Retention(str(mode).lower() if mode else None,
                         until if isinstance(until, datetime) else None,
                         head.get("ObjectLockLegalHoldStatus") == "ON")

    def set_retention(self, name: str, until: datetime, mode: str) -> None:
        self._retrier.call(f"set retention {name}",
                           lambda: self._set_retention_once(name, until, mode))

    def _set_retention_once(self, name: str, until: datetime, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown retention mode {mode!r}")
        self._object_call(self.client.put_object_retention, name,
                          f"setting the retention of {name}",
                          Retention={"Mode": mode.upper(), "RetainUntilDate": until})

    def set_legal_hold(self, name: str, on: bool) -> None:
        status = {"Status": "ON" if on else "OFF"}
        self._retrier.call(f"set legal hold {name}", lambda: self._object_call(
            self.client.put_object_legal_hold, name, f"setting the legal hold of {name}",
            LegalHold=status))

    def _object_call(self, call: Any, name: str, what: str, **extra: Any) -> Any:
        """One request about the original version of `name`, errors mapped."""
        args = {"Bucket": self.location.bucket, "Key": self.location.key(name),
                **self._version_args(name), **extra}
        try:
            return call(**args)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise ObjectNotFound(f"{name} not found in the repository") from None
            raise self._wrap(exc, what) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, what) from exc

    # ---- removing every version --------------------------------------------------------

    def _remove_versions(self, name: str) -> None:
        """Delete each version (and delete marker) of a name by its id; ObjectLocked when
        a version is under retention or legal hold (the others are still removed)."""
        key = self.location.key(name)
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.location.bucket, Prefix=key)
            ids = [str(v["VersionId"]) for page in pages
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                   if v["Key"] == key]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._wrap(exc, f"removing {name}") from exc
        refused: list[str] = []
        for version in ids:
            try:
                self.client.delete_object(Bucket=self.location.bucket, Key=key,
                                          VersionId=version)
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in _MISSING_CODES:
                    continue
                if code in ("AccessDenied", "403", "InvalidRequest"):
                    refused.append(version)
                    continue
                raise self._wrap(exc, f"removing {name}") from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise self._wrap(exc, f"removing {name}") from exc
        if not refused:
            self._originals.pop(name, None)
            self._tampered.pop(name, None)
            return
        self._locked_error(name, key, refused)

    def _locked_error(self, name: str, key: str, versions: list[str]) -> None:
        now = clock.now()
        latest: Retention | None = None
        for version in versions:
            try:
                head = self.client.head_object(Bucket=self.location.bucket, Key=key,
                                               VersionId=version)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                continue
            until = head.get("ObjectLockRetainUntilDate")
            until = until.astimezone(UTC) if isinstance(until, datetime) else None
            r = Retention(str(head.get("ObjectLockMode") or "").lower() or None, until,
                          head.get("ObjectLockLegalHoldStatus") == "ON")
            if r.locked_at(now) and (latest is None or (r.until or now) > (latest.until or now)
                                     or r.legal_hold):
                latest = r
        if latest is None:
            raise BackendError(f"removing {name}: access denied by the object store: the "
                               "credentials may lack s3:DeleteObjectVersion")
        if latest.legal_hold:
            raise ObjectLocked(f"{name} is under legal hold", None)
        assert latest.until is not None
        raise ObjectLocked(f"{name} is locked ({latest.mode}) until "
                           f"{clock.format_time(latest.until)}", latest.until)
