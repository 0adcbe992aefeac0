"""runkon.integrations."""
