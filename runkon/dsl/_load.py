"""Reading ``.wf`` files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runkon.dsl._ast import WorkflowDef
from runkon.dsl._lexer import SourceMap
from runkon.dsl._parser import parse_workflow
from runkon.errors import DslSyntaxError, WorkflowNotFoundError

MAX_FILE_BYTES = 16 * 1024 * 1024


def read_workflow_text(path: str | os.PathLike[str]) -> str:
    """The text of a ``.wf`` file, decoded as UTF-8.

    Raises:
        WorkflowNotFoundError: the file does not exist, cannot be read or is not a
            regular file (a FIFO, a device such as ``/dev/zero``, a socket).
        DslSyntaxError: the file is not UTF-8 text, or is larger than 16 MiB (at most
            16 MiB + 1 byte is ever read).
    """
    file = Path(path)
    data = _read_bounded(file)
    if len(data) > MAX_FILE_BYTES:
        raise DslSyntaxError(
            "file is larger than 16 MiB; workflows that large are refused",
            source=str(file),
            line=1,
            col=1,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        line, col = SourceMap(good, str(file)).position(len(good))
        raise DslSyntaxError(
            f"file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
            source=str(file),
            line=line,
            col=col,
            hint="save the file as UTF-8",
        ) from None


def _read_bounded(file: Path) -> bytes:
    """At most ``MAX_FILE_BYTES + 1`` bytes of a regular file.

    Opened non-blocking so a FIFO without a writer cannot hang the open; anything but a
    regular file is refused before reading.
    """
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise WorkflowNotFoundError(str(file), detail="no such file") from None
    except IsADirectoryError:
        raise WorkflowNotFoundError(str(file), detail="it is a directory, not a file") from None
    except OSError as exc:
        raise WorkflowNotFoundError(str(file), detail=exc.strerror or str(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise WorkflowNotFoundError(str(file), detail="it is a directory, not a file")
        raise WorkflowNotFoundError(
            str(file),
            detail="it is not a regular file (a FIFO, device or socket); "
            "give the path of a .wf file",
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise WorkflowNotFoundError(str(file), detail=exc.strerror or str(exc)) from None


def load_workflow(path: str | os.PathLike[str]) -> WorkflowDef:
    """Read and parse a ``.wf`` file; errors name the file as given.

    Raises:
        WorkflowNotFoundError: the file does not exist or cannot be read.
        DslSyntaxError: the file is not a valid workflow.
    """
    return parse_workflow(read_workflow_text(path), source=str(path))
