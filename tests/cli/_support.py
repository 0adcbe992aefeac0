"""Helpers for driving ``runkon`` as a user does: real processes on one SQLite file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

WAIT = 15.0  # generous bound for anything to show up on a loaded 2-core machine
PYTHON_M = r"\S+ -m runkon\.cli"
"""How the printed hints name the command these tests run (``python -m runkon.cli``, the
interpreter as the tests start it), as a regular expression."""


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "RUNKON_USER": "tester", **extra}
    env.pop("PYTHONWARNINGS", None)
    return env


def runkon(
    *args: str,
    cwd: Path,
    timeout: float = 60,
    command: Sequence[str] = (sys.executable, "-m", "runkon.cli"),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """``runkon ARGS`` run to its end (``command`` is how runkon is started)."""
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
        check=False,
    )


class Background:
    """``runkon ARGS`` running in the background; its output is read as it comes."""

    def __init__(
        self,
        *args: str,
        cwd: Path,
        command: Sequence[str] = (sys.executable, "-m", "runkon.cli"),
        **env: str,
    ) -> None:
        self.process = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(**env),
        )
        self._lines: list[str] = []
        self._errors: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._lines)),
            threading.Thread(target=self._read, args=(self.process.stderr, self._errors)),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self._errors)

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first stdout line matching ``pattern`` (waits for it to be printed)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines:
                    found = regex.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r}; exit {self.process.poll()}\n"
                        f"stdout:\n{chr(10).join(self._lines)}\nstderr:\n{chr(10).join(self._errors)}"
                    )
                self._changed.wait(min(left, 0.1))

    def _alive(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def wait(self, timeout: float = WAIT) -> int:
        """The exit code, once the process ended (within ``timeout``)."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None and not any(r.is_alive() for r in self._readers):
                stream.close()
        return code

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


def write_actions(directory: Path, programs: dict[str, str]) -> Path:
    """Executable POSIX sh programs ``name -> body`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in programs.items():
        path = directory / name
        path.write_text("#!/bin/sh\nset -eu\n" + body + "\n")
        path.chmod(0o755)
    return directory


def flow_output(markers: str = "[]", context: str = "", extra: str = "") -> str:
    """Shell lines printing a FLOW_OUTPUT block."""
    fields = f'"markers": {markers}, "context": "{context}"' + (f", {extra}" if extra else "")
    return f"cat <<END\n<<<FLOW_OUTPUT>>>\n{{{fields}}}\n<<<END_FLOW_OUTPUT>>>\nEND"
