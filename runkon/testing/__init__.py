"""runkon.testing — helpers for testing with runkon: the store conformance suite that
every ``Store`` backend must pass, and harnesses for runkon's own stores. Uses only the
public API of the other packages."""

from runkon.testing._harness import StoreHarness as StoreHarness
from runkon.testing._harness import open_memory_harness as open_memory_harness
from runkon.testing._harness import open_sqlite_harness as open_sqlite_harness
from runkon.testing._store_suite import STORE_CONFORMANCE_TESTS as STORE_CONFORMANCE_TESTS
from runkon.testing._store_suite import StoreCheck as StoreCheck

__all__ = (
    "STORE_CONFORMANCE_TESTS",
    "StoreCheck",
    "StoreHarness",
    "open_memory_harness",
    "open_sqlite_harness",
)
