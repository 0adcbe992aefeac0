"""runkon.dsl."""
