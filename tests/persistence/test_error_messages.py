"""Wording of the store's error messages (what a user reads first)."""

from runkon.errors import LeaseLostError


def test_lease_lost_without_a_lease_says_the_run_holds_none() -> None:
    message = str(LeaseLostError("r1", expected=3, actual=None))
    assert "is at no lease" not in message
    assert "the run holds no lease" in message


def test_lease_lost_with_a_newer_generation_names_it() -> None:
    message = str(LeaseLostError("r1", expected=3, actual=4))
    assert "the run is at generation 4" in message
