"""Planning a run at parse time, and its summary at the end."""
