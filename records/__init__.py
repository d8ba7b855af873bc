"""A run's record on disk: where its files live (layout), its state, its result rows and metric table, and the
one reader of a finished run; below both the loop that writes it (simulation/) and the report that reads it."""
