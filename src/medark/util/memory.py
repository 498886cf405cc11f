"""Keeping peak memory flat: glibc gives every thread its own malloc arena, and freed
1 MiB chunk buffers then linger in each; one arena keeps RSS near what is in use."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8


def limit_malloc_arenas(count: int = 1) -> bool:
    """Call before starting threads; a no-op away from glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False
