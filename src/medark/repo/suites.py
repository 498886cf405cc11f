"""The cipher suites' names, apart from the ciphers: `medark init --help` offers them
without loading the cipher library (repo/crypto.py builds a suite for each name)."""

from __future__ import annotations

SUITE_NAMES = ("aes-256-gcm", "chacha20-poly1305", "sm4-gcm")
DEFAULT_SUITE = "aes-256-gcm"
