"""A repository in an S3-compatible object store (AWS, Ceph RGW, MinIO, domestic OSS).

Locations, as restic spells them:
  s3:https://host[:port]/bucket[/prefix]   a custom endpoint (path-style addressing)
  s3:host[:port]/bucket[/prefix]           the same over HTTPS
  s3://bucket[/prefix]                     AWS, the region from the environment
Credentials and region come from the standard AWS environment variables or profile
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_DEFAULT_REGION);
MEDARK_S3_ADDRESSING=virtual|path overrides the addressing style.

Write-once is enforced by the store itself where it can be: PutObject with
`If-None-Match: *` fails with 412 when the key exists (AWS since 2024, MinIO, Ceph,
moto). Errors are classified for the retry wrapper: throttling, 5xx and dropped
connections are transient; bad credentials and a missing bucket are not.

Retries happen in one layer only, Medark's (storage/wrappers/retry.py): botocore's own
are turned off (`total_max_attempts=1`), because botocore retrying 3 times inside each of
the wrapper's 7 attempts made up to 21 requests for one call, and its backoff knows no
deadline. The wrapper keeps the classification above, the restart of a listing without
repeats, and the deadline. The Object Lock calls a caller makes past the wrapper use the
same Retrier (s3_lock.py).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from medark.errors import AlreadyExists, BackendError, ObjectNotFound, UsageError
from medark.storage.base import BackendProperties, ObjectInfo
from medark.storage.local import check_name, check_prefix
from medark.storage.s3_lock import S3ObjectLockMixin
from medark.storage.wrappers.retry import Retrier

MULTIPART_THRESHOLD = 64 * 1024 * 1024
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                    "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                    "503", "500", "502", "504"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                     "ExpiredToken", "InvalidToken", "403"}
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MULTIPART_CHUNK = 16 * 1024 * 1024
_session: botocore.session.Session | None = None
_session_lock = threading.Lock()


def _client(endpoint: str | None, config: botocore.config.Config) -> Any:
    """A client from the process's one botocore session: the S3 service model (a large
    JSON file) is parsed once, not once per repository opened (copy opens two, and every
    command probes its repository first). botocore rather than boto3: the same client and
    credential chain without boto3's imports, which every command would pay for at start.
    Sessions are not thread-safe; the clients they make are."""
    global _session
    with _session_lock:
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client("s3", endpoint_url=endpoint, config=config)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    """None: AWS's own endpoint for the region."""

    @classmethod
    def parse(cls, rest: str) -> S3Location:
        """`rest` is what follows 's3:' in the repository location."""
        endpoint: str | None
        if rest.startswith("//"):
            path, endpoint = rest[2:], None
        else:
            scheme = next((s for s in ("https://", "http://") if rest.startswith(s)), "")
            host, _, path = rest[len(scheme):].partition("/")
            if not host or not path.strip("/"):
                raise UsageError(f"invalid S3 location 's3:{rest}': expected "
                                 "s3:https://host/bucket/prefix or s3://bucket/prefix")
            endpoint = (scheme or "https://") + host
        bucket, _, prefix = path.strip("/").partition("/")
        if not _BUCKET_RE.match(bucket):
            raise UsageError(f"invalid S3 bucket name {bucket!r} in 's3:{rest}'")
        return cls(bucket, prefix.strip("/"), endpoint)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def describe(self) -> str:
        where = self.endpoint or "aws"
        return f"s3:{where}/{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or str(status or "")


class S3Backend(S3ObjectLockMixin):
    """Object Lock (retention, legal hold, reads of original versions) is in s3_lock.py."""

    def __init__(self, location: S3Location, client: Any | None = None,
                 retrier: Retrier | None = None) -> None:
        """`retrier`: the policy of the RetryBackend around this one, for the Object Lock
        calls that do not go through it (None: those calls are tried once)."""
        self.location = location
        self._lock_init(retrier or Retrier(attempts=1))
        if client is None:
            addressing = os.environ.get("MEDARK_S3_ADDRESSING") or (
                "path" if location.endpoint else "virtual")
            config = botocore.config.Config(
                # one attempt per call: the retry wrapper is the only layer that retries
                retries={"mode": "standard", "total_max_attempts": 1},
                # No SHA-256 of every body for the signature: botocore already skips it
                # over HTTPS; over plain HTTP it would be a second hash pass on top of
                # the CRC32 checksum header the store verifies. Every object is named by
                # or authenticated with its content and checked on every read.
                s3={"addressing_style": addressing, "payload_signing_enabled": False},
                max_pool_connections=16, connect_timeout=10, read_timeout=60,
            )
            client = _client(location.endpoint, config)
        self.client = client

    def properties(self) -> BackendProperties:
        return BackendProperties(location=self.location.describe(), connections=4)

    # ---- errors --------------------------------------------------------------------

    def _wrap(self, exc: Exception, what: str) -> BackendError:
        if isinstance(exc, botocore.exceptions.ClientError):
            code = _error_code(exc)
            if code in ("NoSuchBucket",):
                return BackendError(f"{what}: bucket {self.location.bucket!r} does not exist "
                                    f"at {self.location.describe()}")
            if code in _CREDENTIAL_CODES:
                return BackendError(f"{what}: access denied by the object store ({code}): "
                                    "check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) "
                                    "and the bucket policy")
            return BackendError(f"{what}: {code}", transient=code in _TRANSIENT_CODES)
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return BackendError(f"{what}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
                                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
        if isinstance(exc, (botocore.exceptions.EndpointConnectionError,
                            botocore.exceptions.ConnectionError,
                            botocore.exceptions.HTTPClientError,  # connection reset mid-reply
                            botocore.exceptions.ReadTimeoutError,
                            botocore.exceptions.ConnectTimeoutError)):
            return BackendError(f"{what}: {exc}", transient=True)
        return BackendError(f"{what}: {exc}")

    def _not_found(self, exc: botocore.exceptions.ClientError) -> bool:
        return _error_code(exc) in ("NoSuchKey", "404", "NotFound", "NoSuchVersion")

    # ---- the Protocol --------------------------------------------------------------

    def save(self, name: str, data: bytes | bytearray) -> None:
        key = self.location.key(check_name(name))
        try:
            response = self.client.put_object(Bucket=self.location.bucket, Key=key,
                                              Body=bytes(data), IfNoneMatch="*",
                                              **self._lock_args(name))
            self._saved(name, response, len(data))
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise AlreadyExists(f"{name} already exists") from None
            raise self._wrap(exc, f"saving {name}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, f"saving {name}") from exc

    def save_file(self, name: str, path: str) -> None:
        size = os.path.getsize(path)
        if size <= MULTIPART_THRESHOLD:
            with open(path, "rb") as f:
                self.save(name, f.read())
            return
        # Larger objects go in parts; content-named, so a racing writer stores the same bytes.
        key = self.location.key(check_name(name))
        if self._exists(name):
            raise AlreadyExists(f"{name} already exists")
        lock_args = self._lock_args(name)
        from s3transfer.manager import TransferConfig, TransferManager  # rarely needed

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                multipart_chunksize=MULTIPART_CHUNK)
        try:
            with TransferManager(self.client, config) as transfers:
                transfers.upload(path, self.location.bucket, key, extra_args=lock_args).result()
            self._after_multipart(name, lock_args)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._wrap(exc, f"saving {name}") from exc

    def spool_dir(self) -> str | None:
        return None

    def _exists(self, name: str) -> bool:
        try:
            self.stat(name)
        except ObjectNotFound:
            return False
        return True

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self.location.key(check_name(name))
        if offset < 0 or (length is not None and length < 0):
            raise BackendError(f"reading {name}: invalid range offset={offset} length={length}")
        if length == 0:
            size = self.stat(name).size
            if offset > size:
                raise BackendError(f"reading {name}: offset {offset} is past the end "
                                   f"({size} bytes)")
            return b""
        args: dict[str, Any] = {"Bucket": self.location.bucket, "Key": key,
                                **self._version_args(name)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            response = self.client.get_object(**args)
            data: bytes = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if self._not_found(exc):
                self._forget_version(name)
                raise ObjectNotFound(f"{name} not found in the repository") from None
            if _error_code(exc) == "InvalidRange":
                size = self.stat(name).size
                if offset == size and length is None:
                    return b""  # reading from the very end: nothing, as a file gives
                raise BackendError(f"reading {name}: offset {offset} is past the end "
                                   f"({size} bytes)") from None
            raise self._wrap(exc, f"reading {name}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, f"reading {name}") from exc
        if length is not None and len(data) != length:
            raise BackendError(f"reading {name}: short read ({len(data)} of {length} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        key = self.location.key(check_name(name))
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key,
                                           **self._version_args(name))
        except botocore.exceptions.ClientError as exc:
            if self._not_found(exc):
                self._forget_version(name)
                raise ObjectNotFound(f"{name} not found in the repository") from None
            raise self._wrap(exc, f"stat {name}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, f"stat {name}") from exc
        return ObjectInfo(name, int(head["ContentLength"]))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        if self._versioned():  # originals hidden by delete markers are still listed
            yield from self._list_versions(prefix)
            return
        base = self.location.key("")
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.location.bucket,
                                           Prefix=base + prefix):
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(base):]
                    if any(part.startswith(".") for part in name.split("/")):
                        continue  # not an object of ours (the same rule as the local backend)
                    yield ObjectInfo(name, int(item["Size"]))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._wrap(exc, f"listing {prefix or '/'}") from exc

    def remove(self, name: str) -> None:
        key = self.location.key(check_name(name))
        if self._versioned():
            self._remove_versions(name)  # every version, or ObjectLocked
            return
        try:
            self.client.delete_object(Bucket=self.location.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if self._not_found(exc):
                return
            raise self._wrap(exc, f"removing {name}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, f"removing {name}") from exc

    def exists(self) -> bool:
        """The bucket exists (the prefix needs no creating: keys carry it)."""
        try:
            self.client.head_bucket(Bucket=self.location.bucket)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._wrap(exc, "checking the bucket") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, "checking the bucket") from exc
        return True

    def create(self) -> None:
        if self.exists():
            return
        region = self.client.meta.region_name
        args: dict[str, Any] = {"Bucket": self.location.bucket}
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**args)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in ("BucketAlreadyOwnedByYou",):
                return
            raise self._wrap(exc, "creating the bucket") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._wrap(exc, "creating the bucket") from exc

    def close(self) -> None:
        return None


def open_s3(rest: str, retrier: Retrier | None = None) -> S3Backend:
    return S3Backend(S3Location.parse(rest), retrier=retrier)
