"""Snapshots, trees of directory objects, and the nodes in them."""
