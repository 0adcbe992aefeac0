"""What a step's programs write: a bounded tail of stdout and stderr, kept per attempt.

The attempt loop opens a capture around each attempt of a ``call`` or ``script`` step
(:class:`CaptureScope`); :func:`~runkon.engine.run_program` feeds every program it runs
inside that attempt into it, chunk by chunk, so a script's output and that of an
executor running programs through ``run_program`` (the CLI's actions directory) are
kept alike. Only the END of each stream is held, never more than the bound in memory;
the bytes cut from the start are counted.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from runkon.persistence import CapturedOutput

__all__ = ("DEFAULT_OUTPUT_TAIL_BYTES", "CaptureScope", "OutputCapture", "TailBuffer")

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
    """The stdout and stderr tails of one step attempt (buffers made when a program runs:
    most attempts run none)."""

    __slots__ = ("_stderr", "_stdout", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._stdout: TailBuffer | None = None
        self._stderr: TailBuffer | None = None

    def streams(self) -> tuple[TailBuffer, TailBuffer]:
        """The stdout and stderr buffers, made on first use (a program runs)."""
        if self._stdout is None or self._stderr is None:
            self._stdout = TailBuffer(self.limit)
            self._stderr = TailBuffer(self.limit)
        return self._stdout, self._stderr

    def result(self) -> CapturedOutput | None:
        """What to store with the step: None when no program ran."""
        if self._stdout is None or self._stderr is None:
            return None
        stdout, stdout_dropped = self._stdout.text()
        stderr, stderr_dropped = self._stderr.text()
        return CapturedOutput(stdout, stderr, stdout_dropped, stderr_dropped)


class CaptureScope:
    """Capture what programs run in this block (and the tasks it starts) write.

    ``with CaptureScope(limit) as capture:`` gives the attempt's :class:`OutputCapture`,
    or None (capturing nothing) when ``limit`` is 0. A class rather than a generator
    context manager: it wraps every step attempt, so it is kept cheap.
    """

    __slots__ = ("_capture", "_token")

    def __init__(self, limit: int) -> None:
        self._capture = OutputCapture(limit) if limit > 0 else None
        self._token: Token[OutputCapture | None] | None = None

    def __enter__(self) -> OutputCapture | None:
        if self._capture is not None:
            self._token = _CURRENT.set(self._capture)
        return self._capture

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)


def current_capture() -> OutputCapture | None:
    """The capture of the step attempt running in this context, if any."""
    return _CURRENT.get()
