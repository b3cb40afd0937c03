"""KubeCluster against a local API-server stand-in: the requests it sends and what it makes of the answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from apiserver import GIT_VERSION, TOKEN, ServerState, put

from multirev.backends.kube import FIELD_MANAGER, KubeCluster, LogsUnavailable, load_api_client
from multirev.clock import WallClock
from multirev.errors import UsageError
from multirev.kube import kinds


def _cluster(state: ServerState, extra_labels: dict[str, str] | None = None) -> KubeCluster:
    assert state.kubeconfig is not None
    return KubeCluster(load_api_client(str(state.kubeconfig), None), WallClock(), extra_labels=extra_labels)


def _configmap(name: str, namespace: str = "demo", labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "data": {"k": "v"}}


def _deployment(name: str, namespace: str = "demo") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}},
                                                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def test_apply_is_a_forced_server_side_apply_that_creates(apiserver: tuple[str, ServerState]) -> None:
    """apply() PATCHes the item path as apply-patch+yaml with fieldManager and force=true, creating it."""
    _, state = apiserver
    result = _cluster(state).apply(_configmap("cm1"))
    assert result["metadata"]["name"] == "cm1"
    assert state.store.get(kinds.CONFIGMAP, "cm1", "demo")["data"] == {"k": "v"}
    [req] = state.matching("PATCH")
    assert req.path == "/api/v1/namespaces/demo/configmaps/cm1"
    assert req.content_type == "application/apply-patch+yaml"
    assert req.query == {"fieldManager": [FIELD_MANAGER], "force": ["true"]}
    assert FIELD_MANAGER == "multirev-conformance"
    assert req.body["kind"] == "ConfigMap" and req.body["apiVersion"] == "v1"


def test_apply_of_a_cluster_scoped_kind_uses_the_cluster_path(apiserver: tuple[str, ServerState]) -> None:
    """A cluster-scoped object (Namespace) is applied at /api/v1/namespaces/<name>."""
    _, state = apiserver
    _cluster(state).apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    [req] = state.matching("PATCH")
    assert req.path == "/api/v1/namespaces/demo"
    assert state.store.get(kinds.NAMESPACE, "demo") is not None


def test_apply_adds_the_extra_run_labels(apiserver: tuple[str, ServerState]) -> None:
    """extra_labels (the run id) are merged into the applied object's labels, keeping its own."""
    _, state = apiserver
    cluster = _cluster(state, extra_labels={"multirev.io/run-id": "run-42"})
    cluster.apply(_configmap("cm1", labels={"app": "x"}))
    [req] = state.matching("PATCH")
    assert req.body["metadata"]["labels"] == {"app": "x", "multirev.io/run-id": "run-42"}
    stored = state.store.get(kinds.CONFIGMAP, "cm1", "demo")
    assert stored["metadata"]["labels"] == {"app": "x", "multirev.io/run-id": "run-42"}


def test_get_returns_the_object_and_none_when_missing(apiserver: tuple[str, ServerState]) -> None:
    """get() returns the served object; a 404 becomes None rather than an exception."""
    _, state = apiserver
    put(state, _configmap("cm1"))
    cluster = _cluster(state)
    found = cluster.get(kinds.CONFIGMAP, "cm1", "demo")
    assert found is not None and found["data"] == {"k": "v"}
    assert cluster.get(kinds.CONFIGMAP, "nope", "demo") is None
    assert [r.path for r in state.matching("GET")] == ["/api/v1/namespaces/demo/configmaps/cm1",
                                                      "/api/v1/namespaces/demo/configmaps/nope"]


def test_get_of_a_crd_kind_uses_the_group_path(apiserver: tuple[str, ServerState]) -> None:
    """Group kinds are addressed under /apis/<group>/<version>."""
    _, state = apiserver
    put(state, _deployment("web"))
    assert _cluster(state).get(kinds.DEPLOYMENT, "web", "demo") is not None
    assert state.matching("GET")[0].path == "/apis/apps/v1/namespaces/demo/deployments/web"


def test_list_filters_by_labels_and_fills_in_kind(apiserver: tuple[str, ServerState]) -> None:
    """list() sends labelSelector a=b,c=d, returns the matching items with apiVersion/kind restored."""
    _, state = apiserver
    put(state, _configmap("both", labels={"a": "b", "c": "d"}))
    put(state, _configmap("only-a", labels={"a": "b"}))
    put(state, _configmap("other-ns", namespace="elsewhere", labels={"a": "b", "c": "d"}))
    cluster = _cluster(state)
    items = cluster.list(kinds.CONFIGMAP, "demo", labels={"c": "d", "a": "b"})
    assert [i["metadata"]["name"] for i in items] == ["both"]
    assert items[0]["kind"] == "ConfigMap" and items[0]["apiVersion"] == "v1"
    req = state.matching("GET")[-1]
    assert req.path == "/api/v1/namespaces/demo/configmaps"
    assert req.query == {"labelSelector": ["a=b,c=d"]}


def test_list_without_namespace_is_cluster_wide(apiserver: tuple[str, ServerState]) -> None:
    """A namespaced kind listed without a namespace uses the non-namespaced path and sees every namespace."""
    _, state = apiserver
    put(state, _configmap("one", namespace="a"))
    put(state, _configmap("two", namespace="b"))
    items = _cluster(state).list(kinds.CONFIGMAP)
    assert sorted(i["metadata"]["name"] for i in items) == ["one", "two"]
    req = state.matching("GET")[-1]
    assert req.path == "/api/v1/configmaps" and req.query == {}


def test_list_of_an_unserved_kind_is_empty(apiserver: tuple[str, ServerState],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A 404 on a list (CRD not installed) reads as no items."""
    import apiserver as module

    _, state = apiserver
    monkeypatch.setattr(module, "_BY_PREFIX", {})  # the stand-in now serves no kinds at all
    assert _cluster(state).list(kinds.ISTIO_OPERATOR, "istio-system") == []


def test_label_sends_a_merge_patch_and_none_removes(apiserver: tuple[str, ServerState]) -> None:
    """label() PATCHes merge-patch+json {metadata: {labels}}; a None value deletes that label."""
    _, state = apiserver
    put(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo",
                                                                       "labels": {"keep": "1", "drop": "2"}}})
    _cluster(state).label(kinds.NAMESPACE, "demo", {"drop": None, "istio.io/rev": "1-30-3"})
    [req] = state.matching("PATCH")
    assert req.path == "/api/v1/namespaces/demo"
    assert req.content_type == "application/merge-patch+json"
    assert req.body == {"metadata": {"labels": {"drop": None, "istio.io/rev": "1-30-3"}}}
    labels = state.store.get(kinds.NAMESPACE, "demo")["metadata"]["labels"]
    assert labels == {"keep": "1", "istio.io/rev": "1-30-3"}


def test_delete_returns_true_then_false(apiserver: tuple[str, ServerState]) -> None:
    """delete() is True when the object was there and False (not an error) on the 404 after."""
    _, state = apiserver
    put(state, _configmap("cm1"))
    cluster = _cluster(state)
    assert cluster.delete(kinds.CONFIGMAP, "cm1", "demo") is True
    assert cluster.delete(kinds.CONFIGMAP, "cm1", "demo") is False
    assert [r.path for r in state.matching("DELETE")] == ["/api/v1/namespaces/demo/configmaps/cm1"] * 2


def test_rollout_restart_sends_a_strategic_merge_patch(apiserver: tuple[str, ServerState]) -> None:
    """rollout_restart() bumps kubectl.kubernetes.io/restartedAt in the pod template, as kubectl does."""
    _, state = apiserver
    put(state, _deployment("web"))
    _cluster(state).rollout_restart("demo", "web")
    [req] = state.matching("PATCH")
    assert req.path == "/apis/apps/v1/namespaces/demo/deployments/web"
    assert req.content_type == "application/strategic-merge-patch+json"
    stamp = req.body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert stamp.startswith("20") and "T" in stamp
    template = state.store.get(kinds.DEPLOYMENT, "web", "demo")["spec"]["template"]
    assert template["metadata"] == {"labels": {"app": "web"},
                                    "annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
    assert template["spec"]["containers"][0]["name"] == "c"


def test_pod_logs_requests_container_and_tail(apiserver: tuple[str, ServerState]) -> None:
    """pod_logs() GETs .../pods/<pod>/log with container and tailLines."""
    _, state = apiserver
    state.logs[("demo", "web-1")] = "hello\nworld\n"
    _cluster(state).pod_logs("demo", "web-1", "istio-proxy", tail_lines=20)
    req = state.matching("GET")[-1]
    assert req.path == "/api/v1/namespaces/demo/pods/web-1/log"
    assert req.query == {"container": ["istio-proxy"], "tailLines": ["20"]}


def test_pod_logs_returns_the_text(apiserver: tuple[str, ServerState]) -> None:
    """pod_logs() returns the log text as served."""
    _, state = apiserver
    state.logs[("demo", "web-1")] = "hello\nworld\n"
    assert _cluster(state).pod_logs("demo", "web-1", "istio-proxy") == "hello\nworld\n"


def test_pod_logs_keeps_a_json_log_line_verbatim(apiserver: tuple[str, ServerState]) -> None:
    """A log that happens to be valid JSON is still returned verbatim."""
    _, state = apiserver
    state.logs[("demo", "web-1")] = '{"code": 200, "path": "/"}'
    assert _cluster(state).pod_logs("demo", "web-1", "istio-proxy") == '{"code": 200, "path": "/"}'


def test_pod_logs_the_server_cannot_give_name_the_pod_and_its_reason(apiserver: tuple[str, ServerState]) -> None:
    """A failed log read says which pod and why (the server's Status), not a bare 406: the request accepts JSON,
    the type the server writes its errors in."""
    _, state = apiserver
    with pytest.raises(LogsUnavailable) as failure:
        _cluster(state).pod_logs("demo", "gone-1", "istio-proxy")
    assert str(failure.value) == ('logs of container istio-proxy of Pod demo/gone-1 are unavailable: '
                                  'pods "gone-1" not found')


def test_kubernetes_version(apiserver: tuple[str, ServerState]) -> None:
    """kubernetes_version() reads gitVersion from GET /version."""
    _, state = apiserver
    assert _cluster(state).kubernetes_version() == GIT_VERSION == "v1.35.5"
    assert state.matching("GET")[-1].path == "/version"


def test_bearer_token_is_sent(apiserver: tuple[str, ServerState]) -> None:
    """The kubeconfig user's token goes out as `Authorization: Bearer <token>` on every kind of request."""
    _, state = apiserver
    cluster = _cluster(state)
    cluster.kubernetes_version()
    cluster.apply(_configmap("cm1"))
    cluster.get(kinds.CONFIGMAP, "cm1", "demo")
    cluster.list(kinds.CONFIGMAP, "demo", labels={"a": "b"})
    cluster.delete(kinds.CONFIGMAP, "cm1", "demo")
    assert len(state.requests) == 5
    assert {r.authorization for r in state.requests} == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize("text", [
    "::: this is [not yaml\n  - {",
    "just a string\n",
    "apiVersion: v1\nkind: Config\ncontexts: []\nclusters: []\nusers: []\n",
])
def test_load_api_client_on_garbage_is_a_one_line_usage_error(tmp_path: Path, text: str) -> None:
    """An unusable kubeconfig becomes UsageError with a single-line message naming the file."""
    path = tmp_path / "garbage.kubeconfig"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_api_client(str(path), None)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot use {path}: ")
    assert len(message) > len(f"cannot use {path}: ")


def test_load_api_client_names_the_context(apiserver: tuple[str, ServerState]) -> None:
    """A context missing from the kubeconfig is reported, with the context's name, on one line."""
    _, state = apiserver
    with pytest.raises(UsageError) as info:
        load_api_client(str(state.kubeconfig), "no-such-context")
    assert "\n" not in str(info.value)
    assert "context no-such-context" in str(info.value)


def test_exec_returns_output_and_exit_status(apiserver: tuple[str, ServerState]) -> None:
    """A normal exec: stdout, then status Success on the error channel, then a close frame."""
    _, state = apiserver
    state.execs[("app", "client")] = "exit 0"
    result = _cluster(state).exec("app", "client", "sleep", ["curl", "-s", "http://x"])
    assert (result.returncode, result.stdout) == (0, "ok\n")


@pytest.mark.parametrize("behaviour", ["drop", None], ids=["stream-dropped", "pod-gone"])
def test_exec_into_a_vanishing_pod_is_a_failed_command(apiserver: tuple[str, ServerState],
                                                       behaviour: str | None) -> None:
    """A stream that closes with no exit status, or a pod already gone, is a failed request, not an exception
    (kubernetes client 36: WSClient.returncode parses an empty error channel; stream() wraps a refused upgrade)."""
    _, state = apiserver
    if behaviour:
        state.execs[("app", "client")] = behaviour
    result = _cluster(state).exec("app", "client", "sleep", ["curl", "-s", "http://x"])
    assert result.returncode != 0
    assert "app/client" in result.stderr and "\n" not in result.stderr.strip()
