"""Worker processes: consume login events, validate, dead-letter, apply batches to the window."""
