"""Stage 4, gates: the honesty checks every run ends with."""
