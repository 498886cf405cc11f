"""Medark: protects hospital data with deduplicated, encrypted, verified backups."""

__version__ = "0.1.0"
