"""runkon.cli."""
