"""Local file trees: metadata of nodes, exclusion rules."""
