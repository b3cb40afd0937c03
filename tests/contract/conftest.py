"""Fixtures for the contract self-tests: a local API-server stand-in and no proxy in the way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import ServerState, running_apiserver

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def apiserver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ServerState]]:
    """(base_url, state) of a fresh stand-in; state.kubeconfig points at it."""
    for var in PROXY_VARS:  # the kubernetes client would route 127.0.0.1 through a proxy from the env
        monkeypatch.delenv(var, raising=False)
    with running_apiserver(tmp_path) as served:
        yield served
