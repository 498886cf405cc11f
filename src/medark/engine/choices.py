"""The names a command offers for an engine's options, apart from the engine: a
command's --help lists them without loading the repository stack."""

from __future__ import annotations

STATS_MODES = ("restore-size", "raw-data")
"""engine/stats.py: what `stats` counts."""
DUMP_ARCHIVES = ("tar", "zip")
"""engine/dump.py: the formats `dump` writes a directory as."""
