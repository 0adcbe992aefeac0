"""runkon.persistence."""
