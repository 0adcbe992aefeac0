"""``python -m runkon.cli``."""

from runkon.cli import main

raise SystemExit(main())
