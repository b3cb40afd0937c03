"""Observations the checks judge: which pods count as a namespace's workloads."""

from __future__ import annotations

from multirev.kube import kinds
from multirev.observe import workload_pods

RUN = {"conformance.multirev.io/run-id": "run1"}


class Listed:
    def __init__(self, pods: list[dict]) -> None:
        self.pods = pods

    def list(self, kind, namespace=None, labels=None) -> list[dict]:
        assert kind == kinds.POD
        return [p for p in self.pods if all((p["metadata"].get("labels") or {}).get(k) == v
                                            for k, v in (labels or {}).items())]


def _pod(name: str, *, app: str | None = "reviews", terminating: bool = False, run: bool = True) -> dict:
    meta = {"name": name, "namespace": "app", "labels": {**({"app": app} if app else {}), **(RUN if run else {})}}
    if terminating:
        meta["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    return {"metadata": meta}


def test_pods_shutting_down_are_not_judged() -> None:
    """A rollout is done while the old pods still terminate (their grace period): they are not the namespace's
    workloads any more (issue 16, finding 1)."""
    cluster = Listed([_pod("new"), _pod("old", terminating=True), _pod("no-app", app=None)])
    assert [p["metadata"]["name"] for p in workload_pods(cluster, "app", RUN)] == ["new"]
    assert [p["metadata"]["name"] for p in workload_pods(cluster, "app", RUN, labels={"app": "other"})] == []


def test_pods_of_workloads_the_run_did_not_make_are_not_judged() -> None:
    """A borrowed app namespace (existing cluster, --allow-destructive) keeps the user's own workloads, whose pods
    predate the run and have no sidecar: only pods carrying the run label are the run's (issue 16, finding 5)."""
    cluster = Listed([_pod("ours"), _pod("theirs", run=False), _pod("theirs-reviews", app="reviews", run=False)])
    assert [p["metadata"]["name"] for p in workload_pods(cluster, "app", RUN)] == ["ours"]
    assert [p["metadata"]["name"] for p in workload_pods(cluster, "app", RUN, labels={"app": "reviews"})] == ["ours"]
    other_run = {"conformance.multirev.io/run-id": "run2"}
    assert workload_pods(cluster, "app", other_run) == []
