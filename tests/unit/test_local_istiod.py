"""How the local backend turns a KWOK istiod pod into a real pilot-discovery command (no processes started)."""

from __future__ import annotations

from pathlib import Path

from multirev.backends.local.istiod import ADDRESS_FLAGS, container_env, image_tag, istiod_command

POD = {
    "metadata": {"name": "istiod-1-31-dev-b-abc", "namespace": "istio-canary", "labels": {"app": "istiod"}},
    "spec": {"serviceAccountName": "istiod-1-31-dev-b", "containers": [{
        "name": "discovery", "image": "registry.istio.io/release/pilot:1.31-dev",
        "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info", "--domain",
                 "cluster.local", "--kubeconfig=/var/run/secrets/remote/config"],
        "env": [{"name": "REVISION", "value": "1-31-dev-b"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "KUBECONFIG", "value": "/var/run/secrets/remote/config"}]}]},
    "status": {"podIP": "10.244.0.7"},
}


def test_the_pods_own_environment_is_resolved_as_a_kubelet_would() -> None:
    env = container_env(POD, POD["spec"]["containers"][0])
    assert env["POD_NAME"] == "istiod-1-31-dev-b-abc"
    assert env["POD_NAMESPACE"] == "istio-canary"
    assert env["SERVICE_ACCOUNT"] == "istiod-1-31-dev-b"
    assert env["REVISION"] == "1-31-dev-b"
    assert "GOMAXPROCS" not in env  # resource refs are not resolved from a fake pod


def test_every_listener_binds_the_pod_ip_and_the_kubeconfig_is_the_runs() -> None:
    argv, env = istiod_command(Path("/bin/pilot-discovery"), POD, Path("/tmp/run/inside.kubeconfig"))
    assert argv[:2] == ["/bin/pilot-discovery", "discovery"]
    for flag, port in ADDRESS_FLAGS.items():
        assert f"{flag}=10.244.0.7:{port}" in argv
        assert sum(a.startswith(f"{flag}=") for a in argv) == 1, f"{flag} given twice"
    assert "--ctrlz_address=10.244.0.7" in argv
    assert [a for a in argv if a.startswith("--kubeconfig")] == ["--kubeconfig=/tmp/run/inside.kubeconfig"]
    assert "--domain" in argv and "cluster.local" in argv  # the rendered arguments are kept
    assert "KUBECONFIG" not in env
    assert env["PILOT_JWT_ENABLE_REMOTE_JWKS"] == "envoy" and env["RESOLVE_HOSTNAME_GATEWAYS"] == "false"


def test_the_binary_follows_the_image_tag() -> None:
    assert image_tag("registry.istio.io/release/pilot:1.31-dev") == "1.31-dev"
    assert image_tag("localhost:5000/istio/pilot:1.30.3@sha256:abc") == "1.30.3"
    assert image_tag("pilot") == ""


def test_label_and_status_field_paths_resolve() -> None:
    container = {"env": [{"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    assert container_env(POD, container) == {"APP": "istiod", "IP": "10.244.0.7"}
