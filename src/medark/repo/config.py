"""The repository config: fixed at init, sealed with the master key, never rewritten."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field

from pyfastcdc import FastCDC

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
            if not isinstance(doc, dict):
                raise TypeError(f"the document is a {type(doc).__name__}, not an object")
            if doc.get("version") != FORMAT_VERSION:
                raise RepositoryCorrupt(
                    f"repository format version {doc.get('version')} is not supported"
                )
            config = cls(
                id=str(doc["id"]),
                suite=str(doc["suite"]),
                compression=CompressionSpec(**doc["compression"]),
                chunker=ChunkerParams(**doc["chunker"]),
                pack_size=int(doc["pack_size"]),
                version=int(doc["version"]),
                extra=dict(doc.get("extra", {})),
            )
            config.validate()
            return config
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise RepositoryCorrupt(f"repository config is damaged: {exc}") from None

    def validate(self) -> None:
        """ValueError unless every field has a type and range some writer could give it
        (a config that parsed must not fail later, deep inside a backup)."""
        spec, chunker = self.compression, self.chunker
        if spec.algorithm not in ("zstd", "none") or type(spec.level) is not int \
                or not -7 <= spec.level <= 22:
            raise ValueError(f"unknown compression {spec!r}")
        sizes = (chunker.min_size, chunker.avg_size, chunker.max_size)
        if not all(type(v) is int for v in (*sizes, chunker.seed)):
            raise ValueError(f"impossible chunker parameters {chunker!r}")
        # the ranges pyfastcdc accepts (ValueError or OverflowError beyond them)
        FastCDC(chunker.avg_size, min_size=chunker.min_size, max_size=chunker.max_size,
                seed=chunker.seed)
        if not 0 < self.pack_size <= 1 << 32:
            raise ValueError(f"impossible pack size {self.pack_size}")
