"""Backup, restore, check, prune: explicit phases over the repository."""
