"""`python -m medark` runs the command line."""

from medark.cli.main import entry

entry()
