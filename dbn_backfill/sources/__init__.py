"""Stage 1, sources: find DBN files, read and check their headers, decode their records."""
