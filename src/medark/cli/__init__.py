"""The `medark` command line: argument parsing, output, exit codes."""
