"""Running external commands (istioctl, kind, docker) as argv lists, with a transcript.

Real backends run them with subprocess (never through a shell); the simulated backend hands the
same argv to its model. Either way each command lands in the run's transcript.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from multirev.errors import CommandFailed
from multirev.redact import redact_argv, redact_text


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Completed:
        if self.returncode != 0:
            raise CommandFailed(self.argv, self.returncode, self.stdout, self.stderr)
        return self


INTERRUPTED = -2  # the transcript's return code for a command the run was interrupted in


class Runner(Protocol):
    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> Completed: ...


class SubprocessRunner:
    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> Completed:
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
            )
        except FileNotFoundError:
            return Completed(argv, 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            return Completed(argv, 124, str(exc.stdout or ""), f"timed out after {timeout:.0f}s")
        return Completed(argv, proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Transcript:
    """Appends one JSON line per external command to reports/transcript.jsonl (credentials redacted)."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, result: Completed, seconds: float, backend: str) -> None:
        entry = {
            "backend": backend,
            "argv": redact_argv(result.argv),
            "returncode": result.returncode,
            "seconds": round(seconds, 3),
            "stderr_tail": redact_text(result.stderr[-500:]),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a") as out:
            out.write(json.dumps(entry) + "\n")


@dataclass
class RecordingRunner:
    inner: Runner
    transcript: Transcript
    backend: str

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> Completed:
        started = time.monotonic()
        try:
            result = self.inner.run(argv, timeout=timeout, env=env)
        except BaseException as exc:  # Ctrl-C mid-command: the transcript still shows what was running
            self.transcript.record(Completed(argv, INTERRUPTED, "", f"interrupted: {type(exc).__name__}"),
                                   time.monotonic() - started, self.backend)
            raise
        self.transcript.record(result, time.monotonic() - started, self.backend)
        return result
