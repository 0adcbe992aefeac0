"""runkon.events."""
