"""Network-device configurations (docs/netconfig.md): vendor profiles, normalisation and
the SSH fetch. Nothing here touches the repository (service/netconfig.py stores)."""
