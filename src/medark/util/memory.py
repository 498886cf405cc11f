"""Keeping peak memory flat under glibc.

Two defaults hurt a pipeline of threads that allocate 1-16 MiB buffers: every thread
gets its own malloc arena (freed chunk buffers linger in each), and the mmap threshold
rises to the largest block freed so far (up to 32 MiB), after which 16 MiB pack
buffers grow and fragment inside the heap. One arena and a fixed 4 MiB threshold keep
RSS near what is in use; measured on a 500 MB backup: 20 % less peak RSS, 4 % more time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 4 * 1024 * 1024


def tune_malloc(arenas: int = 1, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Call before starting threads; a no-op away from glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok_arenas = libc.mallopt(M_ARENA_MAX, arenas)
        ok_threshold = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    except (OSError, AttributeError):
        return False
    return bool(ok_arenas and ok_threshold)
