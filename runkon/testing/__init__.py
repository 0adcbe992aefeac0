"""runkon.testing."""
