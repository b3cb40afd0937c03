"""A pytest plugin for child runs: the simulated cluster stands in for someone's cluster that already runs two
revisions (tests/someones_model.py, in the layout $OWNERS_LAYOUT; the stable one installed without a revision when
$OWNERS_STABLE_REVISION is `default`), certified with --installed.

Every object of the cluster is written as JSON to $OWNERS_DUMP right after the owner's install and again when the
backend stops (after the run's teardown), as `before` and `after`, for the parent test to compare.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fixtures.options import RUN_CONFIG
from multirev.backends.base import Cluster
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.istio.installed import certified_profile, find_installed
from multirev.profile import Profile
from tests.someones_model import OWNER, install_owners_mesh, objects, stop_like_existing

_start, _stop = SimulatedBackend.start, SimulatedBackend.stop
_dump: dict[str, Any] = {}
_run: dict[str, str] = {}


def _with_the_owners_mesh(self: SimulatedBackend) -> Cluster:
    cluster = _start(self)
    if "before" not in _dump:
        install_owners_mesh(self, cluster, Path(self.kubeconfig).parent / OWNER,
                            os.environ.get("OWNERS_LAYOUT", "separate"), os.environ.get("OWNERS_STABLE_REVISION"))
        _dump["before"] = objects(cluster)
    return cluster


def _installed_profile(self: SimulatedBackend, profile: Profile) -> Profile:
    cluster = _with_the_owners_mesh(self)
    assert profile.installed is not None
    return certified_profile(profile, find_installed(cluster, dict(profile.installed)))


def _stop_and_dump(self: SimulatedBackend) -> None:
    stop_like_existing(self.cluster, _run["id"])
    Path(os.environ["OWNERS_DUMP"]).write_text(json.dumps({"before": _dump.get("before", {}),
                                                            "after": objects(self.cluster)}))
    _stop(self)


def pytest_configure(config: pytest.Config) -> None:
    _run["id"] = config.stash[RUN_CONFIG].run_id


# Patched on import, which `-p` does before any pytest_configure: the suite's own (fixtures/options.py, tryfirst)
# asks the backend for the installed profile. Parent tests do not import this module.
SimulatedBackend.name = "existing"  # set-up surveys the cluster, borrows what exists, gives it back at the end
SimulatedBackend.may_destroy_foreign = lambda self: False  # type: ignore[method-assign]
SimulatedBackend.refuse_installed = lambda self: None  # type: ignore[method-assign]
SimulatedBackend.installed_profile = _installed_profile  # type: ignore[method-assign]
SimulatedBackend.start = _with_the_owners_mesh  # type: ignore[method-assign]
SimulatedBackend.stop = _stop_and_dump  # type: ignore[method-assign]
