"""Security cases (filled in next)."""
