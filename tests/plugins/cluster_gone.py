"""A pytest plugin for child runs: the simulated cluster behaves like a kind cluster deleted at teardown.

After `stop()`, asking the cluster anything fails as the kubernetes client does against a deleted kind
cluster (urllib3 MaxRetryError: connection refused), and `stop()` itself reports a failed delete.
"""

from __future__ import annotations

from urllib3.exceptions import MaxRetryError, NewConnectionError

from multirev.backends.base import BackendInfo
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.errors import EnvironmentProblem

_stop, _info = SimulatedBackend.stop, SimulatedBackend.info


def _gone_stop(self: SimulatedBackend) -> None:
    _stop(self)
    self.cluster_deleted = True  # type: ignore[attr-defined]
    raise EnvironmentProblem("could not delete kind cluster multirev: ERROR: failed to delete cluster")


def _gone_info(self: SimulatedBackend) -> BackendInfo:
    if getattr(self, "cluster_deleted", False):
        url = "https://127.0.0.1:6443/version"
        raise MaxRetryError(None, url, NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
    return _info(self)


SimulatedBackend.stop = _gone_stop  # type: ignore[method-assign]
SimulatedBackend.info = _gone_info  # type: ignore[method-assign]
