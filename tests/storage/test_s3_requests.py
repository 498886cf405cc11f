"""What the S3 backend's uploads carry, seen on the real client against moto's server:
a signed CRC32 checksum of the body instead of a second SHA-256 pass for the signature,
and a body corrupted on the way is never read back as good data."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
import s3_server

from medark.errors import MedarkError
from medark.storage.s3 import S3Backend, open_s3

URL = s3_server.endpoint()
pytestmark = pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed")
NAME = "data/ab/" + "ab" * 32


def _backend() -> S3Backend:
    backend = open_s3(f"{URL}/medark-req-{uuid.uuid4().hex[:12]}/repo")
    backend.create()
    return backend


def test_an_upload_signs_a_crc32_of_its_body_not_a_sha256() -> None:
    backend = _backend()
    sent: list[dict[str, str]] = []

    def record(request: Any, **_kwargs: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})
    backend.client.meta.events.register("before-send.s3.PutObject", record)
    backend.save(NAME, b"pack bytes" * 1000)
    headers = sent[-1]
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert headers["x-amz-checksum-crc32"]
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-amz-checksum-crc32" in signed
    assert backend.load(NAME) == b"pack bytes" * 1000


def test_a_body_corrupted_in_flight_is_never_read_back_as_good() -> None:
    backend = _backend()

    def flip_first_byte(request: Any, **_kwargs: Any) -> None:
        raw = request.body.read() if hasattr(request.body, "read") else request.body
        request.body = io.BytesIO(b"\x00" + bytes(raw)[1:])
    backend.client.meta.events.register("before-send.s3.PutObject", flip_first_byte)
    with pytest.raises(MedarkError, match="checksum"):
        backend.save(NAME, b"pack bytes" * 1000)  # a store that checks refuses it here
        backend.load(NAME)  # moto stores it; the read checks the stored checksum
