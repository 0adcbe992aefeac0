"""runkon."""
