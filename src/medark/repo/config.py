"""The repository config: fixed at init, sealed with the master key, never rewritten."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field

from medark.errors import RepositoryCorrupt
from medark.repo.chunker import ChunkerParams
from medark.repo.compression import CompressionSpec
from medark.util.sizes import MiB

CONFIG_NAME = "config"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RepoConfig:
    id: str
    suite: str
    compression: CompressionSpec
    chunker: ChunkerParams
    pack_size: int = 16 * MiB
    version: int = FORMAT_VERSION
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def new(cls, suite: str, compression: CompressionSpec, pack_size: int = 16 * MiB) -> RepoConfig:
        seed = secrets.randbits(63)
        return cls(
            id=secrets.token_hex(16),
            suite=suite,
            compression=compression,
            chunker=ChunkerParams(seed=seed),
            pack_size=pack_size,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RepoConfig:
        try:
            doc = json.loads(raw)
            if doc.get("version") != FORMAT_VERSION:
                raise RepositoryCorrupt(
                    f"repository format version {doc.get('version')} is not supported"
                )
            return cls(
                id=str(doc["id"]),
                suite=str(doc["suite"]),
                compression=CompressionSpec(**doc["compression"]),
                chunker=ChunkerParams(**doc["chunker"]),
                pack_size=int(doc["pack_size"]),
                version=int(doc["version"]),
                extra=dict(doc.get("extra", {})),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryCorrupt(f"repository config is damaged: {exc}") from None
