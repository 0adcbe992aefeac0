"""Reading ``.wf`` files."""

from __future__ import annotations

import os
from pathlib import Path

from runkon.dsl._ast import WorkflowDef
from runkon.dsl._lexer import SourceMap
from runkon.dsl._parser import parse_workflow
from runkon.errors import DslSyntaxError, WorkflowNotFoundError

MAX_FILE_BYTES = 16 * 1024 * 1024


def read_workflow_text(path: str | os.PathLike[str]) -> str:
    """The text of a ``.wf`` file, decoded as UTF-8.

    Raises:
        WorkflowNotFoundError: the file does not exist or cannot be read.
        DslSyntaxError: the file is not UTF-8 text, or is larger than 16 MiB.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise WorkflowNotFoundError(str(file), detail="no such file") from None
    except IsADirectoryError:
        raise WorkflowNotFoundError(str(file), detail="it is a directory, not a file") from None
    except OSError as exc:
        raise WorkflowNotFoundError(str(file), detail=exc.strerror or str(exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise DslSyntaxError(
            f"file is {len(data)} bytes; workflows larger than 16 MiB are refused",
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


def load_workflow(path: str | os.PathLike[str]) -> WorkflowDef:
    """Read and parse a ``.wf`` file; errors name the file as given.

    Raises:
        WorkflowNotFoundError: the file does not exist or cannot be read.
        DslSyntaxError: the file is not a valid workflow.
    """
    return parse_workflow(read_workflow_text(path), source=str(path))
