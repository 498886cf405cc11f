"""What a command module exports: its name, help, arguments and run function."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from medark.cli.context import Context


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], int]
