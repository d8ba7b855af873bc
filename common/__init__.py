"""The bottom floor: errors, atomic file writes, seeds, rank helpers and image grids; imports no other package here."""
