"""Keeping peak memory flat under glibc.

Two defaults hurt a pipeline of threads that allocate 1-16 MiB buffers: every thread
gets its own malloc arena (freed chunk buffers linger in each), and the mmap threshold
rises to the largest block freed so far (up to 32 MiB), after which 16 MiB pack buffers
grow and fragment inside the heap. Every command runs with one arena; backup also fixes
the threshold at 4 MiB (measured on a 500 MB backup: 20 % less peak RSS for 4 % more
time). Restore does not: its 8 MiB range reads then cost page faults (11 % slower).
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 4 * 1024 * 1024


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        # the process's own symbols, libc's among them: find_library("c") would run
        # `ldconfig -p` at every command's start
        return bool(ctypes.CDLL(None).mallopt(option, value))
    except (OSError, AttributeError):
        return False


def limit_arenas(arenas: int = 1) -> bool:
    """Call before starting threads; a no-op away from glibc."""
    return _mallopt(M_ARENA_MAX, arenas)


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Large buffers from mmap (returned to the system on free), smaller from the heap."""
    return _mallopt(M_MMAP_THRESHOLD, threshold)
