"""What a step's programs write: a bounded tail of stdout and stderr, kept per attempt.

The attempt loop opens a capture around each attempt of a ``call`` or ``script`` step
(:func:`capturing`); :func:`~runkon.engine.run_program` feeds every program it runs
inside that attempt into it, chunk by chunk, so a script's output and that of an
executor running programs through ``run_program`` (the CLI's actions directory) are
kept alike. Only the END of each stream is held, never more than the bound in memory;
the bytes cut from the start are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from runkon.persistence import CapturedOutput

__all__ = ["DEFAULT_OUTPUT_TAIL_BYTES", "OutputCapture", "TailBuffer", "capturing"]

DEFAULT_OUTPUT_TAIL_BYTES = 64 * 1024
"""Bytes kept of each stream of a step attempt, unless ``FlowEngine(output_tail_bytes=)``."""

_CURRENT: ContextVar[OutputCapture | None] = ContextVar("runkon_output_capture", default=None)


class TailBuffer:
    """The last ``limit`` bytes written, and how many bytes before them were dropped."""

    __slots__ = ("data", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``, dropping the oldest bytes beyond the limit."""
        if len(chunk) >= self.limit:
            self.dropped += len(self.data) + len(chunk) - self.limit
            self.data[:] = chunk[len(chunk) - self.limit :]
            return
        self.data.extend(chunk)
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> tuple[str, int]:
        """The kept bytes as UTF-8 text, and the count of bytes dropped.

        When the start was dropped, the text starts at the next whole character (the
        partial character's bytes are counted as dropped).
        """
        data = bytes(self.data)
        dropped = self.dropped
        if dropped:
            skip = 0
            while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
                skip += 1
            data = data[skip:]
            dropped += skip
        return data.decode("utf-8", errors="replace"), dropped


class OutputCapture:
    """The stdout and stderr tails of one step attempt."""

    __slots__ = ("ran", "stderr", "stdout")

    def __init__(self, limit: int) -> None:
        self.stdout = TailBuffer(limit)
        self.stderr = TailBuffer(limit)
        self.ran = False
        """A program ran in this attempt (its output, even if empty, is worth storing)."""

    def result(self) -> CapturedOutput | None:
        """What to store with the step: None when no program ran."""
        if not self.ran:
            return None
        stdout, stdout_dropped = self.stdout.text()
        stderr, stderr_dropped = self.stderr.text()
        return CapturedOutput(stdout, stderr, stdout_dropped, stderr_dropped)


@contextmanager
def capturing(limit: int) -> Iterator[OutputCapture | None]:
    """Capture what programs run in this block (and the tasks it starts) write.

    Yields None, and captures nothing, when ``limit`` is 0.
    """
    if limit <= 0:
        yield None
        return
    capture = OutputCapture(limit)
    token = _CURRENT.set(capture)
    try:
        yield capture
    finally:
        _CURRENT.reset(token)


def current_capture() -> OutputCapture | None:
    """The capture of the step attempt running in this context, if any."""
    return _CURRENT.get()
