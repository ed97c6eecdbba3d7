"""Runtime plumbing: the parse-time plan, step logging, run locks, fault injection, summary."""
