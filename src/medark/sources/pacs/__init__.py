"""PACS indexes: the file references an index database holds (docs/pacs.md)."""
