"""Waits that scenarios share: a batch of config is awaited by any of its keys (issue 16, finding 7)."""

from __future__ import annotations

from pathlib import Path

from fixtures.mesh import build_mesh
from multirev.backends.simulated.backend import SimulatedBackend
from multirev.checks.xds import pushes_naming_any
from multirev.commands import Transcript
from multirev.kind.images import NODE_IMAGES
from multirev.plan import MeshPlan
from multirev.profile import load_profile
from suites.conftest import BOOKINFO, CLIENT
from suites.scenario import PUSH_TIMEOUT, SETTLE, apply_and_await_push


def test_a_batched_push_line_counts_for_every_key_of_the_batch() -> None:
    """Four objects applied together share one push, whose line names the first: a wait for the last one's key
    alone would never see it."""
    logs = ("info\tads\tPush debounce stable[7] 4 for config ServiceEntry/app/external.multirev.invalid "
            "and 3 more configs: 100.2ms since last change\n")
    keys = ["ServiceEntry/app/external.multirev.invalid", "Gateway/app/egress-gateway",
            "VirtualService/app/external-via-egress"]
    assert len(pushes_naming_any(logs, keys)) == 1
    assert pushes_naming_any(logs, ["VirtualService/app/external-via-egress"]) == []


def _model_mesh(tmp_path: Path):
    backend = SimulatedBackend(Transcript(tmp_path / "t.jsonl"), seed=1, faults=[],
                               node_image=next(iter(NODE_IMAGES.values())), work_dir=tmp_path, host_port_base=18080)
    plan = MeshPlan(load_profile("current"), "run1")
    return build_mesh(plan, backend, backend.start(), tmp_path, {*BOOKINFO, *CLIENT})


def test_applying_the_egress_batch_does_not_wait_out_the_push_timeout(tmp_path: Path) -> None:
    """The egress manifest's four objects are pushed together; the wait ends at that push, not after
    PUSH_TIMEOUT (it cost about 60 s per role before)."""
    mesh = _model_mesh(tmp_path)
    clock = mesh.cluster.clock
    clock.sleep(1)  # past set-up's own push: the model merges changes made at one instant
    started = clock.now()
    apply_and_await_push(mesh, "stable", "egress/egress-via-gateway.yaml")
    assert clock.now() - started < PUSH_TIMEOUT / 2


def test_applying_unchanged_config_again_does_not_wait(tmp_path: Path) -> None:
    """Applied again unchanged, config makes no watch event and no push: nothing is awaited."""
    mesh = _model_mesh(tmp_path)
    clock = mesh.cluster.clock
    apply_and_await_push(mesh, "canary", "routing/reviews-v1.yaml")
    started = clock.now()
    apply_and_await_push(mesh, "canary", "routing/reviews-v1.yaml")
    assert clock.now() - started < SETTLE
