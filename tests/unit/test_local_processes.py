"""Stopping a process the local backend started stops everything it left in its session."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from multirev.backends.local.processes import Supervisor


def test_children_outliving_their_leader_are_stopped_too(tmp_path: Path) -> None:
    """As an nginx master that died leaves its workers: the leader exits, a child keeps the process group, and
    stopping the process must still end it (left behind, they were found after the data plane's teardown)."""
    supervisor = Supervisor(tmp_path / "logs")
    managed = supervisor.start("leader", ["sh", "-c", "sleep 300 & sleep 0.2"], env=dict(os.environ))
    group = managed.proc.pid
    deadline = time.monotonic() + 10
    while managed.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert managed.proc.poll() is not None, "the leader should have exited"
    os.killpg(group, 0)  # the child is still there, in the leader's group
    supervisor.stop("leader")
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
