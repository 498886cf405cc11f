"""Typed settings: one source for CLI flags, environment variables and docs."""
