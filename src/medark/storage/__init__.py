"""Backends over named, immutable files. They know nothing of chunks, keys or encryption."""
