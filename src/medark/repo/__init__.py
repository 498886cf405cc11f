"""The content layer: chunking, crypto suites, compression, packs, index, keys, locks."""
