"""``runkon approve``'s refusals of a selection name the gate's options and the flag to
use (issue 10.1); the subprocess paths are in test_run_cli.py and test_examples.py."""

from __future__ import annotations

from runkon.cli._decide import _selection_problem
from runkon.errors import InvalidSelectionError


def test_a_select_one_quorum_refusal_names_the_option_chosen_before() -> None:
    error = InvalidSelectionError(
        "01STEP", invalid=["hold"], allowed=["ship", "hold"], select="one", earlier=["ship"]
    )
    assert _selection_problem(error, "approve-release", "01RUN", "runs.db") == (
        "gate 'approve-release' takes exactly one option and earlier approvals chose ship; "
        "approve with --select ship too, or reject it"
    )
