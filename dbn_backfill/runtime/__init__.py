"""Process plumbing, below the domain code: run locks, signal handling, the step runner
(logging, start/end lines), console progress, fault injection for tests."""
