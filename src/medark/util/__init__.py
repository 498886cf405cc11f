"""Small helpers every layer may use: the clock, sizes, durations, atomic local files."""
