"""runkon.engine."""
