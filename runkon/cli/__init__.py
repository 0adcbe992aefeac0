"""runkon.cli — the ``runkon`` command. Uses only runkon's public API."""

from runkon.cli._main import main as main

__all__ = ("main",)
