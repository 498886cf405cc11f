"""The --config and --catalog options of the commands that read the protection plans.

Their own module, apart from `config` and `run`, so that a command's parser imports no
plan schema (pydantic, croniter) or catalog (SQLAlchemy): `medark jobs --help` stays as
fast as `medark --help` (cli/commands/__init__.py).
"""

from __future__ import annotations

import argparse


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="protection configuration (default $MEDARK_CONFIG, else "
                   "/etc/medark/medark.toml)")


def add_catalog_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", metavar="URL",
                   help="job catalog, sqlite:///PATH or postgresql://… (default "
                   "$MEDARK_CATALOG, else the configuration's catalog.url)")
